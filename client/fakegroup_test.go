package client

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicemq/sluice/protocol"
)

// The fake cluster's group coordinator: KIP-848's rules in miniature. One
// broker (fc.coord) coordinates every group. The target assignment is
// uniform (partition i of the subscribed topics, in name order, to the
// i-th member in join order) unless a test pins it (setTarget). A member
// is given a partition only once no other member reports owning it, and
// its epoch moves on whenever what it is given changes. Every heartbeat
// and commit is written to the event log (fc.events), which tests share
// with their callbacks to check orders.

type fakeGroup struct {
	members []*fakeMember // in join order
	offsets map[TopicPartition]int64
	pinned  map[string][]TopicPartition // member id → target, set by tests
	nextID  int
}

type fakeMember struct {
	// id is the fake's name for the member (m1, m2, ... in join order),
	// in events and pinned targets; wire is the member id on the wire:
	// the one the member joined with (KIP-1082), or id if it sent none.
	id, wire, instance string
	epoch              int32
	topics             []string
	owned              []TopicPartition // as the member last reported
	assigned           []TopicPartition // as last answered
	left               bool             // static member gone for now
}

func (fc *fakeCluster) fgroup(id string, create bool) *fakeGroup {
	if fc.groups == nil {
		fc.groups = map[string]*fakeGroup{}
	}
	g := fc.groups[id]
	if g == nil && create {
		g = &fakeGroup{offsets: map[TopicPartition]int64{}, pinned: map[string][]TopicPartition{}}
		fc.groups[id] = g
	}
	return g
}

// event appends to the shared event log.
func (fc *fakeCluster) event(format string, args ...any) {
	fc.evMu.Lock()
	fc.events = append(fc.events, fmt.Sprintf(format, args...))
	fc.evMu.Unlock()
}

func (fc *fakeCluster) eventLog() []string {
	fc.evMu.Lock()
	defer fc.evMu.Unlock()
	return slices.Clone(fc.events)
}

// setTarget pins a member's target assignment.
func (fc *fakeCluster) setTarget(group, member string, tps ...TopicPartition) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.fgroup(group, true).pinned[member] = tps
}

func (fc *fakeCluster) committed(group string) map[TopicPartition]int64 {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	g := fc.fgroup(group, false)
	if g == nil {
		return nil
	}
	out := map[TopicPartition]int64{}
	for k, v := range g.offsets {
		out[k] = v
	}
	return out
}

func (fc *fakeCluster) memberIDs(group string) []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []string
	if g := fc.fgroup(group, false); g != nil {
		for _, m := range g.members {
			out = append(out, m.id)
		}
	}
	return out
}

// target is m's target assignment. fc.mu is held.
func (fc *fakeCluster) target(g *fakeGroup, m *fakeMember) []TopicPartition {
	if t, ok := g.pinned[m.id]; ok {
		return t
	}
	var live []*fakeMember
	for _, x := range g.members {
		if !x.left || x.instance != "" {
			live = append(live, x)
		}
	}
	idx := slices.Index(live, m)
	topics := slices.Clone(m.topics)
	slices.Sort(topics)
	var all []TopicPartition
	for _, t := range topics {
		if ft := fc.topics[t]; ft != nil {
			for p := range ft.parts {
				all = append(all, TopicPartition{t, int32(p)})
			}
		}
	}
	var out []TopicPartition
	for i, tp := range all {
		if i%len(live) == idx {
			out = append(out, tp)
		}
	}
	return out
}

func flatten(tps []protocol.TopicPartitions) []TopicPartition {
	var out []TopicPartition
	for _, t := range tps {
		for _, p := range t.Partitions {
			out = append(out, TopicPartition{t.Topic, p})
		}
	}
	sortPartitions(out)
	return out
}

func unflatten(tps []TopicPartition) []protocol.TopicPartitions {
	set := map[TopicPartition]bool{}
	for _, tp := range tps {
		set[tp] = true
	}
	return byTopic(set)
}

