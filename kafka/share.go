package kafka

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// Kafka share groups (KIP-932: ShareGroupHeartbeat 76, ShareGroupDescribe
// 77, ShareFetch 78, ShareAcknowledge 79) are sluice queue groups
// (docs/queues.md): a share group id is a queue group id, and the records'
// states — acquired under a lease, accepted, released, rejected to the
// dead-letter topic, delivery counts — are the core's (QueueReceivePartitions,
// QueueAck), kept and persisted by the group's coordinator exactly as for
// sluice's own queue members. What this front end keeps is what only the
// Kafka protocol has, in memory and bounded:
//
//   - membership (share.go): member ids and epochs, subscriptions and the
//     assignment, on the broker that coordinates the group. Every member is
//     assigned every partition of the topics it subscribes to: a queue group
//     lets any number of members read one partition (the coordinator hands
//     each record to one of them), so the assignment needs no balancing and
//     does not change when members come and go — a member's epoch moves only
//     when its own subscription or a topic's partition count changes. It is
//     lost when the coordinator moves: heartbeats then get UNKNOWN_MEMBER_ID
//     and the clients join again; no record state is lost with it.
//   - share sessions (share_fetch.go): per (group, member) on each broker
//     that members fetch from, the session epoch and the partitions of the
//     session.

// Share-group settings as Kafka's defaults (group.share.*).
const (
	shareHeartbeatInterval = 5 * time.Second  // group.share.heartbeat.interval.ms
	shareSessionTimeout    = 45 * time.Second // group.share.session.timeout.ms
	maxShareMembers        = 1000             // members of one group (GROUP_MAX_SIZE_REACHED past it)
	maxShareGroups         = 10000            // groups with members on one coordinator
	shareAssignor          = "simple"         // Kafka's name for its share-group assignor
)

// shareState is this broker's Kafka share-group state: the members of the
// groups it coordinates and the share sessions of members fetching here.
type shareState struct {
	now func() time.Time

	mu       sync.Mutex
	groups   map[string]*shareGroup
	sessions map[shareSessionKey]*shareSession
}

func newShareState() *shareState {
	return &shareState{now: time.Now, groups: map[string]*shareGroup{}, sessions: map[shareSessionKey]*shareSession{}}
}

type shareGroup struct {
	epoch   int32 // moves with any member's assignment, join or leave
	members map[string]*shareMember
}

type shareMember struct {
	epoch          int32
	clientID, host string
	rack           string
	topics         []string       // subscribed, sorted
	assignment     map[string]int // topic → partition count assigned
	lastSeen       time.Time
}

// expire drops members whose session timed out. Call with mu held.
func (g *shareGroup) expire(now time.Time) {
	for id, m := range g.members {
		if now.Sub(m.lastSeen) > shareSessionTimeout {
			delete(g.members, id)
			g.epoch++
		}
	}
}

// shareAssignment is every partition of the subscribed topics that exist.
func shareAssignment(md *controller.Metadata, topics []string) map[string]int {
	a := make(map[string]int, len(topics))
	for _, t := range topics {
		if mt := md.Topics[t]; mt != nil && t != broker.OffsetsTopic {
			a[t] = len(mt.Partitions)
		}
	}
	return a
}

func sameAssignment(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for t, n := range a {
		if m, ok := b[t]; !ok || m != n {
			return false
		}
	}
	return true
}

var (
	errShareNotCoordinator = &protocol.Error{Code: protocol.ErrNotCoordinator, Detail: "this broker does not coordinate the share group"}
	errShareUnknownMember  = &protocol.Error{Code: protocol.ErrUnknownMemberID, Detail: "the member is not in the share group (it left, timed out, or the coordinator moved): join again with epoch 0"}
	errShareFencedEpoch    = &protocol.Error{Code: protocol.ErrFencedMemberEpoch, Detail: "the member epoch is not the member's current epoch"}
	errShareGroupFull      = &protocol.Error{Code: protocol.ErrGroupMaxSizeReached, Detail: "the share group has its maximum number of members"}
	errShareNoMemberID     = &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: "a share member chooses its member id (a UUID) and sends it from the first heartbeat"}
	errShareNoTopics       = &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: "a share member's first heartbeat names its subscribed topics"}
	errShareTooManyGroups  = &protocol.Error{Code: protocol.ErrCoordinatorNotAvailable, Detail: "this coordinator holds its maximum number of share groups"}
)

