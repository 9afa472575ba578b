package protocol

// OffsetForLeaderEpochRequest asks a leader, per partition, where an epoch
// ended in its log. A follower that starts following a new leader sends its
// latest epoch and truncates its own log at the end offset it gets back:
// that is where the two logs diverged (R9), however the high watermarks
// compare. ReplicaID is the asking follower's broker id, -1 for tools.
type OffsetForLeaderEpochRequest struct {
	ReplicaID int32
	Topics    []OffsetForLeaderEpochTopic
}

// OffsetForLeaderEpochTopic is one topic's queries.
type OffsetForLeaderEpochTopic struct {
	Name       string
	Partitions []OffsetForLeaderEpochPartition
}

// OffsetForLeaderEpochPartition is one partition's query. CurrentLeaderEpoch
// (-1 for none) is the epoch the follower believes the leader is in, which
// fences a request routed by stale metadata (FENCED_LEADER_EPOCH or
// UNKNOWN_LEADER_EPOCH); LeaderEpoch is the epoch whose end is asked for.
type OffsetForLeaderEpochPartition struct {
	Partition          int32
	CurrentLeaderEpoch int32
	LeaderEpoch        int32
}

// Key returns OffsetForLeaderEpoch.
func (*OffsetForLeaderEpochRequest) Key() APIKey { return OffsetForLeaderEpoch }

// Append encodes the body.
func (r *OffsetForLeaderEpochRequest) Append(dst []byte, version int16) []byte {
	dst = appendInt32(dst, r.ReplicaID)
	return appendArray(dst, r.Topics, (*OffsetForLeaderEpochTopic).append)
}

// Decode parses the body.
func (r *OffsetForLeaderEpochRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(OffsetForLeaderEpoch, false, version); err != nil {
		return err
	}
	r.ReplicaID = d.int32("replica_id")
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*OffsetForLeaderEpochTopic).decode)
	return d.finish()
}

func (t *OffsetForLeaderEpochTopic) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*OffsetForLeaderEpochPartition).append)
}

func (t *OffsetForLeaderEpochTopic) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 12, (*OffsetForLeaderEpochPartition).decode)
}

func (p *OffsetForLeaderEpochPartition) append(dst []byte) []byte {
	dst = appendInt32(dst, p.Partition)
	dst = appendInt32(dst, p.CurrentLeaderEpoch)
	return appendInt32(dst, p.LeaderEpoch)
}

func (p *OffsetForLeaderEpochPartition) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.CurrentLeaderEpoch = d.int32("current_leader_epoch")
	p.LeaderEpoch = d.int32("leader_epoch")
}

// OffsetForLeaderEpochResponse holds, per partition, the end of the asked
// epoch in the leader's log.
type OffsetForLeaderEpochResponse struct {
	ErrorCode  ErrorCode
	ThrottleMs int32
	Topics     []OffsetForLeaderEpochTopicResult
}

// OffsetForLeaderEpochTopicResult is one topic's answers.
type OffsetForLeaderEpochTopicResult struct {
	Name       string
	Partitions []EpochEndOffset
}

// EpochEndOffset is one partition's answer, as Kafka's KIP-101/KIP-279
// define it: LeaderEpoch is the largest epoch in the leader's log that is
// at most the one asked for, and EndOffset the start offset of the first
// epoch after it (the log end offset when it is the current epoch). A
// follower truncates to min(EndOffset, its own end offset) when
// LeaderEpoch equals its epoch, and otherwise asks again for LeaderEpoch.
// Both are -1 when the leader knows no such epoch (UNDEFINED).
type EpochEndOffset struct {
	ErrorCode   ErrorCode
	Partition   int32
	LeaderEpoch int32
	EndOffset   int64
}

// Key returns OffsetForLeaderEpoch.
func (*OffsetForLeaderEpochResponse) Key() APIKey { return OffsetForLeaderEpoch }

// Append encodes the body.
func (r *OffsetForLeaderEpochResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendInt32(dst, r.ThrottleMs)
	return appendArray(dst, r.Topics, (*OffsetForLeaderEpochTopicResult).append)
}

// Decode parses the body.
func (r *OffsetForLeaderEpochResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(OffsetForLeaderEpoch, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ThrottleMs, r.Topics = 0, r.Topics[:0]
		return d.err
	}
	r.ThrottleMs = d.int32("throttle_ms")
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*OffsetForLeaderEpochTopicResult).decode)
	return d.finish()
}

func (t *OffsetForLeaderEpochTopicResult) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*EpochEndOffset).append)
}

func (t *OffsetForLeaderEpochTopicResult) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 18, (*EpochEndOffset).decode)
}

func (p *EpochEndOffset) append(dst []byte) []byte {
	dst = appendInt16(dst, int16(p.ErrorCode))
	dst = appendInt32(dst, p.Partition)
	dst = appendInt32(dst, p.LeaderEpoch)
	return appendInt64(dst, p.EndOffset)
}

func (p *EpochEndOffset) decode(d *Decoder) {
	p.ErrorCode = ErrorCode(d.int16("error_code"))
	p.Partition = d.int32("partition")
	p.LeaderEpoch = d.int32("leader_epoch")
	p.EndOffset = d.int64("end_offset")
}
