package client

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// sendItem is one batch of a Produce request: the send it belongs to (gen)
// and what drain decided for it under p.mu, so the send goroutine reads
// none of the producer's shared state.
type sendItem struct {
	b     *batch
	gen   uint64
	data  record.Batch // nil: build it, stamped with id, epoch, seq
	id    int64
	epoch int16
	seq   int32
	err   error // the batch could not be built
}

// stallAfter is how long a batch may be in flight before the producer
// suspects its leader hangs: it then refreshes metadata every stallAfter,
// and once the partition's leader has changed it stops waiting on the old
// leader's connection (leadersChanged). A healthy acks=all produce takes a
// few milliseconds; a hung broker holds a request for RequestTimeout.
const stallAfter = 250 * time.Millisecond

// moveGrace is how long after it first sees another broker lead a
// partition the producer keeps waiting for the old leader's answer to a
// batch in flight there, if that connection answered anything within the
// last moveGrace (conn.heardSince). A leader handing its partition over
// (a preferred-leader rebalance, a controlled shutdown) answers every
// request it took before the switch becomes visible — acknowledged once
// the new leader holds it, or refused definitely after its fence — so
// giving up on it would turn an answer on its way into an unknown outcome
// (issue 13 item 4). Its connection is silent for the drain at most (a
// few milliseconds; handoverDrain bounds it). A hung broker's connection
// has been silent since it hung, usually for the seconds the controller
// took to fence it: given up on at once; one that hung less than
// moveGrace before its partitions moved, moveGrace later.
const moveGrace = time.Second

// errLeaderMoved is the cause of a batch given up on its old leader's
// connection when metadata named a new leader.
var errLeaderMoved = errors.New("the partition's leader moved while the batch was in flight")

// sendLoop takes sendable batches (drain) and starts their requests, in
// order per leader. It sleeps until woken (a batch filled, a request
// finished, Flush, Close, new metadata) or the next linger, retry or stall
// deadline.
func (p *producer) sendLoop() {
	defer p.c.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := p.drain(time.Now())
		for _, pp := range p.deliverTo {
			p.deliver(pp)
		}
		clear(p.deliverTo)
		p.deliverTo = p.deliverTo[:0]
		for leader, reqs := range p.reqs {
			for _, items := range reqs {
				prev := p.lanes[leader]
				mine := make(chan struct{})
				p.lanes[leader] = mine
				p.c.wg.Add(1)
				go p.send(leader, items, prev, mine)
			}
			delete(p.reqs, leader)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		if !next.IsZero() {
			t.Reset(max(time.Until(next), 0))
		}
		select {
		case <-p.wake:
		case <-t.C:
		case <-p.c.ctx.Done():
			return
		}
	}
}

// drain collects into p.reqs the batches to send now and settles those
// that can no longer be sent (into p.deliverTo), partition by partition
// (drainPart). With idempotence it fetches the producer id first, and
// bumps the epoch when a partition asked for it. While a batch has been in
// flight for stallAfter it asks for metadata every stallAfter. It returns
// the earliest time something will become ready (zero for none).
func (p *producer) drain(now time.Time) (next time.Time) {
	soon := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	hurry := p.flushing > 0 || p.closing
	waitPID, stalled := false, false
	for pp := range p.active {
		w, s := p.drainPart(pp, now, hurry, soon)
		waitPID, stalled = waitPID || w, stalled || s
		if p.popSettled(pp) {
			p.deliverTo = append(p.deliverTo, pp)
		}
		if pp.open == nil && len(pp.queued) == 0 && len(pp.sent) == 0 {
			delete(p.active, pp)
		}
	}
	if p.idem && (waitPID || p.pid.bump) {
		soon(p.maybeFetchPID(now))
	}
	if stalled {
		if at := p.stallRefresh.Add(stallAfter); now.Before(at) {
			soon(at)
		} else {
			p.stallRefresh = now
			p.c.meta.requestRefresh()
			soon(now.Add(stallAfter))
		}
	}
	return next
}

