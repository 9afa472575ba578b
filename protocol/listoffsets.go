package protocol

// Special timestamps of a ListOffsets query.
const (
	LatestTimestamp   int64 = -1 // the log end offset (high watermark for consumers)
	EarliestTimestamp int64 = -2 // the log start offset
)

// IsolationLevel says which records a consumer may see.
type IsolationLevel int8

// The isolation levels.
const (
	ReadUncommitted IsolationLevel = 0 // up to the high watermark
	ReadCommitted   IsolationLevel = 1 // up to the last stable offset
)

// ListOffsetsRequest finds offsets by timestamp: per partition, the first
// offset whose timestamp is at or after Timestamp, or the latest or earliest
// offset.
type ListOffsetsRequest struct {
	ReplicaID int32 // -1 for consumers
	Isolation IsolationLevel
	Topics    []ListOffsetsTopic
}

// ListOffsetsTopic is one topic's queries.
type ListOffsetsTopic struct {
	Name       string
	Partitions []ListOffsetsPartition
}

// ListOffsetsPartition is one partition's query. CurrentLeaderEpoch (-1 for
// none) fences requests routed by stale metadata.
type ListOffsetsPartition struct {
	Partition          int32
	CurrentLeaderEpoch int32
	Timestamp          int64
}

// Key returns ListOffsets.
func (*ListOffsetsRequest) Key() APIKey { return ListOffsets }

// Append encodes the body.
func (r *ListOffsetsRequest) Append(dst []byte, version int16) []byte {
	dst = appendInt32(dst, r.ReplicaID)
	dst = appendInt8(dst, int8(r.Isolation))
	return appendArray(dst, r.Topics, (*ListOffsetsTopic).append)
}

// Decode parses the body.
func (r *ListOffsetsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(ListOffsets, false, version); err != nil {
		return err
	}
	r.ReplicaID = d.int32("replica_id")
	r.Isolation = IsolationLevel(d.int8("isolation_level"))
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*ListOffsetsTopic).decode)
	return d.finish()
}

func (t *ListOffsetsTopic) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*ListOffsetsPartition).append)
}

func (t *ListOffsetsTopic) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 16, (*ListOffsetsPartition).decode)
}

func (p *ListOffsetsPartition) append(dst []byte) []byte {
	dst = appendInt32(dst, p.Partition)
	dst = appendInt32(dst, p.CurrentLeaderEpoch)
	return appendInt64(dst, p.Timestamp)
}

func (p *ListOffsetsPartition) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.CurrentLeaderEpoch = d.int32("current_leader_epoch")
	p.Timestamp = d.int64("timestamp")
}

// ListOffsetsResponse holds the offset found per partition.
type ListOffsetsResponse struct {
	ErrorCode ErrorCode
	Topics    []ListOffsetsTopicResponse
}

// ListOffsetsTopicResponse is one topic's results.
type ListOffsetsTopicResponse struct {
	Name       string
	Partitions []ListOffsetsPartitionResponse
}

// ListOffsetsPartitionResponse is one partition's result: the offset, the
// timestamp of the record found (-1 for latest/earliest) and the leader
// epoch of that offset.
type ListOffsetsPartitionResponse struct {
	Partition   int32
	ErrorCode   ErrorCode
	Timestamp   int64
	Offset      int64
	LeaderEpoch int32
}

// Key returns ListOffsets.
func (*ListOffsetsResponse) Key() APIKey { return ListOffsets }

// Append encodes the body.
func (r *ListOffsetsResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendArray(dst, r.Topics, (*ListOffsetsTopicResponse).append)
}

// Decode parses the body.
func (r *ListOffsetsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(ListOffsets, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Topics = r.Topics[:0]
		return d.err
	}
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*ListOffsetsTopicResponse).decode)
	return d.finish()
}

func (t *ListOffsetsTopicResponse) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*ListOffsetsPartitionResponse).append)
}

func (t *ListOffsetsTopicResponse) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 26, (*ListOffsetsPartitionResponse).decode)
}

func (p *ListOffsetsPartitionResponse) append(dst []byte) []byte {
	dst = appendInt32(dst, p.Partition)
	dst = appendInt16(dst, int16(p.ErrorCode))
	dst = appendInt64(dst, p.Timestamp)
	dst = appendInt64(dst, p.Offset)
	return appendInt32(dst, p.LeaderEpoch)
}

func (p *ListOffsetsPartitionResponse) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.ErrorCode = ErrorCode(d.int16("error_code"))
	p.Timestamp = d.int64("timestamp")
	p.Offset = d.int64("offset")
	p.LeaderEpoch = d.int32("leader_epoch")
}
