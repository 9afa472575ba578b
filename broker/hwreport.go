package broker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/log"
)

// What a broker tells the controller about its data, so that the
// controller never elects a replica that may have lost committed records
// (R11): at registration, what each partition log held when it was opened
// (replicaLogs, openLogs); while running, the high watermarks of the
// partitions it leads (hwReportLoop), the committed offsets those logs
// must reach.

// replicaLogs opens every partition directory in the data directory the
// way reconcile will (running recovery after an unclean stop) and reports
// its end offset and whether recovery truncated it, for RegisterBroker.
// Each log is closed again, cleanly, so the later open is not a second
// scan. A directory without its topic-id file (reconcile will wipe it) or
// whose log does not open is left out: the controller takes that replica
// as empty.
func (m *partitions) replicaLogs(md *controller.Metadata) []controller.ReplicaLog {
	entries, err := os.ReadDir(m.dataDir)
	if err != nil {
		m.logger.Warn("read the data directory for the registration's log report", zap.Error(err))
		return nil
	}
	reports := make([]*controller.ReplicaLog, len(entries))
	forEach(len(entries), func(k int) { reports[k] = m.replicaLog(md, entries[k]) })
	var out []controller.ReplicaLog
	for _, r := range reports {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out
}

// replicaLog opens the partition directory e, as replicaLogs does, and
// reports its log; nil when e is not a partition directory or its log is
// left out.
func (m *partitions) replicaLog(md *controller.Metadata, e os.DirEntry) *controller.ReplicaLog {
	topic, index, ok := parsePartitionDir(e)
	if !ok {
		return nil
	}
	dir := filepath.Join(m.dataDir, e.Name())
	id, err := readTopicID(m.fs, dir)
	if err != nil {
		return nil
	}
	lg := m.logger.With(zap.String("topic", topic), zap.Int32("partition", index))
	t := md.Topics[topic]
	if t != nil && t.ID != id {
		t = nil // another topic's directory; its config does not apply
	}
	pc, err := logConfig(topicValues(t, m.defaults))
	if err != nil {
		if pc, err = logConfig(topicValues(nil, m.defaults)); err != nil {
			lg.Warn("no usable log config to open the log for the registration", zap.Error(err))
			return nil
		}
	}
	pc.log.Logger, pc.log.FS = lg, m.fs
	l, err := log.Open(dir, pc.log)
	if err != nil {
		lg.Warn("open log for the registration's report; reported as empty", zap.Error(err))
		return nil
	}
	r := controller.ReplicaLog{Topic: topic, TopicID: id, Partition: index, EndOffset: l.EndOffset(), RecoveryTruncated: l.RecoveryTruncated(),
		LastEpoch: l.LatestEpoch()}
	if err := l.Close(); err != nil {
		lg.Warn("close log after reading it for the registration", zap.Error(err))
	}
	if r.RecoveryTruncated {
		lg.Warn("recovery truncated this log: the controller will not elect this replica where it is the last in sync (R11)",
			zap.Int64("end_offset", r.EndOffset))
	}
	return &r
}

// clearRecoveryTruncated forgets the recovery losses of logs, now that a
// registration carrying them is committed: the controller holds them from
// here on (a refused replica stays refused). Until then each log kept a
// durable mark, so a crash before the registration could not lose them.
// A failure only warns: the loss is reported again at the next start.
func (m *partitions) clearRecoveryTruncated(logs []controller.ReplicaLog) {
	for _, r := range logs {
		if !r.RecoveryTruncated {
			continue
		}
		if err := log.ClearRecoveryTruncated(m.fs, m.partitionDir(r.Topic, r.Partition)); err != nil {
			m.logger.Warn("clear the recovery mark after the registration", zap.String("topic", r.Topic),
				zap.Int32("partition", r.Partition), zap.Error(err))
		}
	}
}

// parsePartitionDir reads a <topic>-<partition> directory entry.
func parsePartitionDir(e os.DirEntry) (string, int32, bool) {
	if !e.IsDir() {
		return "", 0, false
	}
	i := strings.LastIndexByte(e.Name(), '-')
	if i <= 0 {
		return "", 0, false
	}
	topic := e.Name()[:i]
	n, err := strconv.ParseInt(e.Name()[i+1:], 10, 32)
	if err != nil || n < 0 || controller.ValidateTopicName(topic) != nil {
		return "", 0, false
	}
	return topic, int32(n), true
}

// openLogs reports the logs this broker holds open (or is reopening for a
// config change), for a registration while it keeps running: nothing was
// recovered since they were opened, and their end offsets are what the
// controller checks. A log closed by a failure, or offline after a storage
// error, is left out: it is not fit to lead. (The registration clears the
// replica's offline mark; offlineLoop reports it again.)
func (m *partitions) openLogs() []controller.ReplicaLog {
	var out []controller.ReplicaLog
	for _, h := range m.held() {
		h.p.mu.RLock()
		if l := h.p.cur.Load(); l != nil && h.p.state != stateClosed && l.Err() == nil {
			out = append(out, controller.ReplicaLog{Topic: h.p.topic, TopicID: h.topicID, Partition: h.p.index, EndOffset: l.EndOffset(),
				LastEpoch: l.LatestEpoch()})
		}
		h.p.mu.RUnlock()
	}
	return out
}

// heldPartition is a partition with its topic's id.
type heldPartition struct {
	p       *partition
	topicID uint64
}

// held returns the partitions this broker holds, by topic and partition.
func (m *partitions) held() []heldPartition {
	m.mu.RLock()
	var out []heldPartition
	for _, tp := range m.topics {
		for _, p := range tp.parts {
			if p != nil {
				out = append(out, heldPartition{p: p, topicID: tp.id})
			}
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b heldPartition) int {
		if c := strings.Compare(a.p.topic, b.p.topic); c != 0 {
			return c
		}
		return int(a.p.index) - int(b.p.index)
	})
	return out
}

// movedHighWatermarks returns the high watermarks of the partitions self
// leads, in the leader epoch md says, that are above the CommittedHW md
// holds: what a report would raise.
func (m *partitions) movedHighWatermarks(md *controller.Metadata, self int32) []controller.HighWatermark {
	var out []controller.HighWatermark
	for _, h := range m.held() {
		t := md.Topics[h.p.topic]
		if t == nil || t.ID != h.topicID || int(h.p.index) >= len(t.Partitions) {
			continue
		}
		mp := &t.Partitions[h.p.index]
		if mp.Leader != self {
			continue
		}
		h.p.mu.RLock()
		hw, epoch := int64(-1), int32(-1)
		if h.p.state == stateOpen && h.p.role == roleLeader && h.p.leader != nil {
			hw, epoch = h.p.leader.HighWatermark(), h.p.leader.Epoch()
		}
		h.p.mu.RUnlock()
		if epoch == mp.LeaderEpoch && hw > mp.CommittedHW {
			out = append(out, controller.HighWatermark{Topic: h.p.topic, TopicID: h.topicID, Partition: h.p.index, LeaderEpoch: epoch, HighWatermark: hw})
		}
	}
	return out
}

// hwReportLoop reports, every HighWatermarkReportInterval, the high
// watermarks of the partitions this broker leads that moved past what the
// controller knows: one write for all of them, none when nothing moved.
func (b *Broker) hwReportLoop(ctx context.Context) {
	t := time.NewTicker(b.cfg.HighWatermarkReportInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		b.reportHighWatermarks(ctx)
	}
}

// reportHighWatermarks sends one ReportHighWatermarks, if any high
// watermark moved. A failed or stale report is dropped: the next one
// carries the news.
func (b *Broker) reportHighWatermarks(ctx context.Context) {
	entries := b.parts.movedHighWatermarks(b.store.Metadata(), b.cfg.BrokerID)
	if len(entries) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, max(b.cfg.HighWatermarkReportInterval, time.Second))
	defer cancel()
	_, err := b.node.Propose(wctx, controller.ReportHighWatermarks{BrokerID: b.cfg.BrokerID, BrokerEpoch: b.epoch.Load(), Entries: entries})
	if err != nil && !errors.Is(err, context.Canceled) {
		b.logger.Debug("high watermark report not applied", zap.Int("partitions", len(entries)), zap.Error(err))
	}
}
