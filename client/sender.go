package client

import (
	"fmt"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// sendLoop takes sendable batches (drain) and starts one request per
// leader broker for them. It sleeps until woken (a batch filled, a request
// finished, Flush, Close) or the next linger or retry deadline.
func (p *producer) sendLoop() {
	defer p.c.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		var failed []*batch
		next := p.drain(time.Now(), &failed)
		for _, b := range failed {
			p.complete(b, b.lastErr, true)
		}
		for leader, batches := range p.reqs {
			p.c.wg.Add(1)
			go p.send(leader, batches)
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

// drain collects, per leader into p.reqs, the next batch of every
// partition that has nothing in flight and a batch ready: the oldest
// queued one whose retry time has come, or the open one once it has
// lingered (at once when flushing or closing). Batches that can no longer
// be sent — delivery timeout passed, or a retry pending at Close — go to
// failed, with lastErr set. It returns the earliest time something will
// become ready (zero for none).
func (p *producer) drain(now time.Time, failed *[]*batch) (next time.Time) {
	soon := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	hurry := p.flushing > 0 || p.closing
	for pp := range p.active {
		if pp.inflight {
			continue
		}
		var b *batch
		switch {
		case len(pp.queued) > 0:
			b = pp.queued[0]
		case pp.open == nil:
			delete(p.active, pp)
			continue
		case hurry || !now.Before(pp.open.created.Add(p.cfg.linger)):
			b = pp.open
		default:
			soon(pp.open.created.Add(p.cfg.linger))
			continue
		}
		if b.attempts > 0 && p.closing {
			p.dequeue(pp, b)
			*failed = append(*failed, b)
			continue
		}
		leader, _, ok := p.c.meta.leader(pp.t.name, pp.partition)
		if !now.Before(b.deadline) || (!ok && p.closing) {
			// Never sent, or only with definite failures: it fails
			// definitely, not written. A batch queued behind one in flight
			// to a hung broker gets here as soon as that one settles.
			switch {
			case b.lastErr != nil:
			case !ok:
				b.lastErr = fmt.Errorf("%s[%d]: no leader known: %w", pp.t.name, pp.partition, protocol.ErrLeaderNotAvailable)
			default:
				b.lastErr = fmt.Errorf("%s[%d]: %v: %w", pp.t.name, pp.partition, p.cfg.deliveryTimeout, ErrDeliveryTimeout)
			}
			p.dequeue(pp, b)
			*failed = append(*failed, b)
			continue
		}
		if now.Before(b.retryAt) {
			soon(b.retryAt)
			continue
		}
		if !ok {
			p.c.meta.requestRefresh()
			soon(now.Add(p.cfg.retryBackoff[0]))
			continue
		}
		p.dequeue(pp, b)
		pp.inflight = true
		p.reqs[leader] = append(p.reqs[leader], b)
	}
	return next
}

// dequeue removes b, the partition's next batch, from its queue or its
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

// send sends batches, all led by broker leader, in one Produce request and
// settles each from the response.
func (p *producer) send(leader int32, batches []*batch) {
	defer p.c.wg.Done()
	req := &protocol.ProduceRequest{Acks: int16(p.cfg.acks), TimeoutMs: int32(p.cfg.produceTimeout.Milliseconds())}
	sendable := batches[:0]
	for _, b := range batches {
		if b.data == nil {
			data, err := b.bld.Build()
			if err != nil {
				p.complete(b, fmt.Errorf("build batch: %w", err), true)
				continue
			}
			b.data = data
		}
		sendable = append(sendable, b)
		pp := b.part
		topic := topicEntry(&req.Topics, pp.t.name, func(t *protocol.ProduceTopic) *string { return &t.Name })
		topic.Partitions = append(topic.Partitions, protocol.ProducePartition{Partition: pp.partition, Records: b.data})
	}
	if len(sendable) == 0 {
		return
	}
	var resp *protocol.ProduceResponse
	var respMsg protocol.Message // a typed nil would not be nil
	if p.cfg.acks != AcksNone {
		resp = new(protocol.ProduceResponse)
		respMsg = resp
	}
	cn, err := p.c.brokerConn(p.c.ctx, leader, connProduce)
	if err == nil {
		err = cn.do(p.c.ctx, req, respMsg, p.cfg.produceTimeout+p.cfg.requestTimeout, false)
	}
	if err == nil && resp != nil && resp.ErrorCode != protocol.NoError {
		err = resp.ErrorCode.Err()
	}
	if err != nil {
		for _, b := range sendable {
			p.complete(b, err, false)
		}
		return
	}
	if resp == nil {
		for _, b := range sendable {
			p.succeed(b, -1)
		}
		return
	}
	for _, b := range sendable {
		pr := findProduce(resp, TopicPartition{b.part.t.name, b.part.partition})
		switch {
		case pr == nil:
			p.complete(b, &protocol.Error{Code: protocol.ErrUnknownServerError,
				Detail: "partition missing from the produce response"}, false)
		case pr.ErrorCode != protocol.NoError:
			p.complete(b, pr.ErrorCode.ErrWithDetail(pr.ErrorMessage), false)
		default:
			p.succeed(b, pr.BaseOffset)
		}
	}
}

// succeed runs the callbacks of an acknowledged batch, the first record at
// base (or every offset -1 with acks=0).
func (p *producer) succeed(b *batch, base int64) {
	for i, pr := range b.recs {
		pr.rec.Offset = -1
		if base >= 0 {
			pr.rec.Offset = base + int64(i)
		}
		pr.rec.Partition = b.part.partition
		pr.cb(pr.rec, nil)
	}
	p.finish(b)
}

// complete settles a failed batch: queued again at the head of its
// partition for a retry when the error is retriable and definite and the
// delivery timeout allows, otherwise failed with a *ProduceError. final
// skips the retry decision.
func (p *producer) complete(b *batch, err error, final bool) {
	cl := classify(err, false)
	if cl.refresh {
		p.c.meta.requestRefresh()
	}
	if !final && cl.retry {
		now := time.Now()
		p.mu.Lock()
		if !p.closing && now.Before(b.deadline) {
			b.attempts++
			b.retryAt = now.Add(p.c.backoff(b.attempts))
			b.lastErr = err
			pp := b.part
			pp.queued = append(pp.queued, nil)
			copy(pp.queued[1:], pp.queued)
			pp.queued[0] = b
			pp.inflight = false
			p.active[pp] = struct{}{}
			p.mu.Unlock()
			kick(p.wake)
			return
		}
		p.mu.Unlock()
	}
	if final {
		cl.indeterminate = false // never sent in this attempt; earlier ones were definite
	}
	perr := &ProduceError{Topic: b.part.t.name, Partition: b.part.partition, Code: cl.code,
		Indeterminate: cl.indeterminate, Err: err}
	for _, pr := range b.recs {
		pr.rec.Offset = -1
		pr.cb(pr.rec, perr)
	}
	p.finish(b)
}

// finish releases a settled batch's memory, frees its partition for the
// next batch and recycles it. Callbacks ran before, so the next batch's
// callbacks cannot overtake them.
func (p *producer) finish(b *batch) {
	p.mem.release(b.bytes)
	p.mu.Lock()
	pp := b.part
	pp.inflight = false
	p.active[pp] = struct{}{}
	p.outstanding -= len(b.recs)
	if p.outstanding == 0 {
		p.idle.notify()
	}
	p.recycle(b)
	p.mu.Unlock()
	kick(p.wake)
}
