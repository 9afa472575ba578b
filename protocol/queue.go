package protocol

// The queue-group APIs (docs/queues.md). A queue group's coordinator is
// its consumer-group coordinator (FindCoordinator with the group id); a
// member receives records under a lease with QueueReceive and says what
// became of them with QueueAck. The coordinator answers an acquisition or
// an outcome only once the group's state is written with acks=all.

// Queue outcomes in QueueAck (group.Outcome's numbers).
const (
	QueueAccept  int8 = 1 // processed: never delivered again
	QueueRelease int8 = 2 // available again after DelayMs
	QueueReject  int8 = 3 // archived and dead-lettered with Reason
	QueueRenew   int8 = 4 // the lease starts again
)

// Header names of a dead letter (the record copied to the dead-letter
// topic keeps its key, value and headers and gets these).
const (
	DeadLetterReason     = "sluice.dlq.reason"
	DeadLetterDeliveries = "sluice.dlq.deliveries"
	DeadLetterTopic      = "sluice.dlq.topic"
	DeadLetterPartition  = "sluice.dlq.partition"
	DeadLetterOffset     = "sluice.dlq.offset"
	DeadLetterTimestamp  = "sluice.dlq.timestamp"
)

// QueueReceiveRequest asks for up to MaxRecords records of Topics for
// MemberID (any id the member chooses; it names the holder of the
// leases), waiting up to MaxWaitMs for one to be available.
type QueueReceiveRequest struct {
	GroupID    string
	MemberID   string
	Topics     []string
	MaxRecords int32
	MaxWaitMs  int32
	// Partitions (v1), when not empty, are the only partitions read: a
	// Kafka share fetch forwarded by a partition's leader to the
	// coordinator. Their topics are among Topics.
	Partitions []QueuePartitionKey
	// Acks (v2) are outcomes of records this member holds, applied and
	// committed before anything is acquired (KIP-932's ShareFetch carries
	// acknowledgements the same way): one request settles the last
	// records and asks for the next. The response lists their refusals
	// in AckFailures.
	Acks []QueueAckRange
}

// QueuePartitionKey names one partition of a topic.
type QueuePartitionKey struct {
	Topic     string
	Partition int32
}

// Key returns QueueReceive.
func (*QueueReceiveRequest) Key() APIKey { return QueueReceive }

// Append encodes the body.
func (r *QueueReceiveRequest) Append(dst []byte, version int16) []byte {
	dst = appendString(dst, r.GroupID)
	dst = appendString(dst, r.MemberID)
	dst = appendStrings(dst, r.Topics)
	dst = appendInt32(dst, r.MaxRecords)
	dst = appendInt32(dst, r.MaxWaitMs)
	if version >= 1 {
		dst = appendArray(dst, r.Partitions, func(k *QueuePartitionKey, dst []byte) []byte {
			return appendInt32(appendString(dst, k.Topic), k.Partition)
		})
	}
	if version >= 2 {
		dst = appendArray(dst, r.Acks, (*QueueAckRange).append)
	}
	return dst
}

// Decode parses the body.
func (r *QueueReceiveRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(QueueReceive, false, version); err != nil {
		return err
	}
	r.GroupID = d.string("group_id", r.GroupID)
	r.MemberID = d.string("member_id", r.MemberID)
	r.Topics = d.strings("topics", r.Topics)
	r.MaxRecords = d.int32("max_records")
	r.MaxWaitMs = d.int32("max_wait_ms")
	r.Partitions = r.Partitions[:0]
	if version >= 1 {
		r.Partitions = decodeArray(d, "partitions", 2+4, r.Partitions, func(k *QueuePartitionKey, d *Decoder) {
			k.Topic = d.string("topic", k.Topic)
			k.Partition = d.int32("partition")
		})
	}
	r.Acks = r.Acks[:0]
	if version >= 2 {
		r.Acks = decodeArray(d, "acks", 2+4+8+8+1+4+2, r.Acks, (*QueueAckRange).decode)
	}
	return d.finish()
}

// QueueReceiveResponse holds the records acquired, by partition, and
// the lease they are held under. With a top-level error nothing was
// acquired and the request's acks may not have been applied (an
// indeterminate code: they may have been); without one every ack not in
// AckFailures (v2, as QueueAckResponse's Failures) was applied.
type QueueReceiveResponse struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	LeaseMs      int32
	Partitions   []QueuePartitionRecords
	AckFailures  []QueueAckFailure
}

