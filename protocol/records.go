package protocol

// DeleteRecordsRequest moves partitions' log start offsets up (Kafka's
// DeleteRecords): the records below Offset can no longer be read. Sent to
// each partition's leader. Offset -1 means the high watermark.
type DeleteRecordsRequest struct {
	Topics    []DeleteRecordsTopic
	TimeoutMs int32
}

// DeleteRecordsTopic is one topic's partitions.
type DeleteRecordsTopic struct {
	Name       string
	Partitions []DeleteRecordsPartition
}

// DeleteRecordsPartition is one partition and the offset to delete below.
type DeleteRecordsPartition struct {
	Partition int32
	Offset    int64
}

// Key returns DeleteRecords.
func (*DeleteRecordsRequest) Key() APIKey { return DeleteRecords }

// Append encodes the body.
func (r *DeleteRecordsRequest) Append(dst []byte, version int16) []byte {
	dst = appendArray(dst, r.Topics, (*DeleteRecordsTopic).append)
	return appendInt32(dst, r.TimeoutMs)
}

// Decode parses the body.
func (r *DeleteRecordsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(DeleteRecords, false, version); err != nil {
		return err
	}
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*DeleteRecordsTopic).decode)
	r.TimeoutMs = d.int32("timeout_ms")
	return d.finish()
}

func (t *DeleteRecordsTopic) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*DeleteRecordsPartition).append)
}

func (t *DeleteRecordsTopic) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 12, (*DeleteRecordsPartition).decode)
}

func (p *DeleteRecordsPartition) append(dst []byte) []byte {
	return appendInt64(appendInt32(dst, p.Partition), p.Offset)
}

func (p *DeleteRecordsPartition) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.Offset = d.int64("offset")
}

// DeleteRecordsResponse holds each partition's outcome.
type DeleteRecordsResponse struct {
	ErrorCode ErrorCode
	Topics    []DeleteRecordsTopicResponse
}

// DeleteRecordsTopicResponse is one topic's results.
type DeleteRecordsTopicResponse struct {
	Name       string
	Partitions []DeleteRecordsPartitionResponse
}

// DeleteRecordsPartitionResponse is one partition's result: its log start
// offset on the leader afterwards (the low watermark; -1 on error).
type DeleteRecordsPartitionResponse struct {
	Partition    int32
	ErrorCode    ErrorCode
	ErrorMessage string
	LowWatermark int64
}

// Key returns DeleteRecords.
func (*DeleteRecordsResponse) Key() APIKey { return DeleteRecords }

// Append encodes the body.
func (r *DeleteRecordsResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendArray(dst, r.Topics, (*DeleteRecordsTopicResponse).append)
}

// Decode parses the body.
func (r *DeleteRecordsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(DeleteRecords, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Topics = r.Topics[:0]
		return d.err
	}
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*DeleteRecordsTopicResponse).decode)
	return d.finish()
}

func (t *DeleteRecordsTopicResponse) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*DeleteRecordsPartitionResponse).append)
}

func (t *DeleteRecordsTopicResponse) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 16, (*DeleteRecordsPartitionResponse).decode)
}

func (p *DeleteRecordsPartitionResponse) append(dst []byte) []byte {
	dst = appendInt32(dst, p.Partition)
	dst = appendInt16(dst, int16(p.ErrorCode))
	dst = appendString(dst, p.ErrorMessage)
	return appendInt64(dst, p.LowWatermark)
}

func (p *DeleteRecordsPartitionResponse) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.ErrorCode = ErrorCode(d.int16("error_code"))
	p.ErrorMessage = d.string("error_message", p.ErrorMessage)
	p.LowWatermark = d.int64("low_watermark")
}
