package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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
	// One handover per partition and leader epoch: the automatic
	// rebalance and an admin election may both try, and the one that
	// fails must not lift the fence of the one that switched.
	for {
		cur := p.handover.Load()
		if cur == fence {
			return errors.New("another handover of the partition is running or done")
		}
		if p.handover.CompareAndSwap(cur, fence) {
			break
		}
	}
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

// ElectPreferredLeaders gives leadership back to the preferred replicas
// (the first of each replica list) that are alive and in sync, for the
// topics named (all when none), each by a handover on the broker that
// leads the partition (handOver), as the automatic rebalance does: the
// producers see retried requests only. This broker hands over the
// partitions it leads and asks each other leader's broker, concurrently,
// to hand over its own (ElectLeaders version 1, LeaderOnly); a broker too
// old for that has its partitions switched by the controller at once,
// as before. The plan is on this broker's metadata; a partition that
// changed since is refused by the controller (ErrStalePartitionEpoch) and
// reported in its Election.
func (b *Broker) ElectPreferredLeaders(ctx context.Context, topics []string) ([]controller.Election, error) {
	md := b.store.Metadata()
	byLeader := map[int32][]controller.AlterPartition{}
	for _, c := range controller.PlanPreferredLeaders(md, topics) {
		l := md.Topics[c.Topic].Partitions[c.Partition].Leader
		byLeader[l] = append(byLeader[l], c)
	}
	var (
		mu  sync.Mutex
		out []controller.Election
		wg  sync.WaitGroup
	)
	for leader, cs := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var es []controller.Election
			if leader == b.cfg.BrokerID {
				es = b.handOverAll(ctx, cs)
			} else {
				es = b.electOn(ctx, leader, md.Brokers[leader], cs)
			}
			mu.Lock()
			out = append(out, es...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b controller.Election) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, nil
}

// handOverAll hands over, one after the other, the partitions of cs that
// this broker leads.
func (b *Broker) handOverAll(ctx context.Context, cs []controller.AlterPartition) []controller.Election {
	out := make([]controller.Election, 0, len(cs))
	for _, c := range cs {
		e := controller.Election{Topic: c.Topic, Partition: c.Partition, Leader: c.Leader}
		p := b.parts.get(c.Topic, c.Partition)
		switch {
		case p == nil:
			e.Err = &protocol.Error{Code: protocol.ErrNotLeaderOrFollower, Detail: "this broker holds no replica of the partition"}
		default:
			if err := b.handOver(ctx, p, c); err != nil {
				e.Err = handoverError(err)
			}
		}
		if e.Err == nil {
			b.logger.Info("leadership handed over to the preferred replica", zap.String("topic", c.Topic),
				zap.Int32("partition", c.Partition), zap.Int32("leader", c.Leader))
		}
		out = append(out, e)
	}
	return out
}

// handoverError gives a failed handover the code a client acts on: the
// controller's refusal as it is, a drain that did not finish or a
// leadership that ended as PREFERRED_LEADER_NOT_AVAILABLE with the
// reason (running the election again retries it).
func handoverError(err error) error {
	if code, _ := ErrorCode(err); code != protocol.ErrUnknownServerError && code != protocol.ErrRequestTimedOut {
		return err
	}
	return &protocol.Error{Code: protocol.ErrPreferredLeaderNotAvailable, Detail: "handover: " + err.Error()}
}

// electOn asks broker id, the leader of every partition in cs, to hand
// them over (ElectLeaders, LeaderOnly). A broker that does not serve
// version 1 leaves them to the controller, which switches at once.
func (b *Broker) electOn(ctx context.Context, id int32, br *controller.Broker, cs []controller.AlterPartition) []controller.Election {
	fail := func(err error) []controller.Election {
		out := make([]controller.Election, 0, len(cs))
		for _, c := range cs {
			out = append(out, controller.Election{Topic: c.Topic, Partition: c.Partition, Leader: c.Leader, Err: err})
		}
		return out
	}
	if br == nil || br.Addr == "" {
		return fail(&protocol.Error{Code: protocol.ErrPreferredLeaderNotAvailable, Detail: fmt.Sprintf("leader broker %d: address unknown", id)})
	}
	var topics []string
	for _, c := range cs {
		if !slices.Contains(topics, c.Topic) {
			topics = append(topics, c.Topic)
		}
	}
	req := &protocol.ElectLeadersRequest{Topics: topics, LeaderOnly: true}
	if d, ok := ctx.Deadline(); ok {
		req.TimeoutMs = int32(min(time.Until(d), 5*time.Minute) / time.Millisecond)
	}
	var resp protocol.ElectLeadersResponse
	err := callVersion(ctx, br.Addr, b.fwd.clientID, b.fwd.login, defaultAdminTimeout, req, &resp, 1)
	if err == nil {
		err = resp.ErrorCode.Err()
	}
	switch {
	case errors.Is(err, protocol.ErrUnsupportedVersion):
		out := make([]controller.Election, 0, len(cs))
		for _, c := range cs {
			_, perr := b.node.Propose(ctx, c)
			out = append(out, controller.Election{Topic: c.Topic, Partition: c.Partition, Leader: c.Leader, Err: perr})
		}
		return out
	case err != nil:
		return fail(&protocol.Error{Code: protocol.ErrPreferredLeaderNotAvailable, Detail: fmt.Sprintf("leader broker %d: %v", id, err)})
	}
	out := make([]controller.Election, 0, len(resp.Results))
	for _, r := range resp.Results {
		out = append(out, controller.Election{Topic: r.Topic, Partition: r.Partition, Leader: r.Leader, Err: r.ErrorCode.ErrWithDetail(r.Message)})
	}
	return out
}
