package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	in := make(map[group.QueueKey]bool, len(ss.parts)+len(add)) // sets: a request may name many partitions
	for _, k := range ss.parts {
		in[k] = true
	}
	for _, k := range add {
		if !in[k] {
			if len(ss.parts) >= maxShareSessionPartitions {
				return nil, nil, &shareError{kerrInvalidRequest, fmt.Sprintf("a share session holds at most %d partitions", maxShareSessionPartitions)}
			}
			in[k] = true
			ss.parts = append(ss.parts, k)
		}
	}
	if len(forget) > 0 {
		gone := make(map[group.QueueKey]bool, len(forget))
		for _, k := range forget {
			gone[k] = true
		}
		ss.parts = slices.DeleteFunc(ss.parts, func(k group.QueueKey) bool { return gone[k] })
	}
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

// ackBatches converts either request's AcknowledgementBatches (kmsg's two
// types of the same fields).
func ackBatches[B ~struct {
	FirstOffset      int64
	LastOffset       int64
	AcknowledgeTypes []int8
	UnknownTags      kmsg.Tags
}](bs []B) []ackBatch {
	out := make([]ackBatch, len(bs))
	for i, b := range bs {
		fb := kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch(b)
		out[i] = ackBatch{fb.FirstOffset, fb.LastOffset, fb.AcknowledgeTypes}
	}
	return out
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

// sharePart is one partition of a ShareFetch or ShareAcknowledge, with its
// acknowledgement batches.
type sharePart struct {
	id        [16]byte
	partition int32
	batches   []ackBatch
}

// shareParsed is a request's partitions resolved against the metadata.
type shareParsed struct {
	group, member string
	keys          []group.QueueKey // of known topics, in request order
	forget        []group.QueueKey
	acks          shareAcks
	unknown       []sharePart // of topic ids no broker knows
}

// sharePartIDs is the topic ids of the partitions of lists.
func sharePartIDs(lists ...[]sharePart) [][16]byte {
	var ids [][16]byte
	for _, l := range lists {
		for _, p := range l {
			ids = append(ids, p.id)
		}
	}
	return ids
}

// parseShare checks a share request's group and member and its
// authorization (read on the group and on each topic), and resolves its
// partitions and acknowledgements.
func parseShare(sess *broker.Session, md *controller.Metadata, groupID, memberID *string, parts []sharePart, forgotten []sharePart, renew bool) (shareParsed, error) {
	if groupID == nil || *groupID == "" || memberID == nil || *memberID == "" {
		return shareParsed{}, &shareError{kerrInvalidRequest, "a share request names its group and member"}
	}
	sp := shareParsed{group: *groupID, member: *memberID}
	names := map[[16]byte]string{}
	var list []string
	for _, p := range slices.Concat(parts, forgotten) {
		if _, done := names[p.id]; !done {
			name, _ := topicByID(md, p.id)
			names[p.id] = name
			if name != "" {
				list = append(list, name)
			}
		}
	}
	if err := sess.CanConsume(sp.group, slices.Values(list)); err != nil {
		return shareParsed{}, err
	}
	for _, p := range parts {
		name := names[p.id]
		if name == "" {
			sp.unknown = append(sp.unknown, p)
			continue
		}
		k := group.QueueKey{Topic: name, Partition: p.partition}
		sp.keys = append(sp.keys, k)
		if err := sp.acks.add(k, p.batches, renew); err != nil {
			return shareParsed{}, err
		}
	}
	for _, p := range forgotten {
		if name := names[p.id]; name != "" {
			sp.forget = append(sp.forget, group.QueueKey{Topic: name, Partition: p.partition})
		}
	}
	return sp, nil
}

// eachResponsePartition calls add for each partition a response lists:
// keys sorted, then the unknown topic ids' (known false); newTopic is
// true for the first partition of each topic.
func eachResponsePartition(md *controller.Metadata, keys []group.QueueKey, unknown []sharePart, add func(id [16]byte, newTopic bool, k group.QueueKey, known bool)) {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b group.QueueKey) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	var last [16]byte
	first := true
	emit := func(id [16]byte, k group.QueueKey, known bool) {
		add(id, first || id != last, k, known)
		first, last = false, id
	}
	for _, k := range slices.Compact(keys) {
		if mt := md.Topics[k.Topic]; mt != nil {
			emit(topicID(mt.ID), k, true)
		}
	}
	slices.SortFunc(unknown, func(a, b sharePart) int {
		if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
			return c
		}
		return int(a.partition - b.partition)
	})
	for _, p := range unknown {
		emit(p.id, group.QueueKey{Partition: p.partition}, false)
	}
}

