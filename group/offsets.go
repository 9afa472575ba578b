package group

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

// OffsetCommit is a commit of offsets for a group. A member commits with
// its id and epoch; an administrator (or a consumer outside the group
// protocol) with MemberID "" and MemberEpoch -1, accepted only while the
// group has no members.
type OffsetCommit struct {
	GroupID     string
	MemberID    string
	MemberEpoch int32  // a classic group's generation
	InstanceID  string // a classic group's static member
	Topics      []CommitTopic
}

// CommitTopic is one topic's partitions of an OffsetCommit.
type CommitTopic struct {
	Topic      string
	Partitions []CommitPartition
}

// CommitPartition is one partition's committed position: the next offset
// to consume, the leader epoch of the last consumed record (-1 unknown)
// and free metadata of at most Config.MaxMetadataBytes.
type CommitPartition struct {
	Partition   int32
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	// Err is set in a result: nil, or why this partition was not committed.
	Err error
}

// CommitOffsets validates and applies a commit at now. A refusal of the
// whole commit (unknown member, stale epoch) is the error; a partition
// refused alone has its Err set in the result.
func (c *Coordinator) CommitOffsets(now time.Time, req OffsetCommit) ([]CommitTopic, []Record, error) {
	c.out = nil
	if req.GroupID == "" {
		return nil, nil, refuse(ErrInvalidGroupID, "empty group id")
	}
	strs := []string{req.GroupID, req.MemberID}
	for _, t := range req.Topics {
		strs = append(strs, t.Topic)
	}
	if err := checkLengths(strs...); err != nil {
		return nil, nil, err
	}
	g := c.group(req.GroupID, false)
	if g != nil && g.classic != nil {
		if err := c.classicFence(g, req.MemberID, req.InstanceID, req.MemberEpoch); err != nil {
			return nil, nil, err
		}
	} else if err := c.fence(g, req.GroupID, req.MemberID, req.MemberEpoch, "commit"); err != nil {
		return nil, nil, err
	}
	if g == nil {
		g = c.group(req.GroupID, true)
	}
	if !g.stored && g.classic == nil {
		c.groupRecord(g)
	}
	// A member of a consumer group commits only the partitions it holds
	// (assigned, or being revoked: its new owner has not read the offset
	// yet). KIP-1251's rule (Kafka 4.3) with our exact epochs: a
	// partition it released — even at its current epoch, which Kafka's
	// epoch check alone let through — belongs to another member or none,
	// and is refused alone with ErrStaleMemberEpoch, so a late commit
	// never moves the next owner's offset backwards. A classic group is
	// fenced by its generation alone, as in Kafka (the coordinator does
	// not read a classic member's assignment).
	member := ""
	if g.classic == nil && req.MemberID != "" {
		member = req.MemberID
	}
	out := make([]CommitTopic, len(req.Topics))
	for i, t := range req.Topics {
		out[i] = CommitTopic{Topic: t.Topic, Partitions: slices.Clone(t.Partitions)}
		for j := range out[i].Partitions {
			p := &out[i].Partitions[j]
			switch {
			case t.Topic == "" || p.Partition < 0 || p.Offset < 0:
				p.Err = refuse(ErrInvalidRequest, "topic %q partition %d offset %d", t.Topic, p.Partition, p.Offset)
			case len(p.Metadata) > c.cfg.MaxMetadataBytes:
				p.Err = refuse(ErrOffsetMetadataTooLarge, "%d bytes, at most %d", len(p.Metadata), c.cfg.MaxMetadataBytes)
			case member != "" && g.owners[tp{t.Topic, p.Partition}] != member:
				p.Err = refuse(ErrStaleMemberEpoch, "member %q does not hold %s[%d] at epoch %d", member, t.Topic, p.Partition, req.MemberEpoch)
			default:
				v := offsetValue{offset: p.Offset, leaderEpoch: p.LeaderEpoch, metadata: p.Metadata, commitTime: now}
				k := tp{t.Topic, p.Partition}
				g.offsets[k] = v
				c.offsetRecord(g.id, k, &v)
			}
		}
	}
	return out, c.take(), nil
}