// QueuePartitionRecords are the records acquired of one partition.
type QueuePartitionRecords struct {
	Topic     string
	Partition int32
	Records   []QueueRecord
}

// QueueRecord is one record acquired: where it is, its delivery number
// (from 1) and its contents. Key and Value are nil for a null one.
type QueueRecord struct {
	Offset     int64
	Deliveries int32
	Timestamp  int64
	Key        []byte
	Value      []byte
	Headers    []QueueHeader
}

// QueueHeader is a record header.
type QueueHeader struct {
	Key   string
	Value []byte
}

// Key returns QueueReceive.
func (*QueueReceiveResponse) Key() APIKey { return QueueReceive }

// Append encodes the body.
func (r *QueueReceiveResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendString(dst, r.ErrorMessage)
	dst = appendInt32(dst, r.LeaseMs)
	dst = appendArray(dst, r.Partitions, (*QueuePartitionRecords).append)
	if version >= 2 {
		dst = appendArray(dst, r.AckFailures, (*QueueAckFailure).append)
	}
	return dst
}

func (p *QueuePartitionRecords) append(dst []byte) []byte {
	dst = appendString(dst, p.Topic)
	dst = appendInt32(dst, p.Partition)
	return appendArray(dst, p.Records, (*QueueRecord).append)
}

func (q *QueueRecord) append(dst []byte) []byte {
	dst = appendInt64(dst, q.Offset)
	dst = appendInt32(dst, q.Deliveries)
	dst = appendInt64(dst, q.Timestamp)
	dst = appendBytes(dst, q.Key)
	dst = appendBytes(dst, q.Value)
	return appendArray(dst, q.Headers, (*QueueHeader).append)
}

func (h *QueueHeader) append(dst []byte) []byte {
	return appendBytes(appendString(dst, h.Key), h.Value)
}

// Decode parses the body. Key, Value and header values alias d's input.
func (r *QueueReceiveResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(QueueReceive, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage, r.LeaseMs, r.Partitions, r.AckFailures = "", 0, r.Partitions[:0], r.AckFailures[:0]
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	r.LeaseMs = d.int32("lease_ms")
	r.Partitions = decodeArray(d, "partitions", 2+4+4, r.Partitions, (*QueuePartitionRecords).decode)
	r.AckFailures = r.AckFailures[:0]
	if version >= 2 {
		r.AckFailures = decodeArray(d, "ack_failures", 2+4+8+8+2+2, r.AckFailures, (*QueueAckFailure).decode)
	}
	return d.finish()
}

func (p *QueuePartitionRecords) decode(d *Decoder) {
	p.Topic = d.string("topic", p.Topic)
	p.Partition = d.int32("partition")
	p.Records = decodeArray(d, "records", 8+4+8+4+4+4, p.Records, (*QueueRecord).decode)
}

func (q *QueueRecord) decode(d *Decoder) {
	q.Offset = d.int64("offset")
	q.Deliveries = d.int32("deliveries")
	q.Timestamp = d.int64("timestamp")
	q.Key = d.bytes("key")
	q.Value = d.bytes("value")
	q.Headers = decodeArray(d, "headers", 2+4, q.Headers, (*QueueHeader).decode)
}

func (h *QueueHeader) decode(d *Decoder) {
	h.Key = d.string("key", h.Key)
	h.Value = d.bytes("value")
}

// QueueAckRequest carries a member's outcomes, each for a range of
// offsets [FirstOffset, LastOffset] of one partition.
type QueueAckRequest struct {
	GroupID  string
	MemberID string
	Acks     []QueueAckRange
}

// QueueAckRange is one outcome for a range of offsets. DelayMs applies
// to QueueRelease, Reason to QueueReject.
type QueueAckRange struct {
	Topic       string
	Partition   int32
	FirstOffset int64
	LastOffset  int64
	Outcome     int8
	DelayMs     int32
	Reason      string
}

// Key returns QueueAck.
func (*QueueAckRequest) Key() APIKey { return QueueAck }

// Append encodes the body.
func (r *QueueAckRequest) Append(dst []byte, version int16) []byte {
	dst = appendString(dst, r.GroupID)
	dst = appendString(dst, r.MemberID)
	return appendArray(dst, r.Acks, (*QueueAckRange).append)
}

func (a *QueueAckRange) append(dst []byte) []byte {
	dst = appendString(dst, a.Topic)
	dst = appendInt32(dst, a.Partition)
	dst = appendInt64(dst, a.FirstOffset)
	dst = appendInt64(dst, a.LastOffset)
	dst = appendInt8(dst, a.Outcome)
	dst = appendInt32(dst, a.DelayMs)
	return appendString(dst, a.Reason)
}

// Decode parses the body.
func (r *QueueAckRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(QueueAck, false, version); err != nil {
		return err
	}
	r.GroupID = d.string("group_id", r.GroupID)
	r.MemberID = d.string("member_id", r.MemberID)
	r.Acks = decodeArray(d, "acks", 2+4+8+8+1+4+2, r.Acks, (*QueueAckRange).decode)
	return d.finish()
}

func (a *QueueAckRange) decode(d *Decoder) {
	a.Topic = d.string("topic", a.Topic)
	a.Partition = d.int32("partition")
	a.FirstOffset = d.int64("first_offset")
	a.LastOffset = d.int64("last_offset")
	a.Outcome = d.int8("outcome")
	a.DelayMs = d.int32("delay_ms")
	a.Reason = d.string("reason", a.Reason)
}

// QueueAckResponse lists the offsets whose outcome was refused, as
// ranges with one code each; every offset not listed was applied. The
// refusals are definite: QUEUE_LEASE_LOST (the record is not held by
// this member: its lease ran out and it went back or to another member),
// INVALID_RECORD_STATE (never delivered to the group, or already done).
type QueueAckResponse struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	Failures     []QueueAckFailure
}