// shareFetch applies a ShareFetch's acknowledgements, then acquires
// records of the session's partitions, waiting up to MaxWait for one in a
// goroutine of the connection.
func (s *Server) shareFetch(fc *broker.FrontConn, h header, flexible bool, req *kmsg.ShareFetchRequest) *broker.Reply {
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
	done := func() *broker.Reply { return reply(h.correlation, flexible, resp) }
	renew := req.Version >= 2 && req.IsRenewAck
	var parts, forgotten []sharePart
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, sharePart{id: t.TopicID, partition: p.Partition, batches: ackBatches(p.AcknowledgementBatches)})
		}
	}
	for _, t := range req.ForgottenTopicsData {
		for _, p := range t.Partitions {
			forgotten = append(forgotten, sharePart{id: t.TopicID, partition: p})
		}
	}
	md := s.caughtUpForIDs(sharePartIDs(parts, forgotten))
	sp, err := parseShare(fc.Session(), md, req.GroupID, req.MemberID, parts, forgotten, renew)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = shareCode(err)
		return done()
	}
	fetch, ss, err := s.share.sessionStep(shareSessionKey{sp.group, sp.member}, req.ShareSessionEpoch, sp.keys, sp.forget, len(sp.acks.parts) > 0)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = shareCode(err)
		return done()
	}
	if req.ShareSessionEpoch == -1 || renew {
		fetch = nil // close, or renew only: acknowledge, fetch nothing
	}
	maxRecords := shareDefaultMaxRecords
	if req.Version >= 1 && req.MaxRecords > 0 {
		maxRecords = int(req.MaxRecords)
	}
	wait := time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond
	// The wait for records ends early with the connection's long-polls,
	// as a Fetch's does (FrontConn.PollContext); the outcomes' and the
	// acquisitions' commits do not.
	poll := fc.PollContext().Done()
	run := func(ctx context.Context) {
		ackErrs := sp.acks.apply(ctx, s.b, sp.group, sp.member)
		var msgs []broker.QueueMessage
		var recvErr error
		if len(fetch) > 0 {
			var lease time.Duration
			msgs, lease, recvErr = s.shareReceive(ctx, poll, sp.group, sp.member, fetch, maxRecords, wait)
			resp.AcquisitionLockTimeoutMillis = int32(lease.Milliseconds())
			s.share.mu.Lock()
			ss.lease = lease
			s.share.mu.Unlock()
		}
		shareFetchResponse(md, resp, fetch, sp, ackErrs, msgs, recvErr)
	}
	if len(fetch) == 0 || wait <= 0 {
		ctx, cancel := context.WithTimeout(fc.Context(), broker.GroupWriteTimeout)
		run(ctx)
		cancel()
		return done()
	}
	r := &broker.Reply{Ready: make(chan struct{})}
	fc.Go(func() {
		defer fc.Finish(r) // the wait is timed as the wait stage, as a Fetch's
		ctx, cancel := context.WithTimeout(fc.Context(), wait+broker.GroupWriteTimeout)
		defer cancel()
		run(ctx)
		r.Frame = [][]byte{appendResponse(nil, h.correlation, flexible, resp)}
	})
	return r
}

// shareLoadPoll is how often a waiting share fetch asks again while the
// group's coordinator loads.
const shareLoadPoll = 20 * time.Millisecond

// shareReceive is the core's QueueReceivePartitions, asked again within
// the fetch's wait while the coordinator is loading (a new coordinator,
// the first use of the offsets topic): Kafka's share fetch waits for its
// share partitions to initialize, and the Java client would otherwise
// take the error as a failed fetch. poll ends the wait (QueueReceiveVia).
func (s *Server) shareReceive(ctx context.Context, poll <-chan struct{}, groupID, member string, parts []group.QueueKey, max int, wait time.Duration) ([]broker.QueueMessage, time.Duration, error) {
	deadline := time.Now().Add(wait)
	for {
		msgs, lease, err := s.b.QueueReceiveVia(ctx, poll, groupID, member, parts, max, time.Until(deadline))
		if !errors.Is(err, protocol.ErrCoordinatorLoadInProgress) || time.Until(deadline) < shareLoadPoll {
			return msgs, lease, err
		}
		t := time.NewTimer(shareLoadPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return msgs, lease, err
		case <-poll:
			t.Stop()
			return msgs, lease, err
		}
	}
}

