package kafka

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
)

// The group APIs translate Kafka's group requests into the broker core's
// group calls (broker/group.go), the same the sluice protocol makes: one
// coordinator per offsets partition, one offsets store. Classic groups
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, client-side assignors)
// are group/classic.go's; a JoinGroup or a follower's SyncGroup waits for
// the rebalance in a goroutine of the connection (FrontConn.Go), up to
// the member's rebalance timeout.

// FindCoordinator's key types: a group id, a transactional id.
const (
	coordinatorGroup = 0
	coordinatorTxn   = 1
)

// errNoTransactions refuses a transaction coordinator lookup, and
// errCoordinatorType one of a key type sluice does not know (share
// groups' 2 among them).
var (
	errNoTransactions = &protocol.Error{Code: protocol.ErrInvalidRequest,
		Detail: "transactions are not served by sluice's Kafka listener (docs/kafka.md)"}
	errCoordinatorType = &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: "unknown coordinator key type"}
)

// findCoordinator answers each key (one before v4, a batch from v4) with
// its group's coordinator (Broker.FindCoordinator: the leader of the
// group's offsets partition, the topic created on first use) at its Kafka
// address.
func (s *Server) findCoordinator(ctx context.Context, sess *broker.Session, req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Port = key, -1, -1
		var err error
		switch req.CoordinatorType {
		case coordinatorTxn:
			err = errNoTransactions
		case coordinatorGroup:
			if err = sess.CanDescribeGroup(key); err != nil {
				break
			}
			ctx, cancel := ctxTimeout(ctx, 0)
			var co broker.Coordinator
			co, err = s.b.FindCoordinator(ctx, key)
			cancel()
			if err == nil {
				err = &protocol.Error{Code: protocol.ErrCoordinatorNotAvailable, Detail: "the coordinator's Kafka address is not known here yet"}
				for _, kb := range s.kafkaBrokers(s.b.Metadata()) {
					if kb.id == co.BrokerID {
						c.NodeID, c.Host, c.Port, err = kb.id, kb.host, kb.port, nil
					}
				}
			}
		default:
			err = errCoordinatorType
		}
		c.ErrorCode, c.ErrorMessage = errorCode(err)
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 && len(resp.Coordinators) == 1 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	return resp
}

