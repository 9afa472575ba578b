// Package log is one partition's log: an ordered list of segments (package
// segment) holding record batches back to back, with offsets assigned at
// append.
//
// Offsets: the log start offset (StartOffset) is the first offset a reader
// may ask for; it moves forward with retention and DeleteRecordsBefore and
// is kept in a checkpoint. The log end offset (EndOffset) is the offset the
// next appended record gets. Append stamps baseOffset and
// partitionLeaderEpoch into the batch — both outside its CRC — so the bytes
// the producer sealed are the bytes on disk and on the wire.
//
// Segments: the last segment is active and takes appends; it is rolled
// (sealed, and a new one created at the end offset) when the next batch
// would pass SegmentBytes, its index is full, or its first batch is older
// than SegmentAge. Retention deletes whole closed segments from the front,
// never the active one. With CleanupPolicy compact, Clean rewrites closed
// segments keeping the latest record per key, offsets unchanged, and
// swaps the copies in crash-safely (clean.go).
//
// Durability (R2, R5): with FsyncAlways an Append returns only after an
// fsync covering its batch succeeded; concurrent Appends share fsyncs
// through a group commit that runs outside the append lock. With
// FsyncInterval a goroutine owned by the Log syncs every FlushInterval or
// FlushBytes when set. Either way the first fsync error takes the log offline for
// good: Append then fails with ErrOffline, and nothing is acknowledged on
// the strength of a retried fsync.
//
// Recovery (R6, R7): Close syncs, writes the recovery point and a
// clean-shutdown marker; Open without the marker rescans every segment from
// the one holding the recovery point on, batch by batch (segment.Recover),
// truncates at the first bad batch, drops the segments after it and rebuilds
// the indexes of what it kept. docs/storage.md states the rules.
//
// Files: every file-system call goes through Config.FS (package vfs), so
// tests can fill the disk or fail an fsync under a running log; small
// files (offsets, epochs, markers) are checkpoints (checkpoint.go).
//
// Concurrency: one writer at a time (Append, TruncateTo, retention, the
// cleaner's swap, Close serialize on the append lock) and any number of
// concurrent readers. Read returns a segment.View that holds a reference
// on its segment, so a reader racing retention, truncation or the
// cleaner's swap keeps valid bytes until it releases the View (R8); a
// reader never sees part of a batch.
//
// The package name shadows the standard library's log inside it; nothing
// here needs that one (logging goes through zap).
package log

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// ErrOffsetOutOfRange is returned for an offset below StartOffset or above
// EndOffset. It is segment's sentinel, so errors.Is works on both layers.
var ErrOffsetOutOfRange = segment.ErrOffsetOutOfRange

// File names in a log directory besides the segments.
const (
	recoveryPointFile = "recovery-point.checkpoint"
	startOffsetFile   = "log-start-offset.checkpoint"
	cleanShutdownFile = ".clean-shutdown"
	// recoveryMarkFile is in a log directory from the moment recovery
	// may cut the log (before it scans or drops a segment) until the
	// owner has reported the loss where it counts (ClearRecoveryTruncated):
	// a crash between the cut and the report must not forget that the log
	// lost data (R11). A recovery that cut nothing removes it.
	recoveryMarkFile = "recovery-truncated"
	directoryPerm    = 0o755
)

