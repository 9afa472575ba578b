package protocol

// The consumer-group APIs. sluice's group protocol is KIP-848's: a member
// sends ConsumerGroupHeartbeat, the coordinator answers with its member
// epoch and the partitions it should own now; the coordinator assigns
// partitions itself and moves a partition to a new owner only after the old
// owner reported it revoked. A group's coordinator is found with
// FindCoordinator; commits and fetches of offsets go to it.

// Coordinator key types of FindCoordinator (Kafka's numbers).
const (
	CoordinatorGroup int8 = 0
)

// Group types, as ListGroups and ConsumerGroupDescribe report them.
const (
	GroupTypeConsumer = "consumer" // KIP-848 members (the sluice protocol)
	GroupTypeClassic  = "classic"  // JoinGroup/SyncGroup members (the Kafka listener)
)

// Member epochs with a meaning of their own in ConsumerGroupHeartbeat and
// OffsetCommit.
const (
	// MemberEpochJoin is the epoch a member sends to join (or rejoin after
	// FENCED_MEMBER_EPOCH or UNKNOWN_MEMBER_ID).
	MemberEpochJoin int32 = 0
	// MemberEpochLeave is the epoch a member sends to leave the group; its
	// partitions are reassigned at once.
	MemberEpochLeave int32 = -1
	// MemberEpochLeaveStatic is the epoch a static member (one with an
	// instance id) sends when it stops for a restart: it keeps its
	// partitions for the session timeout.
	MemberEpochLeaveStatic int32 = -2
	// MemberEpochAdmin is the epoch of a commit or fetch that comes from no
	// member (an admin tool resetting offsets): accepted only while the
	// group has no members.
	MemberEpochAdmin int32 = -1
)

// TopicPartitions names partitions of one topic: an assignment, or the
// partitions a member owns.
type TopicPartitions struct {
	Topic      string
	Partitions []int32
}

func (t *TopicPartitions) append(dst []byte) []byte {
	return appendInt32s(appendString(dst, t.Topic), t.Partitions)
}

func (t *TopicPartitions) decode(d *Decoder) {
	t.Topic = d.string("topic", t.Topic)
	t.Partitions = d.int32s("partitions", t.Partitions)
}

// FindCoordinatorRequest asks which broker coordinates a group: the leader
// of the group's partition of the offsets topic.
type FindCoordinatorRequest struct {
	CoordinatorKey string // the group id
	KeyType        int8   // CoordinatorGroup
}

// Key returns FindCoordinator.
func (*FindCoordinatorRequest) Key() APIKey { return FindCoordinator }

// Append encodes the body.
func (r *FindCoordinatorRequest) Append(dst []byte, version int16) []byte {
	return appendInt8(appendString(dst, r.CoordinatorKey), r.KeyType)
}

// Decode parses the body.
func (r *FindCoordinatorRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(FindCoordinator, false, version); err != nil {
		return err
	}
	r.CoordinatorKey = d.string("key", r.CoordinatorKey)
	r.KeyType = d.int8("key_type")
	return d.finish()
}

// FindCoordinatorResponse names the coordinator, or says why there is none
// now (COORDINATOR_NOT_AVAILABLE while the offsets partition has no leader).
type FindCoordinatorResponse struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	BrokerID     int32
	Host         string
	Port         int32
}

// Key returns FindCoordinator.
func (*FindCoordinatorResponse) Key() APIKey { return FindCoordinator }

// Append encodes the body.
func (r *FindCoordinatorResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendString(dst, r.ErrorMessage)
	dst = appendInt32(dst, r.BrokerID)
	dst = appendString(dst, r.Host)
	return appendInt32(dst, r.Port)
}

