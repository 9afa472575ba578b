package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// ShareFetch and ShareAcknowledge: acknowledgements are the core's QueueAck
// and acquisitions its QueueReceivePartitions, of the partitions of the
// member's share session on this broker. The records acquired are handed
// out as record batches this front end encodes from the core's records
// (one uncompressed batch per run of consecutive offsets, at their own
// offsets) with one AcquiredRecords range per run of equal delivery count:
// the coordinator reads and decodes the records it hands out (it must know
// which offsets hold records before it counts a delivery), so the
// producer's batches are not what it has; the cost is one encoding per
// record handed out, and no compression on the way to the consumer.

// Kafka codes of share sessions, which only this front end has.
const (
	kerrUnknownTopicID        = 100
	kerrShareSessionNotFound  = 122
	kerrInvalidShareEpoch     = 123
	kerrShareSessionLimit     = 133
	kerrInvalidRequest        = 42
	shareDefaultMaxRecords    = 500             // a v0-style request without MaxRecords
	maxShareSessions          = 10000           // share sessions on one broker
	maxShareSessionPartitions = 10000           // partitions of one session
	shareSessionIdle          = 2 * time.Minute // a session unused this long may be evicted for a new one
	shareAckReason            = "rejected by a Kafka share consumer"
)

type shareSessionKey struct{ group, member string }

// shareSession is one member's share session on this broker: the epoch its
// next request must carry and the partitions it fetches.
type shareSession struct {
	epoch    int32
	parts    []group.QueueKey
	lastUsed time.Time
	lease    time.Duration // the last acquisition's, for ShareAcknowledge v2
}

// shareError is a Kafka code with its message, for the session errors that
// have no sluice code.
type shareError struct {
	code int16
	msg  string
}

func (e *shareError) Error() string { return e.msg }

// shareCode is errorCode, knowing the share-session errors.
func shareCode(err error) (int16, *string) {
	if se, ok := err.(*shareError); ok {
		return se.code, &se.msg
	}
	return errorCode(err)
}

// sessionStep applies a request's session epoch: 0 opens a new session
// (replacing the member's old one), -1 closes it once the request is done,
// any other must be the session's next epoch. add and forget change its
// partitions (not for -1). It returns the partitions to fetch.
func (st *shareState) sessionStep(key shareSessionKey, epoch int32, add, forget []group.QueueKey, hasAcks bool) ([]group.QueueKey, *shareSession, error) {
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	ss := st.sessions[key]
	switch {
	case epoch == 0:
		if hasAcks {
			return nil, nil, &shareError{kerrInvalidRequest, "a share session's first request (epoch 0) carries no acknowledgements"}
		}
		if ss == nil && len(st.sessions) >= maxShareSessions {
			for k, s := range st.sessions {
				if now.Sub(s.lastUsed) > shareSessionIdle {
					delete(st.sessions, k)
				}
			}
			if len(st.sessions) >= maxShareSessions {
				return nil, nil, &shareError{kerrShareSessionLimit, fmt.Sprintf("this broker holds %d share sessions", maxShareSessions)}
			}
		}
		ss = &shareSession{epoch: 0}
		st.sessions[key] = ss
	case ss == nil:
		return nil, nil, &shareError{kerrShareSessionNotFound, "no share session of this member on this broker: open one with epoch 0"}
	case epoch == -1:
		delete(st.sessions, key)
		ss.lastUsed = now
		return nil, ss, nil
	case epoch != ss.epoch:
		return nil, nil, &shareError{kerrInvalidShareEpoch, fmt.Sprintf("share session epoch %d, expected %d", epoch, ss.epoch)}
	}
	for _, k := range add {
		if !slices.Contains(ss.parts, k) {
			if len(ss.parts) >= maxShareSessionPartitions {
				return nil, nil, &shareError{kerrInvalidRequest, fmt.Sprintf("a share session holds at most %d partitions", maxShareSessionPartitions)}
			}
			ss.parts = append(ss.parts, k)
		}
	}
	ss.parts = slices.DeleteFunc(ss.parts, func(k group.QueueKey) bool { return slices.Contains(forget, k) })
	ss.epoch++
	if ss.epoch < 0 {
		ss.epoch = 1 // after MaxInt32: 0 and -1 mean open and close
	}
	ss.lastUsed = now
	return slices.Clone(ss.parts), ss, nil
}