// drainPart takes pp's batches to send: first its pending batches, in
// order, once none of its batches is in flight; else new batches — the
// oldest queued, or the open one once it has lingered (at once when
// hurrying) — while fewer than maxInflight are in flight. Batches that
// can no longer be sent (delivery timeout passed, a retry pending at
// Close, no producer id) fail. waitPID: a batch waits for the producer
// id; stalled: a batch has been in flight for stallAfter. p.mu is held.
func (p *producer) drainPart(pp *ppart, now time.Time, hurry bool, soon func(time.Time)) (waitPID, stalled bool) {
	pending := -1
	for i, b := range pp.sent {
		if b.state == batchInflight && !stalled {
			// The first in flight is the oldest: pending batches are
			// resent only when none is in flight.
			if at := b.sentAt.Add(stallAfter); now.Before(at) {
				soon(at)
			} else {
				stalled = true
			}
		}
		if b.state == batchPending && pending < 0 {
			pending = i
		}
	}
	ready := p.sendable()
	if pending >= 0 {
		if pp.inflight > 0 {
			return false, stalled // Kafka's rule: resend once the partition's in-flight batches settled
		}
		// After a batch's own failure it is resent alone until one is
		// acknowledged, then the rest follow together: resending all at
		// once could fail the same way each round, the later ones refused
		// each time behind the first.
		limit := p.maxInflight
		if pp.probe {
			limit = 1
		}
		k := 0
		for _, b := range pp.sent[pending:] {
			if b.state != batchPending || pp.inflight >= limit {
				continue
			}
			if p.closing || !now.Before(b.deadline) {
				p.fail(b, b.lastErr, b.maybeWritten)
				continue
			}
			if k == 0 && now.Before(b.retryAt) {
				soon(b.retryAt)
				break
			}
			if !ready {
				waitPID = true
				break
			}
			if b.data == nil && b.refs > 0 {
				break // a request given up on still reads its old bytes; its end wakes the loop
			}
			leader, _, ok := p.c.meta.leader(pp.t.name, pp.partition)
			if !ok {
				p.c.meta.requestRefresh()
				soon(now.Add(p.cfg.retryBackoff[0]))
				break
			}
			p.take(b, leader, now, k)
			soon(now.Add(stallAfter))
			k++
		}
		return waitPID, stalled
	}
	for k := 0; pp.inflight < p.maxInflight; k++ {
		var b *batch
		switch {
		case len(pp.queued) > 0:
			b = pp.queued[0]
		case pp.open == nil:
			return waitPID, stalled
		case hurry || !now.Before(pp.open.created.Add(p.cfg.linger)):
			b = pp.open
		default:
			soon(pp.open.created.Add(p.cfg.linger))
			return waitPID, stalled
		}
		leader, _, ok := p.c.meta.leader(pp.t.name, pp.partition)
		if !now.Before(b.deadline) || (!ok && p.closing) {
			// Never sent: it fails definitely, not written. A batch
			// queued behind one in flight to a hung broker gets here as
			// soon as that one settles.
			err := b.lastErr
			switch {
			case err != nil:
			case !ok:
				err = fmt.Errorf("%s[%d]: no leader known: %w", pp.t.name, pp.partition, protocol.ErrLeaderNotAvailable)
			default:
				err = fmt.Errorf("%s[%d]: %v: %w", pp.t.name, pp.partition, p.cfg.deliveryTimeout, ErrDeliveryTimeout)
			}
			p.dequeue(pp, b)
			pp.sent = append(pp.sent, b)
			p.fail(b, err, false)
			continue
		}
		if !ok {
			p.c.meta.requestRefresh()
			soon(now.Add(p.cfg.retryBackoff[0]))
			return waitPID, stalled
		}
		if !ready {
			var err error
			switch {
			case p.pid.err != nil:
				err = fmt.Errorf("%s[%d]: no producer id: %w", pp.t.name, pp.partition, p.pid.err)
			case p.closing && !p.pid.fetching && p.pid.attempts > 0:
				err = fmt.Errorf("%s[%d]: no producer id: %w", pp.t.name, pp.partition, ErrClosed)
			default:
				return true, stalled
			}
			p.dequeue(pp, b)
			pp.sent = append(pp.sent, b)
			p.fail(b, err, false)
			continue
		}
		p.dequeue(pp, b)
		pp.sent = append(pp.sent, b)
		if p.idem {
			b.seq = pp.nextSeq
			pp.nextSeq = nextSequence(pp.nextSeq, len(b.recs))
		}
		p.take(b, leader, now, k)
		soon(now.Add(stallAfter))
	}
	return waitPID, stalled
}

