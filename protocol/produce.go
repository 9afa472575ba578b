package protocol

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
// that wants to avoid the copy sends the frame with the records as separate
// buffers of a net.Buffers, which this layout allows since each record set
// ends its partition entry.
func (r *ProduceRequest) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, r.Acks)
	dst = appendInt32(dst, r.TimeoutMs)
	return appendArray(dst, r.Topics, (*ProduceTopic).append)
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