// shareAcks is the acknowledgements of one request, as core outcomes, and
// the partitions they name.
type shareAcks struct {
	outcomes []broker.QueueOutcome
	parts    []group.QueueKey
}

// ackBatch is the fields of Kafka's two AcknowledgementBatch types.
type ackBatch struct {
	first, last int64
	types       []int8
}

// add appends one partition's acknowledgement batches: a run of equal
// types is one outcome range; gaps (type 0: offsets without a record) need
// none, as the core never delivers an offset without one.
func (a *shareAcks) add(k group.QueueKey, batches []ackBatch, renew bool) error {
	if len(batches) > 0 {
		a.parts = append(a.parts, k)
	}
	for _, b := range batches {
		n := b.last - b.first + 1
		if b.first < 0 || n <= 0 || (len(b.types) != 1 && int64(len(b.types)) != n) {
			return &shareError{kerrInvalidRequest, fmt.Sprintf("acknowledgement batch %d to %d of %s/%d with %d types", b.first, b.last, k.Topic, k.Partition, len(b.types))}
		}
		typeAt := func(off int64) int8 {
			if len(b.types) == 1 {
				return b.types[0]
			}
			return b.types[off-b.first]
		}
		for off := b.first; off <= b.last; {
			t := typeAt(off)
			end := off
			if len(b.types) == 1 {
				end = b.last
			} else {
				for end < b.last && typeAt(end+1) == t {
					end++
				}
			}
			switch {
			case t == 0:
			case t < 0 || t > int8(group.Renew) || (t == int8(group.Renew) && !renew):
				return &shareError{kerrInvalidRequest, fmt.Sprintf("acknowledge type %d", t)}
			default:
				o := broker.QueueOutcome{Topic: k.Topic, Partition: k.Partition, First: off, Last: end, Outcome: group.Outcome(t)}
				if o.Outcome == group.Reject {
					o.Reason = shareAckReason
				}
				a.outcomes = append(a.outcomes, o)
			}
			off = end + 1
		}
	}
	return nil
}

// apply runs the outcomes through the core and returns each partition's
// acknowledgement code (the first refusal of the partition, or the whole
// call's error).
func (a *shareAcks) apply(ctx context.Context, b *broker.Broker, groupID, member string) map[group.QueueKey]error {
	out := map[group.QueueKey]error{}
	if len(a.outcomes) == 0 {
		return out
	}
	refused, err := b.QueueAckVia(ctx, groupID, member, a.outcomes)
	if err != nil {
		for _, k := range a.parts {
			out[k] = err
		}
		return out
	}
	for _, r := range refused {
		k := group.QueueKey{Topic: r.Topic, Partition: r.Partition}
		if out[k] == nil {
			out[k] = r.Err
		}
	}
	return out
}

// shareTopics resolves a request's topic ids: names, or the ids unknown.
func shareTopics(md *controller.Metadata, ids [][16]byte) (map[[16]byte]string, []string) {
	names := make(map[[16]byte]string, len(ids))
	var list []string
	for _, id := range ids {
		if _, done := names[id]; done {
			continue
		}
		if name, ok := topicByID(md, id); ok {
			names[id] = name
			list = append(list, name)
		} else {
			names[id] = ""
		}
	}
	return names, list
}

