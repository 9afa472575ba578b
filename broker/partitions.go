package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/replica"
	"github.com/sluicemq/sluice/vfs"
)

// shut moves p to state, ends its replication role, snapshots its
// producer state (unless the broker stops like a crash: noSnapshots) and
// returns its log for the caller to close once the lock is released, or
// nil if p was not open.
func (m *partitions) shut(p *partition, state partitionState) *log.Log {
	return m.shutting(p, state, !m.noSnapshots.Load())
}

// shutting is shut, snapshotting the producer state or not: not for a
// log about to be deleted, nor for an offline one (its end may hold bytes
// recovery will cut, and the snapshot would be dropped at the next open).
func (m *partitions) shutting(p *partition, state partitionState, snapshot bool) *log.Log {
	m.stopReplication(p)
	// After p.mu is released, no append can roll again: a roll's
	// snapshot still being written is done before the caller closes or
	// deletes the log.
	defer p.producers.Wait()
	p.mu.Lock()
	defer p.unlock()
	if p.state != stateOpen {
		return nil
	}
	p.state = state
	if snapshot {
		// No append can run: they hold p.mu for reading.
		if err := p.producers.Snapshot(p.log); err != nil {
			p.logger().Warn("producer-state snapshot at close failed", zap.Error(err))
		}
	}
	p.producers.Release() // its entries no longer count against the broker's cap
	return p.log
}

// topicParts is one topic's partitions on this broker; nil entries are
// partitions held elsewhere or whose log failed to open.
type topicParts struct {
	id    uint64
	parts []*partition
	// pc is the config the last reconcile applied (reconcile), valid
	// when pcSet.
	pc    partitionConfig
	pcSet bool
}

// partitions is the partition manager: it opens a log for every partition
// this broker holds a replica of, makes it lead or follow as the metadata
// says (replication.go), closes those it no longer holds, closes and
// deletes those of deleted topics, reopens logs whose topic configs
// changed, and runs retention.
type partitions struct {
	fs       vfs.FS
	dataDir  string
	self     int32
	defaults map[string]string
	logger   *zap.Logger
	repl     *replication

	hwCheckpoint *log.Checkpoint
	savedHW      map[hwKey]int64 // from the checkpoint at start

	// producerLimit caps the producer state of all the partitions
	// (Config.ProducerIDMax).
	producerLimit *replica.ProducerLimit
	// noSnapshots: the broker stops like a crash (Abandon), so closing a
	// partition writes no producer-state snapshot.
	noSnapshots atomic.Bool
	// onSync is every log's log.Config.OnSync (Config.Observer), or nil.
	onSync func(time.Duration, error)
	// throttle limits what followers that a move adds fetch from here.
	throttle *moveThrottle

	// Metrics (observe.go): per-topic traffic, ISR changes made as leader,
	// leaderships taken.
	traffic                           trafficTable
	isrShrinks, isrExpands, elections atomic.Int64

	mu     sync.RWMutex
	topics map[string]*topicParts

	reconcileMu sync.Mutex // one reconcile at a time
	reconciled  uint64     // the metadata version reconciled last; guarded by reconcileMu

	// applied is the metadata version the last finished reconcile
	// applied; appliedCh is closed (and replaced) when it moves
	// (awaitReconciled).
	appliedMu sync.Mutex
	applied   uint64
	appliedCh chan struct{}

	// offlineKick is signalled (non-blocking) when a log goes offline,
	// for offlineLoop to report it to the controller.
	offlineKick chan struct{}
}

func newPartitions(fs vfs.FS, dataDir string, self int32, defaults map[string]string, logger *zap.Logger, repl *replication) *partitions {
	repl.self, repl.logger = self, logger
	repl.fetchers = map[int32]*replica.Fetcher{}
	return &partitions{fs: fs, dataDir: dataDir, self: self, defaults: defaults, logger: logger, repl: repl, topics: map[string]*topicParts{},
		hwCheckpoint: log.NewCheckpoint(fs, filepath.Join(dataDir, hwCheckpointFile)), savedHW: loadHighWatermarks(fs, dataDir, logger),
		offlineKick: make(chan struct{}, 1), appliedCh: make(chan struct{})}
}