// take puts b, of pp.sent, in flight to leader as the k-th batch of its
// partition in this drain (so in the leader's k-th request). p.mu is held.
func (p *producer) take(b *batch, leader int32, now time.Time, k int) {
	pp := b.part
	if p.idem && b.seq < 0 {
		// Restamped after an epoch bump (resequence): next in order.
		b.seq = pp.nextSeq
		pp.nextSeq = nextSequence(pp.nextSeq, len(b.recs))
	}
	b.state, b.leader, b.sentAt, b.movedAt = batchInflight, leader, now, time.Time{}
	b.conn.Store(nil)
	b.gen++
	b.refs++
	pp.inflight++
	p.inflight++
	it := sendItem{b: b, gen: b.gen, data: b.data, id: -1, epoch: -1, seq: -1}
	if p.idem {
		it.id, it.epoch, it.seq = p.pid.id, p.pid.epoch, b.seq
	}
	reqs := p.reqs[leader]
	for len(reqs) <= k {
		reqs = append(reqs, nil)
	}
	reqs[k] = append(reqs[k], it)
	p.reqs[leader] = reqs
}

// dequeue removes b, the partition's next new batch, from its queue or its
// open slot. p.mu is held.
func (p *producer) dequeue(pp *ppart, b *batch) {
	if len(pp.queued) > 0 && pp.queued[0] == b {
		copy(pp.queued, pp.queued[1:])
		pp.queued[len(pp.queued)-1] = nil
		pp.queued = pp.queued[:len(pp.queued)-1]
	} else {
		pp.open = nil
	}
}

