package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// Requests to a group's coordinator — the member's heartbeats and commits,
// and the admin calls below — go through coordinated: the coordinator
// (the leader of the group's partition of the offsets topic, which any
// broker names with FindCoordinator) is cached per group and looked up
// again, with fresh metadata, when a request cannot reach it or it answers
// NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or
// COORDINATOR_LOAD_IN_PROGRESS.

// coordinatorCode is the error code of resp that says whether the
// coordinator moved: the top-level one, or for a describe of one group
// that group's (the broker answers NOT_COORDINATOR per group there).
func coordinatorCode(resp protocol.Message) protocol.ErrorCode {
	code := topCode(resp)
	if d, ok := resp.(*protocol.ConsumerGroupDescribeResponse); ok && code == protocol.NoError && len(d.Groups) == 1 {
		code = d.Groups[0].ErrorCode
	}
	return code
}

// coordinatorMoved reports the codes that mean "ask FindCoordinator again
// (after a while)".
func coordinatorMoved(code protocol.ErrorCode) bool {
	switch code {
	case protocol.ErrNotCoordinator, protocol.ErrCoordinatorNotAvailable, protocol.ErrCoordinatorLoadInProgress:
		return true
	}
	return false
}

// coordinator returns the id of group's coordinator, asking any broker if
// it is not cached.
func (c *Client) coordinator(ctx context.Context, group string) (int32, error) {
	c.mu.Lock()
	id, ok := c.coords[group]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	req := &protocol.FindCoordinatorRequest{CoordinatorKey: group, KeyType: protocol.CoordinatorGroup}
	m, _, err := c.roundTripOnce(ctx, anyBroker, req, new(protocol.FindCoordinatorResponse))
	if err != nil {
		c.meta.requestRefresh()
		return -1, fmt.Errorf("find the coordinator of group %q: %w", group, err)
	}
	id = m.(*protocol.FindCoordinatorResponse).BrokerID
	c.mu.Lock()
	c.coords[group] = id
	c.mu.Unlock()
	return id, nil
}

// forgetCoordinator drops group's cached coordinator if it is still id.
func (c *Client) forgetCoordinator(group string, id int32) {
	c.mu.Lock()
	if cur, ok := c.coords[group]; ok && cur == id {
		delete(c.coords, group)
	}
	c.mu.Unlock()
}

// coordinated sends req to group's coordinator and returns its answer,
// retrying (up to retries times, with backoff) what may pass with another
// try: a coordinator that moved, is loading or cannot be reached, after
// looking it up again. Other codes in the answer are the caller's to read.
func (c *Client) coordinated(ctx context.Context, group string, req protocol.Message, newResp func() protocol.Message, retries int) (protocol.Message, error) {
	return c.coordinatedVia(ctx, connNormal, false, group, req, newResp, retries)
}

// coordinatedVia is coordinated on the connection of kind k (a queue
// receive's long-poll goes on connFetch, not to hold up acknowledgements),
// with ownBody as conn.do's.
func (c *Client) coordinatedVia(ctx context.Context, k connKind, ownBody bool, group string, req protocol.Message, newResp func() protocol.Message, retries int) (protocol.Message, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.coordinatedOnce(ctx, k, ownBody, group, req, newResp())
		if err == nil {
			return resp, nil
		}
		if !IsRetriable(err) || attempt >= retries || ctx.Err() != nil || c.closed() {
			return nil, err
		}
		if err := c.sleep(ctx, c.backoff(attempt+1)); err != nil {
			return nil, err
		}
	}
}

func (c *Client) coordinatedOnce(ctx context.Context, k connKind, ownBody bool, group string, req, resp protocol.Message) (protocol.Message, error) {
	id, err := c.coordinator(ctx, group)
	if err != nil {
		return nil, err
	}
	cn, err := c.brokerConn(ctx, id, k)
	return c.coordinatedOn(ctx, id, cn, err, ownBody, group, req, resp)
}