// Log is one partition's log. Create it with Open; it is safe for
// concurrent use.
type Log struct {
	dir    string
	cfg    Config
	fs     vfs.FS
	segCfg segment.Config
	logger *zap.Logger

	// mu is the append lock: it serializes Append, roll, TruncateTo,
	// retention and Close. Never held across an fsync by Append.
	mu        sync.Mutex
	closed    bool
	lastEpoch int32 // leader epoch of the last batch, -1 if none
	// activeSince is when the active segment got its first batch (or, for
	// one that had batches when opened or truncated into, that moment):
	// the start of its SegmentAge.
	activeSince time.Time
	unflushed   int64 // bytes appended since the last flush kick

	// segMu guards segs for readers. Writers hold mu as well when they
	// change segs, so holders of mu may read segs without segMu.
	segMu sync.RWMutex
	segs  []*segment.Segment // oldest first; the last one is active

	// dirtyMu guards what the next sync must cover: the active segment and
	// rolled segments not yet synced and sealed. The syncer takes only this
	// lock, so an fsync can start while mu is held (TruncateTo, Close).
	dirtyMu  sync.Mutex
	active   *segment.Segment
	unsynced []*segment.Segment
	syncBuf  []*segment.Segment // scratch of the syncer

	start      atomic.Int64 // log start offset
	end        atomic.Int64 // log end offset
	epoch      atomic.Int32 // leader epoch stamped by Append
	closedFlag atomic.Bool
	pending    atomic.Int32 // Appends waiting for mu (settle)
	changed    atomic.Pointer[chan struct{}]

	commit *groupCommit
	epochs epochCache // leader epoch → first offset; guarded by mu

	// rpMu orders recovery-point checkpoint writes: the flusher's raises
	// and TruncateTo's lowering.
	rpMu      sync.Mutex
	rpWritten int64
	rpFile    *Checkpoint
	startFile *Checkpoint

	// recoveryTruncated: load dropped bytes or segments (set once, before
	// Open returns).
	recoveryTruncated bool

	// cleanMu serializes Clean. cleanerMu guards cleaner and lastClean;
	// truncGen (guarded by mu) counts truncations, so a clean that raced
	// one knows to give up.
	cleanMu   sync.Mutex
	cleanStop atomic.Bool // Close wants a running Clean to stop
	cleanerMu sync.Mutex
	cleaner   cleanerState
	lastClean time.Time
	truncGen  uint64

	kick chan struct{} // wakes the flusher early (FlushBytes)
	// flusherIdle is set while the flusher sleeps without its ticker:
	// everything appended was synced and checkpointed. The next append
	// clears it and wakes the flusher (wakeIdle, capacity 1). A broker
	// holds thousands of logs, most of them idle: their tickers woke
	// thousands of goroutines a second (10,000 logs: a third of an idle
	// broker's CPU).
	flusherIdle atomic.Bool
	wakeIdle    chan struct{}
	stop        chan struct{} // closed by Close to stop the flusher
	wg          sync.WaitGroup
}

