package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// InitProducerID asks any live broker for an idempotent producer id and
// epoch (InitProducerId). id -1 and epoch -1 ask for a new id; a producer
// that has one passes it back with its current epoch to have the epoch
// bumped, after which every partition's sequence starts again at 0. The
// request is retried on retriable errors like other any-broker requests;
// resending it is harmless (at worst an id is skipped).
func (c *Client) InitProducerID(ctx context.Context, id int64, epoch int16) (int64, int16, error) {
	if c.closed() {
		return -1, -1, ErrClosed
	}
	req := &protocol.InitProducerIDRequest{ProducerID: id, ProducerEpoch: epoch}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.InitProducerIDResponse) }, true)
	if err != nil {
		return -1, -1, fmt.Errorf("init producer id: %w", err)
	}
	resp := m.(*protocol.InitProducerIDResponse)
	return resp.ProducerID, resp.ProducerEpoch, nil
}

// Idempotent reports whether the producer is idempotent (R13): as the
// Idempotent option says, or by default with AcksAll — unless the cluster
// turned out not to serve InitProducerId, which turns default idempotence
// off at the first send. A checker can count a duplicate as a failure when
// it is true.
func (c *Client) Idempotent() bool {
	p := &c.prod
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idem
}

// ResolvedUnknown is how many records this client's producer got
// acknowledged after an attempt whose outcome was unknown (a timeout, a
// lost connection: R14): resent with the same sequence, the leader
// answered with the first write's offsets or wrote it once, so the
// application saw an acknowledgement instead of an indeterminate error.
// Without idempotence such a record fails instead, and this stays 0.
func (c *Client) ResolvedUnknown() int64 {
	p := &c.prod
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resolved
}

// pidState is the idempotent producer's id and epoch, fetched lazily by
// the send loop before the first send and again to bump the epoch. All of
// it is guarded by producer.mu.
type pidState struct {
	id       int64
	epoch    int16
	ready    bool      // id and epoch are usable
	fetching bool      // an InitProducerId request is out
	bump     bool      // the epoch must be bumped once nothing is in flight
	retryAt  time.Time // after a failed fetch
	attempts int       // failed fetches in a row
	err      error     // the last fetch's non-retriable error; fails batches until a fetch succeeds
}

// sendable reports whether batches may be sent now: idempotence is off, or
// the producer has its id and no epoch bump is pending.
func (p *producer) sendable() bool {
	return !p.idem || (p.pid.ready && !p.pid.bump)
}

// maybeFetchPID starts an InitProducerId request when one is needed and
// none is out: the first, or a retry after a failure once its backoff has
// passed (returned as the time to look again), or an epoch bump once no
// batch is in flight. p.mu is held.
func (p *producer) maybeFetchPID(now time.Time) (retryAt time.Time) {
	st := &p.pid
	switch {
	case st.fetching:
		return time.Time{}
	case st.bump && p.inflight > 0:
		return time.Time{} // a settling batch wakes the loop
	case now.Before(st.retryAt):
		return st.retryAt
	case !st.bump && st.ready:
		return time.Time{}
	}
	id, epoch := int64(-1), int16(-1)
	if st.ready {
		id, epoch = st.id, st.epoch
	}
	st.fetching = true
	p.c.wg.Add(1)
	go p.fetchPID(id, epoch)
	return time.Time{}
}

// fetchPID runs one InitProducerId and applies its outcome.
func (p *producer) fetchPID(id int64, epoch int16) {
	defer p.c.wg.Done()
	nid, nepoch, err := p.c.InitProducerID(p.c.ctx, id, epoch)
	var touched []*ppart
	p.mu.Lock()
	st := &p.pid
	st.fetching = false
	switch {
	case err != nil && !st.ready && p.cfg.idempotence == idempotenceDefault &&
		classify(err, false).code == protocol.ErrUnsupportedVersion:
		// A cluster that does not serve InitProducerId: idempotence was
		// not asked for, only defaulted, so do without (as Kafka's
		// producer does when it may not be idempotent). Nothing was sent.
		p.idem, p.maxInflight = false, 1
	case err != nil:
		st.attempts++
		st.retryAt = time.Now().Add(p.c.backoff(st.attempts))
		st.err = nil
		if !IsRetriable(err) && !errors.Is(err, ErrClosed) {
			st.err = err
		}
	default:
		st.attempts, st.err = 0, nil
		st.id, st.epoch, st.ready, st.bump = nid, nepoch, true, false
		touched = p.resequence()
	}
	p.mu.Unlock()
	for _, pp := range touched {
		p.deliver(pp)
	}
	kick(p.wake)
}

// resequence starts every partition's sequence again at 0 under a new
// epoch (nothing is in flight: a bump waits for that). A batch waiting to
// be resent is stamped again when it is sent, in order, unless an earlier
// attempt of it may have been written: under the new epoch the leader
// could not recognise it as a duplicate, so it fails, indeterminate. A
// batch the leader's answer proved unwritten (settle clears maybeWritten
// on an unexplained OUT_OF_ORDER_SEQUENCE_NUMBER) is resent. It returns
// the partitions with batches to deliver. p.mu is held.
func (p *producer) resequence() []*ppart {
	var touched []*ppart
	for _, t := range p.topics {
		for _, pp := range t.parts {
			pp.nextSeq = 0
			for _, b := range pp.sent {
				if b.state != batchPending {
					continue
				}
				if b.maybeWritten {
					p.fail(b, fmt.Errorf("%w (producer epoch bumped)", b.lastErr), true)
					continue
				}
				b.seq, b.data = -1, nil
			}
			if p.popSettled(pp) {
				touched = append(touched, pp)
			}
		}
	}
	return touched
}

// nextSequence is seq advanced by n records, wrapping past MaxInt32 to 0
// as Kafka's producer and broker do.
func nextSequence(seq int32, n int) int32 {
	const maxSeq = 1<<31 - 1
	if int64(seq) > maxSeq-int64(n) {
		return int32(int64(n) - (maxSeq - int64(seq)) - 1)
	}
	return seq + int32(n)
}