// send sends items, all led by broker leader, in one Produce request and
// settles each from the response. The request is handed to the
// connection after prev's (the leader's previous request) and before the
// next one's (mine is closed then), so a partition's batches reach the
// leader in sequence order.
func (p *producer) send(leader int32, items []sendItem, prev <-chan struct{}, mine chan struct{}) {
	defer p.c.wg.Done()
	handed := false
	handoff := func() {
		if !handed {
			handed = true
			close(mine)
		}
	}
	defer p.release(items)
	defer handoff()
	req := &protocol.ProduceRequest{Acks: int16(p.cfg.acks), TimeoutMs: int32(p.cfg.produceTimeout.Milliseconds())}
	built, n := false, 0
	for i := range items {
		it := &items[i]
		if it.data == nil {
			if it.id >= 0 {
				it.b.bld.SetProducer(it.id, it.epoch, it.seq)
			}
			data, err := it.b.bld.Build()
			if err != nil {
				it.err = fmt.Errorf("build batch: %w", err)
				continue
			}
			it.data, built = data, true
		}
		n++
		pp := it.b.part
		topic := topicEntry(&req.Topics, pp.t.name, func(t *protocol.ProduceTopic) *string { return &t.Name })
		topic.Partitions = append(topic.Partitions, protocol.ProducePartition{Partition: pp.partition, Records: it.data})
	}
	if built {
		// Published under mu: leadersChanged gives up only on built
		// batches, and a resend reads the bytes from here.
		p.mu.Lock()
		for i := range items {
			if items[i].data != nil {
				items[i].b.data = items[i].data
			}
		}
		p.mu.Unlock()
	}
	var err error
	var resp *protocol.ProduceResponse
	if n > 0 {
		if prev != nil {
			select {
			case <-prev:
			case <-p.c.ctx.Done():
			}
		}
		var respMsg protocol.Message // a typed nil would not be nil
		if p.cfg.acks != AcksNone {
			resp = new(protocol.ProduceResponse)
			respMsg = resp
		}
		var cn *conn
		var cl *call
		cn, err = p.c.brokerConn(p.c.ctx, leader, connProduce)
		if err == nil {
			cl, err = cn.start(p.c.ctx, req, respMsg, false)
		}
		if err == nil {
			for i := range items {
				items[i].b.conn.Store(cn)
			}
		}
		handoff()
		if err == nil {
			err = cn.wait(p.c.ctx, cl, p.cfg.produceTimeout+p.cfg.requestTimeout)
		}
		if err == nil && resp != nil && resp.ErrorCode != protocol.NoError {
			err = resp.ErrorCode.Err()
		}
	}
	handoff()
	for i := range items {
		it := &items[i]
		switch {
		case it.err != nil:
			p.outcome(it, -1, it.err)
		case err != nil:
			p.outcome(it, -1, err)
		case resp == nil:
			p.outcome(it, -1, nil)
		default:
			pr := findProduce(resp, TopicPartition{it.b.part.t.name, it.b.part.partition})
			switch {
			case pr == nil:
				p.outcome(it, -1, &protocol.Error{Code: protocol.ErrUnknownServerError,
					Detail: "partition missing from the produce response"})
			case pr.ErrorCode != protocol.NoError:
				p.outcome(it, -1, pr.ErrorCode.ErrWithDetail(pr.ErrorMessage))
			default:
				p.outcome(it, pr.BaseOffset, nil)
			}
		}
	}
}

// release drops the send goroutine's hold on its batches, recycling those
// already delivered.
func (p *producer) release(items []sendItem) {
	p.mu.Lock()
	for _, it := range items {
		it.b.refs--
		if it.b.refs == 0 && it.b.state == batchDone {
			p.recycle(it.b)
		}
	}
	p.mu.Unlock()
	kick(p.wake)
}

// outcome applies the answer (base offset, or err) to one batch of a
// request, unless the producer gave up on that send already.
func (p *producer) outcome(it *sendItem, base int64, err error) {
	b := it.b
	p.mu.Lock()
	if b.gen != it.gen || b.state != batchInflight {
		p.mu.Unlock()
		return
	}
	pp := b.part
	pp.inflight--
	p.inflight--
	p.settle(b, it.epoch, base, err, time.Now())
	p.active[pp] = struct{}{}
	deliver := p.popSettled(pp)
	p.mu.Unlock()
	if deliver {
		p.deliver(pp)
	}
	kick(p.wake)
}

