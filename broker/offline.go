package broker

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
)

// A log that goes offline after a storage error (a full disk, an I/O
// error; log.ErrOffline) can neither take appends nor follow. The broker
// tells the controller at once (ReportOfflineReplicas, as Kafka's
// log-directory failure, KIP-112), so that the replica leaves the ISR and
// leadership moves to an in-sync replica, instead of waiting for the
// replica lag limit while every produce fails. The log's OnOffline hook
// kicks offlineLoop; a report that fails is sent again by the next tick.

// offlineRetry is how often offlineLoop looks again for offline logs the
// metadata does not show yet: a failed report is retried this often.
const offlineRetry = time.Second

// kickOffline is the OnOffline hook of every partition log: it wakes
// offlineLoop. It never blocks (it runs under the log's commit lock).
func (m *partitions) kickOffline(error) {
	select {
	case m.offlineKick <- struct{}{}:
	default:
	}
}

// offlineReplicas returns the replicas this broker holds whose log is
// offline and that md does not mark offline yet, each with the error that
// took its log offline.
func (m *partitions) offlineReplicas(md *controller.Metadata) []controller.OfflineReplica {
	var out []controller.OfflineReplica
	for _, h := range m.held() {
		var err error
		h.p.mu.RLock()
		if l := h.p.cur.Load(); l != nil && h.p.state == stateOpen {
			err = l.Err()
		}
		h.p.mu.RUnlock()
		if err == nil {
			continue
		}
		t := md.Topics[h.p.topic]
		if t == nil || t.ID != h.topicID || int(h.p.index) >= len(t.Partitions) || t.Partitions[h.p.index].IsOffline(m.self) {
			continue
		}
		out = append(out, controller.OfflineReplica{Topic: h.p.topic, TopicID: h.topicID, Partition: h.p.index, Reason: err.Error()})
	}
	return out
}

// offlineLoop reports the replicas whose log went offline, when a log
// says so and every offlineRetry until the metadata shows them.
func (b *Broker) offlineLoop(ctx context.Context) {
	t := time.NewTicker(offlineRetry)
	defer t.Stop()
	for {
		select {
		case <-b.parts.offlineKick:
		case <-t.C:
		case <-ctx.Done():
			return
		}
		b.reportOffline(ctx)
	}
}

// reportOffline sends one ReportOfflineReplicas for the offline logs the
// metadata does not show yet, if any.
func (b *Broker) reportOffline(ctx context.Context) {
	entries := b.parts.offlineReplicas(b.store.Metadata())
	if len(entries) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := b.node.Propose(wctx, controller.ReportOfflineReplicas{BrokerID: b.cfg.BrokerID, BrokerEpoch: b.epoch.Load(), Entries: entries})
	switch {
	case err == nil:
		for _, e := range entries {
			b.logger.Warn("replica reported offline to the controller: it leaves the ISR and leads no more until the broker restarts",
				zap.String("topic", e.Topic), zap.Int32("partition", e.Partition), zap.String("reason", e.Reason))
		}
	case !errors.Is(err, context.Canceled):
		b.logger.Warn("offline replicas not reported; retrying", zap.Int("partitions", len(entries)), zap.Duration("retry", offlineRetry), zap.Error(err))
	}
}
