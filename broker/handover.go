package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/replica"
)

// Leadership handover: how a leader gives a partition back to its
// preferred replica without failing a produce, as a controlled shutdown
// does for all of a broker's partitions at once (docs/replication.md,
// "Preferred-leader handover"). The leader itself moves the partition,
// in three steps:
//
//  1. Fence: appends to the partition are refused from now on with
//     NOT_LEADER_OR_FOLLOWER, definite (nothing written), so the client
//     retries; appends that passed the check before the fence finish
//     first (they hold p.mu's read lock, which the fence waits out).
//  2. Drain: wait until the high watermark reaches the log end at the
//     fence. Every ISR member, the preferred replica among them, then
//     holds every record this leader appended, and every acks=all wait
//     has been answered: acknowledged.
//  3. Switch: propose an AlterPartition naming the preferred replica
//     leader, with the ISR and the partition epoch unchanged. The new
//     leader's log ends where this one's does: the old leader truncates
//     nothing when it follows.
//
// If the drain does not finish within handoverDrain (a follower stalled)
// or the switch is refused (the partition changed meanwhile), the fence
// is lifted and the next rebalance tries again. The fence is scoped to
// the leader epoch it was set in: once the partition has a new leader
// epoch it refuses nothing.

// handoverDrain bounds the drain step. An ISR member is caught up to the
// high watermark; reaching the log end takes it one or two fetches, which
// the appends themselves wake.
const handoverDrain = 2 * time.Second

// errHandingOver refuses produces to a partition whose leadership is
// being handed over (definite: nothing appended).
var errHandingOver = &protocol.Error{Code: protocol.ErrNotLeaderOrFollower, Detail: "leadership moving to the preferred replica"}

// handingOver returns errHandingOver while p's leadership is being handed
// over in its current leader epoch, else nil. Call with p.mu held.
func (p *partition) handingOver() error {
	if e := p.handover.Load(); e != 0 && e-1 == int64(p.epoch) {
		return errHandingOver
	}
	return nil
}

// rebalanceLoop gives leadership back to preferred replicas that are
// alive and in sync, every LeaderRebalanceInterval, for the partitions
// this broker leads: each by a handover (above), one after the other.
// Every broker runs it for its own partitions; the plan is the
// controller's (controller.PlanPreferredLeaders).
func (b *Broker) rebalanceLoop(ctx context.Context) {
	if b.cfg.LeaderRebalanceInterval < 0 {
		return
	}
	t := time.NewTicker(b.cfg.LeaderRebalanceInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		md := b.store.Metadata()
		for _, c := range controller.PlanPreferredLeaders(md, nil) {
			if ctx.Err() != nil || b.draining.Load() {
				break
			}
			if md.Topics[c.Topic].Partitions[c.Partition].Leader != b.cfg.BrokerID {
				continue
			}
			p := b.parts.get(c.Topic, c.Partition)
			if p == nil {
				continue
			}
			lg := b.logger.With(zap.String("topic", c.Topic), zap.Int32("partition", c.Partition), zap.Int32("leader", c.Leader))
			if err := b.handOver(ctx, p, c); err != nil {
				lg.Debug("leadership handover to the preferred replica", zap.Error(err))
				continue
			}
			lg.Info("leadership handed over to the preferred replica")
		}
	}
}

// handOver moves the leadership of p to c.Leader by the steps above; c is
// the AlterPartition of the controller's plan.
func (b *Broker) handOver(ctx context.Context, p *partition, c controller.AlterPartition) error {
	p.mu.RLock()
	leading := p.state == stateOpen && p.role == roleLeader && p.partEpoch == c.PartitionEpoch
	epoch := p.epoch
	p.mu.RUnlock()
	if !leading {
		return errors.New("no longer leading at the planned partition epoch")
	}
	fence := int64(epoch) + 1
	p.handover.Store(fence)
	done := false
	defer func() {
		if !done {
			p.handover.CompareAndSwap(fence, 0)
		}
	}()

	// Appends that passed the fence check hold the read lock until their
	// batches are in the log.
	p.mu.Lock()
	var ld *replica.Leader
	end := int64(-1)
	if p.state == stateOpen && p.role == roleLeader && p.epoch == epoch {
		ld, end = p.leader, p.log.EndOffset()
	}
	p.mu.Unlock()
	if ld == nil {
		return errors.New("leadership ended before the fence")
	}

	wctx, cancel := context.WithTimeout(ctx, handoverDrain)
	err := ld.WaitFor(wctx, end)
	cancel()
	if err != nil {
		return fmt.Errorf("drain to offset %d: %w", end, err)
	}
	c.HighWatermark = ld.HighWatermark()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = b.node.Propose(pctx, c)
	cancel()
	if err != nil {
		return fmt.Errorf("switch at offset %d: %w", end, err)
	}
	// The fence stays until the new leader epoch reaches this partition.
	done = true
	return nil
}
