package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// Producer ids, the producer half of the broker core: InitProducerID gives
// an idempotent producer its id and epoch (R13). Ids come from blocks the
// controller allocates to this broker through Raft
// (controller.AllocateProducerIDs), Config.ProducerIDBlockSize at a time,
// so a new producer costs a Raft write only once per block, and an id is
// unique across the cluster, controller failovers and restarts: the
// controller never gives an id twice, and a block this broker did not use
// up before it stopped is abandoned, never reused.
//
// Which epoch a producer id is at is not kept here: an idempotent
// producer's state lives with each partition leader (the last batches
// of each producer id, replica/). InitProducerID bumps the epoch the
// producer sends; a partition leader refuses a batch from an epoch older
// than one it has seen (INVALID_PRODUCER_EPOCH), so a bump from a stale
// epoch cannot rewind a partition.

// DefaultProducerIDBlockSize is how many producer ids a broker takes from
// the controller at a time.
const DefaultProducerIDBlockSize = 1000

// producerIDTimeout bounds the wait for a block from the controller, below
// the client's request timeout (30 s by default) so the client gets a
// definite, retriable answer rather than a timeout.
const producerIDTimeout = 10 * time.Second

// errNoProducerID is the detail of every InitProducerID refused for want of
// a block from the controller.
var errNoProducerID = errors.New("no producer id: the controller did not allocate a block of ids")

// InitProducerID gives an idempotent producer its id and epoch. A new
// producer sends -1 and -1 and gets an unused id at epoch 0. A producer
// that has an id sends it with its epoch and gets the next epoch, and
// with it a fresh start of every partition's sequence numbers; at the
// last epoch (math.MaxInt16) it gets a new id at epoch 0 instead.
//
// Refusals are definite: INVALID_REQUEST for values no producer has
// (negative, or only one of the two -1), UNKNOWN_PRODUCER_ID for an id
// the controller has not allocated to any broker (the producer starts
// again with -1). When the controller cannot allocate a block (no
// leader, unreachable, this broker fenced) the answer is
// COORDINATOR_NOT_AVAILABLE, which clients retry.
func (b *Broker) InitProducerID(ctx context.Context, producerID int64, epoch int16) (int64, int16, error) {
	switch {
	case producerID == -1 && epoch == -1:
		return b.newProducerID(ctx)
	case producerID < 0 || epoch < 0:
		return -1, -1, &protocol.Error{Code: protocol.ErrInvalidRequest,
			Detail: fmt.Sprintf("producer id %d, epoch %d: a new producer sends -1 and -1, a known one its id and epoch, both at least 0", producerID, epoch)}
	case producerID >= b.store.Metadata().NextProducerID:
		return -1, -1, &protocol.Error{Code: protocol.ErrUnknownProducerID,
			Detail: fmt.Sprintf("producer id %d was never allocated; initialise with -1 for a new one", producerID)}
	case epoch == math.MaxInt16:
		// The epoch cannot grow: a new id, whose batches no partition
		// has seen, starts at epoch 0.
		return b.newProducerID(ctx)
	}
	return producerID, epoch + 1, nil
}

// newProducerID takes an unused id from this broker's block.
func (b *Broker) newProducerID(ctx context.Context) (int64, int16, error) {
	ctx, cancel := context.WithTimeout(ctx, producerIDTimeout)
	defer cancel()
	id, err := b.producerIDs.take(ctx)
	if err != nil {
		code := protocol.ErrCoordinatorNotAvailable
		if errors.Is(err, controller.ErrProducerIDsExhausted) {
			code = protocol.ErrUnknownServerError
		}
		return -1, -1, &protocol.Error{Code: code, Detail: fmt.Sprintf("%v: %v", errNoProducerID, err)}
	}
	return id, 0, nil
}

// producerIDs hands out the ids of the block this broker holds, and asks
// the controller for the next block when it is used up. One caller at a
// time asks; the others wait for its block (or their context) without
// holding the lock, so nothing else waits on the controller.
type producerIDs struct {
	size     int32
	allocate func(ctx context.Context, count int32) (controller.ProducerIDBlock, error)

	mu       sync.Mutex
	next     int64         // the block's unused ids are [next, end)
	end      int64         //
	fetching chan struct{} // non-nil while a caller asks for a block; closed when it has the answer
}

func newProducerIDs(size int32, allocate func(context.Context, int32) (controller.ProducerIDBlock, error)) *producerIDs {
	return &producerIDs{size: size, allocate: allocate}
}

// take returns an id no one was given before, or why there is none.
func (p *producerIDs) take(ctx context.Context) (int64, error) {
	for {
		p.mu.Lock()
		if p.next < p.end {
			id := p.next
			p.next++
			p.mu.Unlock()
			return id, nil
		}
		if wait := p.fetching; wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
				continue // a block came, or the asker failed: look again
			case <-ctx.Done():
				return -1, ctx.Err()
			}
		}
		done := make(chan struct{})
		p.fetching = done
		p.mu.Unlock()

		blk, err := p.allocate(ctx, p.size)
		if err == nil && (blk.First < 0 || blk.Count < 1 || blk.First > math.MaxInt64-int64(blk.Count)) {
			err = fmt.Errorf("controller answered with block %+v", blk)
		}
		p.mu.Lock()
		p.fetching = nil
		if err == nil {
			// The asker takes the first id, so it cannot be starved by
			// waiters emptying the block first.
			p.next, p.end = blk.First+1, blk.First+int64(blk.Count)
		}
		p.mu.Unlock()
		close(done)
		if err != nil {
			return -1, fmt.Errorf("allocate %d producer ids: %w", p.size, err)
		}
		return blk.First, nil
	}
}