// fence checks who may commit or fetch: a member of the group at its
// current epoch, or no member (MemberID "", epoch < 0) while the group has
// no members.
func (c *Coordinator) fence(g *consumerGroup, groupID, memberID string, epoch int32, what string) error {
	if memberID == "" && epoch < 0 {
		if g != nil && len(g.members) > 0 {
			return refuse(ErrUnknownMemberID, "group %q has members: a %s without a member id is refused", groupID, what)
		}
		return nil
	}
	var m *member
	if g != nil {
		m = g.members[memberID]
	}
	if m == nil {
		return refuse(ErrUnknownMemberID, "member %q of group %q", memberID, groupID)
	}
	switch {
	case epoch > m.epoch:
		// An epoch this coordinator never gave it: a zombie of a member
		// that was fenced and rejoined, as Kafka reads it.
		return refuse(ErrFencedMemberEpoch, "member %q %s at epoch %d, its epoch is %d", memberID, what, epoch, m.epoch)
	case epoch < m.epoch:
		return refuse(ErrStaleMemberEpoch, "member %q %s at epoch %d, its epoch is %d: heartbeat and retry", memberID, what, epoch, m.epoch)
	}
	return nil
}

// OffsetFetch asks for committed offsets. Topics nil means every
// committed partition of the group. MemberID and MemberEpoch, when given,
// are checked as for a commit (KIP-848: a member reads at its epoch);
// MemberID "" skips the check.
type OffsetFetch struct {
	GroupID     string
	MemberID    string
	MemberEpoch int32
	Topics      []TopicPartitions
}

// FetchedOffset is one partition's committed offset; Offset -1 when none.
type FetchedOffset struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32
	Metadata    string
}

// FetchOffsets returns the group's committed offsets. An unknown group has
// none (every asked partition answers -1), as in Kafka.
func (c *Coordinator) FetchOffsets(req OffsetFetch) ([]FetchedOffset, error) {
	if req.GroupID == "" {
		return nil, refuse(ErrInvalidGroupID, "empty group id")
	}
	g := c.group(req.GroupID, false)
	if req.MemberID != "" && (g == nil || g.classic == nil) { // classic clients fetch without a generation
		if err := c.fence(g, req.GroupID, req.MemberID, req.MemberEpoch, "fetch"); err != nil {
			return nil, err
		}
	}
	var out []FetchedOffset
	get := func(k tp) {
		f := FetchedOffset{Topic: k.topic, Partition: k.part, Offset: -1, LeaderEpoch: -1}
		if g != nil {
			if v, ok := g.offsets[k]; ok {
				f.Offset, f.LeaderEpoch, f.Metadata = v.offset, v.leaderEpoch, v.metadata
			}
		}
		out = append(out, f)
	}
	if req.Topics == nil {
		if g != nil {
			for _, k := range sortedParts(partSet(keysOf(g.offsets))) {
				get(k)
			}
			slices.SortFunc(out, func(a, b FetchedOffset) int {
				return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
			})
		}
		return out, nil
	}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			get(tp{t.Topic, p})
		}
	}
	return out, nil
}

// DeleteTopics removes the committed offsets of deleted topics from every
// group and returns the tombstones to append.
func (c *Coordinator) DeleteTopics(topics []string) []Record {
	c.out = nil
	gone := make(map[string]bool, len(topics))
	for _, t := range topics {
		gone[t] = true
	}
	for _, id := range slices.Sorted(maps.Keys(c.groups)) {
		g := c.groups[id]
		for _, k := range sortedParts(partSet(keysOf(g.offsets))) {
			if gone[k.topic] {
				delete(g.offsets, k)
				c.offsetRecord(g.id, k, nil)
			}
		}
	}
	c.deleteQueueTopics(gone)
	return c.take()
}

// The states a group is listed and described in (Kafka's, lower case as
// the protocol carries them).
const (
	StateEmpty       = "empty"
	StateAssigning   = "assigning"
	StateReconciling = "reconciling"
	StateStable      = "stable"
)

// Listed is one group of ListGroups.
type Listed struct {
	GroupID string
	State   string
	Type    string // TypeConsumer or TypeClassic
	// ProtocolType is a classic group's protocol type ("consumer" for
	// Kafka's consumers), "consumer" for a consumer group.
	ProtocolType string
}