func tpString(tps []TopicPartition) string {
	var parts []string
	for _, tp := range tps {
		parts = append(parts, tp.Topic+"/"+strconv.Itoa(int(tp.Partition)))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// groupRequest answers the group APIs; ok is false for other requests.
func (b *fakeBroker) groupRequest(m protocol.Message) (protocol.Message, bool) {
	fc := b.cl
	fc.mu.Lock()
	defer fc.mu.Unlock()
	notCoord := b.id != fc.coord
	switch req := m.(type) {
	case *protocol.FindCoordinatorRequest:
		for _, x := range fc.brokers {
			if x.id == fc.coord {
				host, port, _ := net.SplitHostPort(x.ln.Addr().String())
				p, _ := strconv.Atoi(port)
				return &protocol.FindCoordinatorResponse{BrokerID: x.id, Host: host, Port: int32(p)}, true
			}
		}
		return &protocol.FindCoordinatorResponse{ErrorCode: protocol.ErrCoordinatorNotAvailable}, true
	case *protocol.ConsumerGroupHeartbeatRequest:
		if notCoord {
			return &protocol.ConsumerGroupHeartbeatResponse{ErrorCode: protocol.ErrNotCoordinator}, true
		}
		return fc.heartbeat(req), true
	case *protocol.OffsetCommitRequest:
		if notCoord {
			return &protocol.OffsetCommitResponse{ErrorCode: protocol.ErrNotCoordinator}, true
		}
		return fc.offsetCommit(req), true
	case *protocol.OffsetFetchRequest:
		if notCoord {
			return &protocol.OffsetFetchResponse{ErrorCode: protocol.ErrNotCoordinator}, true
		}
		g := fc.fgroup(req.GroupID, false)
		resp := &protocol.OffsetFetchResponse{}
		if req.AllTopics {
			if g != nil {
				for tp, off := range g.offsets {
					t := topicEntry(&resp.Topics, tp.Topic, func(t *protocol.OffsetFetchTopicResponse) *string { return &t.Name })
					t.Partitions = append(t.Partitions, protocol.OffsetFetchPartition{Partition: tp.Partition, Offset: off})
				}
			}
			return resp, true
		}
		for _, t := range req.Topics {
			tr := protocol.OffsetFetchTopicResponse{Name: t.Topic}
			for _, p := range t.Partitions {
				off := int64(-1)
				if g != nil {
					if o, ok := g.offsets[TopicPartition{t.Topic, p}]; ok {
						off = o
					}
				}
				tr.Partitions = append(tr.Partitions, protocol.OffsetFetchPartition{Partition: p, Offset: off})
			}
			resp.Topics = append(resp.Topics, tr)
		}
		return resp, true
	case *protocol.ListGroupsRequest:
		resp := &protocol.ListGroupsResponse{}
		if !notCoord {
			for id, g := range fc.groups {
				state := "empty"
				if len(g.members) > 0 {
					state = "stable"
				}
				resp.Groups = append(resp.Groups, protocol.ListedGroup{GroupID: id, Type: protocol.GroupTypeConsumer, State: state})
			}
		}
		return resp, true
	case *protocol.ConsumerGroupDescribeRequest:
		resp := &protocol.ConsumerGroupDescribeResponse{}
		for _, id := range req.GroupIDs {
			dg := protocol.DescribedGroup{GroupID: id, Type: protocol.GroupTypeConsumer, State: "stable"}
			g := fc.fgroup(id, false)
			switch {
			case notCoord:
				dg.ErrorCode = protocol.ErrNotCoordinator
			case g == nil:
				dg.ErrorCode = protocol.ErrGroupIDNotFound
			default:
				for _, m := range g.members {
					dg.Members = append(dg.Members, protocol.GroupMember{MemberID: m.id, MemberEpoch: m.epoch,
						SubscribedTopics: m.topics, Assignment: unflatten(m.owned), TargetAssignment: unflatten(fc.target(g, m))})
				}
			}
			resp.Groups = append(resp.Groups, dg)
		}
		return resp, true
	case *protocol.DeleteGroupsRequest:
		resp := &protocol.DeleteGroupsResponse{}
		for _, id := range req.GroupIDs {
			r := protocol.GroupResult{GroupID: id}
			g := fc.fgroup(id, false)
			switch {
			case g == nil:
				r.ErrorCode = protocol.ErrGroupIDNotFound
			case len(g.members) > 0:
				r.ErrorCode = protocol.ErrNonEmptyGroup
			default:
				delete(fc.groups, id)
			}
			resp.Results = append(resp.Results, r)
		}
		return resp, true
	}
	return nil, false
}

// heartbeat applies KIP-848's member rules. fc.mu is held.
func (fc *fakeCluster) heartbeat(req *protocol.ConsumerGroupHeartbeatRequest) *protocol.ConsumerGroupHeartbeatResponse {
	g := fc.fgroup(req.GroupID, true)
	owned := flatten(req.OwnedPartitions)
	var m *fakeMember
	for _, x := range g.members {
		if x.wire == req.MemberID || (req.MemberEpoch == protocol.MemberEpochJoin && req.InstanceID != "" && x.instance == req.InstanceID) {
			m = x
		}
	}
	name := req.MemberID
	if m != nil {
		name = m.id
	} else if req.MemberEpoch == protocol.MemberEpochJoin {
		name = fmt.Sprintf("m%d", g.nextID+1) // as the join below names it
	}
	fc.event("heartbeat %s epoch %d owned %s", name, req.MemberEpoch, tpString(owned))
	refuse := func(code protocol.ErrorCode) *protocol.ConsumerGroupHeartbeatResponse {
		return &protocol.ConsumerGroupHeartbeatResponse{ErrorCode: code, ErrorMessage: "fake"}
	}
	switch req.MemberEpoch {
	case protocol.MemberEpochLeave, protocol.MemberEpochLeaveStatic:
		if m == nil {
			return refuse(protocol.ErrUnknownMemberID)
		}
		if req.MemberEpoch == protocol.MemberEpochLeaveStatic && m.instance != "" {
			m.left = true
		} else {
			g.members = slices.DeleteFunc(g.members, func(x *fakeMember) bool { return x == m })
		}
		return &protocol.ConsumerGroupHeartbeatResponse{MemberID: m.wire, MemberEpoch: req.MemberEpoch}
	case protocol.MemberEpochJoin:
		switch {
		case m != nil && m.instance != "" && req.MemberID != m.wire:
			m.left, m.wire = false, req.MemberID // a static member back: its old place
		case m != nil:
			m.owned, m.assigned = nil, nil // fenced member starting over
		default:
			g.nextID++
			m = &fakeMember{id: fmt.Sprintf("m%d", g.nextID), wire: req.MemberID, instance: req.InstanceID}
			if m.wire == "" {
				m.wire = m.id
			}
			g.members = append(g.members, m)
		}
		m.topics = req.SubscribedTopics
	default:
		if m == nil {
			return refuse(protocol.ErrUnknownMemberID)
		}
		if req.MemberEpoch != m.epoch {
			return refuse(protocol.ErrFencedMemberEpoch)
		}
	}
	m.owned = owned
	held := map[TopicPartition]bool{}
	for _, x := range g.members {
		if x != m {
			for _, tp := range x.owned {
				held[tp] = true
			}
		}
	}
	var give []TopicPartition
	for _, tp := range fc.target(g, m) {
		if !held[tp] {
			give = append(give, tp)
		}
	}
	sortPartitions(give)
	if m.epoch == 0 || !slices.Equal(give, m.assigned) {
		m.epoch++
		m.assigned = give
	}
	return &protocol.ConsumerGroupHeartbeatResponse{MemberID: m.wire, MemberEpoch: m.epoch,
		HeartbeatIntervalMs: fc.heartbeatMs, Assignment: unflatten(give)}
}

// offsetCommit applies the epoch fencing of commits. fc.mu is held.
func (fc *fakeCluster) offsetCommit(req *protocol.OffsetCommitRequest) *protocol.OffsetCommitResponse {
	g := fc.fgroup(req.GroupID, true)
	refuse := func(code protocol.ErrorCode) *protocol.OffsetCommitResponse {
		fc.event("commit refused %s: %v", req.MemberID, code)
		return &protocol.OffsetCommitResponse{ErrorCode: code}
	}
	name := req.MemberID
	if req.MemberID == "" {
		if len(g.members) > 0 {
			return refuse(protocol.ErrNonEmptyGroup)
		}
	} else {
		i := slices.IndexFunc(g.members, func(x *fakeMember) bool { return x.wire == req.MemberID })
		switch {
		case i < 0:
			return refuse(protocol.ErrUnknownMemberID)
		case g.members[i].epoch != req.MemberEpoch:
			return refuse(protocol.ErrStaleMemberEpoch)
		}
		name = g.members[i].id
	}
	resp := &protocol.OffsetCommitResponse{}
	for _, t := range req.Topics {
		tr := protocol.OffsetCommitTopicResponse{Name: t.Name}
		for _, p := range t.Partitions {
			g.offsets[TopicPartition{t.Name, p.Partition}] = p.Offset
			fc.event("commit %s %s/%d=%d", name, t.Name, p.Partition, p.Offset)
			tr.Partitions = append(tr.Partitions, protocol.PartitionError{Partition: p.Partition})
		}
		resp.Topics = append(resp.Topics, tr)
	}
	return resp
}
