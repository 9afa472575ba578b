package broker

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// autoBalanceLoop runs controller.PlanAutoBalance on the broker that
// leads the controller and starts its moves, every
// Config.AutoBalanceInterval, until ctx ends. It keeps the down timers of
// auto.balance=continuous (controller.DownTracker) while this broker's
// node leads, and forgets them when it stops leading. A move refused
// (the partition changed meanwhile) is logged and planned again at a
// later round. With auto.balance=continuous a round is skipped unless
// every alive broker answered with its disk usage.
func (b *Broker) autoBalanceLoop(ctx context.Context) {
	t := time.NewTicker(b.cfg.AutoBalanceInterval)
	defer t.Stop()
	var down controller.DownTracker
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		node := b.Controller()
		if node == nil || !node.IsLeader() || b.draining.Load() {
			down.Reset()
			continue
		}
		md := b.store.Metadata()
		now := time.Now()
		down.Observe(md, now)
		load := controller.Load{Down: down.DownLonger(md.AutoBalanceBrokerDown(), now)}
		if md.ClusterConfig(controller.ConfigAutoBalance) == controller.AutoBalanceContinuous {
			load.Disks, load.Bytes = b.diskLoad(ctx, md)
			// A broker whose disk is unknown would look empty to the
			// planner, which could move back onto it the replicas an
			// earlier round shed: plan again when every disk is known.
			if missing := len(md.AliveBrokers()) - len(load.Disks); missing > 0 {
				b.logger.Debug("auto balance: round skipped, disk usage unknown", zap.Int("brokers", missing))
				continue
			}
		}
		moves, notes := controller.PlanAutoBalance(md, load)
		if len(moves) == 0 {
			continue
		}
		b.logger.Info("auto balance: moving partitions", zap.Int("moves", len(moves)), zap.Strings("notes", notes))
		for _, c := range moves {
			if ctx.Err() != nil {
				return
			}
			if _, err := b.store.Propose(ctx, c); err != nil {
				b.logger.Warn("auto balance: move refused", zap.String("topic", c.Topic), zap.Int32("partition", c.Partition),
					zap.Int32s("target", c.Target), zap.Error(err))
			}
		}
		b.parts.reconcile(b.store.Metadata())
	}
}

// diskLoadTimeout bounds each broker's answer to diskLoad.
const diskLoadTimeout = 2 * time.Second

// diskLoad asks every alive broker (DescribeReplicas version 4; this one
// locally) for its disk usage and the sizes of its logs, for the disk
// goal of auto.balance=continuous. A broker that does not answer is left
// out (its disk unknown); a partition's size is the largest of its
// replicas' logs.
func (b *Broker) diskLoad(ctx context.Context, md *controller.Metadata) (map[int32]controller.Disk, map[string][]int64) {
	type answer struct {
		id    int32
		disk  controller.Disk
		sizes []protocol.ReplicaInfo
	}
	var (
		mu      sync.Mutex
		answers []answer
		wg      sync.WaitGroup
	)
	for _, id := range md.AliveBrokers() {
		if id == b.cfg.BrokerID {
			free, capacity := b.cfg.DiskSpace(b.cfg.DataDir)
			var sizes []protocol.ReplicaInfo
			for _, r := range b.Replicas(nil, -1) {
				sizes = append(sizes, protocol.ReplicaInfo{Topic: r.Topic, Partition: r.Partition, LogBytes: r.LogBytes})
			}
			mu.Lock()
			answers = append(answers, answer{id, controller.Disk{Used: capacity - free, Capacity: capacity}, sizes})
			mu.Unlock()
			continue
		}
		addr := md.Brokers[id].Addr
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, diskLoadTimeout)
			defer cancel()
			var resp protocol.DescribeReplicasResponse
			err := b.fwd.callVersion(cctx, addr, diskLoadTimeout, &protocol.DescribeReplicasRequest{ChecksumUpTo: -1}, &resp, 4)
			if err == nil && resp.ErrorCode != protocol.NoError {
				err = resp.ErrorCode.Err()
			}
			if err != nil {
				b.logger.Debug("auto balance: disk usage not known", zap.Int32("peer", id), zap.Error(err))
				return
			}
			mu.Lock()
			answers = append(answers, answer{id, controller.Disk{Used: resp.DiskCapacity - resp.DiskFree, Capacity: resp.DiskCapacity}, resp.Replicas})
			mu.Unlock()
		}()
	}
	wg.Wait()
	disks := map[int32]controller.Disk{}
	bytes := map[string][]int64{}
	for _, a := range answers {
		disks[a.id] = a.disk
		for _, r := range a.sizes {
			t, ok := md.Topics[r.Topic]
			if !ok || r.Partition < 0 || int(r.Partition) >= len(t.Partitions) {
				continue
			}
			if bytes[r.Topic] == nil {
				bytes[r.Topic] = make([]int64, len(t.Partitions))
			}
			bytes[r.Topic][r.Partition] = max(bytes[r.Topic][r.Partition], r.LogBytes)
		}
	}
	return disks, bytes
}