// ListGroups lists the groups of this coordinator, by id.
func (c *Coordinator) ListGroups() []Listed {
	out := make([]Listed, 0, len(c.groups))
	for _, id := range slices.Sorted(maps.Keys(c.groups)) {
		g := c.groups[id]
		if g.classic != nil {
			out = append(out, Listed{GroupID: id, State: g.classic.state, Type: TypeClassic, ProtocolType: g.classic.protocolType})
			continue
		}
		out = append(out, Listed{GroupID: id, State: g.state(), Type: TypeConsumer, ProtocolType: TypeConsumer})
	}
	return out
}

func (g *consumerGroup) state() string {
	switch {
	case len(g.members) == 0:
		return StateEmpty
	case g.epoch > g.assignmentEpoch:
		return StateAssigning
	}
	for _, m := range g.members {
		if m.epoch != g.assignmentEpoch || m.state != stateStable {
			return StateReconciling
		}
	}
	return StateStable
}

// Description is a group as ConsumerGroupDescribe shows it.
type Description struct {
	GroupID         string
	Type            string // TypeConsumer or TypeClassic (then Epoch is the generation; members have no epochs or assignments here)
	State           string
	Epoch           int32
	AssignmentEpoch int32
	Assignor        string
	Members         []MemberDescription
	// Offsets is every committed offset of the group.
	Offsets []FetchedOffset
}

// MemberDescription is one member of a Description.
type MemberDescription struct {
	MemberID             string
	InstanceID           string
	RackID               string
	ClientID             string
	ClientHost           string
	MemberEpoch          int32
	State                string
	SubscribedTopicNames []string
	SubscribedTopicRegex string
	Assignment           []TopicPartitions
	Revoking             []TopicPartitions
	TargetAssignment     []TopicPartitions
}

// DescribeGroup describes one group; ErrGroupIDNotFound if it does not
// exist.
func (c *Coordinator) DescribeGroup(id string) (Description, error) {
	g := c.group(id, false)
	if g == nil {
		return Description{}, refuse(ErrGroupIDNotFound, "%q", id)
	}
	if cg := g.classic; cg != nil {
		d := Description{GroupID: id, Type: TypeClassic, State: cg.state, Epoch: cg.generation, AssignmentEpoch: cg.generation, Assignor: cg.protocol}
		for _, mid := range slices.Sorted(maps.Keys(cg.members)) {
			m := cg.members[mid]
			d.Members = append(d.Members, MemberDescription{MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID,
				ClientHost: m.clientHost, MemberEpoch: cg.generation, State: cg.state})
		}
		d.Offsets, _ = c.FetchOffsets(OffsetFetch{GroupID: id})
		return d, nil
	}
	d := Description{GroupID: id, Type: TypeConsumer, State: g.state(), Epoch: g.epoch, AssignmentEpoch: g.assignmentEpoch, Assignor: DefaultAssignor}
	for _, mid := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[mid]
		if m.assignor != "" {
			d.Assignor = m.assignor
		}
		d.Members = append(d.Members, MemberDescription{
			MemberID: m.id, InstanceID: m.instanceID, RackID: m.rackID, ClientID: m.clientID, ClientHost: m.clientHost,
			MemberEpoch: m.epoch, State: m.state.String(),
			SubscribedTopicNames: slices.Clone(m.topicNames), SubscribedTopicRegex: m.topicRegex,
			Assignment: m.assigned.list(), Revoking: m.revoking.list(), TargetAssignment: m.target.list(),
		})
	}
	d.Offsets, _ = c.FetchOffsets(OffsetFetch{GroupID: id})
	return d, nil
}

// DeleteGroup deletes an empty group and its offsets: ErrGroupIDNotFound
// if it does not exist, ErrNonEmptyGroup if it has members.
func (c *Coordinator) DeleteGroup(id string) ([]Record, error) {
	c.out = nil
	g := c.group(id, false)
	if g == nil {
		return nil, refuse(ErrGroupIDNotFound, "%q", id)
	}
	if len(g.members) > 0 || g.hasClassicMembers() {
		return nil, refuse(ErrNonEmptyGroup, "group %q has members", id)
	}
	for _, k := range sortedParts(partSet(keysOf(g.offsets))) {
		c.offsetRecord(id, k, nil)
	}
	g.stored = true // a tombstone even if only offsets were stored
	c.dropGroup(g)
	return c.take(), nil
}

// HasGroup reports whether the coordinator holds the group.
func (c *Coordinator) HasGroup(id string) bool { return c.groups[id] != nil }