// Open opens the log in dir, creating dir if needed, and recovers it as
// the package comment describes.
func Open(dir string, cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := makeDir(cfg.FS, dir); err != nil {
		return nil, fmt.Errorf("log %s: %w", dir, err)
	}
	l := &Log{
		dir:    dir,
		cfg:    cfg,
		fs:     cfg.FS,
		logger: cfg.Logger.With(zap.String("dir", dir)),
		segCfg: segment.Config{
			MaxLogBytes:        cfg.SegmentBytes,
			IndexIntervalBytes: cfg.IndexIntervalBytes,
			MaxIndexBytes:      cfg.MaxIndexBytes,
			FS:                 cfg.FS,
		}.WithDefaults(),
		rpFile:    NewCheckpoint(cfg.FS, filepath.Join(dir, recoveryPointFile)),
		startFile: NewCheckpoint(cfg.FS, filepath.Join(dir, startOffsetFile)),
		kick:      make(chan struct{}, 1),
		wakeIdle:  make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	if err := l.load(); err != nil {
		for _, s := range l.segs {
			s.Close()
		}
		return nil, fmt.Errorf("log %s: open: %w", dir, err)
	}
	l.commit = newGroupCommit(l.end.Load(), l.syncDirty)
	l.commit.onSync = l.notify // SyncedOffset moved: wake Changed waiters
	l.commit.onOffline = func(err error) {
		l.logger.Error("log offline: a storage error left its durable state unknown; appends fail until it is reopened", zap.Error(err))
		if cfg.OnOffline != nil {
			cfg.OnOffline(err)
		}
	}
	l.wg.Add(1)
	go l.runFlusher()
	return l, nil
}

// makeDir creates dir if it does not exist and makes the creation durable.
func makeDir(fs vfs.FS, dir string) error {
	if _, err := fs.Stat(dir); err == nil {
		return nil
	}
	if err := fs.MkdirAll(dir, directoryPerm); err != nil {
		return err
	}
	return vfs.SyncDir(fs, filepath.Dir(filepath.Clean(dir)))
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// StartOffset is the log start offset: the first offset Read accepts.
func (l *Log) StartOffset() int64 { return l.start.Load() }

// RecoveryTruncated reports whether recovery dropped anything — a torn or
// corrupt tail cut from a segment, or segments removed after it — at this
// Open, or at an earlier one (or one a crash interrupted) whose loss was
// not yet cleared with ClearRecoveryTruncated. What was dropped may have
// been acknowledged, so a replica that says so may have lost committed
// records (R11).
func (l *Log) RecoveryTruncated() bool { return l.recoveryTruncated }

// ClearRecoveryTruncated forgets, durably, that recovery cut the log in
// dir (in fs; nil is vfs.Default): its owner calls it once the loss is
// reported where it counts (the controller). The log need not be open.
func ClearRecoveryTruncated(fs vfs.FS, dir string) error {
	if fs == nil {
		fs = vfs.Default
	}
	if err := NewCheckpoint(fs, filepath.Join(dir, recoveryMarkFile)).Remove(); err != nil {
		return fmt.Errorf("log %s: clear the recovery mark: %w", dir, err)
	}
	return nil
}

// EndOffset is the log end offset: the offset the next record gets.
func (l *Log) EndOffset() int64 { return l.end.Load() }

// SyncedOffset is the offset below which every batch is durable (R2).
func (l *Log) SyncedOffset() int64 { return l.commit.synced() }

// SetLeaderEpoch sets the partition leader epoch Append stamps into
// batches. Epochs never decrease in a log: while e is below the epoch of
// the last batch, Append fails with ErrStaleEpoch.
func (l *Log) SetLeaderEpoch(e int32) { l.epoch.Store(e) }

// LeaderEpoch is the epoch Append stamps: the last SetLeaderEpoch, or at
// Open the epoch of the last batch in the log (0 for an empty log).
func (l *Log) LeaderEpoch() int32 { return l.epoch.Load() }

// Append appends one batch, stamping its base offset (the end offset) and
// the leader epoch into b, and returns the base offset. b must be a whole
// batch, exactly as long as its header says and at most MaxBatchBytes; the
// caller has validated its records (record.Validate). With FsyncAlways it
// returns only once b is durable. b may be reused when Append returns.
func (l *Log) Append(b record.Batch) (int64, error) {
	a, err := l.AppendNoWait(b)
	if err != nil {
		return -1, err
	}
	if l.cfg.Fsync == FsyncAlways {
		if err := l.WaitDurable(a); err != nil {
			return -1, err
		}
	}
	return a.Base, nil
}

// Appended identifies a batch appended by AppendNoWait, for WaitDurable.
type Appended struct {
	Base int64 // the batch's base offset
	Next int64 // the offset after the batch
	// Rolled: the batch is the first of a new segment (the log rolled
	// before it). Owners of state derived from the log snapshot it then.
	Rolled bool
	gen    uint64
}

// AppendNoWait is Append without the wait for durability, whatever the
// fsync policy: the batch is in the log (readers may see it below their
// high watermark) but may not be on disk. Pass the result to WaitDurable
// before acknowledging the batch under FsyncAlways. It lets one goroutine
// append in order and hand the waits to others.
func (l *Log) AppendNoWait(b record.Batch) (Appended, error) {
	return l.appendBatch(b, false)
}

// AppendReplica appends a batch copied from the leader (a follower's
// append): its base offset must be the end offset and its leader epoch, as
// the leader stamped it, at least the last batch's. Nothing is stamped.
// Like AppendNoWait it does not wait for durability.
func (l *Log) AppendReplica(b record.Batch) (Appended, error) {
	return l.appendBatch(b, true)
}

func (l *Log) appendBatch(b record.Batch, replica bool) (Appended, error) {
	hb, err := record.ParseHeader(b, l.cfg.MaxBatchBytes)
	if err != nil {
		return Appended{}, fmt.Errorf("log %s: append: %w", l.dir, err)
	}
	if len(hb) != len(b) {
		return Appended{}, fmt.Errorf("log %s: append: %w: %d bytes after a batch of %d", l.dir, record.ErrCorrupt, len(b)-len(hb), len(hb))
	}
	delta := int64(b.LastOffsetDelta())
	if delta < 0 {
		return Appended{}, fmt.Errorf("log %s: append: %w: lastOffsetDelta %d", l.dir, record.ErrCorrupt, delta)
	}

	l.pending.Add(1)
	l.mu.Lock()
	l.pending.Add(-1)
	if l.closed {
		l.mu.Unlock()
		return Appended{}, ErrClosed
	}
	if err := l.commit.failed(); err != nil {
		l.mu.Unlock()
		return Appended{}, err
	}
	epoch := l.epoch.Load()
	if replica {
		epoch = b.LeaderEpoch()
	}
	if epoch < l.lastEpoch {
		l.mu.Unlock()
		return Appended{}, fmt.Errorf("log %s: append: %w: epoch %d, last batch has %d", l.dir, ErrStaleEpoch, epoch, l.lastEpoch)
	}
	base := l.end.Load()
	if replica && b.BaseOffset() != base {
		l.mu.Unlock()
		return Appended{}, fmt.Errorf("log %s: append replica batch at %d: %w: the log ends at %d", l.dir, b.BaseOffset(), ErrBatchOffsets, base)
	}
	if base > math.MaxInt64-1-delta {
		l.mu.Unlock()
		return Appended{}, fmt.Errorf("log %s: append at %d: %w", l.dir, base, ErrBatchOffsets)
	}
	if !replica {
		b.SetBaseOffset(base)
		b.SetLeaderEpoch(epoch)
	}
	rolled, err := l.appendLocked(b)
	if err != nil {
		l.mu.Unlock()
		return Appended{}, err
	}
	next := base + delta + 1
	l.end.Store(next)
	l.lastEpoch = epoch
	if err := l.noteEpoch(epoch, base); err != nil {
		l.mu.Unlock()
		return Appended{}, l.commit.fail(fmt.Errorf("log %s: append at %d: %w", l.dir, base, err))
	}
	gen := l.commit.gen.Load()
	if l.cfg.Fsync == FsyncInterval && l.cfg.FlushBytes > 0 {
		l.unflushed += int64(len(b))
		if l.unflushed >= l.cfg.FlushBytes {
			l.unflushed = 0
			select {
			case l.kick <- struct{}{}:
			default:
			}
		}
	}
	l.wakeFlusher()
	l.notify()
	l.mu.Unlock()
	return Appended{Base: base, Next: next, Rolled: rolled, gen: gen}, nil
}

// WaitDurable returns once the batch a is durable (R2) — covered by a
// group-commit fsync, which it starts if none is running — or with the
// error that took the log offline (R5). A truncation that removed a's
// batch also ends the wait (the log synced before truncating).
func (l *Log) WaitDurable(a Appended) error {
	if err := l.commit.wait(a.Next, a.gen); err != nil {
		return fmt.Errorf("log %s: append at %d: %w", l.dir, a.Base, err)
	}
	return nil
}

// appendLocked writes b to the active segment, rolling first when needed,
// and reports whether it rolled. A failed write leaves the segment in an
// unknown state, so it takes the log offline.
func (l *Log) appendLocked(b record.Batch) (rolled bool, err error) {
	if l.shouldRoll(len(b)) {
		if err := l.roll(); err != nil {
			return false, err
		}
		rolled = true
	}
	if l.active.NextOffset() == l.active.Base() {
		l.activeSince = l.cfg.Now()
	}
	err = l.active.Append(b)
	if errors.Is(err, segment.ErrFull) && l.active.NextOffset() > l.active.Base() {
		// The offsets overflow the segment's relative offsets: roll and retry.
		if err = l.roll(); err != nil {
			return false, err
		}
		rolled = true
		err = l.active.Append(b)
	}
	if err != nil {
		return rolled, l.commit.fail(fmt.Errorf("log %s: append at %d: %w", l.dir, b.BaseOffset(), err))
	}
	return rolled, nil
}

// shouldRoll reports whether the active segment must be rolled before a
// batch of n bytes. An empty segment is never rolled: it takes any batch.
func (l *Log) shouldRoll(n int) bool {
	a := l.active
	if a.NextOffset() == a.Base() {
		return false
	}
	if a.Full(n) {
		return true
	}
	// Age is wall-clock time since the segment's first batch arrived, not
	// the batch's own timestamp: a producer replaying old records must
	// not get a segment per batch.
	if l.cfg.SegmentAge > 0 && l.cfg.Now().Sub(l.activeSince) > l.cfg.SegmentAge {
		return true
	}
	// The active segment is never cleaned: a compacted log rolls it once
	// its records would pass MaxCompactionLag.
	if l.cfg.CleanupPolicy.Compact() && l.cfg.MaxCompactionLag >= 0 && l.cfg.Now().Sub(l.activeSince) > l.cfg.MaxCompactionLag {
		return true
	}
	return false
}

// roll creates a new active segment at the end offset. The old one is
// synced and sealed by the next sync (syncDirty), outside the append lock.
func (l *Log) roll() error {
	old := l.active
	base := l.end.Load()
	seg, err := segment.Create(l.dir, base, l.segCfg)
	if err != nil {
		return l.commit.fail(fmt.Errorf("log %s: roll at %d: %w", l.dir, base, err))
	}
	l.segMu.Lock()
	l.segs = append(l.segs, seg)
	l.segMu.Unlock()
	l.dirtyMu.Lock()
	l.unsynced = append(l.unsynced, old)
	l.active = seg
	l.dirtyMu.Unlock()
	l.logger.Info("segment rolled",
		zap.Int64("segment", old.Base()), zap.Int64("size", old.Size()), zap.Int64("offset", base))
	return nil
}

// syncDirty is the group commit's sync: it makes every batch appended so
// far durable and seals the segments rolled since the last sync. It runs in
// at most one goroutine at a time (groupCommit.busy) and never under mu.
func (l *Log) syncDirty() (int64, error) {
	l.settle()
	l.dirtyMu.Lock()
	covered := l.end.Load()
	segs := append(l.syncBuf[:0], l.unsynced...)
	segs = append(segs, l.active)
	clear(l.unsynced)
	l.unsynced = l.unsynced[:0]
	l.dirtyMu.Unlock()
	defer func() {
		clear(segs)
		l.syncBuf = segs[:0]
	}()
	if err := l.syncSegments(segs); err != nil {
		return 0, err
	}
	// The leader-epoch checkpoint an append left pending (noteEpoch) is
	// durable before the offsets it covers are.
	if err := l.epochs.flush(); err != nil {
		return 0, fmt.Errorf("log %s: %w", l.dir, err)
	}
	for _, s := range segs[:len(segs)-1] {
		if err := s.Seal(); err != nil {
			return 0, fmt.Errorf("log %s: segment %d: seal: %w", l.dir, s.Base(), err)
		}
	}
	return covered, nil
}

// syncSegments fsyncs segs, timed for Config.OnSync when it is set.
func (l *Log) syncSegments(segs []*segment.Segment) error {
	var start time.Time
	if l.cfg.OnSync != nil {
		start = time.Now()
	}
	var err error
	for _, s := range segs {
		if err = s.Sync(); err != nil {
			err = fmt.Errorf("log %s: segment %d: sync: %w", l.dir, s.Base(), err)
			break
		}
	}
	if l.cfg.OnSync != nil {
		l.cfg.OnSync(time.Since(start), err)
	}
	return err
}

// settle lets appenders that are about to append join the coming sync:
// it yields while the end offset keeps moving or Appends wait for the
// append lock, at most settleRounds times.
// Without it the appenders acknowledged by one fsync re-append only after
// the next one started, and fsyncs cover half as much as they could
// (BenchmarkAppendAlways64K: ~50% of the baseline without, 70-85% with).
// A lone appender pays one yield.
func (l *Log) settle() {
	end := l.end.Load()
	for range settleRounds {
		runtime.Gosched()
		e := l.end.Load()
		if e == end && l.pending.Load() == 0 {
			return
		}
		end = e
	}
}

const settleRounds = 128

// Sync makes every batch appended so far durable. On a log gone offline
// it fails with ErrOffline, even when the batches before the failure were
// all synced.
func (l *Log) Sync() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	end, gen := l.end.Load(), l.commit.gen.Load()
	l.mu.Unlock()
	if err := l.waitOnline(end, gen); err != nil {
		return fmt.Errorf("log %s: sync: %w", l.dir, err)
	}
	return nil
}

// waitOnline is commit.wait that also fails on a log already offline: a
// failed append leaves nothing unsynced below the end offset, and wait
// alone would report success.
func (l *Log) waitOnline(end int64, gen uint64) error {
	if err := l.commit.wait(end, gen); err != nil {
		return err
	}
	return l.commit.failed()
}

// runFlusher is the Log's background goroutine: the FsyncInterval flush
// and, for both policies, the recovery-point checkpoint.
func (l *Log) runFlusher() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.kick:
		}
		if l.cfg.Fsync == FsyncInterval {
			if err := l.commit.wait(l.end.Load(), l.commit.gen.Load()); err != nil {
				return // offline: onOffline said so, and nothing is left to flush
			}
		}
		l.checkpointRecoveryPoint()
		if !l.flushed() {
			continue
		}
		// Nothing to do until the next append: sleep without the ticker.
		// The flag goes up before the second look, so an append after
		// that look finds it up and wakes the flusher.
		l.flusherIdle.Store(true)
		if !l.flushed() {
			l.flusherIdle.CompareAndSwap(true, false)
			continue
		}
		t.Stop()
		select {
		case <-l.stop:
			return
		case <-l.wakeIdle:
		}
		t.Reset(l.cfg.FlushInterval)
	}
}

