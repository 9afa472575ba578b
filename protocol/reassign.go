package protocol

// Growing topics and moving partitions (controller/move.go). The keys
// are Kafka's: CreatePartitions, AlterPartitionReassignments and
// ListPartitionReassignments.

// CreatePartitionsRequest adds partitions to topics. The broker
// forwards it to the controller; ValidateOnly checks everything and
// adds nothing.
type CreatePartitionsRequest struct {
	Topics       []PartitionCount
	TimeoutMs    int32
	ValidateOnly bool
}

// PartitionCount is one topic's new partition count (more than it has).
type PartitionCount struct {
	Name  string
	Count int32
}

// Key returns CreatePartitions.
func (*CreatePartitionsRequest) Key() APIKey { return CreatePartitions }

// Append encodes the body.
func (r *CreatePartitionsRequest) Append(dst []byte, version int16) []byte {
	dst = appendArray(dst, r.Topics, (*PartitionCount).append)
	dst = appendInt32(dst, r.TimeoutMs)
	return appendBool(dst, r.ValidateOnly)
}

// Decode parses the body.
func (r *CreatePartitionsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(CreatePartitions, false, version); err != nil {
		return err
	}
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*PartitionCount).decode)
	r.TimeoutMs = d.int32("timeout_ms")
	r.ValidateOnly = d.bool("validate_only")
	return d.finish()
}

func (c *PartitionCount) append(dst []byte) []byte {
	return appendInt32(appendString(dst, c.Name), c.Count)
}

func (c *PartitionCount) decode(d *Decoder) {
	c.Name = d.string("name", c.Name)
	c.Count = d.int32("count")
}

// CreatePartitionsResponse reports the outcome per topic.
type CreatePartitionsResponse struct {
	ErrorCode ErrorCode
	Topics    []TopicError
}

// Key returns CreatePartitions.
func (*CreatePartitionsResponse) Key() APIKey { return CreatePartitions }

// Append encodes the body.
func (r *CreatePartitionsResponse) Append(dst []byte, version int16) []byte {
	return (*topicErrorsResponse)(r).append(dst)
}

// Decode parses the body.
func (r *CreatePartitionsResponse) Decode(d *Decoder, version int16) error {
	return (*topicErrorsResponse)(r).decode(d, CreatePartitions, version)
}

// AlterPartitionReassignmentsRequest starts moves of partitions to new
// replica lists, or cancels them (an empty Replicas).
type AlterPartitionReassignmentsRequest struct {
	TimeoutMs  int32
	Partitions []Reassignment
}

// Reassignment is one partition's target replica list, preferred leader
// first; empty cancels the partition's move.
type Reassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
}

// Key returns AlterPartitionReassignments.
func (*AlterPartitionReassignmentsRequest) Key() APIKey { return AlterPartitionReassignments }

// Append encodes the body.
func (r *AlterPartitionReassignmentsRequest) Append(dst []byte, version int16) []byte {
	dst = appendInt32(dst, r.TimeoutMs)
	return appendArray(dst, r.Partitions, (*Reassignment).append)
}

// Decode parses the body.
func (r *AlterPartitionReassignmentsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(AlterPartitionReassignments, false, version); err != nil {
		return err
	}
	r.TimeoutMs = d.int32("timeout_ms")
	r.Partitions = decodeArray(d, "partitions", 10, r.Partitions, (*Reassignment).decode)
	return d.finish()
}

func (a *Reassignment) append(dst []byte) []byte {
	dst = appendString(dst, a.Topic)
	dst = appendInt32(dst, a.Partition)
	return appendInt32s(dst, a.Replicas)
}

func (a *Reassignment) decode(d *Decoder) {
	a.Topic = d.string("topic", a.Topic)
	a.Partition = d.int32("partition")
	a.Replicas = d.int32s("replicas", a.Replicas)
}

// AlterPartitionReassignmentsResponse reports the outcome per partition.
type AlterPartitionReassignmentsResponse struct {
	ErrorCode ErrorCode
	Results   []PartitionResult
}

// PartitionResult is one partition's outcome; Message may say more.
type PartitionResult struct {
	Topic     string
	Partition int32
	ErrorCode ErrorCode
	Message   string
}

// Key returns AlterPartitionReassignments.
func (*AlterPartitionReassignmentsResponse) Key() APIKey { return AlterPartitionReassignments }

// Append encodes the body.
func (r *AlterPartitionReassignmentsResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendArray(dst, r.Results, (*PartitionResult).append)
}

// Decode parses the body.
func (r *AlterPartitionReassignmentsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(AlterPartitionReassignments, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Results = r.Results[:0]
		return d.err
	}
	r.Results = decodeArray(d, "results", 10, r.Results, (*PartitionResult).decode)
	return d.finish()
}