// Decode parses the body.
func (r *FindCoordinatorResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(FindCoordinator, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage, r.BrokerID, r.Host, r.Port = "", 0, "", 0
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	r.BrokerID = d.int32("broker_id")
	r.Host = d.string("host", r.Host)
	r.Port = d.int32("port")
	return d.finish()
}

// ConsumerGroupHeartbeatRequest is a member's whole state, sent to join,
// every heartbeat interval, whenever its subscription or owned partitions
// change, and to leave. A member joins with MemberEpochJoin and an empty
// MemberID (the coordinator issues one) or an id of its own choosing; it
// leaves with MemberEpochLeave (MemberEpochLeaveStatic for a static member
// that will be back).
type ConsumerGroupHeartbeatRequest struct {
	GroupID     string
	MemberID    string
	MemberEpoch int32
	// InstanceID makes the member static: a member that comes back with
	// the same instance id within the session timeout takes its old place
	// and partitions. "" for a dynamic member.
	InstanceID         string
	RackID             string
	RebalanceTimeoutMs int32 // how long the member may take to revoke partitions
	SubscribedTopics   []string
	// SubscribedTopicRegex (RE2 syntax) subscribes to every topic whose
	// name it matches, now and later; "" for none.
	SubscribedTopicRegex string
	// Assignor names the server-side assignor ("uniform", "range"); "" for
	// the group's default.
	Assignor string
	// OwnedPartitions is what the member owns now: its last assignment
	// minus what it has revoked.
	OwnedPartitions []TopicPartitions
}

// Key returns ConsumerGroupHeartbeat.
func (*ConsumerGroupHeartbeatRequest) Key() APIKey { return ConsumerGroupHeartbeat }

// Append encodes the body.
func (r *ConsumerGroupHeartbeatRequest) Append(dst []byte, version int16) []byte {
	dst = appendString(dst, r.GroupID)
	dst = appendString(dst, r.MemberID)
	dst = appendInt32(dst, r.MemberEpoch)
	dst = appendString(dst, r.InstanceID)
	dst = appendString(dst, r.RackID)
	dst = appendInt32(dst, r.RebalanceTimeoutMs)
	dst = appendStrings(dst, r.SubscribedTopics)
	dst = appendString(dst, r.SubscribedTopicRegex)
	dst = appendString(dst, r.Assignor)
	return appendArray(dst, r.OwnedPartitions, (*TopicPartitions).append)
}

// Decode parses the body.
func (r *ConsumerGroupHeartbeatRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(ConsumerGroupHeartbeat, false, version); err != nil {
		return err
	}
	r.GroupID = d.string("group_id", r.GroupID)
	r.MemberID = d.string("member_id", r.MemberID)
	r.MemberEpoch = d.int32("member_epoch")
	r.InstanceID = d.string("instance_id", r.InstanceID)
	r.RackID = d.string("rack_id", r.RackID)
	r.RebalanceTimeoutMs = d.int32("rebalance_timeout_ms")
	r.SubscribedTopics = d.strings("subscribed_topics", r.SubscribedTopics)
	r.SubscribedTopicRegex = d.string("subscribed_topic_regex", r.SubscribedTopicRegex)
	r.Assignor = d.string("assignor", r.Assignor)
	r.OwnedPartitions = decodeArray(d, "owned_partitions", 6, r.OwnedPartitions, (*TopicPartitions).decode)
	return d.finish()
}

// ConsumerGroupHeartbeatResponse gives the member its id, its epoch and the
// partitions it should own now. A partition leaves Assignment as soon as
// the member must revoke it, and enters it only once no other member owns
// it. UNKNOWN_MEMBER_ID and FENCED_MEMBER_EPOCH tell the member to drop its
// partitions (without committing) and join again with MemberEpochJoin.
type ConsumerGroupHeartbeatResponse struct {
	ErrorCode           ErrorCode
	ErrorMessage        string
	MemberID            string
	MemberEpoch         int32
	HeartbeatIntervalMs int32
	Assignment          []TopicPartitions
}

// Key returns ConsumerGroupHeartbeat.
func (*ConsumerGroupHeartbeatResponse) Key() APIKey { return ConsumerGroupHeartbeat }

// Append encodes the body.
func (r *ConsumerGroupHeartbeatResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendString(dst, r.ErrorMessage)
	dst = appendString(dst, r.MemberID)
	dst = appendInt32(dst, r.MemberEpoch)
	dst = appendInt32(dst, r.HeartbeatIntervalMs)
	return appendArray(dst, r.Assignment, (*TopicPartitions).append)
}

// Decode parses the body.
func (r *ConsumerGroupHeartbeatResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(ConsumerGroupHeartbeat, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage, r.MemberID, r.MemberEpoch, r.HeartbeatIntervalMs = "", "", 0, 0
		r.Assignment = r.Assignment[:0]
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	r.MemberID = d.string("member_id", r.MemberID)
	r.MemberEpoch = d.int32("member_epoch")
	r.HeartbeatIntervalMs = d.int32("heartbeat_interval_ms")
	r.Assignment = decodeArray(d, "assignment", 6, r.Assignment, (*TopicPartitions).decode)
	return d.finish()
}

// OffsetCommitRequest commits offsets for a group. A member commits with
// its id and current epoch (a stale epoch gets STALE_MEMBER_EPOCH, an
// unknown member UNKNOWN_MEMBER_ID); a tool commits with an empty member id
// and MemberEpochAdmin, accepted only while the group has no members. The
// committed offset is the next record to read.
type OffsetCommitRequest struct {
	GroupID     string
	MemberID    string
	MemberEpoch int32
	Topics      []OffsetCommitTopic
}

// OffsetCommitTopic is one topic's commits.
type OffsetCommitTopic struct {
	Name       string
	Partitions []OffsetCommitPartition
}

// OffsetCommitPartition is one partition's commit.
type OffsetCommitPartition struct {
	Partition   int32
	Offset      int64
	LeaderEpoch int32 // the epoch of the last record consumed; -1 when unknown
	Metadata    string
}

// Key returns OffsetCommit.
func (*OffsetCommitRequest) Key() APIKey { return OffsetCommit }

// Append encodes the body.
func (r *OffsetCommitRequest) Append(dst []byte, version int16) []byte {
	dst = appendString(dst, r.GroupID)
	dst = appendString(dst, r.MemberID)
	dst = appendInt32(dst, r.MemberEpoch)
	return appendArray(dst, r.Topics, (*OffsetCommitTopic).append)
}

// Decode parses the body.
func (r *OffsetCommitRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(OffsetCommit, false, version); err != nil {
		return err
	}
	r.GroupID = d.string("group_id", r.GroupID)
	r.MemberID = d.string("member_id", r.MemberID)
	r.MemberEpoch = d.int32("member_epoch")
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*OffsetCommitTopic).decode)
	return d.finish()
}