// offsetCommit commits through the core (Broker.CommitOffsets). The
// generation is a classic group's generation or a consumer group's member
// epoch (OffsetCommit v9's reading), fenced by the coordinator.
func (s *Server) offsetCommit(req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	oc := group.OffsetCommit{GroupID: req.Group, MemberID: req.MemberID, MemberEpoch: req.Generation, Topics: make([]group.CommitTopic, len(req.Topics))}
	if req.InstanceID != nil {
		oc.InstanceID = *req.InstanceID
	}
	for i, t := range req.Topics {
		ct := group.CommitTopic{Topic: t.Topic, Partitions: make([]group.CommitPartition, len(t.Partitions))}
		for j, p := range t.Partitions {
			cp := group.CommitPartition{Partition: p.Partition, Offset: p.Offset, LeaderEpoch: p.LeaderEpoch}
			if p.Metadata != nil {
				cp.Metadata = *p.Metadata
			}
			ct.Partitions[j] = cp
		}
		oc.Topics[i] = ct
	}
	ctx, cancel := context.WithTimeout(context.Background(), broker.GroupWriteTimeout)
	defer cancel()
	res, err := s.b.CommitOffsets(ctx, oc)
	for i, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codeOf(err)
			if err == nil {
				rp.ErrorCode = codeOf(res[i].Partitions[j].Err)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// offsetFetch reads committed offsets through the core: one group before
// v8, a batch of groups from v8; null topics mean every committed
// partition (v2+). An unknown group has no offsets (-1, no error), as in
// Kafka.
func (s *Server) offsetFetch(sess *broker.Session, req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version < 8 {
		var res []group.FetchedOffset
		err := sess.CanDescribeGroup(req.Group)
		if err == nil {
			res, err = s.b.FetchOffsets(group.OffsetFetch{GroupID: req.Group, Topics: fetchTopics(req.Topics, req.Version)})
		}
		code := codeOf(err)
		if req.Version >= 2 {
			resp.ErrorCode = code
		}
		for _, f := range res {
			show, denied := sess.OffsetVisible(f.Topic, req.Topics == nil)
			if !show {
				continue
			}
			if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != f.Topic {
				resp.Topics = append(resp.Topics, kmsg.OffsetFetchResponseTopic{Topic: f.Topic})
			}
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = f.Partition, f.Offset, f.LeaderEpoch, &f.Metadata
			if denied != nil {
				rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = -1, -1, new(string), codeOf(denied)
			}
			t := &resp.Topics[len(resp.Topics)-1]
			t.Partitions = append(t.Partitions, rp)
		}
		if err != nil {
			// Every partition asked carries the error (v0-1 have no other place).
			resp.Topics = resp.Topics[:0]
			for _, t := range req.Topics {
				rt := kmsg.OffsetFetchResponseTopic{Topic: t.Topic}
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.ErrorCode = p, -1, code
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
		}
		return resp
	}
	for _, g := range req.Groups {
		of := group.OffsetFetch{GroupID: g.Group, MemberEpoch: g.MemberEpoch}
		if g.MemberID != nil {
			of.MemberID = *g.MemberID
		}
		if g.Topics != nil {
			of.Topics = make([]group.TopicPartitions, len(g.Topics))
			for i, t := range g.Topics {
				of.Topics[i] = group.TopicPartitions{Topic: t.Topic, Partitions: t.Partitions}
			}
		}
		var res []group.FetchedOffset
		err := sess.CanDescribeGroup(g.Group)
		if err == nil {
			res, err = s.b.FetchOffsets(of)
		}
		rg := kmsg.NewOffsetFetchResponseGroup()
		rg.Group, rg.ErrorCode = g.Group, codeOf(err)
		for _, f := range res {
			show, denied := sess.OffsetVisible(f.Topic, g.Topics == nil)
			if !show {
				continue
			}
			if n := len(rg.Topics); n == 0 || rg.Topics[n-1].Topic != f.Topic {
				rg.Topics = append(rg.Topics, kmsg.OffsetFetchResponseGroupTopic{Topic: f.Topic})
			}
			rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = f.Partition, f.Offset, f.LeaderEpoch, &f.Metadata
			if denied != nil {
				rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = -1, -1, new(string), codeOf(denied)
			}
			t := &rg.Topics[len(rg.Topics)-1]
			t.Partitions = append(t.Partitions, rp)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// fetchTopics is the core's topic list of an OffsetFetch: nil (every
// committed partition) for null topics from v2, else those asked.
func fetchTopics(topics []kmsg.OffsetFetchRequestTopic, version int16) []group.TopicPartitions {
	if topics == nil && version >= 2 {
		return nil
	}
	out := make([]group.TopicPartitions, len(topics))
	for i, t := range topics {
		out[i] = group.TopicPartitions{Topic: t.Topic, Partitions: t.Partitions}
	}
	return out
}

// joinGroup joins a classic group through the core (Broker.JoinGroup),
// waiting for the rebalance in a goroutine of the connection.
func (s *Server) joinGroup(fc *broker.FrontConn, h header, flexible bool, req *kmsg.JoinGroupRequest) *broker.Reply {
	jg := group.JoinGroup{GroupID: req.Group, MemberID: req.MemberID, ClientID: string(h.clientID), ClientHost: fc.RemoteHost(),
		SessionTimeout:   time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout: time.Duration(max(req.RebalanceTimeoutMillis, 0)) * time.Millisecond,
		ProtocolType:     req.ProtocolType, RequireKnownMemberID: req.Version >= 4, SkipAssignmentOK: req.Version >= 9,
		Protocols: make([]group.ClassicProtocol, len(req.Protocols))}
	if req.InstanceID != nil {
		jg.InstanceID = *req.InstanceID
	}
	for i, p := range req.Protocols {
		// Bytes alias the frame, reused once Handle returns.
		jg.Protocols[i] = group.ClassicProtocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)}
	}
	wait := max(jg.RebalanceTimeout, jg.SessionTimeout) + broker.GroupWriteTimeout
	r := &broker.Reply{Ready: make(chan struct{})}
	fc.Go(func() {
		defer fc.Finish(r)
		ctx, cancel := context.WithTimeout(fc.Context(), wait)
		defer cancel()
		res, err := s.b.JoinGroup(ctx, jg)
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = codeOf(err)
		resp.MemberID, resp.Generation = res.MemberID, -1
		if err == nil {
			resp.Generation, resp.LeaderID, resp.SkipAssignment = res.Generation, res.LeaderID, res.SkipAssignment
			resp.ProtocolType, resp.Protocol = &res.ProtocolType, &res.Protocol
			for _, m := range res.Members {
				rm := kmsg.NewJoinGroupResponseMember()
				rm.MemberID, rm.ProtocolMetadata = m.MemberID, m.Metadata
				if m.InstanceID != "" {
					rm.InstanceID = &m.InstanceID
				}
				resp.Members = append(resp.Members, rm)
			}
		} else if req.Version < 7 {
			empty := ""
			resp.Protocol = &empty // not nullable before v7
		}
		r.Frame = [][]byte{appendResponse(nil, h.correlation, flexible, resp)}
	})
	return r
}

// syncGroup hands out the leader's assignment through the core
// (Broker.SyncGroup); a follower waits for it in a goroutine of the
// connection.
func (s *Server) syncGroup(fc *broker.FrontConn, h header, flexible bool, req *kmsg.SyncGroupRequest) *broker.Reply {
	// From v5 the protocol is named, and must be the group's: a null is
	// a mismatch, as in Kafka.
	sg := group.SyncGroup{GroupID: req.Group, MemberID: req.MemberID, Generation: req.Generation, CheckProtocol: req.Version >= 5,
		Assignments: make([]group.ClassicAssignment, len(req.GroupAssignment))}
	if req.InstanceID != nil {
		sg.InstanceID = *req.InstanceID
	}
	if req.ProtocolType != nil {
		sg.ProtocolType = *req.ProtocolType
	}
	if req.Protocol != nil {
		sg.Protocol = *req.Protocol
	}
	for i, a := range req.GroupAssignment {
		sg.Assignments[i] = group.ClassicAssignment{MemberID: a.MemberID, Assignment: bytes.Clone(a.MemberAssignment)}
	}
	r := &broker.Reply{Ready: make(chan struct{})}
	fc.Go(func() {
		defer fc.Finish(r)
		// A follower waits for the leader, which has its rebalance
		// timeout to compute the assignment; the coordinator answers
		// REBALANCE_IN_PROGRESS once it gives up on it.
		ctx, cancel := context.WithTimeout(fc.Context(), 5*time.Minute+broker.GroupWriteTimeout)
		defer cancel()
		res, err := s.b.SyncGroup(ctx, sg)
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = codeOf(err)
		if err == nil {
			resp.ProtocolType, resp.Protocol, resp.MemberAssignment = &res.ProtocolType, &res.Protocol, res.Assignment
		}
		if resp.MemberAssignment == nil {
			resp.MemberAssignment = []byte{}
		}
		r.Frame = [][]byte{appendResponse(nil, h.correlation, flexible, resp)}
	})
	return r
}

// heartbeat keeps a classic member's session (Broker.ClassicHeartbeat).
func (s *Server) heartbeat(req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	hb := group.ClassicHeartbeat{GroupID: req.Group, MemberID: req.MemberID, Generation: req.Generation}
	if req.InstanceID != nil {
		hb.InstanceID = *req.InstanceID
	}
	ctx, cancel := context.WithTimeout(context.Background(), broker.GroupWriteTimeout)
	defer cancel()
	resp.ErrorCode = codeOf(s.b.ClassicHeartbeat(ctx, hb))
	return resp
}

// leaveGroup removes classic members (one before v3, a batch from v3).
func (s *Server) leaveGroup(req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	members := []group.LeavingMember{{MemberID: req.MemberID}}
	if req.Version >= 3 {
		members = make([]group.LeavingMember, len(req.Members))
		for i, m := range req.Members {
			members[i].MemberID = m.MemberID
			if m.InstanceID != nil {
				members[i].InstanceID = *m.InstanceID
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), broker.GroupWriteTimeout)
	defer cancel()
	errs, err := s.b.LeaveGroup(ctx, req.Group, members)
	resp.ErrorCode = codeOf(err)
	if req.Version < 3 {
		if err == nil && len(errs) == 1 {
			resp.ErrorCode = codeOf(errs[0])
		}
		return resp
	}
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = m.MemberID, m.InstanceID
		rm.ErrorCode = resp.ErrorCode
		if err == nil {
			rm.ErrorCode = codeOf(errs[i])
		}
		resp.Members = append(resp.Members, rm)
	}
	return resp
}

// kafkaState is a group state as Kafka spells it: the classic states
// are already; a consumer group's lower-case ones are capitalized.
func kafkaState(state string) string {
	if state == "" {
		return state
	}
	return strings.ToUpper(state[:1]) + state[1:]
}

// listGroups lists the groups this broker coordinates (a tool asks every
// broker), filtered by state (v4+, any case) and type (v5+).
func (s *Server) listGroups(sess *broker.Session, req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	match := func(filter []string, v string) bool {
		if len(filter) == 0 {
			return true
		}
		for _, f := range filter {
			if strings.EqualFold(f, v) {
				return true
			}
		}
		return false
	}
	for _, g := range s.b.ListGroups() {
		if sess.CanDescribeGroup(g.GroupID) != nil {
			continue // listed only to those who may describe it
		}
		state := kafkaState(g.State)
		if !match(req.StatesFilter, state) || !match(req.TypesFilter, g.Type) {
			continue
		}
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = g.GroupID, g.ProtocolType, state, g.Type
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// describeGroups describes groups at their coordinator: a classic group
// with its members' metadata and assignments, a consumer group (KIP-848)
// with its members and no metadata, as Kafka does. An unknown group is
// "Dead" with no error before v6, GROUP_ID_NOT_FOUND from v6.
func (s *Server) describeGroups(sess *broker.Session, req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = id
		var d group.ClassicDescription
		var classic bool
		err := sess.CanDescribeGroup(id)
		if err == nil {
			d, classic, err = s.b.DescribeClassicGroup(id)
		}
		switch code, _ := broker.ErrorCode(err); {
		case code == protocol.ErrGroupIDNotFound && req.Version < 6:
			rg.State = "Dead"
		case err != nil:
			rg.ErrorCode, rg.ErrorMessage = errorCode(err)
		case classic:
			rg.State, rg.ProtocolType, rg.Protocol = d.State, d.ProtocolType, d.Protocol
			for _, m := range d.Members {
				rm := kmsg.NewDescribeGroupsResponseGroupMember()
				rm.MemberID, rm.ClientID, rm.ClientHost = m.MemberID, m.ClientID, m.ClientHost
				rm.ProtocolMetadata, rm.MemberAssignment = m.Metadata, m.Assignment
				if m.InstanceID != "" {
					rm.InstanceID = &m.InstanceID
				}
				rg.Members = append(rg.Members, rm)
			}
		default:
			cd, err := s.b.DescribeGroup(id)
			if err != nil {
				rg.ErrorCode, rg.ErrorMessage = errorCode(err)
				break
			}
			rg.State, rg.ProtocolType, rg.Protocol = kafkaState(cd.State), group.TypeConsumer, cd.Assignor
			for _, m := range cd.Members {
				rm := kmsg.NewDescribeGroupsResponseGroupMember()
				rm.MemberID, rm.ClientID, rm.ClientHost = m.MemberID, m.ClientID, m.ClientHost
				if m.InstanceID != "" {
					rm.InstanceID = &m.InstanceID
				}
				rg.Members = append(rg.Members, rm)
			}
		}
		if req.Version < 6 {
			rg.ErrorMessage = nil
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// deleteGroups deletes empty groups and their offsets through the core.
func (s *Server) deleteGroups(sess *broker.Session, req *kmsg.DeleteGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	ctx, cancel := context.WithTimeout(context.Background(), broker.GroupWriteTimeout)
	defer cancel()
	refused := make([]error, len(req.Groups))
	var allowed []string
	for i, id := range req.Groups {
		if refused[i] = sess.CanDeleteGroup(id); refused[i] == nil {
			allowed = append(allowed, id)
		}
	}
	errs := withRefused(refused, s.b.DeleteGroups(ctx, allowed))
	for i, id := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		rg.ErrorCode, rg.ErrorMessage = errorCode(errs[i])
		if req.Version < 3 {
			rg.ErrorMessage = nil
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// failedGroup is failed's answer for the group keys.
func failedGroup(req kmsg.Request, code int16) kmsg.Response {
	switch r := req.(type) {
	case *kmsg.FindCoordinatorRequest:
		resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.ErrorCode, resp.NodeID, resp.Port = code, -1, -1
		for _, key := range r.CoordinatorKeys {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key, c.ErrorCode, c.NodeID, c.Port = key, code, -1, -1
			resp.Coordinators = append(resp.Coordinators, c)
		}
		return resp
	case *kmsg.OffsetCommitRequest:
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	case *kmsg.OffsetFetchRequest:
		resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = code
		for _, t := range r.Topics {
			rt := kmsg.OffsetFetchResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		for _, g := range r.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, code
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.JoinGroupRequest:
		resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
		empty := ""
		resp.ErrorCode, resp.Generation, resp.Protocol = code, -1, &empty
		return resp
	case *kmsg.SyncGroupRequest:
		resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode, resp.MemberAssignment = code, []byte{}
		return resp
	case *kmsg.HeartbeatRequest, *kmsg.LeaveGroupRequest, *kmsg.ListGroupsRequest:
		// One top-level error code and nothing else to fill.
		resp := req.ResponseKind()
		reflect.ValueOf(resp).Elem().FieldByName("ErrorCode").SetInt(int64(code))
		return resp
	case *kmsg.DescribeGroupsRequest:
		return groupErrors(r.ResponseKind(), r.Groups, code)
	case *kmsg.DeleteGroupsRequest:
		return groupErrors(r.ResponseKind(), r.Groups, code)
	case *kmsg.ConsumerGroupDescribeRequest:
		return groupErrors(r.ResponseKind(), r.Groups, code)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		resp := r.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode, resp.MemberEpoch = code, -1
		return resp
	}
	return failedShare(req, code)
}

// groupErrors fills resp's Groups (structs with a Group and an ErrorCode,
// kmsg's defaults for the rest) with one entry per group id, each
// answered code.
func groupErrors(resp kmsg.Response, ids []string, code int16) kmsg.Response {
	groups := reflect.ValueOf(resp).Elem().FieldByName("Groups")
	for _, id := range ids {
		g := reflect.New(groups.Type().Elem())
		if d, ok := g.Interface().(interface{ Default() }); ok {
			d.Default()
		}
		g.Elem().FieldByName("Group").SetString(id)
		g.Elem().FieldByName("ErrorCode").SetInt(int64(code))
		groups.Set(reflect.Append(groups, g.Elem()))
	}
	return resp
}
