package protocol

import (
	"fmt"
	"math"
)

// The acks a producer can ask for.
const (
	AcksNone   int16 = 0  // no response is sent
	AcksLeader int16 = 1  // answered once the leader appended
	AcksAll    int16 = -1 // answered once the high watermark covers the batch
)

// ProduceRequest appends record sets to partitions. Each partition's Records
// is one or more whole record batches, opaque to the protocol; after Decode
// it aliases the frame buffer, so it is valid only until the buffer is
// reused.
type ProduceRequest struct {
	Acks      int16
	TimeoutMs int32
	Topics    []ProduceTopic
}

// ProduceTopic is one topic's record sets.
type ProduceTopic struct {
	Name       string
	Partitions []ProducePartition
}

// ProducePartition is one partition's record set.
type ProducePartition struct {
	Partition int32
	Records   []byte
}

// Key returns Produce.
func (*ProduceRequest) Key() APIKey { return Produce }

// Append encodes the body. The record sets are copied into dst; a client
// that wants to avoid the copy encodes the frame with AppendSplitFrame and
// sends the records as separate buffers of a net.Buffers, which this layout
// allows since each record set ends its partition entry.
func (r *ProduceRequest) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, r.Acks)
	dst = appendInt32(dst, r.TimeoutMs)
	return appendArray(dst, r.Topics, (*ProduceTopic).append)
}

// AppendSplitFrame appends r as a whole request frame — length prefix,
// header h, body — to f, with a hole for each partition's record set
// (topics in order, then their partitions) instead of its bytes: f.Buffers
// with the partitions' Records in that order gives the frame's bytes with
// none of the records copied, for one writev. Nothing of f is reset, so
// several frames (and whole frames appended to f.Head by AppendRequest)
// can share it; on error f is left as it was.
func (r *ProduceRequest) AppendSplitFrame(f *SplitFrame, h *RequestHeader) error {
	if h.Key != Produce {
		return fmt.Errorf("request header says %v, message is %v", h.Key, Produce)
	}
	if !Produce.Supports(h.Version) {
		return fmt.Errorf("%v request v%d: %w", Produce, h.Version, ErrUnsupportedVersion)
	}
	start, nholes := len(f.Head), len(f.Holes)
	head, holes := f.Head, f.Holes
	head = appendInt32(head, 0) // length, patched below
	head = h.Append(head)
	head = appendInt16(head, r.Acks)
	head = appendInt32(head, r.TimeoutMs)
	head = appendInt32(head, int32(len(r.Topics)))
	records := int64(0)
	for i := range r.Topics {
		t := &r.Topics[i]
		head = appendString(head, t.Name)
		head = appendInt32(head, int32(len(t.Partitions)))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			head = appendInt32(head, p.Partition)
			size := int32(-1)
			if p.Records != nil {
				if int64(len(p.Records)) > math.MaxInt32 {
					f.Head, f.Holes = head[:start], holes[:nholes]
					return fmt.Errorf("produce request: record set of %d bytes exceeds the i32 length", len(p.Records))
				}
				size = int32(len(p.Records))
				records += int64(size)
			}
			head = appendInt32(head, size)
			holes = append(holes, Hole{At: len(head), Size: size})
		}
	}
	n := int64(len(head)-start-4) + records
	if n > math.MaxInt32 {
		f.Head, f.Holes = head[:start], holes[:nholes]
		return fmt.Errorf("produce request: frame of %d bytes exceeds the i32 length", n)
	}
	be.PutUint32(head[start:], uint32(n))
	f.Head, f.Holes = head, holes
	return nil
}

// Decode parses the body. Decoding into the same ProduceRequest again
// reuses its slices and topic names, so the broker's steady-state produce
// path does not allocate.
func (r *ProduceRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(Produce, false, version); err != nil {
		return err
	}
	r.Acks = d.int16("acks")
	r.TimeoutMs = d.int32("timeout_ms")
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*ProduceTopic).decode)
	return d.finish()
}

func (t *ProduceTopic) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*ProducePartition).append)
}

func (t *ProduceTopic) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 8, (*ProducePartition).decode)
}

func (p *ProducePartition) append(dst []byte) []byte {
	return appendBytes(appendInt32(dst, p.Partition), p.Records)
}

func (p *ProducePartition) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.Records = d.bytes("records")
}

// ProduceResponse reports the outcome per partition.
type ProduceResponse struct {
	ErrorCode  ErrorCode
	ThrottleMs int32
	Topics     []ProduceTopicResponse
}

// ProduceTopicResponse is one topic's outcomes.
type ProduceTopicResponse struct {
	Name       string
	Partitions []ProducePartitionResponse
}

// ProducePartitionResponse is one partition's outcome. BaseOffset is the
// offset of the first record appended (for a retried idempotent batch, the
// offset it got the first time, R13).
type ProducePartitionResponse struct {
	Partition      int32
	ErrorCode      ErrorCode
	ErrorMessage   string
	BaseOffset     int64
	LogAppendTime  int64 // -1 unless the topic uses log-append time
	LogStartOffset int64
}

// Key returns Produce.
func (*ProduceResponse) Key() APIKey { return Produce }

// Append encodes the body.
func (r *ProduceResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendInt32(dst, r.ThrottleMs)
	return appendArray(dst, r.Topics, (*ProduceTopicResponse).append)
}

// Decode parses the body.
func (r *ProduceResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(Produce, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ThrottleMs, r.Topics = 0, r.Topics[:0]
		return d.err
	}
	r.ThrottleMs = d.int32("throttle_ms")
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*ProduceTopicResponse).decode)
	return d.finish()
}

func (t *ProduceTopicResponse) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*ProducePartitionResponse).append)
}

func (t *ProduceTopicResponse) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 32, (*ProducePartitionResponse).decode)
}

func (p *ProducePartitionResponse) append(dst []byte) []byte {
	dst = appendInt32(dst, p.Partition)
	dst = appendInt16(dst, int16(p.ErrorCode))
	dst = appendString(dst, p.ErrorMessage)
	dst = appendInt64(dst, p.BaseOffset)
	dst = appendInt64(dst, p.LogAppendTime)
	return appendInt64(dst, p.LogStartOffset)
}

func (p *ProducePartitionResponse) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.ErrorCode = ErrorCode(d.int16("error_code"))
	p.ErrorMessage = d.string("error_message", p.ErrorMessage)
	p.BaseOffset = d.int64("base_offset")
	p.LogAppendTime = d.int64("log_append_time")
	p.LogStartOffset = d.int64("log_start_offset")
}