// coordinatedOn sends req to group's coordinator id on cn (dialled with
// error err), as coordinatedOnce: a caller that must know the version cn
// speaks before it builds req dials it itself.
func (c *Client) coordinatedOn(ctx context.Context, id int32, cn *conn, err error, ownBody bool, group string, req, resp protocol.Message) (protocol.Message, error) {
	if err == nil {
		err = cn.do(ctx, req, resp, c.cfg.requestTimeout, ownBody)
	}
	if err != nil {
		c.forgetCoordinator(group, id)
		return nil, fmt.Errorf("coordinator %d of group %q: %v: %w", id, group, req.Key(), err)
	}
	if code := coordinatorCode(resp); coordinatorMoved(code) {
		c.forgetCoordinator(group, id)
		c.meta.requestRefresh()
		return nil, fmt.Errorf("coordinator %d of group %q: %v: %w", id, group, req.Key(), code.Err())
	}
	return resp, nil
}

// commitOffsets sends one OffsetCommit for offs as memberID at epoch (""
// and MemberEpochAdmin for a tool). The error wraps the top-level code or
// joins the partitions' errors.
func (c *Client) commitOffsets(ctx context.Context, group, memberID string, epoch int32, offs map[TopicPartition]int64, retries int) error {
	req := &protocol.OffsetCommitRequest{GroupID: group, MemberID: memberID, MemberEpoch: epoch}
	tps := make([]TopicPartition, 0, len(offs))
	for tp := range offs {
		tps = append(tps, tp)
	}
	sortPartitions(tps)
	for _, tp := range tps {
		t := topicEntry(&req.Topics, tp.Topic, func(t *protocol.OffsetCommitTopic) *string { return &t.Name })
		t.Partitions = append(t.Partitions, protocol.OffsetCommitPartition{Partition: tp.Partition, Offset: offs[tp], LeaderEpoch: -1})
	}
	m, err := c.coordinated(ctx, group, req, func() protocol.Message { return new(protocol.OffsetCommitResponse) }, retries)
	if err != nil {
		return fmt.Errorf("commit offsets of group %q: %w", group, err)
	}
	resp := m.(*protocol.OffsetCommitResponse)
	if resp.ErrorCode != protocol.NoError {
		return fmt.Errorf("commit offsets of group %q: %w", group, resp.ErrorCode.ErrWithDetail(resp.ErrorMessage))
	}
	var errs []error
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != protocol.NoError {
				errs = append(errs, fmt.Errorf("commit offset of group %q, %s[%d]: %w", group, t.Name, p.Partition, p.ErrorCode.Err()))
			}
		}
	}
	return errors.Join(errs...)
}

// fetchCommitted reads group's committed offsets of parts (every committed
// partition for nil), -1 for a partition with no commit.
func (c *Client) fetchCommitted(ctx context.Context, group, memberID string, epoch int32, parts []TopicPartition, retries int) (map[TopicPartition]int64, error) {
	req := &protocol.OffsetFetchRequest{GroupID: group, MemberID: memberID, MemberEpoch: epoch, AllTopics: parts == nil}
	for _, tp := range parts {
		t := topicEntry(&req.Topics, tp.Topic, func(t *protocol.TopicPartitions) *string { return &t.Topic })
		t.Partitions = append(t.Partitions, tp.Partition)
	}
	m, err := c.coordinated(ctx, group, req, func() protocol.Message { return new(protocol.OffsetFetchResponse) }, retries)
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", group, err)
	}
	resp := m.(*protocol.OffsetFetchResponse)
	if resp.ErrorCode != protocol.NoError {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", group, resp.ErrorCode.ErrWithDetail(resp.ErrorMessage))
	}
	out := map[TopicPartition]int64{}
	var errs []error
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != protocol.NoError {
				errs = append(errs, fmt.Errorf("fetch offset of group %q, %s[%d]: %w", group, t.Name, p.Partition, p.ErrorCode.Err()))
				continue
			}
			out[TopicPartition{t.Name, p.Partition}] = p.Offset
		}
	}
	for _, tp := range parts {
		if _, ok := out[tp]; !ok && len(errs) == 0 {
			out[tp] = -1
		}
	}
	return out, errors.Join(errs...)
}

