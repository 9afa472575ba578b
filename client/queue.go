package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// Queue groups (docs/queues.md): any number of members read the same
// topics record by record. Receive acquires records under a lease; each
// Delivery is then accepted, released, rejected or renewed. Outcomes are
// batched: the calls of all goroutines that settle deliveries while an
// acknowledgement is in flight go together in the next one, and each
// call returns once its own outcome is answered.
//
// An outcome the coordinator refuses is a definite error: ErrLeaseLost
// (the lease ran out and the record went back, or to another member,
// whose delivery wins) or ErrNotDelivered (never delivered to the group,
// or already done). An outcome whose answer was lost (the connection
// failed) is sent again; a refusal of that second try is returned
// wrapped in ErrOutcomeUnknown (indeterminate, R14), since the first may
// have settled the record as asked.

// Errors of queue outcomes; test with errors.Is.
var (
	// ErrLeaseLost: the record is not held by this member any more.
	ErrLeaseLost error = protocol.ErrQueueLeaseLost
	// ErrNotDelivered: the offset was never delivered to the group, or is
	// done.
	ErrNotDelivered error = protocol.ErrInvalidRecordState
	// ErrOutcomeUnknown: a try of the acknowledgement whose answer was
	// lost may have been applied, and the next try was refused (with
	// ErrLeaseLost or ErrNotDelivered, also matched): the record may be
	// settled as asked, or not. IsIndeterminate reports it.
	ErrOutcomeUnknown = errors.New("client: queue outcome unknown: a try whose answer was lost may have been applied")
)

// defaultQueueWait bounds one long-poll of Receive when ctx has no
// deadline sooner.
const defaultQueueWait = 5 * time.Second

// queueAsyncFlush is how long outcomes of AcceptAsync wait for a Receive
// to carry them before they are sent on their own.
const queueAsyncFlush = 5 * time.Millisecond

// QueueGroup is one member of a queue group. Safe for concurrent use:
// several goroutines may Receive and settle deliveries at once.
type QueueGroup struct {
	c      *Client
	name   string
	topics []string
	member string

	mu      sync.Mutex
	pending []*queueOp
	sending bool
	// async are AcceptAsync's outcomes not yet sent: the next Receive
	// carries them, or flush sends them when it fires first.
	async []*queueOp
	flush *time.Timer
}

type queueOp struct {
	r    protocol.QueueAckRange
	err  error
	done chan struct{}
	// maybeApplied: a try that carried the op (a receive) failed in a
	// way that may have applied it.
	maybeApplied bool
	batch        *queueBatch // AcceptAsync's, or nil
}

// queueBatch collects the answers of one AcceptAsync call.
type queueBatch struct {
	mu   sync.Mutex
	left int
	errs []error
	ch   chan error
}

// finish answers op (op.err set) to its waiters.
func (op *queueOp) finish() {
	close(op.done)
	if b := op.batch; b != nil {
		b.mu.Lock()
		if op.err != nil {
			b.errs = append(b.errs, op.err)
		}
		b.left--
		if b.left == 0 {
			b.ch <- errors.Join(b.errs...)
		}
		b.mu.Unlock()
	}
}

// QueueGroup returns a member of the queue group name reading topics.
// Nothing is sent until Receive.
func (c *Client) QueueGroup(name string, topics ...string) *QueueGroup {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return &QueueGroup{c: c, name: name, topics: slices.Clone(topics), member: c.cfg.clientID + "-" + base64.RawURLEncoding.EncodeToString(b[:])}
}

// Member is the id this member's leases are held under.
func (q *QueueGroup) Member() string { return q.member }

// Delivery is one record acquired by a member: it holds the record until
// LeaseEnd (Renew extends it) and must be settled once.
type Delivery struct {
	Record
	// DeliveryCount is this delivery's number: 1 the first time, more
	// when the record was released, or its lease ran out, before.
	DeliveryCount int
	// LeaseEnd is when the lease ends (by this client's clock, from when
	// the receive was answered).
	LeaseEnd time.Time

	q     *QueueGroup
	lease time.Duration
}