// settle decides a sent batch's fate from its answer: acknowledged; to be
// sent again (pending) when the error is retriable — with idempotence an
// unknown outcome is too, as the leader recognises a resent sequence —
// and the delivery timeout allows; or failed. With idempotence,
// OUT_OF_ORDER_SEQUENCE_NUMBER while an earlier batch of the partition is
// in flight or pending is that batch's consequence and is retried at once;
// otherwise it, UNKNOWN_PRODUCER_ID and INVALID_PRODUCER_EPOCH mean the
// leader's state for this producer is not what the client's is, and the
// epoch is bumped (maybeFetchPID) before the batch is resent from
// sequence 0. epoch is the one the batch was sent with. An unexplained
// OUT_OF_ORDER_SEQUENCE_NUMBER also proves that no earlier attempt of
// the batch was written, which clears maybeWritten. p.mu is held.
func (p *producer) settle(b *batch, epoch int16, base int64, err error, now time.Time) {
	cl := classify(err, p.idem)
	if err == nil || (p.idem && cl.code == protocol.ErrDuplicateSequenceNumber) {
		if err != nil {
			base = -1 // a duplicate answered without its offsets
		}
		b.state, b.base = batchAcked, base
		b.part.probe = false
		if b.maybeWritten {
			p.resolved += int64(len(b.recs))
		}
		return
	}
	if cl.refresh {
		p.c.meta.requestRefresh()
	}
	if cl.indeterminate {
		b.maybeWritten = true
	}
	b.lastErr = err
	if cl.code == protocol.ErrMessageTooLarge {
		if p.splitTooLarge(b, now) {
			return
		}
		if len(b.recs) == 1 {
			err = fmt.Errorf("the record alone, a batch of %d bytes, is larger than the topic's max.message.bytes: %w", len(b.data), err)
		}
	}
	retry, backoff, own := cl.retry, true, true
	if p.idem {
		switch cl.code {
		case protocol.ErrOutOfOrderSequenceNumber:
			retry = true
			if p.earlierUnsettled(b) {
				backoff, own = false, false
			} else {
				p.requestBump(epoch)
				if p.pid.ready && epoch == p.pid.epoch {
					// The leader holds this producer's state and neither
					// has this batch among its last five nor takes it as
					// next: no attempt of it is in the log (the batches
					// before it are settled, at most four went after it,
					// and it cannot become next later under this epoch).
					// So it is resent under the new epoch instead of
					// failing as maybe written (resequence).
					b.maybeWritten = false
				}
			}
		case protocol.ErrUnknownProducerID, protocol.ErrInvalidProducerEpoch:
			retry = true
			p.requestBump(epoch)
		}
	}
	if retry && !p.closing && now.Before(b.deadline) {
		if own {
			b.part.probe = true
		}
		b.attempts++
		b.state, b.retryAt = batchPending, now
		if backoff {
			b.retryAt = now.Add(p.c.backoff(b.attempts))
		}
		return
	}
	p.fail(b, err, b.maybeWritten)
}

// splitTooLarge replaces b, refused as MESSAGE_TOO_LARGE (definite:
// nothing of it was written), in its partition's sent list by two batches
// holding its records, the first half and the rest, to be sent in its
// place and in order: with idempotence the first takes b's sequence and
// the second the one after the first's records, so the partition's
// sequence has no gap. Kafka's producer splits such a batch too. A half
// still too large is split again when refused; a single record cannot be.
// The topic's next batches are capped at the first half's size
// (ptopic.maxBatch). It reports false, leaving b alone, when b holds one
// record, when an earlier attempt of it may have been written (its halves
// would not be recognised as duplicates), or when its bytes cannot be
// read back. p.mu is held.
func (p *producer) splitTooLarge(b *batch, now time.Time) bool {
	pp := b.part
	i := slices.Index(pp.sent, b)
	if len(b.recs) < 2 || b.maybeWritten || b.data == nil || i < 0 {
		return false
	}
	var r record.Reader
	r.SetLimits(record.Limits{MaxDecompressedBytes: max(b.bld.EstimatedSize(), record.DefaultMaxDecompressedBytes)})
	if r.Reset(b.data) != nil {
		return false
	}
	half := len(b.recs) / 2
	halves := [2]*batch{p.newBatch(pp, b.created), p.newBatch(pp, b.created)}
	for k := 0; r.Next(); k++ {
		rec := r.Record()
		halves[min(k/half, 1)].bld.Append(rec.Timestamp, rec.Key, rec.Value, rec.Headers)
	}
	if r.Err() != nil || halves[0].bld.Len()+halves[1].bld.Len() != len(b.recs) {
		p.recycle(halves[0])
		p.recycle(halves[1])
		return false
	}
	halves[0].recs = append(halves[0].recs, b.recs[:half]...)
	halves[1].recs = append(halves[1].recs, b.recs[half:]...)
	for _, pr := range halves[0].recs {
		halves[0].bytes += recordSize(pr.rec)
	}
	halves[1].bytes = b.bytes - halves[0].bytes
	halves[0].seq = b.seq
	if b.seq >= 0 {
		halves[1].seq = nextSequence(b.seq, half)
	}
	for _, h := range halves {
		h.deadline, h.attempts, h.lastErr = b.deadline, b.attempts, b.lastErr
		h.state, h.retryAt = batchPending, now
	}
	pp.sent = slices.Replace(pp.sent, i, i+1, halves[0], halves[1])
	if t := pp.t; t.maxBatch == 0 || halves[0].bld.EstimatedSize() < t.maxBatch {
		t.maxBatch = halves[0].bld.EstimatedSize()
	}
	// b's records and memory now belong to its halves: b is done without
	// callbacks, and recycled once no request holds its bytes.
	clear(b.recs)
	b.recs, b.bytes, b.state = b.recs[:0], 0, batchDone
	if b.refs == 0 {
		p.recycle(b)
	}
	return true
}