// wakeFlusher wakes the flusher if it sleeps idle: something was
// appended, or the recovery point lowered, since its last round.
func (l *Log) wakeFlusher() {
	if l.flusherIdle.Load() && l.flusherIdle.CompareAndSwap(true, false) {
		select {
		case l.wakeIdle <- struct{}{}:
		default:
		}
	}
}

// flushed reports whether everything appended is synced and the recovery
// point checkpoint says so: the flusher has nothing to do.
func (l *Log) flushed() bool {
	l.rpMu.Lock()
	defer l.rpMu.Unlock()
	synced := l.commit.synced()
	return l.commit.failed() == nil && synced >= l.end.Load() && synced == l.rpWritten
}

// checkpointRecoveryPoint writes the synced offset as the recovery point
// if it moved. A failed write only warns: the old, lower recovery point
// stays valid (it makes recovery scan more).
func (l *Log) checkpointRecoveryPoint() {
	l.rpMu.Lock()
	defer l.rpMu.Unlock()
	if l.commit.failed() != nil {
		return
	}
	rp := l.commit.synced()
	if rp == l.rpWritten {
		return
	}
	if err := l.rpFile.WriteInt64(rp); err != nil {
		l.logger.Warn("recovery point checkpoint failed", zap.Int64("offset", rp), zap.Error(err))
		return
	}
	l.rpWritten = rp
}