func (p *PartitionResult) append(dst []byte) []byte {
	dst = appendString(dst, p.Topic)
	dst = appendInt32(dst, p.Partition)
	dst = appendInt16(dst, int16(p.ErrorCode))
	return appendString(dst, p.Message)
}

func (p *PartitionResult) decode(d *Decoder) {
	p.Topic = d.string("topic", p.Topic)
	p.Partition = d.int32("partition")
	p.ErrorCode = ErrorCode(d.int16("error_code"))
	p.Message = d.string("message", p.Message)
}

// ListPartitionReassignmentsRequest lists the partitions that are moving,
// of the named topics (all when none). Any broker answers from its
// metadata, with the progress of the moves of the partitions it leads.
type ListPartitionReassignmentsRequest struct {
	Topics []string
}

// Key returns ListPartitionReassignments.
func (*ListPartitionReassignmentsRequest) Key() APIKey { return ListPartitionReassignments }

// Append encodes the body.
func (r *ListPartitionReassignmentsRequest) Append(dst []byte, version int16) []byte {
	return appendStrings(dst, r.Topics)
}

// Decode parses the body.
func (r *ListPartitionReassignmentsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(ListPartitionReassignments, false, version); err != nil {
		return err
	}
	r.Topics = d.strings("topics", r.Topics)
	return d.finish()
}

// ListPartitionReassignmentsResponse lists the moving partitions.
type ListPartitionReassignmentsResponse struct {
	ErrorCode  ErrorCode
	BrokerID   int32 // the broker that answered
	Partitions []MovingPartition
}

// MovingPartition is one partition's move: Replicas is the target
// followed by the removing replicas; a move waiting for the cluster's
// move limits has Queued (its target) set instead, and Replicas is then
// the current list. When Progress is set (the answering
// broker leads it), LeaderEnd is the leader's log end offset, Positions
// each adding replica's fetch position there (-1: not fetched in this
// leadership), and BytesRemaining the leader's estimate of the bytes the
// furthest-behind adding replica still has to copy.
type MovingPartition struct {
	Topic          string
	Partition      int32
	Leader         int32
	Replicas       []int32
	Adding         []int32
	Removing       []int32
	Progress       bool
	LeaderEnd      int64
	Positions      []int64 // parallel to Adding
	BytesRemaining int64
	Queued         []int32
}

// Target is the replica list the move ends with: Replicas without the
// removing ones at its end.
func (p *MovingPartition) Target() []int32 {
	if len(p.Removing) > len(p.Replicas) {
		return nil
	}
	return p.Replicas[:len(p.Replicas)-len(p.Removing)]
}

// Key returns ListPartitionReassignments.
func (*ListPartitionReassignmentsResponse) Key() APIKey { return ListPartitionReassignments }

// Append encodes the body.
func (r *ListPartitionReassignmentsResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendInt32(dst, r.BrokerID)
	return appendArray(dst, r.Partitions, (*MovingPartition).append)
}

// Decode parses the body.
func (r *ListPartitionReassignmentsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(ListPartitionReassignments, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.BrokerID, r.Partitions = 0, r.Partitions[:0]
		return d.err
	}
	r.BrokerID = d.int32("broker_id")
	// A partition is at least 47 bytes: topic length, partition, leader,
	// three array lengths, progress, end offset, an array length, the
	// bytes remaining and an array length.
	r.Partitions = decodeArray(d, "partitions", 47, r.Partitions, (*MovingPartition).decode)
	return d.finish()
}

func (p *MovingPartition) append(dst []byte) []byte {
	dst = appendString(dst, p.Topic)
	dst = appendInt32(dst, p.Partition)
	dst = appendInt32(dst, p.Leader)
	dst = appendInt32s(dst, p.Replicas)
	dst = appendInt32s(dst, p.Adding)
	dst = appendInt32s(dst, p.Removing)
	dst = appendBool(dst, p.Progress)
	dst = appendInt64(dst, p.LeaderEnd)
	dst = appendInt32(dst, int32(len(p.Positions)))
	for _, o := range p.Positions {
		dst = appendInt64(dst, o)
	}
	dst = appendInt64(dst, p.BytesRemaining)
	return appendInt32s(dst, p.Queued)
}

func (p *MovingPartition) decode(d *Decoder) {
	p.Topic = d.string("topic", p.Topic)
	p.Partition = d.int32("partition")
	p.Leader = d.int32("leader")
	p.Replicas = d.int32s("replicas", p.Replicas)
	p.Adding = d.int32s("adding", p.Adding)
	p.Removing = d.int32s("removing", p.Removing)
	p.Progress = d.bool("progress")
	p.LeaderEnd = d.int64("leader_end")
	p.Positions = resize(p.Positions, d.arrayLen("positions", 8))
	for i := range p.Positions {
		p.Positions[i] = d.int64("positions")
	}
	p.BytesRemaining = d.int64("bytes_remaining")
	p.Queued = d.int32s("queued", p.Queued)
}