// Receive acquires up to max records, waiting until one is available or
// ctx is done (then it returns none and ctx's error).
func (q *QueueGroup) Receive(ctx context.Context, max int) ([]*Delivery, error) {
	if len(q.topics) == 0 || max <= 0 {
		return nil, errors.New("client: a queue receive needs topics and a positive max")
	}
	for {
		wait := min(defaultQueueWait, q.c.cfg.requestTimeout/2)
		if dl, ok := ctx.Deadline(); ok {
			// Half of what is left: the rest is for the coordinator to
			// commit what it acquired and answer. Records acquired by an
			// answer that comes after ctx ended are delivered again only
			// once their lease runs out.
			wait = max0(min(wait, time.Until(dl)/2))
		}
		req := &protocol.QueueReceiveRequest{GroupID: q.name, MemberID: q.member, Topics: q.topics,
			MaxRecords: int32(max), MaxWaitMs: int32(wait.Milliseconds())}
		m, err := q.receive(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("queue group %q: receive: %w", q.name, err)
		}
		resp := m.(*protocol.QueueReceiveResponse)
		if resp.ErrorCode != protocol.NoError {
			return nil, fmt.Errorf("queue group %q: receive: %w", q.name, resp.ErrorCode.ErrWithDetail(resp.ErrorMessage))
		}
		lease := time.Duration(resp.LeaseMs) * time.Millisecond
		leaseEnd := time.Now().Add(lease)
		var out []*Delivery
		for _, p := range resp.Partitions {
			for _, r := range p.Records {
				d := &Delivery{Record: Record{Topic: p.Topic, Partition: p.Partition, Offset: r.Offset, Timestamp: time.UnixMilli(r.Timestamp),
					Key: r.Key, Value: r.Value}, DeliveryCount: int(r.Deliveries), LeaseEnd: leaseEnd, q: q, lease: lease}
				for _, h := range r.Headers {
					d.Headers = append(d.Headers, record.Header{Key: []byte(h.Key), Value: h.Value})
				}
				out = append(out, d)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if q.c.closed() {
			return nil, ErrClosed
		}
	}
}

func max0(d time.Duration) time.Duration { return max(d, 0) }

// receive sends one receive, carrying AcceptAsync's outcomes not yet
// sent when the coordinator speaks QueueReceive v2, and answers them. A
// receive carrying outcomes is tried once: if it fails they are sent on
// their own (as outcomes whose first try may have been applied when the
// failure says so), and the receive is tried again without them.
func (q *QueueGroup) receive(ctx context.Context, req *protocol.QueueReceiveRequest) (protocol.Message, error) {
	// ownBody: the records' bytes are the user's; they alias a private
	// copy of the frame, not the connection's buffer.
	newResp := func() protocol.Message { return new(protocol.QueueReceiveResponse) }
	if ops := q.takeAsync(); len(ops) > 0 {
		id, err := q.c.coordinator(ctx, q.name)
		var cn *conn
		if err == nil {
			cn, err = q.c.brokerConn(ctx, id, connFetch)
		}
		if err == nil && cn.versions[versionSlot(protocol.QueueReceive)] >= 2 {
			req.Acks = queueRanges(ops)
			m, err := q.c.coordinatedOn(ctx, id, cn, nil, true, q.name, req, newResp())
			req.Acks = nil
			if err == nil {
				if resp := m.(*protocol.QueueReceiveResponse); resp.ErrorCode != protocol.NoError {
					err = resp.ErrorCode.ErrWithDetail(resp.ErrorMessage)
				} else {
					q.answer(ops, resp.AckFailures, false)
					return m, nil
				}
			}
			for _, op := range ops {
				op.maybeApplied = op.maybeApplied || IsIndeterminate(err)
			}
		}
		_ = q.settle(ops...) // answered through their batches
	}
	return q.c.coordinatedVia(ctx, connFetch, true, q.name, req, newResp, q.c.cfg.requestRetries)
}

// AcceptAsync accepts ds without waiting for the answer: the outcomes go
// with this member's next Receive, in the same request (as KIP-932's
// ShareFetch carries acknowledgements), so one round trip and one write
// of the group's state settle these records and acquire the next; when
// no Receive starts within a few milliseconds they are sent on their own.
// The channel gets one value once they are answered: nil, or the
// refusals joined, as AcceptAll returns. A record is settled only once
// that answer says so; until then its lease still runs.
func (q *QueueGroup) AcceptAsync(ds []*Delivery) <-chan error {
	b := &queueBatch{left: len(ds), ch: make(chan error, 1)}
	if len(ds) == 0 {
		b.ch <- nil
		return b.ch
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, d := range ds {
		op := d.op(protocol.QueueAccept, 0, "")
		op.batch = b
		q.async = append(q.async, op)
	}
	if q.flush == nil {
		q.flush = time.AfterFunc(queueAsyncFlush, func() {
			if ops := q.takeAsync(); len(ops) > 0 {
				_ = q.settle(ops...)
			}
		})
	}
	return b.ch
}

// takeAsync takes AcceptAsync's outcomes not yet sent.
func (q *QueueGroup) takeAsync() []*queueOp {
	q.mu.Lock()
	defer q.mu.Unlock()
	ops := q.async
	q.async = nil
	if q.flush != nil {
		q.flush.Stop()
		q.flush = nil
	}
	return ops
}

// Accept settles the record as processed: it is never delivered again.
func (d *Delivery) Accept() error { return d.q.settle(d.op(protocol.QueueAccept, 0, "")) }

// Release gives the record back: it is delivered again (to any member)
// after delay, plus the group's backoff.
func (d *Delivery) Release(delay time.Duration) error {
	return d.q.settle(d.op(protocol.QueueRelease, delay, ""))
}

// Reject settles the record as unprocessable: it is copied to the
// dead-letter topic with reason and never delivered again.
func (d *Delivery) Reject(reason string) error {
	return d.q.settle(d.op(protocol.QueueReject, 0, reason))
}

// Renew starts the lease again and moves LeaseEnd (a Delivery is for
// one goroutine at a time).
func (d *Delivery) Renew() error {
	start := time.Now()
	err := d.q.settle(d.op(protocol.QueueRenew, 0, ""))
	if err == nil {
		d.LeaseEnd = start.Add(d.lease)
	}
	return err
}

func (d *Delivery) op(outcome int8, delay time.Duration, reason string) *queueOp {
	return &queueOp{r: protocol.QueueAckRange{Topic: d.Topic, Partition: d.Partition, FirstOffset: d.Offset, LastOffset: d.Offset,
		Outcome: outcome, DelayMs: int32(delay.Milliseconds()), Reason: reason}, done: make(chan struct{})}
}

// AcceptAll accepts deliveries in one batch and returns the refusals
// joined (each names its record).
func (q *QueueGroup) AcceptAll(ds []*Delivery) error {
	ops := make([]*queueOp, len(ds))
	for i, d := range ds {
		ops[i] = d.op(protocol.QueueAccept, 0, "")
	}
	return q.settle(ops...)
}

// settle sends ops with whatever else is pending and waits for their
// answers. The first caller to find nothing in flight sends, again and
// again while more arrives; the others wait.
func (q *QueueGroup) settle(ops ...*queueOp) error {
	q.mu.Lock()
	q.pending = append(q.pending, ops...)
	if !q.sending {
		q.sending = true
		for len(q.pending) > 0 {
			batch := q.pending
			q.pending = nil
			q.mu.Unlock()
			q.send(batch)
			q.mu.Lock()
		}
		q.sending = false
	}
	q.mu.Unlock()
	var errs []error
	for _, op := range ops {
		<-op.done
		if op.err != nil {
			errs = append(errs, op.err)
		}
	}
	return errors.Join(errs...)
}

// queueRanges lists ops as outcome ranges: runs of consecutive offsets of
// a partition with one outcome are one range.
func queueRanges(ops []*queueOp) []protocol.QueueAckRange {
	sorted := slices.Clone(ops)
	slices.SortStableFunc(sorted, func(a, b *queueOp) int {
		if c := strings.Compare(a.r.Topic, b.r.Topic); c != 0 {
			return c
		}
		if a.r.Partition != b.r.Partition {
			return int(a.r.Partition - b.r.Partition)
		}
		return int(a.r.FirstOffset - b.r.FirstOffset)
	})
	var ranges []protocol.QueueAckRange
	for _, op := range sorted {
		if n := len(ranges); n > 0 {
			l := &ranges[n-1]
			if l.Topic == op.r.Topic && l.Partition == op.r.Partition && l.LastOffset+1 == op.r.FirstOffset &&
				l.Outcome == op.r.Outcome && l.DelayMs == op.r.DelayMs && l.Reason == op.r.Reason {
				l.LastOffset = op.r.LastOffset
				continue
			}
		}
		ranges = append(ranges, op.r)
	}
	return ranges
}

// answer answers ops from the refusals of the request that carried them
// (maybeApplied: an earlier try may have been applied) and finishes them.
func (q *QueueGroup) answer(ops []*queueOp, failures []protocol.QueueAckFailure, maybeApplied bool) {
	for _, op := range ops {
		for _, f := range failures {
			if f.Topic == op.r.Topic && f.Partition == op.r.Partition && f.FirstOffset <= op.r.FirstOffset && op.r.FirstOffset <= f.LastOffset {
				ferr := f.ErrorCode.ErrWithDetail(f.ErrorMessage)
				if maybeApplied || op.maybeApplied {
					// The refusal may be of what the lost try did.
					ferr = fmt.Errorf("%w: %w", ErrOutcomeUnknown, ferr)
				}
				op.err = fmt.Errorf("queue group %q: %s[%d] offset %d: %w", q.name, op.r.Topic, op.r.Partition, op.r.FirstOffset, ferr)
				break
			}
		}
		op.finish()
	}
}

// send sends one QueueAck for ops and answers each op.
func (q *QueueGroup) send(ops []*queueOp) {
	ctx, cancel := context.WithTimeout(q.c.ctx, q.c.cfg.requestTimeout)
	defer cancel()
	req := &protocol.QueueAckRequest{GroupID: q.name, MemberID: q.member, Acks: queueRanges(ops)}
	// Retried here rather than in coordinated, to know whether a try
	// whose answer was lost may have been applied (R14).
	var m protocol.Message
	var err error
	maybeApplied := false
	for attempt := 0; ; attempt++ {
		m, err = q.c.coordinatedVia(ctx, connNormal, false, q.name, req, func() protocol.Message { return new(protocol.QueueAckResponse) }, 0)
		if err == nil || !IsRetriable(err) || attempt >= q.c.cfg.requestRetries || ctx.Err() != nil {
			break
		}
		maybeApplied = maybeApplied || IsIndeterminate(err)
		if err = q.c.sleep(ctx, q.c.backoff(attempt+1)); err != nil {
			break
		}
	}
	if err == nil {
		if resp := m.(*protocol.QueueAckResponse); resp.ErrorCode != protocol.NoError {
			err = resp.ErrorCode.ErrWithDetail(resp.ErrorMessage)
		} else {
			q.answer(ops, resp.Failures, maybeApplied)
			return
		}
	}
	for _, op := range ops {
		e := err
		if (maybeApplied || op.maybeApplied) && !IsIndeterminate(e) {
			e = fmt.Errorf("%w: %w", ErrOutcomeUnknown, e)
		}
		op.err = fmt.Errorf("queue group %q: %s[%d] offset %d: %w", q.name, op.r.Topic, op.r.Partition, op.r.FirstOffset, e)
		op.finish()
	}
}