// get returns the partition, or nil if this broker does not hold it.
func (m *partitions) get(topic string, index int32) *partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	tp := m.topics[topic]
	if tp == nil || index < 0 || int(index) >= len(tp.parts) {
		return nil
	}
	return tp.parts[index]
}

// all returns every open partition.
func (m *partitions) all() []*partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*partition
	for _, tp := range m.topics {
		for _, p := range tp.parts {
			if p != nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// partitionDir is <data-dir>/<topic>-<partition>.
func (m *partitions) partitionDir(topic string, index int32) string {
	return filepath.Join(m.dataDir, topic+"-"+strconv.Itoa(int(index)))
}

// topicIDFile marks a partition directory with the id of the topic that
// owns it, so the data of a deleted topic is never served as the data of
// a new topic with the same name (after a crash between the deletion in
// the metadata and the removal of the directory).
const topicIDFile = "topic-id"

// reconcile brings the open partitions in line with md. It is idempotent;
// the metadata watcher and the admin handlers both call it, each with the
// metadata it read before waiting for the others, so metadata older than
// what was already applied is ignored: a reconcile that lost the race
// must not take a partition back to an older leader or role.
func (m *partitions) reconcile(md *controller.Metadata) {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	if md.Version < m.reconciled {
		return
	}
	m.reconciled = md.Version
	defer m.markApplied(md.Version)
	m.throttle.setRate(md.ReassignmentThrottle())

	// Deleted topics (or deleted and re-created under the same name) first,
	// so a re-created topic's directories are free.
	m.mu.Lock()
	var gone []*topicParts
	var goneNames []string
	for name, tp := range m.topics {
		if t, ok := md.Topics[name]; !ok || t.ID != tp.id {
			gone = append(gone, tp)
			goneNames = append(goneNames, name)
			delete(m.topics, name)
		}
	}
	m.mu.Unlock()
	for i, tp := range gone {
		m.deleteTopic(goneNames[i], tp)
	}

	for _, name := range md.TopicNames() {
		t := md.Topics[name]
		pc, err := logConfig(topicValues(t, m.defaults))
		if err != nil {
			m.logger.Error("topic config unusable; partitions stay closed", zap.String("topic", name), zap.Error(err))
			continue
		}
		pc.log.Logger, pc.log.FS, pc.log.OnOffline, pc.log.OnSync = m.logger, m.fs, m.kickOffline, m.onSync
		m.mu.RLock()
		tp := m.topics[name]
		m.mu.RUnlock()
		created := tp == nil
		if created {
			tp = &topicParts{id: t.ID}
		}
		parts := slices.Clone(tp.parts)
		for len(parts) < len(t.Partitions) {
			parts = append(parts, nil)
		}
		// A partition whose metadata and config are what was applied
		// last is passed over (partition.settledAt).
		sameConfig := tp.pcSet && samePartitionConfig(tp.pc, pc)
		var settled []bool
		if sameConfig {
			settled = make([]bool, len(t.Partitions))
		}
		var closing []*partition
		var opening []int
		for i := range t.Partitions {
			mp := &t.Partitions[i]
			if sameConfig && parts[i] != nil && parts[i].settledAt(m.roleKey(t, mp, pc), mp) {
				// Open, and as the last reconcile left it.
				settled[i] = true
				continue
			}
			if !slices.Contains(mp.Replicas, m.self) {
				// Not a replica here (any more): a move removed it
				// (controller/move.go). Close the log and delete its
				// data.
				if parts[i] != nil {
					closing = append(closing, parts[i])
					parts[i] = nil
				}
				continue
			}
			if parts[i] == nil || parts[i].isClosed() {
				// New, or closed by a failed reconfiguration: (re)open.
				if parts[i] != nil {
					m.stopReplication(parts[i])
				}
				opening = append(opening, i)
				continue
			}
			m.applyConfig(parts[i], pc, mp.LeaderEpoch)
		}
		made := make([]bool, len(opening))
		forEach(len(opening), func(k int) {
			i := opening[k]
			parts[i], made[k] = m.openPartition(t, &t.Partitions[i], pc)
		})
		m.syncClaimed(name, parts, opening, made)
		m.mu.Lock()
		m.topics[name] = &topicParts{id: t.ID, parts: parts, pc: pc, pcSet: true}
		m.mu.Unlock()
		m.removeLeft(closing)
		for i := range t.Partitions {
			if parts[i] != nil && (settled == nil || !settled[i]) {
				m.applyRole(parts[i], t, &t.Partitions[i], pc)
			}
		}
		if created {
			m.logger.Info("topic opened", zap.String("topic", name), zap.Int("partitions", len(t.Partitions)))
		}
	}
}

// markApplied records that a reconcile of metadata version v finished,
// waking awaitReconciled.
func (m *partitions) markApplied(v uint64) {
	m.appliedMu.Lock()
	defer m.appliedMu.Unlock()
	if v > m.applied {
		m.applied = v
		close(m.appliedCh)
		m.appliedCh = make(chan struct{})
	}
}

// awaitReconciled waits up to d for a reconcile of metadata version v (or
// a later one) to finish, and says whether one did.
func (m *partitions) awaitReconciled(v uint64, d time.Duration) bool {
	var timer *time.Timer
	for {
		m.appliedMu.Lock()
		done, ch := m.applied >= v, m.appliedCh
		m.appliedMu.Unlock()
		if done {
			return true
		}
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}

// syncClaimed makes the partition directories the reconcile's opening
// made durable (claimedDirs) before the partitions take records; if it
// cannot, those partitions are closed again and their directories
// removed (logged), and the next reconcile makes them anew.
func (m *partitions) syncClaimed(topic string, parts []*partition, opening []int, made []bool) {
	n := 0
	for _, ok := range made {
		if ok {
			n++
		}
	}
	err := claimedDirs(m.fs, m.dataDir, n)
	if err == nil {
		return
	}
	m.logger.Error("partition directories not synced; their partitions stay closed", zap.Int("partitions", n), zap.Error(err))
	for k, i := range opening {
		if !made[k] {
			continue
		}
		if p := parts[i]; p != nil {
			p.producers.Release()
			if cerr := p.log.Close(); cerr != nil {
				m.logger.Warn("close partition log", zap.String("topic", p.topic), zap.Int32("partition", p.index), zap.Error(cerr))
			}
			parts[i] = nil
		}
		_ = m.fs.RemoveAll(m.partitionDir(topic, int32(i))) // best effort: one left is claimed again
	}
}

// openPartition opens one partition's log, or returns nil (logged) if it
// cannot, and whether it made the partition's directory (syncClaimed).
func (m *partitions) openPartition(t *controller.Topic, mp *controller.Partition, pc partitionConfig) (*partition, bool) {
	dir := m.partitionDir(t.Name, mp.Index)
	lg := m.logger.With(zap.String("topic", t.Name), zap.Int32("partition", mp.Index))
	made, err := claimDir(m.fs, dir, t.ID)
	if err != nil {
		lg.Error("partition directory unusable", zap.Error(err))
		return nil, false
	}
	pc.log.Logger = lg
	l, err := log.Open(dir, pc.log)
	if err != nil {
		lg.Error("open partition log", zap.Error(err))
		return nil, made // made all the same: its parent is synced
	}
	l.SetLeaderEpoch(max(mp.LeaderEpoch, l.LeaderEpoch()))
	ps := replica.NewProducers(replica.ProducersConfig{Dir: dir, FS: m.fs, Limit: m.producerLimit,
		Expiration: pc.producerExpiration, Logger: lg})
	from, err := ps.Load(l)
	if err != nil {
		lg.Error("rebuild producer state", zap.Error(err))
		if cerr := l.Close(); cerr != nil {
			lg.Warn("close partition log", zap.Error(cerr))
		}
		return nil, made
	}
	lg.Debug("partition opened", zap.Int64("start_offset", l.StartOffset()), zap.Int64("end_offset", l.EndOffset()),
		zap.Int("producers", ps.Len()), zap.Int64("producer_state_from", from))
	hw := min(m.savedHW[hwKey{t.Name, t.ID, mp.Index}], l.EndOffset())
	p := &partition{topic: t.Name, index: mp.Index, dir: dir, log: l, producers: ps, cfg: pc, epoch: -1, leaderID: -1, fetchFrom: -1, hw: hw,
		traffic: m.traffic.get(t.Name), throttle: m.throttle}
	p.cur.Store(l)
	p.publish()
	return p, made
}

// applyConfig reopens p's log when its topic config changed. The log has
// no way to change an open log's config yet (requested), so this closes it
// cleanly and opens it again; meanwhile requests get LEADER_NOT_AVAILABLE.
func (m *partitions) applyConfig(p *partition, pc partitionConfig, epoch int32) {
	p.mu.Lock()
	if p.state != stateOpen {
		p.unlock()
		return
	}
	p.log.SetLeaderEpoch(max(epoch, p.log.LeaderEpoch()))
	pc.log.Logger, pc.log.OnOffline, pc.log.OnSync = p.cfg.log.Logger, p.cfg.log.OnOffline, p.cfg.log.OnSync
	p.producers.SetExpiration(pc.producerExpiration)
	if sameLogConfig(p.cfg.log, pc.log) {
		p.cfg.maxMessageBytes, p.cfg.producerExpiration = pc.maxMessageBytes, pc.producerExpiration
		p.unlock()
		return
	}
	p.state = stateReopening
	old := p.log
	p.unlock()
	p.notify() // long-polls answer now rather than wait for the reopen

	lg := m.logger.With(zap.String("topic", p.topic), zap.Int32("partition", p.index))
	if err := old.Close(); err != nil {
		lg.Error("close log to apply config", zap.Error(err))
	}
	l, err := log.Open(p.dir, pc.log)
	p.mu.Lock()
	defer p.unlock()
	if err != nil {
		// Requests get an error rather than data from a log in an
		// unknown state; the next reconcile tries to open it again.
		lg.Error("reopen log with new config", zap.Error(err))
		p.state = stateClosed
		p.producers.Release()
		return
	}
	l.SetLeaderEpoch(max(epoch, l.LeaderEpoch()))
	p.log, p.cfg, p.state = l, pc, stateOpen
	p.cur.Store(l)
	lg.Info("topic config applied")
}

// removeLeft closes the logs of partitions this broker no longer holds a
// replica of, once they are out of the table so no new request finds
// them, and deletes their data.
func (m *partitions) removeLeft(parts []*partition) {
	for _, p := range parts {
		if m.deletePartition(p) {
			m.logger.Info("replica removed; its data deleted", zap.String("topic", p.topic), zap.Int32("partition", p.index))
		}
	}
}

// deleteTopic closes a deleted topic's logs and removes their data.
func (m *partitions) deleteTopic(name string, tp *topicParts) {
	for _, p := range tp.parts {
		if p != nil {
			m.deletePartition(p)
		}
	}
	m.traffic.drop(name)
	m.logger.Info("topic deleted", zap.String("topic", name))
}

// deletePartition closes p's log and removes its data; it reports
// whether it did (a failure is logged).
func (m *partitions) deletePartition(p *partition) bool {
	l := m.shutting(p, stateClosed, false)
	p.notify()
	var err error
	if l == nil {
		// Never opened, or closed by a failed reopen: remove the data.
		err = os.RemoveAll(p.dir)
	} else {
		err = l.Delete()
	}
	if err != nil {
		m.logger.Error("delete partition", zap.String("topic", p.topic), zap.Int32("partition", p.index), zap.Error(err))
		return false
	}
	return true
}

// removeOrphans deletes partition directories of topics the metadata does
// not have (deleted while the broker was down, or before a crash finished
// removing them), and of partitions this broker no longer holds a replica
// of (a move removed it while the broker was down). The metadata must
// hold every change up to this broker's registration.
func (m *partitions) removeOrphans(md *controller.Metadata) error {
	entries, err := os.ReadDir(m.dataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		i := strings.LastIndexByte(e.Name(), '-')
		if i <= 0 {
			continue
		}
		topic, num := e.Name()[:i], e.Name()[i+1:]
		n, err := strconv.ParseInt(num, 10, 32)
		if err != nil || n < 0 || controller.ValidateTopicName(topic) != nil {
			continue
		}
		what := "removed data of a deleted topic"
		if t, ok := md.Topics[topic]; ok && int(n) < len(t.Partitions) {
			if slices.Contains(t.Partitions[n].Replicas, m.self) {
				continue
			}
			// A move removed this replica while the broker was down.
			what = "removed data of a replica moved away"
		}
		dir := filepath.Join(m.dataDir, e.Name())
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove orphan %s: %w", dir, err)
		}
		m.logger.Info(what, zap.String("topic", topic), zap.Int64("partition", n))
	}
	return nil
}

// enforceRetention runs retention over every partition.
func (m *partitions) enforceRetention() {
	for _, p := range m.all() {
		p.mu.RLock()
		if p.state == stateOpen {
			n, err := p.log.EnforceRetention()
			p.producers.CutBelow(p.log.StartOffset())
			if k := p.producers.Expire(); k > 0 {
				m.logger.Debug("producer ids expired", zap.String("topic", p.topic), zap.Int32("partition", p.index), zap.Int("producers", k))
			}
			switch {
			case err != nil && !errors.Is(err, log.ErrClosed):
				m.logger.Warn("retention", zap.String("topic", p.topic), zap.Int32("partition", p.index), zap.Error(err))
			case n > 0:
				m.logger.Debug("retention deleted segments", zap.String("topic", p.topic), zap.Int32("partition", p.index),
					zap.Int("segments", n), zap.Int64("offset", p.log.StartOffset()))
			}
		}
		p.mu.RUnlock()
	}
}

// unmapIdleIndexes unmaps the indexes of every open log's inactive
// segments that went unread since the last call.
func (m *partitions) unmapIdleIndexes() {
	total := 0
	for _, p := range m.all() {
		p.mu.RLock()
		if p.state == stateOpen {
			n, err := p.log.UnmapIdleIndexes()
			total += n
			if err != nil {
				m.logger.Warn("unmap idle indexes", zap.String("topic", p.topic), zap.Int32("partition", p.index), zap.Error(err))
			}
		}
		p.mu.RUnlock()
	}
	if total > 0 {
		m.logger.Debug("idle index files unmapped", zap.Int("files", total))
	}
}

// closeAll closes every log (sync, recovery point, clean-shutdown marker).
func (m *partitions) closeAll() error {
	m.repl.close()
	m.checkpointHighWatermarks()
	m.mu.Lock()
	topics := m.topics
	m.topics = map[string]*topicParts{}
	m.mu.Unlock()
	var all []*partition
	for _, tp := range topics {
		for _, p := range tp.parts {
			if p != nil {
				all = append(all, p)
			}
		}
	}
	errs := make([]error, len(all))
	forEach(len(all), func(i int) {
		p := all[i]
		l := m.shut(p, stateClosed)
		p.notify()
		if l == nil {
			return
		}
		if err := l.Close(); err != nil {
			errs[i] = fmt.Errorf("close %s-%d: %w", p.topic, p.index, err)
		}
	})
	return errors.Join(errs...)
}