// shareFetch applies a ShareFetch's acknowledgements, then acquires
// records of the session's partitions, waiting up to MaxWait for one in a
// goroutine of the connection.
func (s *Server) shareFetch(fc *broker.FrontConn, h header, flexible bool, req *kmsg.ShareFetchRequest) *broker.Reply {
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
	done := func() *broker.Reply { return reply(h.correlation, flexible, resp) }
	fail := func(err error) *broker.Reply {
		resp.ErrorCode, resp.ErrorMessage = shareCode(err)
		return done()
	}
	if req.GroupID == nil || *req.GroupID == "" || req.MemberID == nil || *req.MemberID == "" {
		return fail(&shareError{kerrInvalidRequest, "a share fetch names its group and member"})
	}
	groupID, member := *req.GroupID, *req.MemberID
	md := s.b.Metadata()
	ids := make([][16]byte, 0, len(req.Topics)+len(req.ForgottenTopicsData))
	for _, t := range req.Topics {
		ids = append(ids, t.TopicID)
	}
	for _, t := range req.ForgottenTopicsData {
		ids = append(ids, t.TopicID)
	}
	names, list := shareTopics(md, ids)
	if err := fc.Session().CanConsume(groupID, slices.Values(list)); err != nil {
		return fail(err)
	}
	renew := req.Version >= 2 && req.IsRenewAck
	var acks shareAcks
	var add, forget []group.QueueKey
	unknown := map[[16]byte][]int32{}
	for _, t := range req.Topics {
		name := names[t.TopicID]
		for _, p := range t.Partitions {
			if name == "" {
				unknown[t.TopicID] = append(unknown[t.TopicID], p.Partition)
				continue
			}
			k := group.QueueKey{Topic: name, Partition: p.Partition}
			add = append(add, k)
			batches := make([]ackBatch, len(p.AcknowledgementBatches))
			for i, b := range p.AcknowledgementBatches {
				batches[i] = ackBatch{b.FirstOffset, b.LastOffset, b.AcknowledgeTypes}
			}
			if err := acks.add(k, batches, renew); err != nil {
				return fail(err)
			}
		}
	}
	for _, t := range req.ForgottenTopicsData {
		if name := names[t.TopicID]; name != "" {
			for _, p := range t.Partitions {
				forget = append(forget, group.QueueKey{Topic: name, Partition: p})
			}
		}
	}
	key := shareSessionKey{groupID, member}
	parts, ss, err := s.share.sessionStep(key, req.ShareSessionEpoch, add, forget, len(acks.parts) > 0)
	if err != nil {
		return fail(err)
	}
	if req.ShareSessionEpoch == -1 || renew {
		parts = nil // close, or renew only: acknowledge, fetch nothing
	}
	max := shareDefaultMaxRecords
	if req.Version >= 1 && req.MaxRecords > 0 {
		max = int(req.MaxRecords)
	}
	wait := time.Duration(max0(req.MaxWaitMillis)) * time.Millisecond
	run := func(ctx context.Context) {
		ackErrs := acks.apply(ctx, s.b, groupID, member)
		var msgs []broker.QueueMessage
		var recvErr error
		if len(parts) > 0 {
			var lease time.Duration
			msgs, lease, recvErr = s.shareReceive(ctx, groupID, member, parts, max, wait)
			resp.AcquisitionLockTimeoutMillis = int32(lease.Milliseconds())
			s.share.mu.Lock()
			ss.lease = lease
			s.share.mu.Unlock()
		}
		s.shareFetchResponse(md, resp, parts, acks.parts, ackErrs, msgs, recvErr, unknown)
	}
	if len(parts) == 0 || wait <= 0 {
		ctx, cancel := context.WithTimeout(fc.Context(), groupTimeout)
		run(ctx)
		cancel()
		return done()
	}
	r := &broker.Reply{Ready: make(chan struct{})}
	fc.Go(func() {
		defer close(r.Ready)
		ctx, cancel := context.WithTimeout(fc.Context(), wait+groupTimeout)
		defer cancel()
		run(ctx)
		r.Frame = [][]byte{appendResponse(nil, h.correlation, flexible, resp)}
	})
	return r
}

func max0(v int32) int32 { return max(v, 0) }

// shareLoadPoll is how often a waiting share fetch asks again while the
// group's coordinator loads.
const shareLoadPoll = 20 * time.Millisecond