// QueueAckFailure is a range of offsets refused with one code.
type QueueAckFailure struct {
	Topic        string
	Partition    int32
	FirstOffset  int64
	LastOffset   int64
	ErrorCode    ErrorCode
	ErrorMessage string
}

// Key returns QueueAck.
func (*QueueAckResponse) Key() APIKey { return QueueAck }

// Append encodes the body.
func (r *QueueAckResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendString(dst, r.ErrorMessage)
	return appendArray(dst, r.Failures, (*QueueAckFailure).append)
}

func (f *QueueAckFailure) append(dst []byte) []byte {
	dst = appendString(dst, f.Topic)
	dst = appendInt32(dst, f.Partition)
	dst = appendInt64(dst, f.FirstOffset)
	dst = appendInt64(dst, f.LastOffset)
	dst = appendInt16(dst, int16(f.ErrorCode))
	return appendString(dst, f.ErrorMessage)
}

// Decode parses the body.
func (r *QueueAckResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(QueueAck, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage, r.Failures = "", r.Failures[:0]
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	r.Failures = decodeArray(d, "failures", 2+4+8+8+2+2, r.Failures, (*QueueAckFailure).decode)
	return d.finish()
}

func (f *QueueAckFailure) decode(d *Decoder) {
	f.Topic = d.string("topic", f.Topic)
	f.Partition = d.int32("partition")
	f.FirstOffset = d.int64("first_offset")
	f.LastOffset = d.int64("last_offset")
	f.ErrorCode = ErrorCode(d.int16("error_code"))
	f.ErrorMessage = d.string("error_message", f.ErrorMessage)
}

// DescribeQueueGroupRequest asks a queue group's coordinator for the
// state of its partitions.
type DescribeQueueGroupRequest struct {
	GroupID string
}

// Key returns DescribeQueueGroup.
func (*DescribeQueueGroupRequest) Key() APIKey { return DescribeQueueGroup }

// Append encodes the body.
func (r *DescribeQueueGroupRequest) Append(dst []byte, version int16) []byte {
	return appendString(dst, r.GroupID)
}

// Decode parses the body.
func (r *DescribeQueueGroupRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(DescribeQueueGroup, false, version); err != nil {
		return err
	}
	r.GroupID = d.string("group_id", r.GroupID)
	return d.finish()
}

// DescribeQueueGroupResponse is a queue group's partitions (GROUP_ID_NOT_FOUND
// for a group the coordinator does not hold).
type DescribeQueueGroupResponse struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	LeaseMs      int32
	Partitions   []QueuePartitionState
}

// QueuePartitionState is one partition's window: records before
// StartOffset are done, EndOffset is the first never delivered; the counts
// are of the records inside. OldestAcquiredMs is the age of the oldest
// lease still held (-1: none); AtCap says no new record is delivered
// until the window's start moves.
type QueuePartitionState struct {
	Topic            string
	Partition        int32
	StartOffset      int64
	EndOffset        int64
	Available        int32
	Acquired         int32
	Accepted         int32
	Archived         int32
	DeadLettered     int64
	OldestAcquiredMs int64
	AtCap            bool
}