func (t *OffsetCommitTopic) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*OffsetCommitPartition).append)
}

func (t *OffsetCommitTopic) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 18, (*OffsetCommitPartition).decode)
}

func (p *OffsetCommitPartition) append(dst []byte) []byte {
	dst = appendInt32(dst, p.Partition)
	dst = appendInt64(dst, p.Offset)
	dst = appendInt32(dst, p.LeaderEpoch)
	return appendString(dst, p.Metadata)
}

func (p *OffsetCommitPartition) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.Offset = d.int64("offset")
	p.LeaderEpoch = d.int32("leader_epoch")
	p.Metadata = d.string("metadata", p.Metadata)
}

// OffsetCommitResponse reports each partition's outcome. A group-wide
// refusal (NOT_COORDINATOR, STALE_MEMBER_EPOCH, …) is the top-level code.
type OffsetCommitResponse struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	Topics       []OffsetCommitTopicResponse
}

// OffsetCommitTopicResponse is one topic's outcomes.
type OffsetCommitTopicResponse struct {
	Name       string
	Partitions []PartitionError
}

// PartitionError is one partition's outcome.
type PartitionError struct {
	Partition int32
	ErrorCode ErrorCode
}

// Key returns OffsetCommit.
func (*OffsetCommitResponse) Key() APIKey { return OffsetCommit }

// Append encodes the body.
func (r *OffsetCommitResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendString(dst, r.ErrorMessage)
	return appendArray(dst, r.Topics, (*OffsetCommitTopicResponse).append)
}

// Decode parses the body.
func (r *OffsetCommitResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(OffsetCommit, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage, r.Topics = "", r.Topics[:0]
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*OffsetCommitTopicResponse).decode)
	return d.finish()
}

func (t *OffsetCommitTopicResponse) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*PartitionError).append)
}

func (t *OffsetCommitTopicResponse) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 6, (*PartitionError).decode)
}

func (p *PartitionError) append(dst []byte) []byte {
	return appendInt16(appendInt32(dst, p.Partition), int16(p.ErrorCode))
}

func (p *PartitionError) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.ErrorCode = ErrorCode(d.int16("error_code"))
}