// shareReceive is the core's QueueReceivePartitions, asked again within
// the fetch's wait while the coordinator is loading (a new coordinator,
// the first use of the offsets topic): Kafka's share fetch waits for its
// share partitions to initialize, and the Java client would otherwise
// take the error as a failed fetch.
func (s *Server) shareReceive(ctx context.Context, groupID, member string, parts []group.QueueKey, max int, wait time.Duration) ([]broker.QueueMessage, time.Duration, error) {
	deadline := time.Now().Add(wait)
	for {
		msgs, lease, err := s.b.QueueReceiveVia(ctx, groupID, member, parts, max, time.Until(deadline))
		if !errors.Is(err, protocol.ErrCoordinatorLoadInProgress) || time.Until(deadline) < shareLoadPoll {
			return msgs, lease, err
		}
		t := time.NewTimer(shareLoadPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return msgs, lease, err
		}
	}
}

// shareFetchResponse fills resp: every partition fetched or acknowledged,
// with its acknowledgement code, and the records acquired.
func (s *Server) shareFetchResponse(md *controller.Metadata, resp *kmsg.ShareFetchResponse, fetched, acked []group.QueueKey,
	ackErrs map[group.QueueKey]error, msgs []broker.QueueMessage, recvErr error, unknown map[[16]byte][]int32) {
	byPart := map[group.QueueKey][]broker.QueueMessage{}
	for _, m := range msgs {
		k := group.QueueKey{Topic: m.Topic, Partition: m.Partition}
		byPart[k] = append(byPart[k], m)
	}
	keys := slices.Concat(fetched, acked)
	slices.SortFunc(keys, func(a, b group.QueueKey) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	keys = slices.Compact(keys)
	for _, k := range keys {
		mt := md.Topics[k.Topic]
		if mt == nil {
			continue
		}
		id := topicID(mt.ID)
		n := len(resp.Topics)
		if n == 0 || resp.Topics[n-1].TopicID != id {
			t := kmsg.NewShareFetchResponseTopic()
			t.TopicID = id
			resp.Topics = append(resp.Topics, t)
			n++
		}
		p := kmsg.NewShareFetchResponseTopicPartition()
		p.Partition = k.Partition
		p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = -1, -1
		if err, ok := ackErrs[k]; ok {
			p.AcknowledgeErrorCode, p.AcknowledgeErrorMessage = shareCode(err)
		}
		if slices.Contains(fetched, k) {
			if recvErr != nil {
				p.ErrorCode, p.ErrorMessage = shareCode(recvErr)
			} else if ms := byPart[k]; len(ms) > 0 {
				var err error
				p.Records, p.AcquiredRecords, err = shareBatches(ms)
				if err != nil {
					p.ErrorCode, p.ErrorMessage = shareCode(err)
					p.Records, p.AcquiredRecords = nil, nil
				}
			}
		}
		resp.Topics[n-1].Partitions = append(resp.Topics[n-1].Partitions, p)
	}
	for id, ps := range unknown {
		t := kmsg.NewShareFetchResponseTopic()
		t.TopicID = id
		for _, part := range ps {
			p := kmsg.NewShareFetchResponseTopicPartition()
			p.Partition, p.ErrorCode, p.AcknowledgeErrorCode = part, kerrUnknownTopicID, kerrUnknownTopicID
			p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = -1, -1
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
}

// shareBatches encodes a partition's acquired records: one batch per run
// of consecutive offsets, based at the run's first offset, and one
// AcquiredRecords range per run of equal delivery count.
func shareBatches(ms []broker.QueueMessage) ([]byte, []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord, error) {
	slices.SortFunc(ms, func(a, b broker.QueueMessage) int { return int(a.Offset - b.Offset) })
	var out []byte
	var acq []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord
	bld := record.NewBuilder(record.None)
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && ms[j].Offset == ms[j-1].Offset+1 {
			j++
		}
		bld.Reset()
		for _, m := range ms[i:j] {
			bld.Append(m.Timestamp, m.Key, m.Value, m.Headers)
		}
		batch, err := bld.Build()
		if err != nil {
			return nil, nil, fmt.Errorf("encode the records %d to %d: %w", ms[i].Offset, ms[j-1].Offset, err)
		}
		start := len(out)
		out = append(out, batch...)
		record.Batch(out[start:]).SetBaseOffset(ms[i].Offset)
		i = j
	}
	for _, m := range ms {
		dc := int16(min(m.Deliveries, 1<<15-1))
		if n := len(acq); n > 0 && acq[n-1].LastOffset == m.Offset-1 && acq[n-1].DeliveryCount == dc {
			acq[n-1].LastOffset = m.Offset
			continue
		}
		a := kmsg.NewShareFetchResponseTopicPartitionAcquiredRecord()
		a.FirstOffset, a.LastOffset, a.DeliveryCount = m.Offset, m.Offset, dc
		acq = append(acq, a)
	}
	return out, acq, nil
}

// shareAcknowledge applies a member's acknowledgements through the core
// (ShareAcknowledge: epoch -1 closes the session after them).
func (s *Server) shareAcknowledge(fc *broker.FrontConn, req *kmsg.ShareAcknowledgeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	fail := func(err error) kmsg.Response {
		resp.ErrorCode, resp.ErrorMessage = shareCode(err)
		return resp
	}
	if req.GroupID == nil || *req.GroupID == "" || req.MemberID == nil || *req.MemberID == "" {
		return fail(&shareError{kerrInvalidRequest, "a share acknowledgement names its group and member"})
	}
	groupID, member := *req.GroupID, *req.MemberID
	if req.ShareSessionEpoch == 0 {
		return fail(&shareError{kerrInvalidShareEpoch, "ShareAcknowledge cannot open a share session (epoch 0)"})
	}
	md := s.b.Metadata()
	ids := make([][16]byte, 0, len(req.Topics))
	for _, t := range req.Topics {
		ids = append(ids, t.TopicID)
	}
	names, list := shareTopics(md, ids)
	if err := fc.Session().CanConsume(groupID, slices.Values(list)); err != nil {
		return fail(err)
	}
	renew := req.Version >= 2 && req.IsRenewAck
	var acks shareAcks
	unknown := map[[16]byte][]int32{}
	for _, t := range req.Topics {
		name := names[t.TopicID]
		for _, p := range t.Partitions {
			if name == "" {
				unknown[t.TopicID] = append(unknown[t.TopicID], p.Partition)
				continue
			}
			batches := make([]ackBatch, len(p.AcknowledgementBatches))
			for i, b := range p.AcknowledgementBatches {
				batches[i] = ackBatch{b.FirstOffset, b.LastOffset, b.AcknowledgeTypes}
			}
			if err := acks.add(group.QueueKey{Topic: name, Partition: p.Partition}, batches, renew); err != nil {
				return fail(err)
			}
		}
	}
	_, ss, err := s.share.sessionStep(shareSessionKey{groupID, member}, req.ShareSessionEpoch, nil, nil, false)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(fc.Context(), groupTimeout)
	ackErrs := acks.apply(ctx, s.b, groupID, member)
	cancel()
	if req.Version >= 2 {
		s.share.mu.Lock()
		resp.AcquisitionLockTimeoutMillis = int32(ss.lease.Milliseconds())
		s.share.mu.Unlock()
	}
	for _, k := range acks.parts {
		mt := md.Topics[k.Topic]
		if mt == nil {
			continue
		}
		id := topicID(mt.ID)
		n := len(resp.Topics)
		if n == 0 || resp.Topics[n-1].TopicID != id {
			t := kmsg.NewShareAcknowledgeResponseTopic()
			t.TopicID = id
			resp.Topics = append(resp.Topics, t)
			n++
		}
		p := kmsg.NewShareAcknowledgeResponseTopicPartition()
		p.Partition = k.Partition
		p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = -1, -1
		p.ErrorCode, p.ErrorMessage = shareCode(ackErrs[k])
		resp.Topics[n-1].Partitions = append(resp.Topics[n-1].Partitions, p)
	}
	for id, ps := range unknown {
		t := kmsg.NewShareAcknowledgeResponseTopic()
		t.TopicID = id
		for _, part := range ps {
			p := kmsg.NewShareAcknowledgeResponseTopicPartition()
			p.Partition, p.ErrorCode = part, kerrUnknownTopicID
			p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = -1, -1
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}