// lowerRecoveryPoint makes the recovery point at most offset before the
// log below it changes (TruncateTo). Failure is fatal: a stale high
// recovery point could make recovery skip unsynced batches.
func (l *Log) lowerRecoveryPoint(offset int64) error {
	l.rpMu.Lock()
	defer l.rpMu.Unlock()
	if l.rpWritten <= offset {
		return nil
	}
	if err := l.rpFile.WriteInt64(offset); err != nil {
		return l.commit.fail(fmt.Errorf("log %s: recovery point: %w", l.dir, err))
	}
	l.rpWritten = offset
	l.wakeFlusher() // to raise it again once the log is synced past it
	return nil
}

// Close syncs the log, writes the recovery point and the clean-shutdown
// marker, stops the flusher and closes the segments (waiting for Views
// still held). It is idempotent. A log that went offline is closed without
// the marker, so the next Open recovers it.
func (l *Log) Close() error {
	// A Clean in progress stops at its next batch; wait for it, before
	// taking mu (its swap takes mu).
	l.cleanStop.Store(true)
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock() // no Clean starts after this one (cleanStop)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.closedFlag.Store(true)
	close(l.stop)
	l.wg.Wait()

	err := l.waitOnline(l.end.Load(), l.commit.gen.Load())
	if err == nil {
		// An epoch noted after the last sync took the pending
		// checkpoint (its batch was covered already) is written here,
		// before the clean marker.
		if err = l.epochs.flush(); err != nil {
			err = fmt.Errorf("log %s: close: %w", l.dir, err)
		}
	}
	if err == nil {
		l.checkpointRecoveryPoint()
		if l.rpWritten != l.end.Load() {
			err = fmt.Errorf("log %s: close: recovery point not written", l.dir)
		}
	}
	l.segMu.Lock()
	segs := l.segs
	l.segs = nil
	l.segMu.Unlock()
	for _, s := range segs {
		if cerr := s.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("log %s: close segment %d: %w", l.dir, s.Base(), cerr)
		}
	}
	if err == nil {
		err = l.touchMarker(cleanShutdownFile)
	}
	l.notify()
	return err
}

