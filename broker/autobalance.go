package broker

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
)

// autoBalanceInterval is how often the controller leader's broker looks
// for an imbalance to even out (auto.balance=on-join).
const autoBalanceInterval = 5 * time.Second

// autoBalanceLoop runs controller.PlanAutoBalance on the broker that
// leads the controller and starts its moves, every autoBalanceInterval,
// until ctx ends. A move refused (the partition changed meanwhile) is
// logged and planned again at a later round.
func (b *Broker) autoBalanceLoop(ctx context.Context) {
	t := time.NewTicker(autoBalanceInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		node := b.Controller()
		if node == nil || !node.IsLeader() || b.draining.Load() {
			continue
		}
		moves, notes := controller.PlanAutoBalance(b.store.Metadata())
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