// OffsetFetchRequest reads a group's committed offsets: of the named
// partitions, or of every partition the group has committed (AllTopics,
// encoded as a null topics array). A member may send its id and epoch; a
// tool sends an empty id and MemberEpochAdmin.
type OffsetFetchRequest struct {
	GroupID     string
	MemberID    string
	MemberEpoch int32
	Topics      []TopicPartitions
	AllTopics   bool
}

// Key returns OffsetFetch.
func (*OffsetFetchRequest) Key() APIKey { return OffsetFetch }

// Append encodes the body.
func (r *OffsetFetchRequest) Append(dst []byte, version int16) []byte {
	dst = appendString(dst, r.GroupID)
	dst = appendString(dst, r.MemberID)
	dst = appendInt32(dst, r.MemberEpoch)
	if r.AllTopics {
		return appendInt32(dst, -1)
	}
	return appendArray(dst, r.Topics, (*TopicPartitions).append)
}

// Decode parses the body.
func (r *OffsetFetchRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(OffsetFetch, false, version); err != nil {
		return err
	}
	r.GroupID = d.string("group_id", r.GroupID)
	r.MemberID = d.string("member_id", r.MemberID)
	r.MemberEpoch = d.int32("member_epoch")
	n, null := d.nullableArrayLen("topics", 6)
	r.AllTopics = null
	r.Topics = resize(r.Topics, n)
	for i := range r.Topics {
		d.enter("topics", i)
		r.Topics[i].decode(d)
		d.leave()
		if d.err != nil {
			r.Topics = r.Topics[:0]
			break
		}
	}
	return d.finish()
}

// OffsetFetchResponse carries committed offsets. A partition with no
// commit has Offset -1 and no error.
type OffsetFetchResponse struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	Topics       []OffsetFetchTopicResponse
}

// OffsetFetchTopicResponse is one topic's committed offsets.
type OffsetFetchTopicResponse struct {
	Name       string
	Partitions []OffsetFetchPartition
}

// OffsetFetchPartition is one partition's committed offset.
type OffsetFetchPartition struct {
	Partition   int32
	Offset      int64 // -1: nothing committed
	LeaderEpoch int32
	Metadata    string
	ErrorCode   ErrorCode
}

// Key returns OffsetFetch.
func (*OffsetFetchResponse) Key() APIKey { return OffsetFetch }

// Append encodes the body.
func (r *OffsetFetchResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendString(dst, r.ErrorMessage)
	return appendArray(dst, r.Topics, (*OffsetFetchTopicResponse).append)
}