// CommittedOffsets returns group's committed offsets (the next offset to
// read) of every partition it has committed; none for a group that does
// not exist.
func (c *Client) CommittedOffsets(ctx context.Context, group string) (map[TopicPartition]int64, error) {
	offs, err := c.fetchCommitted(ctx, group, "", protocol.MemberEpochAdmin, nil, c.cfg.requestRetries)
	if errors.Is(err, protocol.ErrGroupIDNotFound) {
		return map[TopicPartition]int64{}, nil
	}
	for tp, off := range offs {
		if off < 0 {
			delete(offs, tp)
		}
	}
	return offs, err
}

// GroupListing is one group of ListGroups.
type GroupListing struct {
	Group string `json:"group"`
	Type  string `json:"type"`  // protocol.GroupTypeConsumer or GroupTypeClassic
	State string `json:"state"` // empty, assigning, reconciling, stable, dead
	// Coordinator is the id of the broker that listed it.
	Coordinator int32 `json:"coordinator"`
}

// ListGroups lists the groups of the cluster: each broker lists those it
// coordinates, and the lists are merged, sorted by group. A broker that
// cannot be asked makes the error say so; the groups of the others are
// returned with it.
func (c *Client) ListGroups(ctx context.Context) ([]GroupListing, error) {
	c.mu.Lock()
	ids := make([]int32, 0, len(c.brokers))
	for id := range c.brokers {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	seen := map[string]bool{}
	var out []GroupListing
	var errs []error
	for _, id := range ids {
		m, err := c.roundTrip(ctx, id, &protocol.ListGroupsRequest{}, func() protocol.Message { return new(protocol.ListGroupsResponse) }, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("list groups of broker %d: %w", id, err))
			continue
		}
		for _, lg := range m.(*protocol.ListGroupsResponse).Groups {
			// A queue group may share its id with a consumer group.
			if k := lg.Type + "/" + lg.GroupID; !seen[k] {
				seen[k] = true
				out = append(out, GroupListing{Group: lg.GroupID, Type: lg.Type, State: lg.State, Coordinator: id})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, errors.Join(errs...)
}

// GroupDescription is a group's state, its members and, per partition,
// its committed offset and lag.
type GroupDescription struct {
	Group           string                   `json:"group"`
	Type            string                   `json:"type"`
	State           string                   `json:"state"`
	GroupEpoch      int32                    `json:"group_epoch"`
	AssignmentEpoch int32                    `json:"assignment_epoch"`
	Assignor        string                   `json:"assignor"`
	Coordinator     int32                    `json:"coordinator"`
	Members         []GroupMemberDescription `json:"members"`
	Offsets         []GroupOffset            `json:"offsets"`
}

// GroupMemberDescription is one member of a described group.
type GroupMemberDescription struct {
	MemberID    string   `json:"member_id"`
	InstanceID  string   `json:"instance_id,omitempty"`
	ClientID    string   `json:"client_id"`
	ClientHost  string   `json:"client_host"`
	MemberEpoch int32    `json:"member_epoch"`
	Topics      []string `json:"topics,omitempty"`
	TopicRegex  string   `json:"topic_regex,omitempty"`
	// Assignment is what the member owns now, TargetAssignment what it
	// will own once reconciled.
	Assignment       []TopicPartition `json:"assignment"`
	TargetAssignment []TopicPartition `json:"target_assignment"`
}

// GroupOffset is one partition of a described group: every partition of
// a topic the group committed offsets of or a member subscribes to by
// name, and every partition a member owns or will own. Committed is -1 with no commit; Lag is End - Committed, or,
// with no commit, End - the log start offset (every record the group has
// not consumed); -1 with Err when the offsets could not be listed.
type GroupOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	Member    string `json:"member,omitempty"` // owner now
	Err       error  `json:"-"`
	Error     string `json:"error,omitempty"`
}

// DescribeGroup describes group: members, assignments and offsets with
// lag. An unknown group is an error matching protocol.ErrGroupIDNotFound.
func (c *Client) DescribeGroup(ctx context.Context, group string) (GroupDescription, error) {
	m, err := c.coordinated(ctx, group, &protocol.ConsumerGroupDescribeRequest{GroupIDs: []string{group}},
		func() protocol.Message { return new(protocol.ConsumerGroupDescribeResponse) }, c.cfg.requestRetries)
	if err != nil {
		return GroupDescription{}, fmt.Errorf("describe group %q: %w", group, err)
	}
	resp := m.(*protocol.ConsumerGroupDescribeResponse)
	if resp.ErrorCode != protocol.NoError {
		return GroupDescription{}, fmt.Errorf("describe group %q: %w", group, resp.ErrorCode.Err())
	}
	var dg *protocol.DescribedGroup
	for i := range resp.Groups {
		if resp.Groups[i].GroupID == group {
			dg = &resp.Groups[i]
		}
	}
	if dg == nil {
		return GroupDescription{}, fmt.Errorf("describe group %q: missing from the answer", group)
	}
	if dg.ErrorCode != protocol.NoError {
		return GroupDescription{}, fmt.Errorf("describe group %q: %w", group, dg.ErrorCode.ErrWithDetail(dg.ErrorMessage))
	}
	c.mu.Lock()
	coord := c.coords[group]
	c.mu.Unlock()
	d := GroupDescription{Group: dg.GroupID, Type: dg.Type, State: dg.State, GroupEpoch: dg.GroupEpoch,
		AssignmentEpoch: dg.AssignmentEpoch, Assignor: dg.Assignor, Coordinator: coord}
	parts := map[TopicPartition]*GroupOffset{}
	add := func(tp TopicPartition) *GroupOffset {
		o := parts[tp]
		if o == nil {
			o = &GroupOffset{Topic: tp.Topic, Partition: tp.Partition, Committed: -1, End: -1, Lag: -1}
			parts[tp] = o
		}
		return o
	}
	flat := func(tps []protocol.TopicPartitions) []TopicPartition {
		out := []TopicPartition{}
		for _, t := range tps {
			for _, p := range t.Partitions {
				out = append(out, TopicPartition{t.Topic, p})
			}
		}
		sortPartitions(out)
		return out
	}
	topics := map[string]bool{}
	for _, gm := range dg.Members {
		md := GroupMemberDescription{MemberID: gm.MemberID, InstanceID: gm.InstanceID, ClientID: gm.ClientID,
			ClientHost: gm.ClientHost, MemberEpoch: gm.MemberEpoch, Topics: gm.SubscribedTopics,
			TopicRegex: gm.SubscribedTopicRegex, Assignment: flat(gm.Assignment), TargetAssignment: flat(gm.TargetAssignment)}
		for _, tp := range md.Assignment {
			add(tp).Member = gm.MemberID
		}
		for _, tp := range md.TargetAssignment {
			add(tp)
		}
		for _, t := range gm.SubscribedTopics {
			topics[t] = true
		}
		d.Members = append(d.Members, md)
	}
	committed, err := c.fetchCommitted(ctx, group, "", protocol.MemberEpochAdmin, nil, c.cfg.requestRetries)
	if err != nil {
		return d, fmt.Errorf("describe group %q: %w", group, err)
	}
	for tp, off := range committed {
		add(tp).Committed = off
		topics[tp.Topic] = true // and its other partitions, committed or not
	}
	for t := range topics {
		ti, err := c.topicInfo(ctx, t)
		if err != nil {
			continue // a subscribed topic that does not exist (yet) has no partitions to show
		}
		for p := range ti.partitions {
			add(TopicPartition{t, int32(p)})
		}
	}
	byTopicParts := map[string][]*GroupOffset{}
	for _, o := range parts {
		byTopicParts[o.Topic] = append(byTopicParts[o.Topic], o)
	}
	for t, os := range byTopicParts {
		c.fillLag(ctx, t, os)
	}
	for _, o := range parts {
		d.Offsets = append(d.Offsets, *o)
	}
	sort.Slice(d.Offsets, func(i, j int) bool {
		a, b := d.Offsets[i], d.Offsets[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	return d, nil
}

// fillLag sets End and Lag of topic's partitions os.
func (c *Client) fillLag(ctx context.Context, topic string, os []*GroupOffset) {
	setErr := func(o *GroupOffset, err error) {
		o.Err, o.Error = err, err.Error()
	}
	ends, err := c.ListOffsets(ctx, topic, AtEnd())
	if err != nil {
		for _, o := range os {
			setErr(o, err)
		}
		return
	}
	var starts []PartitionOffset
	for _, o := range os {
		if o.Committed < 0 && starts == nil {
			if starts, err = c.ListOffsets(ctx, topic, AtStart()); err != nil {
				starts = []PartitionOffset{}
			}
		}
	}
	for _, o := range os {
		if int(o.Partition) >= len(ends) || ends[o.Partition].Err != nil {
			setErr(o, fmt.Errorf("end offset of %s[%d] unknown", topic, o.Partition))
			continue
		}
		o.End = ends[o.Partition].Offset
		base := o.Committed
		if base < 0 {
			if int(o.Partition) >= len(starts) || starts[o.Partition].Err != nil {
				setErr(o, fmt.Errorf("log start offset of %s[%d] unknown", topic, o.Partition))
				continue
			}
			base = starts[o.Partition].Offset
		}
		o.Lag = max(0, o.End-base)
	}
}

// DeleteGroups deletes groups and their committed offsets. A group with
// members is refused (protocol.ErrNonEmptyGroup), an unknown one
// protocol.ErrGroupIDNotFound; the error joins a *GroupError per group
// that failed.
func (c *Client) DeleteGroups(ctx context.Context, groups ...string) error {
	var errs []error
	for _, g := range groups {
		m, err := c.coordinated(ctx, g, &protocol.DeleteGroupsRequest{GroupIDs: []string{g}},
			func() protocol.Message { return new(protocol.DeleteGroupsResponse) }, c.cfg.requestRetries)
		if err != nil {
			errs = append(errs, &GroupError{Group: g, Err: fmt.Errorf("delete: %w", err)})
			continue
		}
		resp := m.(*protocol.DeleteGroupsResponse)
		if resp.ErrorCode != protocol.NoError {
			errs = append(errs, &GroupError{Group: g, Err: fmt.Errorf("delete: %w", resp.ErrorCode.Err())})
			continue
		}
		for _, r := range resp.Results {
			if r.GroupID == g && r.ErrorCode != protocol.NoError {
				errs = append(errs, &GroupError{Group: g, Err: fmt.Errorf("delete: %w", r.ErrorCode.ErrWithDetail(r.ErrorMessage))})
			}
		}
	}
	return errors.Join(errs...)
}

// ResetSpec is where ResetOffsets moves a group's offsets.
type ResetSpec struct {
	kind  resetKind
	value int64 // offset, shift or Unix milliseconds
}

type resetKind uint8

const (
	resetEarliest resetKind = iota + 1
	resetLatest
	resetTime
	resetOffset
	resetShift
)

// ResetToEarliest moves offsets to the log start.
func ResetToEarliest() ResetSpec { return ResetSpec{kind: resetEarliest} }

// ResetToLatest moves offsets to the end (the high watermark).
func ResetToLatest() ResetSpec { return ResetSpec{kind: resetLatest} }

// ResetToTime moves offsets to the first record at or after t (the end if
// there is none).
func ResetToTime(t time.Time) ResetSpec { return ResetSpec{kind: resetTime, value: t.UnixMilli()} }

// ResetToOffset moves offsets to o, kept within [log start, end].
func ResetToOffset(o int64) ResetSpec { return ResetSpec{kind: resetOffset, value: o} }

// ResetShiftBy moves offsets by n (negative: back), kept within [log
// start, end]; a partition with no commit shifts from its log start.
func ResetShiftBy(n int64) ResetSpec { return ResetSpec{kind: resetShift, value: n} }

// OffsetReset is one partition's planned or applied reset.
type OffsetReset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   int64  `json:"current"` // -1: no commit
	New       int64  `json:"new"`
}

// ErrGroupNotEmpty matches a ResetOffsets refused because the group has
// members: offsets are reset only while no consumer would overwrite them.
var ErrGroupNotEmpty = protocol.ErrNonEmptyGroup

// ResetOffsets computes new committed offsets of every partition of topic
// for group and, with execute, commits them (as a tool: only while the
// group has no members). Without execute it only returns the plan.
func (c *Client) ResetOffsets(ctx context.Context, group, topic string, to ResetSpec, execute bool) ([]OffsetReset, error) {
	d, err := c.DescribeGroup(ctx, group)
	switch {
	case errors.Is(err, protocol.ErrGroupIDNotFound):
		// No such group yet: the reset creates its offsets.
	case err != nil:
		return nil, fmt.Errorf("reset offsets: %w", err)
	case len(d.Members) > 0:
		return nil, fmt.Errorf("reset offsets of group %q: %d members: stop them first: %w", group, len(d.Members), ErrGroupNotEmpty)
	}
	ti, err := c.topicInfo(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("reset offsets: %w", err)
	}
	parts := make([]TopicPartition, len(ti.partitions))
	for i := range parts {
		parts[i] = TopicPartition{topic, int32(i)}
	}
	committed, err := c.fetchCommitted(ctx, group, "", protocol.MemberEpochAdmin, parts, c.cfg.requestRetries)
	if err != nil && !errors.Is(err, protocol.ErrGroupIDNotFound) {
		return nil, fmt.Errorf("reset offsets: %w", err)
	}
	list := func(at Offset) ([]PartitionOffset, error) {
		offs, err := c.ListOffsets(ctx, topic, at)
		if err == nil {
			for _, o := range offs {
				if o.Err != nil {
					return nil, fmt.Errorf("reset offsets: %s[%d] at %v: %w", topic, o.Partition, at, o.Err)
				}
			}
		}
		return offs, err
	}
	starts, err := list(AtStart())
	if err != nil {
		return nil, err
	}
	ends, err := list(AtEnd())
	if err != nil {
		return nil, err
	}
	var at []PartitionOffset
	if to.kind == resetTime {
		if at, err = list(AtTime(time.UnixMilli(to.value))); err != nil {
			return nil, err
		}
	}
	out := make([]OffsetReset, 0, len(parts))
	offs := make(map[TopicPartition]int64, len(parts))
	for i, tp := range parts {
		cur, ok := committed[tp]
		if !ok {
			cur = -1
		}
		lo, hi := starts[i].Offset, ends[i].Offset
		var n int64
		switch to.kind {
		case resetEarliest:
			n = lo
		case resetLatest:
			n = hi
		case resetTime:
			n = at[i].Offset
			if n < 0 {
				n = hi
			}
		case resetOffset:
			n = to.value
		case resetShift:
			n = lo
			if cur >= 0 {
				n = cur
			}
			n += to.value
		default:
			return nil, errors.New("reset offsets: no ResetSpec given")
		}
		n = min(max(n, lo), hi)
		out = append(out, OffsetReset{Topic: topic, Partition: tp.Partition, Current: cur, New: n})
		offs[tp] = n
	}
	if execute {
		if err := c.commitOffsets(ctx, group, "", protocol.MemberEpochAdmin, offs, c.cfg.requestRetries); err != nil {
			return out, fmt.Errorf("reset offsets: %w", err)
		}
	}
	return out, nil
}
