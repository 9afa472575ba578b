package broker

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/vfs"
)

// A log that goes offline after a storage error (a full disk, an I/O
// error; log.ErrOffline) can neither take appends nor follow. The broker
// tells the controller at once (ReportOfflineReplicas, as Kafka's
// log-directory failure, KIP-112), so that the replica leaves the ISR and
// leadership moves to an in-sync replica, instead of waiting for the
// replica lag limit while every produce fails. The log's OnOffline hook
// kicks offlineLoop; a report that fails is sent again by the next tick.
//
// Once the controller has marked a replica offline (it neither leads nor
// follows here), offlineLoop tries, every OfflineLogRetryInterval, to
// reopen its log: close the offline log and let reconcile open it again,
// which runs recovery (rescan, truncate a torn tail). A reopen that works
// (space came back) is reported (ReportOnlineReplicas); the mark goes and
// the replica follows, truncates to the leader, catches up and rejoins
// the ISR, without a restart. One that fails leaves the partition closed
// until the next try.

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
// says so and every offlineRetry until the metadata shows them; and every
// OfflineLogRetryInterval it tries to reopen those the metadata marks.
func (b *Broker) offlineLoop(ctx context.Context) {
	t := time.NewTicker(offlineRetry)
	defer t.Stop()
	reopen := time.NewTicker(b.cfg.OfflineLogRetryInterval)
	defer reopen.Stop()
	for {
		select {
		case <-b.parts.offlineKick:
		case <-t.C:
		case <-reopen.C:
			b.reopenOffline(ctx)
			continue
		case <-ctx.Done():
			return
		}
		b.reportOffline(ctx)
	}
}

// reopenOffline tries to reopen the logs of the replicas the metadata
// marks offline on this broker, and reports those that opened.
func (b *Broker) reopenOffline(ctx context.Context) {
	md := b.store.Metadata()
	marked := b.parts.markedOffline(md)
	if len(marked) == 0 {
		return
	}
	b.parts.closeOffline(marked)
	b.parts.reconcile(md) // opens the closed partitions again
	var logs []controller.ReplicaLog
	for _, k := range marked {
		p := b.parts.get(k.topic, k.partition)
		if p == nil {
			continue // did not open: the next try
		}
		p.mu.RLock()
		if p.state == stateOpen && p.log.Err() == nil {
			logs = append(logs, controller.ReplicaLog{Topic: k.topic, TopicID: k.topicID, Partition: k.partition, EndOffset: p.log.EndOffset(),
				RecoveryTruncated: p.log.RecoveryTruncated(), LastEpoch: p.log.LatestEpoch()})
		}
		p.mu.RUnlock()
	}
	b.proposeReport(ctx, controller.ReportOnlineReplicas{BrokerID: b.cfg.BrokerID, BrokerEpoch: b.epoch.Load(), Logs: logs}, len(logs), func() {
		for _, l := range logs {
			b.logger.Info("offline log reopened and reported: the replica follows and rejoins the ISR once caught up",
				zap.String("topic", l.Topic), zap.Int32("partition", l.Partition), zap.Int64("end_offset", l.EndOffset),
				zap.Bool("recovery_truncated", l.RecoveryTruncated))
		}
	})
}

// offlineKey names a partition of a topic with its id.
type offlineKey struct {
	topic     string
	topicID   uint64
	partition int32
}

// markedOffline returns the partitions in md whose replica on this broker
// is marked offline.
func (m *partitions) markedOffline(md *controller.Metadata) []offlineKey {
	var out []offlineKey
	for _, name := range md.TopicNames() {
		t := md.Topics[name]
		for i := range t.Partitions {
			if t.Partitions[i].IsOffline(m.self) {
				out = append(out, offlineKey{name, t.ID, t.Partitions[i].Index})
			}
		}
	}
	return out
}

// closeOffline closes the offline logs of the partitions keys names (those
// still open) whose directory takes writes again (vfs.Probe), for
// reconcile to open them again; a log whose disk is still full stays as
// it is. It holds reconcileMu so that no reconcile opens a log of the
// directory while it closes one.
func (m *partitions) closeOffline(keys []offlineKey) {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	for _, k := range keys {
		p := m.get(k.topic, k.partition)
		if p == nil {
			continue
		}
		p.mu.RLock()
		offline := p.state == stateOpen && p.log.Err() != nil
		p.mu.RUnlock()
		if !offline {
			continue
		}
		if err := vfs.Probe(m.fs, p.dir); err != nil {
			m.logger.Debug("offline log not reopened: its directory takes no writes yet", zap.String("topic", k.topic),
				zap.Int32("partition", k.partition), zap.Error(err))
			continue
		}
		l := m.shutting(p, stateClosed, false)
		p.notify()
		if l == nil {
			continue
		}
		if err := l.Close(); err != nil && !errors.Is(err, log.ErrOffline) {
			m.logger.Warn("close an offline log to reopen it", zap.String("topic", k.topic), zap.Int32("partition", k.partition), zap.Error(err))
		}
	}
}

// reportOffline sends one ReportOfflineReplicas for the offline logs the
// metadata does not show yet, if any.
func (b *Broker) reportOffline(ctx context.Context) {
	entries := b.parts.offlineReplicas(b.store.Metadata())
	b.proposeReport(ctx, controller.ReportOfflineReplicas{BrokerID: b.cfg.BrokerID, BrokerEpoch: b.epoch.Load(), Entries: entries}, len(entries), func() {
		for _, e := range entries {
			b.logger.Warn("replica reported offline to the controller: it leaves the ISR and leads no more until its log is reopened",
				zap.String("topic", e.Topic), zap.Int32("partition", e.Partition), zap.String("reason", e.Reason))
		}
	})
}

// proposeReport proposes c, an offline or online report of n partitions,
// unless n is 0, and calls applied once it is applied; a failure is
// logged and left to the next try of offlineLoop.
func (b *Broker) proposeReport(ctx context.Context, c controller.Command, n int, applied func()) {
	if n == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := b.node.Propose(wctx, c); err != nil {
		if !errors.Is(err, context.Canceled) {
			b.logger.Warn("report not applied; retrying", zap.Stringer("command", c.Kind()), zap.Int("partitions", n), zap.Error(err))
		}
		return
	}
	applied()
}