// Decode parses the body.
func (r *OffsetFetchResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(OffsetFetch, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage, r.Topics = "", r.Topics[:0]
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	r.Topics = decodeArray(d, "topics", 6, r.Topics, (*OffsetFetchTopicResponse).decode)
	return d.finish()
}

func (t *OffsetFetchTopicResponse) append(dst []byte) []byte {
	return appendTopic(dst, t.Name, t.Partitions, (*OffsetFetchPartition).append)
}

func (t *OffsetFetchTopicResponse) decode(d *Decoder) {
	t.Name, t.Partitions = decodeTopic(d, t.Name, t.Partitions, 20, (*OffsetFetchPartition).decode)
}

func (p *OffsetFetchPartition) append(dst []byte) []byte {
	dst = appendInt32(dst, p.Partition)
	dst = appendInt64(dst, p.Offset)
	dst = appendInt32(dst, p.LeaderEpoch)
	dst = appendString(dst, p.Metadata)
	return appendInt16(dst, int16(p.ErrorCode))
}

func (p *OffsetFetchPartition) decode(d *Decoder) {
	p.Partition = d.int32("partition")
	p.Offset = d.int64("offset")
	p.LeaderEpoch = d.int32("leader_epoch")
	p.Metadata = d.string("metadata", p.Metadata)
	p.ErrorCode = ErrorCode(d.int16("error_code"))
}

// ListGroupsRequest lists the groups this broker coordinates (a tool asks
// every broker and merges), optionally only those in the given states or
// of the given types; empty filters match everything.
type ListGroupsRequest struct {
	States []string
	Types  []string
}

// Key returns ListGroups.
func (*ListGroupsRequest) Key() APIKey { return ListGroups }

// Append encodes the body.
func (r *ListGroupsRequest) Append(dst []byte, version int16) []byte {
	return appendStrings(appendStrings(dst, r.States), r.Types)
}

// Decode parses the body.
func (r *ListGroupsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(ListGroups, false, version); err != nil {
		return err
	}
	r.States = d.strings("states", r.States)
	r.Types = d.strings("types", r.Types)
	return d.finish()
}

// ListGroupsResponse lists groups.
type ListGroupsResponse struct {
	ErrorCode ErrorCode
	Groups    []ListedGroup
}

// ListedGroup is one group of a ListGroups answer.
type ListedGroup struct {
	GroupID string
	Type    string // GroupTypeConsumer, GroupTypeClassic
	State   string // empty, assigning, reconciling, stable, dead
}

// Key returns ListGroups.
func (*ListGroupsResponse) Key() APIKey { return ListGroups }

// Append encodes the body.
func (r *ListGroupsResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendArray(dst, r.Groups, (*ListedGroup).append)
}

// Decode parses the body.
func (r *ListGroupsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(ListGroups, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Groups = r.Groups[:0]
		return d.err
	}
	r.Groups = decodeArray(d, "groups", 6, r.Groups, (*ListedGroup).decode)
	return d.finish()
}

func (g *ListedGroup) append(dst []byte) []byte {
	return appendString(appendString(appendString(dst, g.GroupID), g.Type), g.State)
}

func (g *ListedGroup) decode(d *Decoder) {
	g.GroupID = d.string("group_id", g.GroupID)
	g.Type = d.string("type", g.Type)
	g.State = d.string("state", g.State)
}

// ConsumerGroupDescribeRequest describes groups, sent to each group's
// coordinator.
type ConsumerGroupDescribeRequest struct {
	GroupIDs []string
}

// Key returns ConsumerGroupDescribe.
func (*ConsumerGroupDescribeRequest) Key() APIKey { return ConsumerGroupDescribe }

// Append encodes the body.
func (r *ConsumerGroupDescribeRequest) Append(dst []byte, version int16) []byte {
	return appendStrings(dst, r.GroupIDs)
}

// Decode parses the body.
func (r *ConsumerGroupDescribeRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(ConsumerGroupDescribe, false, version); err != nil {
		return err
	}
	r.GroupIDs = d.strings("group_ids", r.GroupIDs)
	return d.finish()
}

// ConsumerGroupDescribeResponse describes each group asked for.
type ConsumerGroupDescribeResponse struct {
	ErrorCode ErrorCode
	Groups    []DescribedGroup
}

// DescribedGroup is one group: its state, epochs and members. A group this
// broker does not coordinate has NOT_COORDINATOR; an unknown one
// GROUP_ID_NOT_FOUND.
type DescribedGroup struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	GroupID      string
	Type         string
	State        string
	GroupEpoch   int32
	// AssignmentEpoch is the group epoch the target assignment was
	// computed at; it trails GroupEpoch while the assignor runs.
	AssignmentEpoch int32
	Assignor        string
	Members         []GroupMember
}

// GroupMember is one member of a described group.
type GroupMember struct {
	MemberID             string
	InstanceID           string
	ClientID             string
	ClientHost           string
	MemberEpoch          int32
	SubscribedTopics     []string
	SubscribedTopicRegex string
	Assignment           []TopicPartitions // what the member owns now
	TargetAssignment     []TopicPartitions // what it will own once reconciled
}

// Key returns ConsumerGroupDescribe.
func (*ConsumerGroupDescribeResponse) Key() APIKey { return ConsumerGroupDescribe }

// Append encodes the body.
func (r *ConsumerGroupDescribeResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendArray(dst, r.Groups, (*DescribedGroup).append)
}

// Decode parses the body.
func (r *ConsumerGroupDescribeResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(ConsumerGroupDescribe, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Groups = r.Groups[:0]
		return d.err
	}
	r.Groups = decodeArray(d, "groups", 24, r.Groups, (*DescribedGroup).decode)
	return d.finish()
}

func (g *DescribedGroup) append(dst []byte) []byte {
	dst = appendInt16(dst, int16(g.ErrorCode))
	dst = appendString(dst, g.ErrorMessage)
	dst = appendString(dst, g.GroupID)
	dst = appendString(dst, g.Type)
	dst = appendString(dst, g.State)
	dst = appendInt32(dst, g.GroupEpoch)
	dst = appendInt32(dst, g.AssignmentEpoch)
	dst = appendString(dst, g.Assignor)
	return appendArray(dst, g.Members, (*GroupMember).append)
}

