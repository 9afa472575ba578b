package protocol

import (
	"fmt"
	"math"
	"net"
)

// FetchRequest reads record sets from partitions, long-polling: the broker
// answers once MinBytes are available or MaxWaitMs has passed. Consumers
// send ReplicaID -1; followers send their broker id and broker epoch, which
// the leader uses to track the ISR and fence restarted brokers (R10).
type FetchRequest struct {
	ReplicaID    int32
	ReplicaEpoch int64 // -1 for consumers
	MaxWaitMs    int32
	MinBytes     int32
	MaxBytes     int32
	Isolation    IsolationLevel
	Topics       []FetchTopic
}

// FetchTopic is one topic's partitions to read.
type FetchTopic struct {
	Name       string
	Partitions []FetchPartition
}

// FetchPartition is where to read one partition from. CurrentLeaderEpoch
// (-1 for none) fences fetches routed by stale metadata; LogStartOffset is
// the follower's, -1 for consumers.
type FetchPartition struct {
	Partition          int32
	CurrentLeaderEpoch int32
	FetchOffset        int64
	LogStartOffset     int64
	PartitionMaxBytes  int32
}

// Key returns Fetch.
func (*FetchRequest) Key() APIKey { return Fetch }

// Append encodes the body.
func (r *FetchRequest) Append(dst []byte, version int16) []byte {
	dst = appendInt32(dst, r.ReplicaID)
	dst = appendInt64(dst, r.ReplicaEpoch)
	dst = appendInt32(dst, r.MaxWaitMs)
	dst = appendInt32(dst, r.MinBytes)
	dst = appendInt32(dst, r.MaxBytes)
	dst = appendInt8(dst, int8(r.Isolation))
	return appendArray(dst, r.Topics, (*FetchTopic).append)
}

// Decode parses the body.
func (r *FetchRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(Fetch, false, version); err != nil {
		return err
	}
	r.ReplicaID = d.int32("replica_id")
	r.ReplicaEpoch = d.int64("replica_epoch")
	r.MaxWaitMs = d.int32("max_wait_ms")
	r.MinBytes = d.int32("min_bytes")
	r.MaxBytes = d.int32("max_bytes")
	r.Isolation = IsolationLevel(d.int8("isolation_level"))
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*FetchTopic).decode)
	return d.finish()
}

func (t *FetchTopic) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*FetchPartition).append)
}

func (t *FetchTopic) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 28, (*FetchPartition).decode)
}

func (p *FetchPartition) append(dst []byte) []byte {
	dst = appendInt32(dst, p.Partition)
	dst = appendInt32(dst, p.CurrentLeaderEpoch)
	dst = appendInt64(dst, p.FetchOffset)
	dst = appendInt64(dst, p.LogStartOffset)
	return appendInt32(dst, p.PartitionMaxBytes)
}

func (p *FetchPartition) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.CurrentLeaderEpoch = d.int32("current_leader_epoch")
	p.FetchOffset = d.int64("fetch_offset")
	p.LogStartOffset = d.int64("log_start_offset")
	p.PartitionMaxBytes = d.int32("partition_max_bytes")
}

// FetchResponse carries each partition's record set and offsets. Records is
// the last field of each partition entry, which is what lets a broker send
// the record sets without copying them (AppendSplitFrame).
type FetchResponse struct {
	ErrorCode  ErrorCode
	ThrottleMs int32
	Topics     []FetchTopicResponse
}

// FetchTopicResponse is one topic's partitions.
type FetchTopicResponse struct {
	Name       string
	Partitions []FetchPartitionResponse
}

// FetchPartitionResponse is one partition's result. Records holds whole
// batches, possibly followed by a partial batch cut by a size limit, which
// the client must ignore. After Decode, Records aliases the frame buffer.
type FetchPartitionResponse struct {
	Partition        int32
	ErrorCode        ErrorCode
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	Records          []byte
}

// Key returns Fetch.
func (*FetchResponse) Key() APIKey { return Fetch }

// Append encodes the body, copying every record set into dst. The broker's
// hot path uses AppendSplitFrame instead.
func (r *FetchResponse) Append(dst []byte, version int16) []byte {
	dst = r.appendHead(dst)
	return appendArray(dst, r.Topics, (*FetchTopicResponse).append)
}

func (r *FetchResponse) appendHead(dst []byte) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendInt32(dst, r.ThrottleMs)
}

// Decode parses the body. Record sets alias d's input.
func (r *FetchResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(Fetch, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ThrottleMs, r.Topics = 0, r.Topics[:0]
		return d.err
	}
	r.ThrottleMs = d.int32("throttle_ms")
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*FetchTopicResponse).decode)
	return d.finish()
}

func (t *FetchTopicResponse) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*FetchPartitionResponse).append)
}

func (t *FetchTopicResponse) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 34, (*FetchPartitionResponse).decode)
}

func (p *FetchPartitionResponse) append(dst []byte) []byte {
	size := int32(-1)
	if p.Records != nil {
		size = int32(len(p.Records))
	}
	return append(p.appendHead(dst, size), p.Records...)
}