// earlierUnsettled reports whether a batch sent before b in its partition
// is in flight or waiting to be resent. p.mu is held.
func (p *producer) earlierUnsettled(b *batch) bool {
	for _, e := range b.part.sent {
		if e == b {
			return false
		}
		if e.state == batchInflight || e.state == batchPending {
			return true
		}
	}
	return false
}

// requestBump asks for an epoch bump, unless the epoch is no longer the
// one a failing batch was sent with (bumped since). p.mu is held.
func (p *producer) requestBump(epoch int16) {
	if p.pid.ready && epoch == p.pid.epoch {
		p.pid.bump = true
	}
}

// fail settles b, of its partition's sent list, as failed with err. A
// batch that surely was not written and was the last sequenced one gives
// its sequence back, so the partition's next batch does not leave a gap.
// p.mu is held.
func (p *producer) fail(b *batch, err error, indeterminate bool) {
	pp := b.part
	if indeterminate && err != nil && !classify(err, false).indeterminate {
		// The last answer was a refusal, but an earlier attempt's outcome
		// was unknown: say why the failure is "maybe written".
		err = fmt.Errorf("an earlier attempt's outcome is unknown, so it may have been written; the last attempt: %w", err)
	}
	if p.idem && b.seq >= 0 && !indeterminate && nextSequence(b.seq, len(b.recs)) == pp.nextSeq {
		pp.nextSeq = b.seq
	}
	b.state = batchFailed
	b.err = &ProduceError{Topic: pp.t.name, Partition: pp.partition, Code: classify(err, false).code,
		Indeterminate: indeterminate, Err: err}
}

// popSettled moves the settled batches at the head of pp.sent to pp.done
// and reports whether pp.done has batches to deliver. p.mu is held.
func (p *producer) popSettled(pp *ppart) bool {
	n := 0
	for n < len(pp.sent) && (pp.sent[n].state == batchAcked || pp.sent[n].state == batchFailed) {
		n++
	}
	if n > 0 {
		pp.done = append(pp.done, pp.sent[:n]...)
		copy(pp.sent, pp.sent[n:])
		clear(pp.sent[len(pp.sent)-n:])
		pp.sent = pp.sent[:len(pp.sent)-n]
	}
	return n > 0 && !pp.delivering
}

// deliver runs the callbacks of pp's settled batches in order, releases
// their memory and frees their partition for the next batch. One goroutine
// at a time delivers a partition; another finding it busy leaves its
// batches to it, so callbacks of a partition never overtake each other.
func (p *producer) deliver(pp *ppart) {
	p.mu.Lock()
	if pp.delivering {
		p.mu.Unlock()
		return
	}
	pp.delivering = true
	for len(pp.done) > 0 {
		b := pp.done[0]
		copy(pp.done, pp.done[1:])
		pp.done[len(pp.done)-1] = nil
		pp.done = pp.done[:len(pp.done)-1]
		p.mu.Unlock()
		for i, pr := range b.recs {
			pr.rec.Offset = -1
			pr.rec.Partition = pp.partition
			if b.err != nil {
				pr.cb(pr.rec, b.err)
				continue
			}
			if b.base >= 0 {
				pr.rec.Offset = b.base + int64(i)
			}
			pr.cb(pr.rec, nil)
		}
		p.mem.release(b.bytes)
		p.mu.Lock()
		p.outstanding -= len(b.recs)
		if p.outstanding == 0 {
			p.idle.notify()
		}
		b.state = batchDone
		if b.refs == 0 {
			p.recycle(b)
		}
	}
	pp.delivering = false
	p.active[pp] = struct{}{}
	p.mu.Unlock()
	kick(p.wake)
}