func (g *DescribedGroup) decode(d *Decoder) {
	g.ErrorCode = ErrorCode(d.int16("error_code"))
	g.ErrorMessage = d.string("error_message", g.ErrorMessage)
	g.GroupID = d.string("group_id", g.GroupID)
	g.Type = d.string("type", g.Type)
	g.State = d.string("state", g.State)
	g.GroupEpoch = d.int32("group_epoch")
	g.AssignmentEpoch = d.int32("assignment_epoch")
	g.Assignor = d.string("assignor", g.Assignor)
	g.Members = decodeArray(d, "members", 26, g.Members, (*GroupMember).decode)
}

func (m *GroupMember) append(dst []byte) []byte {
	dst = appendString(dst, m.MemberID)
	dst = appendString(dst, m.InstanceID)
	dst = appendString(dst, m.ClientID)
	dst = appendString(dst, m.ClientHost)
	dst = appendInt32(dst, m.MemberEpoch)
	dst = appendStrings(dst, m.SubscribedTopics)
	dst = appendString(dst, m.SubscribedTopicRegex)
	dst = appendArray(dst, m.Assignment, (*TopicPartitions).append)
	return appendArray(dst, m.TargetAssignment, (*TopicPartitions).append)
}

func (m *GroupMember) decode(d *Decoder) {
	m.MemberID = d.string("member_id", m.MemberID)
	m.InstanceID = d.string("instance_id", m.InstanceID)
	m.ClientID = d.string("client_id", m.ClientID)
	m.ClientHost = d.string("client_host", m.ClientHost)
	m.MemberEpoch = d.int32("member_epoch")
	m.SubscribedTopics = d.strings("subscribed_topics", m.SubscribedTopics)
	m.SubscribedTopicRegex = d.string("subscribed_topic_regex", m.SubscribedTopicRegex)
	m.Assignment = decodeArray(d, "assignment", 6, m.Assignment, (*TopicPartitions).decode)
	m.TargetAssignment = decodeArray(d, "target_assignment", 6, m.TargetAssignment, (*TopicPartitions).decode)
}

// DeleteGroupsRequest deletes groups and their committed offsets. A group
// with members is refused (NON_EMPTY_GROUP).
type DeleteGroupsRequest struct {
	GroupIDs []string
}

// Key returns DeleteGroups.
func (*DeleteGroupsRequest) Key() APIKey { return DeleteGroups }

// Append encodes the body.
func (r *DeleteGroupsRequest) Append(dst []byte, version int16) []byte {
	return appendStrings(dst, r.GroupIDs)
}

// Decode parses the body.
func (r *DeleteGroupsRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(DeleteGroups, false, version); err != nil {
		return err
	}
	r.GroupIDs = d.strings("group_ids", r.GroupIDs)
	return d.finish()
}

// DeleteGroupsResponse reports each group's outcome.
type DeleteGroupsResponse struct {
	ErrorCode ErrorCode
	Results   []GroupResult
}

// GroupResult is one group's outcome.
type GroupResult struct {
	GroupID      string
	ErrorCode    ErrorCode
	ErrorMessage string
}

// Key returns DeleteGroups.
func (*DeleteGroupsResponse) Key() APIKey { return DeleteGroups }

// Append encodes the body.
func (r *DeleteGroupsResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendArray(dst, r.Results, (*GroupResult).append)
}

// Decode parses the body.
func (r *DeleteGroupsResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(DeleteGroups, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Results = r.Results[:0]
		return d.err
	}
	r.Results = decodeArray(d, "results", 6, r.Results, (*GroupResult).decode)
	return d.finish()
}

func (g *GroupResult) append(dst []byte) []byte {
	dst = appendString(dst, g.GroupID)
	dst = appendInt16(dst, int16(g.ErrorCode))
	return appendString(dst, g.ErrorMessage)
}

func (g *GroupResult) decode(d *Decoder) {
	g.GroupID = d.string("group_id", g.GroupID)
	g.ErrorCode = ErrorCode(d.int16("error_code"))
	g.ErrorMessage = d.string("error_message", g.ErrorMessage)
}