// Key returns DescribeQueueGroup.
func (*DescribeQueueGroupResponse) Key() APIKey { return DescribeQueueGroup }

// Append encodes the body.
func (r *DescribeQueueGroupResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendString(dst, r.ErrorMessage)
	dst = appendInt32(dst, r.LeaseMs)
	return appendArray(dst, r.Partitions, (*QueuePartitionState).append)
}

func (s *QueuePartitionState) append(dst []byte) []byte {
	dst = appendString(dst, s.Topic)
	dst = appendInt32(dst, s.Partition)
	dst = appendInt64(dst, s.StartOffset)
	dst = appendInt64(dst, s.EndOffset)
	dst = appendInt32(dst, s.Available)
	dst = appendInt32(dst, s.Acquired)
	dst = appendInt32(dst, s.Accepted)
	dst = appendInt32(dst, s.Archived)
	dst = appendInt64(dst, s.DeadLettered)
	dst = appendInt64(dst, s.OldestAcquiredMs)
	return appendBool(dst, s.AtCap)
}

// Decode parses the body.
func (r *DescribeQueueGroupResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(DescribeQueueGroup, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage, r.LeaseMs, r.Partitions = "", 0, r.Partitions[:0]
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	r.LeaseMs = d.int32("lease_ms")
	r.Partitions = decodeArray(d, "partitions", 2+4+8+8+4*4+8+8+1, r.Partitions, (*QueuePartitionState).decode)
	return d.finish()
}

func (s *QueuePartitionState) decode(d *Decoder) {
	s.Topic = d.string("topic", s.Topic)
	s.Partition = d.int32("partition")
	s.StartOffset = d.int64("start_offset")
	s.EndOffset = d.int64("end_offset")
	s.Available = d.int32("available")
	s.Acquired = d.int32("acquired")
	s.Accepted = d.int32("accepted")
	s.Archived = d.int32("archived")
	s.DeadLettered = d.int64("dead_lettered")
	s.OldestAcquiredMs = d.int64("oldest_acquired_ms")
	s.AtCap = d.bool("at_cap")
}

// ResetQueueGroupRequest moves a queue group's window of each partition
// named to its offset, dropping every state in it (for `sluice queue
// reset`; the tool resolves earliest and latest with ListOffsets).
type ResetQueueGroupRequest struct {
	GroupID    string
	Partitions []QueueResetPartition
}

// QueueResetPartition is one partition's new window start.
type QueueResetPartition struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Key returns ResetQueueGroup.
func (*ResetQueueGroupRequest) Key() APIKey { return ResetQueueGroup }

// Append encodes the body.
func (r *ResetQueueGroupRequest) Append(dst []byte, version int16) []byte {
	dst = appendString(dst, r.GroupID)
	return appendArray(dst, r.Partitions, (*QueueResetPartition).append)
}

func (p *QueueResetPartition) append(dst []byte) []byte {
	return appendInt64(appendInt32(appendString(dst, p.Topic), p.Partition), p.Offset)
}

// Decode parses the body.
func (r *ResetQueueGroupRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(ResetQueueGroup, false, version); err != nil {
		return err
	}
	r.GroupID = d.string("group_id", r.GroupID)
	r.Partitions = decodeArray(d, "partitions", 2+4+8, r.Partitions, (*QueueResetPartition).decode)
	return d.finish()
}

func (p *QueueResetPartition) decode(d *Decoder) {
	p.Topic = d.string("topic", p.Topic)
	p.Partition = d.int32("partition")
	p.Offset = d.int64("offset")
}

// ResetQueueGroupResponse is the outcome of a reset.
type ResetQueueGroupResponse struct {
	ErrorCode    ErrorCode
	ErrorMessage string
}

// Key returns ResetQueueGroup.
func (*ResetQueueGroupResponse) Key() APIKey { return ResetQueueGroup }

// Append encodes the body.
func (r *ResetQueueGroupResponse) Append(dst []byte, version int16) []byte {
	return appendString(appendInt16(dst, int16(r.ErrorCode)), r.ErrorMessage)
}

// Decode parses the body.
func (r *ResetQueueGroupResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(ResetQueueGroup, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage = ""
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	return d.finish()
}