// appendHead writes the partition entry up to and including the records
// length, but not the records.
func (p *FetchPartitionResponse) appendHead(dst []byte, recordsSize int32) []byte {
	dst = appendInt32(dst, p.Partition)
	dst = appendInt16(dst, int16(p.ErrorCode))
	dst = appendInt64(dst, p.HighWatermark)
	dst = appendInt64(dst, p.LastStableOffset)
	dst = appendInt64(dst, p.LogStartOffset)
	return appendInt32(dst, recordsSize)
}

func (p *FetchPartitionResponse) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.ErrorCode = ErrorCode(d.int16("error_code"))
	p.HighWatermark = d.int64("high_watermark")
	p.LastStableOffset = d.int64("last_stable_offset")
	p.LogStartOffset = d.int64("log_start_offset")
	p.Records = d.bytes("records")
}

// SplitFrame is a whole response frame with holes where record sets go:
// Head holds every byte of the frame except the record sets, and each Hole
// says where in Head one record set is spliced in and how long it is. The
// length prefix at the start of Head already counts the record sets, so the
// frame on the wire is
//
//	Head[0:Holes[0].At] records0 Head[Holes[0].At:Holes[1].At] records1 … Head[Holes[n-1].At:]
//
// A broker writes the Head pieces with write(2) and each record set with
// sendfile(2) from its segment file (or hands mapped slices to Buffers for
// one writev), so the records are never copied into a response buffer.
type SplitFrame struct {
	Head  []byte
	Holes []Hole
}

// Hole is one record set's place in a SplitFrame.
type Hole struct {
	At   int   // offset in Head before which the record set goes
	Size int32 // its length in bytes; -1 encodes a null record set (no bytes)
}

// Len is the number of bytes the frame occupies on the wire.
func (f *SplitFrame) Len() int64 {
	n := int64(len(f.Head))
	for _, h := range f.Holes {
		n += int64(max(h.Size, 0))
	}
	return n
}

// Buffers appends to bufs (normally bufs[:0] of a reused slice) the pieces
// of the frame in wire order, with records[i] filling Holes[i], ready for
// bufs.WriteTo(conn), which uses writev. Nothing is copied. Each records[i]
// must be exactly Holes[i].Size bytes (empty for -1): a mismatch would put a
// frame on the wire whose lengths lie, so it is an error.
func (f *SplitFrame) Buffers(bufs net.Buffers, records [][]byte) (net.Buffers, error) {
	if len(records) != len(f.Holes) {
		return bufs, fmt.Errorf("split frame: %d record sets for %d holes", len(records), len(f.Holes))
	}
	prev := 0
	for i, h := range f.Holes {
		if len(records[i]) != int(max(h.Size, 0)) {
			return bufs, fmt.Errorf("split frame: record set %d is %d bytes, hole is %d", i, len(records[i]), h.Size)
		}
		bufs = append(bufs, f.Head[prev:h.At])
		if len(records[i]) > 0 {
			bufs = append(bufs, records[i])
		}
		prev = h.At
	}
	return append(bufs, f.Head[prev:]), nil
}

// AppendSplitFrame encodes r as a whole response frame (length prefix,
// correlation id, body) into f, reusing f's storage, with a hole for each
// partition's record set instead of the bytes themselves. sizes[i] is the
// size of the i-th partition's record set in response order (topics in
// order, then their partitions in order), -1 for null; the partitions'
// Records fields are ignored. f.Holes[i] then belongs to that partition.
func (r *FetchResponse) AppendSplitFrame(f *SplitFrame, correlationID int32, version int16, sizes []int32) error {
	if !Fetch.Supports(version) {
		return fmt.Errorf("fetch response v%d: %w", version, ErrUnsupportedVersion)
	}
	n := 0
	for i := range r.Topics {
		n += len(r.Topics[i].Partitions)
	}
	if len(sizes) != n {
		return fmt.Errorf("fetch response: %d record set sizes for %d partitions", len(sizes), n)
	}
	head, holes := f.Head[:0], f.Holes[:0]
	head = appendInt32(head, 0) // length, patched below
	head = appendInt32(head, correlationID)
	head = r.appendHead(head)
	head = appendInt32(head, int32(len(r.Topics)))
	total := int64(0)
	for i := range r.Topics {
		t := &r.Topics[i]
		head = appendString(head, t.Name)
		head = appendInt32(head, int32(len(t.Partitions)))
		for j := range t.Partitions {
			size := sizes[len(holes)]
			if size < -1 {
				return fmt.Errorf("fetch response: record set size %d", size)
			}
			head = t.Partitions[j].appendHead(head, size)
			holes = append(holes, Hole{At: len(head), Size: size})
			total += int64(max(size, 0))
		}
	}
	total += int64(len(head) - 4)
	if total > math.MaxInt32 {
		return fmt.Errorf("fetch response: frame of %d bytes exceeds the i32 length", total)
	}
	be.PutUint32(head, uint32(total))
	f.Head, f.Holes = head, holes
	return nil
}