// shareFetchResponse fills resp: every partition fetched or named, with
// its acknowledgement code, and the records acquired.
func shareFetchResponse(md *controller.Metadata, resp *kmsg.ShareFetchResponse, fetched []group.QueueKey, sp shareParsed,
	ackErrs map[group.QueueKey]error, msgs []broker.QueueMessage, recvErr error) {
	isFetched := make(map[group.QueueKey]bool, len(fetched))
	for _, k := range fetched {
		isFetched[k] = true
	}
	byPart := map[group.QueueKey][]broker.QueueMessage{}
	for _, m := range msgs {
		k := group.QueueKey{Topic: m.Topic, Partition: m.Partition}
		byPart[k] = append(byPart[k], m)
	}
	eachResponsePartition(md, slices.Concat(fetched, sp.keys), sp.unknown, func(id [16]byte, newTopic bool, k group.QueueKey, known bool) {
		if newTopic {
			t := kmsg.NewShareFetchResponseTopic()
			t.TopicID = id
			resp.Topics = append(resp.Topics, t)
		}
		p := kmsg.NewShareFetchResponseTopicPartition()
		p.Partition = k.Partition
		p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = -1, -1
		switch {
		case !known:
			p.ErrorCode, p.AcknowledgeErrorCode = kerrUnknownTopicID, kerrUnknownTopicID
		case recvErr != nil && isFetched[k]:
			p.ErrorCode, p.ErrorMessage = shareCode(recvErr)
		case len(byPart[k]) > 0:
			var err error
			if p.Records, p.AcquiredRecords, err = shareBatches(byPart[k]); err != nil {
				p.ErrorCode, p.ErrorMessage = shareCode(err)
				p.Records, p.AcquiredRecords = nil, nil
			}
		}
		if err, ok := ackErrs[k]; ok && known {
			p.AcknowledgeErrorCode, p.AcknowledgeErrorMessage = shareCode(err)
		}
		resp.Topics[len(resp.Topics)-1].Partitions = append(resp.Topics[len(resp.Topics)-1].Partitions, p)
	})
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
	var parts []sharePart
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, sharePart{id: t.TopicID, partition: p.Partition, batches: ackBatches(p.AcknowledgementBatches)})
		}
	}
	md := s.caughtUpForIDs(sharePartIDs(parts))
	sp, err := parseShare(fc.Session(), md, req.GroupID, req.MemberID, parts, nil, req.Version >= 2 && req.IsRenewAck)
	if err == nil && req.ShareSessionEpoch == 0 {
		err = &shareError{kerrInvalidShareEpoch, "ShareAcknowledge cannot open a share session (epoch 0)"}
	}
	var ss *shareSession
	if err == nil {
		_, ss, err = s.share.sessionStep(shareSessionKey{sp.group, sp.member}, req.ShareSessionEpoch, nil, nil, false)
	}
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = shareCode(err)
		return resp
	}
	ctx, cancel := context.WithTimeout(fc.Context(), broker.GroupWriteTimeout)
	ackErrs := sp.acks.apply(ctx, s.b, sp.group, sp.member)
	cancel()
	if req.Version >= 2 {
		s.share.mu.Lock()
		resp.AcquisitionLockTimeoutMillis = int32(ss.lease.Milliseconds())
		s.share.mu.Unlock()
	}
	eachResponsePartition(md, sp.keys, sp.unknown, func(id [16]byte, newTopic bool, k group.QueueKey, known bool) {
		if newTopic {
			t := kmsg.NewShareAcknowledgeResponseTopic()
			t.TopicID = id
			resp.Topics = append(resp.Topics, t)
		}
		p := kmsg.NewShareAcknowledgeResponseTopicPartition()
		p.Partition = k.Partition
		p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = -1, -1
		p.ErrorCode, p.ErrorMessage = shareCode(ackErrs[k])
		if !known {
			p.ErrorCode, p.ErrorMessage = kerrUnknownTopicID, nil
		}
		resp.Topics[len(resp.Topics)-1].Partitions = append(resp.Topics[len(resp.Topics)-1].Partitions, p)
	})
	return resp
}