// coordinates reports whether this broker is the coordinator of groupID
// (the leader of its offsets partition), or why not.
func (s *Server) coordinates(groupID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), broker.GroupWriteTimeout)
	defer cancel()
	c, err := s.b.FindCoordinator(ctx, groupID)
	if err != nil {
		return err
	}
	if c.BrokerID != s.b.ID() {
		return errShareNotCoordinator
	}
	return nil
}

// shareGroupHeartbeat joins (epoch 0), keeps (the member's epoch) or
// leaves (-1) a share group, and answers the member's assignment when it
// changed.
func (s *Server) shareGroupHeartbeat(fc *broker.FrontConn, h header, req *kmsg.ShareGroupHeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
	resp.MemberEpoch = -1
	fail := func(err error) kmsg.Response {
		resp.ErrorCode, resp.ErrorMessage = errorCode(err)
		return resp
	}
	if req.MemberID == "" || len(req.MemberID) > 255 {
		return fail(errShareNoMemberID)
	}
	if err := s.coordinates(req.GroupID); err != nil {
		return fail(err)
	}
	md := s.b.Metadata()
	st := s.share
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	g := st.groups[req.GroupID]
	if g != nil {
		g.expire(now)
	}
	var m *shareMember
	if g != nil {
		m = g.members[req.MemberID]
	}
	switch {
	case req.MemberEpoch == -1: // leave
		if m != nil {
			delete(g.members, req.MemberID)
			g.epoch++
		}
		if g != nil && len(g.members) == 0 {
			delete(st.groups, req.GroupID)
		}
		resp.MemberID, resp.MemberEpoch = &req.MemberID, -1
		return resp
	case req.MemberEpoch == 0: // join, or join again
		if req.SubscribedTopicNames == nil && m == nil {
			return fail(errShareNoTopics)
		}
		if g == nil {
			if len(st.groups) >= maxShareGroups {
				return fail(errShareTooManyGroups)
			}
			g = &shareGroup{members: map[string]*shareMember{}}
			st.groups[req.GroupID] = g
		}
		if m == nil {
			if len(g.members) >= maxShareMembers {
				return fail(errShareGroupFull)
			}
			m = &shareMember{}
			g.members[req.MemberID] = m
		}
		m.assignment = nil // answered in full below
	case m == nil:
		return fail(errShareUnknownMember)
	case req.MemberEpoch != m.epoch:
		return fail(errShareFencedEpoch)
	}
	m.lastSeen, m.clientID, m.host = now, string(h.clientID), fc.RemoteHost()
	if req.RackID != nil {
		m.rack = *req.RackID
	}
	if req.SubscribedTopicNames != nil {
		m.topics = slices.Compact(slices.Sorted(slices.Values(req.SubscribedTopicNames)))
	}
	a := shareAssignment(md, m.topics)
	changed := m.assignment == nil || !sameAssignment(a, m.assignment)
	if changed {
		m.assignment = a
		g.epoch++
		m.epoch = g.epoch
	}
	resp.MemberID, resp.MemberEpoch = &req.MemberID, m.epoch
	resp.HeartbeatIntervalMillis = int32(shareHeartbeatInterval.Milliseconds())
	if changed {
		ra := kmsg.NewShareGroupHeartbeatResponseAssignment()
		for _, t := range m.topics {
			n, ok := a[t]
			if !ok {
				continue
			}
			tp := kmsg.NewShareGroupHeartbeatResponseAssignmentTopicPartition()
			tp.TopicID = topicID(md.Topics[t].ID)
			for p := range n {
				tp.Partitions = append(tp.Partitions, int32(p))
			}
			ra.TopicPartitions = append(ra.TopicPartitions, tp)
		}
		resp.Assignment = &ra
	}
	return resp
}

