package broker

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
)

// The group handlers translate between the sluice protocol's group APIs
// and the group half of the broker core (group.go).

// groupContext bounds a group request's wait for its records to commit.
// It does not derive from the connection: a change asked for before
// shutdown is finished, not abandoned halfway.
func groupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), groupWriteTimeout)
}

func (c *conn) handleFindCoordinator(h *protocol.RequestHeader, resp *response) error {
	var req protocol.FindCoordinatorRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := protocol.FindCoordinatorResponse{BrokerID: -1, Port: -1}
	if req.KeyType != protocol.CoordinatorGroup {
		out.ErrorCode, out.ErrorMessage = protocol.ErrInvalidRequest, "unknown coordinator key type "+strconv.Itoa(int(req.KeyType))
		c.encode(resp, h, &out)
		return nil
	}
	if err := c.sess.CanGroup(req.CoordinatorKey, auth.OpDescribe); err != nil {
		c.errorResponse(resp, h, protocol.ErrGroupAuthorizationFailed)
		return nil
	}
	ctx, cancel := adminContext(0)
	defer cancel()
	co, err := c.b.FindCoordinator(ctx, req.CoordinatorKey)
	if err == nil {
		host, port, serr := net.SplitHostPort(co.Addr)
		p, perr := strconv.Atoi(port)
		if serr != nil || perr != nil {
			host, p = co.Addr, 0
		}
		out.BrokerID, out.Host, out.Port = co.BrokerID, host, int32(p)
	}
	out.ErrorCode, out.ErrorMessage = ErrorCode(err)
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleConsumerGroupHeartbeat(h *protocol.RequestHeader, resp *response) error {
	var req protocol.ConsumerGroupHeartbeatRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	// The request carries the member's whole state each time: names (an
	// empty list is none), the regex ("" none) and what it owns. The wire
	// has no null array, so an empty owned list (decoded as nil) is "owns
	// none", never "not reported": a member that revoked its only
	// partition must be heard, or it stays unrevoked with the partition.
	owned := toGroupPartitions(req.OwnedPartitions)
	if owned == nil {
		owned = []group.TopicPartitions{}
	}
	hb := group.Heartbeat{
		GroupID: req.GroupID, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch,
		InstanceID: req.InstanceID, RackID: req.RackID, ClientID: h.ClientID, ClientHost: c.ip,
		RebalanceTimeout:     time.Duration(req.RebalanceTimeoutMs) * time.Millisecond,
		SubscribedTopicNames: append([]string{}, req.SubscribedTopics...),
		SubscribedTopicRegex: &req.SubscribedTopicRegex,
		RegexFilter:          c.sess.RegexFilter(),
		ServerAssignor:       req.Assignor,
		OwnedPartitions:      owned,
	}
	if req.RebalanceTimeoutMs < 0 {
		hb.RebalanceTimeout = 0
	}
	if c.refused(resp, h, c.sess.CanSubscribe(req.GroupID, req.SubscribedTopics)) {
		return nil
	}
	ctx, cancel := groupContext()
	defer cancel()
	res, err := c.b.GroupHeartbeat(ctx, hb)
	out := protocol.ConsumerGroupHeartbeatResponse{MemberID: res.MemberID, MemberEpoch: res.MemberEpoch,
		HeartbeatIntervalMs: int32(res.HeartbeatInterval.Milliseconds()), Assignment: fromGroupPartitions(res.Assignment)}
	out.ErrorCode, out.ErrorMessage = ErrorCode(err)
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleOffsetCommit(h *protocol.RequestHeader, resp *response) error {
	var req protocol.OffsetCommitRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	oc := group.OffsetCommit{GroupID: req.GroupID, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch,
		Topics: make([]group.CommitTopic, len(req.Topics))}
	for i, t := range req.Topics {
		oc.Topics[i] = group.CommitTopic{Topic: t.Name, Partitions: make([]group.CommitPartition, len(t.Partitions))}
		for j, p := range t.Partitions {
			oc.Topics[i].Partitions[j] = group.CommitPartition{Partition: p.Partition, Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: p.Metadata}
		}
	}
	// Read on the group and on every topic, or nothing is committed.
	if c.refused(resp, h, c.sess.CanConsume(req.GroupID, func(yield func(string) bool) {
		for _, t := range req.Topics {
			if !yield(t.Name) {
				return
			}
		}
	})) {
		return nil
	}
	ctx, cancel := groupContext()
	defer cancel()
	res, err := c.b.CommitOffsets(ctx, oc)
	out := protocol.OffsetCommitResponse{Topics: make([]protocol.OffsetCommitTopicResponse, len(req.Topics))}
	out.ErrorCode, out.ErrorMessage = ErrorCode(err)
	for i, t := range req.Topics {
		out.Topics[i] = protocol.OffsetCommitTopicResponse{Name: t.Name, Partitions: make([]protocol.PartitionError, len(t.Partitions))}
		for j, p := range t.Partitions {
			pe := protocol.PartitionError{Partition: p.Partition, ErrorCode: out.ErrorCode}
			if err == nil {
				pe.ErrorCode, _ = ErrorCode(res[i].Partitions[j].Err)
			}
			out.Topics[i].Partitions[j] = pe
		}
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleOffsetFetch(h *protocol.RequestHeader, resp *response) error {
	var req protocol.OffsetFetchRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	if err := c.sess.CanGroup(req.GroupID, auth.OpDescribe); err != nil {
		c.errorResponse(resp, h, protocol.ErrGroupAuthorizationFailed)
		return nil
	}
	of := group.OffsetFetch{GroupID: req.GroupID, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch}
	if !req.AllTopics {
		of.Topics = toGroupPartitions(req.Topics)
		if of.Topics == nil {
			of.Topics = []group.TopicPartitions{}
		}
	}
	res, err := c.b.FetchOffsets(of)
	var out protocol.OffsetFetchResponse
	out.ErrorCode, out.ErrorMessage = ErrorCode(err)
	for _, f := range res {
		show, denied := c.sess.OffsetVisible(f.Topic, req.AllTopics)
		if !show {
			continue
		}
		if n := len(out.Topics); n == 0 || out.Topics[n-1].Name != f.Topic {
			out.Topics = append(out.Topics, protocol.OffsetFetchTopicResponse{Name: f.Topic})
		}
		t := &out.Topics[len(out.Topics)-1]
		p := protocol.OffsetFetchPartition{Partition: f.Partition, Offset: f.Offset, LeaderEpoch: f.LeaderEpoch, Metadata: f.Metadata}
		if denied != nil {
			p = protocol.OffsetFetchPartition{Partition: f.Partition, Offset: -1, LeaderEpoch: -1}
			p.ErrorCode, _ = ErrorCode(denied)
		}
		t.Partitions = append(t.Partitions, p)
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleListGroups(h *protocol.RequestHeader, resp *response) error {
	var req protocol.ListGroupsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := protocol.ListGroupsResponse{Groups: []protocol.ListedGroup{}}
	for _, g := range c.b.ListGroups() {
		if c.sess.CanGroup(g.GroupID, auth.OpDescribe) != nil {
			continue // listed only to those who may describe it
		}
		if (len(req.States) == 0 || slices.Contains(req.States, g.State)) && (len(req.Types) == 0 || slices.Contains(req.Types, g.Type)) {
			out.Groups = append(out.Groups, protocol.ListedGroup{GroupID: g.GroupID, Type: g.Type, State: g.State})
		}
	}
	if len(req.Types) == 0 || slices.Contains(req.Types, TypeQueue) {
		for _, id := range c.b.ListQueueGroups() {
			if c.sess.CanGroup(id, auth.OpDescribe) == nil && (len(req.States) == 0 || slices.Contains(req.States, StateQueue)) {
				out.Groups = append(out.Groups, protocol.ListedGroup{GroupID: id, Type: TypeQueue, State: StateQueue})
			}
		}
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleConsumerGroupDescribe(h *protocol.RequestHeader, resp *response) error {
	var req protocol.ConsumerGroupDescribeRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := protocol.ConsumerGroupDescribeResponse{Groups: make([]protocol.DescribedGroup, len(req.GroupIDs))}
	for i, id := range req.GroupIDs {
		d, err := c.b.DescribeGroup(id)
		if aerr := c.sess.CanGroup(id, auth.OpDescribe); aerr != nil {
			d, err = group.Description{}, aerr
		}
		typ := protocol.GroupTypeConsumer
		if d.Type == group.TypeClassic { // a Kafka client's (the Kafka listener's classic protocol)
			typ = protocol.GroupTypeClassic
		}
		g := protocol.DescribedGroup{GroupID: id, Type: typ, State: d.State, GroupEpoch: d.Epoch,
			AssignmentEpoch: d.AssignmentEpoch, Assignor: d.Assignor, Members: make([]protocol.GroupMember, len(d.Members))}
		g.ErrorCode, g.ErrorMessage = ErrorCode(err)
		for j, m := range d.Members {
			g.Members[j] = protocol.GroupMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
				MemberEpoch: m.MemberEpoch, SubscribedTopics: m.SubscribedTopicNames, SubscribedTopicRegex: m.SubscribedTopicRegex,
				Assignment: fromGroupPartitions(m.Assignment), TargetAssignment: fromGroupPartitions(m.TargetAssignment)}
		}
		out.Groups[i] = g
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleDeleteGroups(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DeleteGroupsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	ctx, cancel := groupContext()
	defer cancel()
	errs := make([]error, len(req.GroupIDs))
	var allowed []string
	var at []int // allowed[k] answers errs[at[k]]
	for i, id := range req.GroupIDs {
		if errs[i] = c.sess.CanGroup(id, auth.OpDelete); errs[i] == nil {
			allowed, at = append(allowed, id), append(at, i)
		}
	}
	for k, err := range c.b.DeleteGroups(ctx, allowed) {
		errs[at[k]] = err
	}
	out := protocol.DeleteGroupsResponse{Results: make([]protocol.GroupResult, len(req.GroupIDs))}
	for i, id := range req.GroupIDs {
		out.Results[i].GroupID = id
		out.Results[i].ErrorCode, out.Results[i].ErrorMessage = ErrorCode(errs[i])
	}
	c.encode(resp, h, &out)
	return nil
}

func toGroupPartitions(in []protocol.TopicPartitions) []group.TopicPartitions {
	if in == nil {
		return nil
	}
	out := make([]group.TopicPartitions, len(in))
	for i, t := range in {
		out[i] = group.TopicPartitions{Topic: t.Topic, Partitions: t.Partitions}
	}
	return out
}

func fromGroupPartitions(in []group.TopicPartitions) []protocol.TopicPartitions {
	out := make([]protocol.TopicPartitions, len(in))
	for i, t := range in {
		out[i] = protocol.TopicPartitions{Topic: t.Topic, Partitions: t.Partitions}
	}
	return out
}