// touchMarker makes the clean-shutdown marker, an empty file, without
// syncing it or the directory: everything it vouches for was synced before
// it was made, so a marker that survives a crash is true, and one the
// crash lost only makes the next Open recover a log that needed nothing.
// A broker stopping with 10,000 partitions saves two fsyncs for each
// (issue 13 item 6). Open removes it durably before the log changes.
func (l *Log) touchMarker(name string) error {
	f, err := l.fs.OpenFile(filepath.Join(l.dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return fmt.Errorf("marker: %w", err)
	}
	return nil
}

// writeMarker makes a marker file (one whose presence is what counts)
// durably: an empty checkpoint.
func (l *Log) writeMarker(name string) error {
	if err := NewCheckpoint(l.fs, filepath.Join(l.dir, name)).Write(nil); err != nil {
		return fmt.Errorf("marker: %w", err)
	}
	return nil
}

// hasFile reports whether name exists in the log's directory.
func (l *Log) hasFile(name string) bool {
	_, err := l.fs.Stat(filepath.Join(l.dir, name))
	return err == nil
}

// Delete closes the log and removes its directory.
func (l *Log) Delete() error {
	cerr := l.Close()
	if err := l.fs.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("log %s: delete: %w", l.dir, err)
	}
	if cerr != nil && !errors.Is(cerr, ErrOffline) {
		return cerr
	}
	return vfs.SyncDir(l.fs, filepath.Dir(filepath.Clean(l.dir)))
}