// shareGroupDescribe describes share groups this broker coordinates: their
// members and assignments (the records' states are `sluice queue
// describe`'s).
func (s *Server) shareGroupDescribe(sess *broker.Session, req *kmsg.ShareGroupDescribeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
	md := s.b.Metadata()
	for _, id := range req.GroupIDs {
		rg := kmsg.NewShareGroupDescribeResponseGroup()
		rg.GroupID, rg.AuthorizedOperations = id, -2147483648
		err := sess.CanDescribeGroup(id)
		if err == nil {
			err = s.coordinates(id)
		}
		if err != nil {
			rg.ErrorCode, rg.ErrorMessage = errorCode(err)
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		st := s.share
		st.mu.Lock()
		g := st.groups[id]
		rg.GroupState, rg.Assignor = "Empty", shareAssignor
		if g != nil {
			g.expire(st.now())
			rg.GroupEpoch, rg.AssignmentEpoch = g.epoch, g.epoch
			if len(g.members) > 0 {
				rg.GroupState = "Stable"
			}
			ids := make([]string, 0, len(g.members))
			for mid := range g.members {
				ids = append(ids, mid)
			}
			slices.Sort(ids)
			for _, mid := range ids {
				m := g.members[mid]
				rm := kmsg.NewShareGroupDescribeResponseGroupMember()
				rm.MemberID, rm.MemberEpoch, rm.ClientID, rm.ClientHost = mid, m.epoch, m.clientID, m.host
				rm.SubscribedTopicNames = slices.Clone(m.topics)
				if m.rack != "" {
					rm.RackID = &m.rack
				}
				for _, t := range m.topics {
					n, ok := m.assignment[t]
					mt := md.Topics[t]
					if !ok || mt == nil {
						continue
					}
					tp := kmsg.NewShareGroupDescribeResponseGroupMemberAssignmentTopicPartition()
					tp.TopicID, tp.Topic = topicID(mt.ID), t
					for p := range n {
						tp.Partitions = append(tp.Partitions, int32(p))
					}
					rm.Assignment.TopicPartitions = append(rm.Assignment.TopicPartitions, tp)
				}
				rg.Members = append(rg.Members, rm)
			}
		}
		st.mu.Unlock()
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// failedShare is failed for the share-group keys: the top-level code (a
// describe: each group's), nil for another key.
func failedShare(req kmsg.Request, code int16) kmsg.Response {
	switch r := req.(type) {
	case *kmsg.ShareGroupHeartbeatRequest:
		resp := r.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
		resp.ErrorCode, resp.MemberEpoch = code, -1
		return resp
	case *kmsg.ShareFetchRequest:
		resp := r.ResponseKind().(*kmsg.ShareFetchResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.ShareAcknowledgeRequest:
		resp := r.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.ShareGroupDescribeRequest:
		resp := r.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
		for _, id := range r.GroupIDs {
			g := kmsg.NewShareGroupDescribeResponseGroup()
			g.GroupID, g.ErrorCode = id, code
			resp.Groups = append(resp.Groups, g)
		}
		return resp
	case *kmsg.DescribeShareGroupOffsetsRequest:
		resp := r.ResponseKind().(*kmsg.DescribeShareGroupOffsetsResponse)
		for _, rg := range r.Groups {
			g := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
			g.GroupID, g.ErrorCode = rg.GroupID, code
			resp.Groups = append(resp.Groups, g)
		}
		return resp
	case *kmsg.AlterShareGroupOffsetsRequest:
		resp := r.ResponseKind().(*kmsg.AlterShareGroupOffsetsResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.DeleteShareGroupOffsetsRequest:
		resp := r.ResponseKind().(*kmsg.DeleteShareGroupOffsetsResponse)
		resp.ErrorCode = code
		return resp
	}
	return nil
}
