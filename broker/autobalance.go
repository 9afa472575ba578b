package broker

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
)

// autoBalanceLoop runs controller.PlanAutoBalance on the broker that
// leads the controller and starts its moves, every
// Config.AutoBalanceInterval, until ctx ends. It keeps the down timers of
// auto.balance=continuous (controller.DownTracker) while this broker's
// node leads, and forgets them when it stops leading. A move refused
// (the partition changed meanwhile) is logged and planned again at a
// later round.
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
		moves, notes := controller.PlanAutoBalance(md, down.DownLonger(md.AutoBalanceBrokerDown(), now))
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