// awaitOldLeader reports whether b, in flight to a broker that no longer
// leads its partition, still waits for that broker's answer (see
// leadersChanged). The idempotent producer gives up once the connection
// has been silent for moveGrace, or moveGrace after the move was seen:
// resending is safe, and a hung leader must not hold the partition. A
// plain producer cannot resend what it gives up (its outcome becomes
// unknown), so it waits while the answer may still come: at least
// moveGrace after the move was seen, and for as long after as the
// connection keeps answering (a leader in controlled shutdown answers
// its connection's requests in order, the slowest acks=all wait first,
// and a loaded machine stretches that). A connection that died delivers
// its calls' outcomes itself: not handled, when the broker refused a
// request whole before them (conn.refusedWhole). A batch not handed to a
// connection yet (its request waits for the leader's previous one, a
// dial, or the writer) is not given up either: its send goes on anyway,
// so giving up would make it unknown, while waiting ends in a definite
// answer, or a failure to send, within the dial and request timeouts.
func (p *producer) awaitOldLeader(b *batch, now time.Time) bool {
	cn := b.conn.Load()
	grace := p.cfg.moveGrace
	if !p.idem {
		return cn == nil || !cn.alive() || now.Sub(b.movedAt) < grace || cn.heardSince(now.Add(-grace))
	}
	return cn != nil && cn.heardSince(now.Add(-grace)) && now.Sub(b.movedAt) < grace
}

// leadersChanged runs after each metadata refresh: a batch in flight for
// stallAfter to a broker that no longer leads its partition is given up
// on that connection — a hung broker would hold it for RequestTimeout
// (issue 13) — once that connection has been silent for moveGrace, or
// moveGrace after the move was first seen (a leader handing over answers
// within it). With idempotence it is then resent at once to the new
// leader, which recognises it if the old one had replicated it; without,
// it fails at once, indeterminate (R14): never resent (awaitOldLeader
// waits longer for a plain producer).
func (p *producer) leadersChanged() {
	now := time.Now()
	var touched []*ppart
	p.mu.Lock()
	if p.inflight == 0 {
		p.mu.Unlock()
		return
	}
	for _, t := range p.topics {
		for _, pp := range t.parts {
			if pp.inflight == 0 {
				continue
			}
			leader, _, ok := p.c.meta.leader(t.name, pp.partition)
			if !ok {
				continue
			}
			moved := false
			for _, b := range pp.sent {
				if b.state != batchInflight || b.leader == leader || now.Sub(b.sentAt) < stallAfter || b.data == nil {
					continue
				}
				if b.movedAt.IsZero() {
					b.movedAt = now
				}
				if p.awaitOldLeader(b, now) {
					continue
				}
				b.gen++ // its answer, if one comes, is ignored
				pp.inflight--
				p.inflight--
				b.maybeWritten = true
				b.lastErr = &connError{addr: fmt.Sprintf("id %d", b.leader), sent: true,
					err: fmt.Errorf("%s[%d]: broker %d leads now: %w", t.name, pp.partition, leader, errLeaderMoved)}
				moved = true
				if p.idem && !p.closing && now.Before(b.deadline) {
					b.state, b.retryAt = batchPending, now
					continue
				}
				p.fail(b, b.lastErr, true)
			}
			if moved {
				p.active[pp] = struct{}{}
				if p.popSettled(pp) {
					touched = append(touched, pp)
				}
			}
		}
	}
	p.mu.Unlock()
	for _, pp := range touched {
		p.deliver(pp)
	}
	kick(p.wake)
}
