package log

import (
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// TruncateTo removes every record at and after offset (a follower cutting
// its log where it diverged from the leader). It may delete whole later
// segments and truncate one; an offset below StartOffset empties the log
// and restarts it at offset. An offset at or past EndOffset changes
// nothing. It waits for readers holding Views on the bytes it removes.
func (l *Log) TruncateTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if offset < 0 {
		return fmt.Errorf("log %s: truncate to %d: %w", l.dir, offset, ErrOffsetOutOfRange)
	}
	end := l.end.Load()
	if offset >= end {
		return nil
	}
	// Sync first: every Append waiting for an fsync is then covered, so
	// none is acknowledged after its batch was removed (groupCommit.wait).
	if err := l.waitOnline(end, l.commit.gen.Load()); err != nil {
		return fmt.Errorf("log %s: truncate to %d: %w", l.dir, offset, err)
	}
	l.commit.lock()
	defer l.commit.unlock()
	if err := l.lowerRecoveryPoint(offset); err != nil {
		return err
	}
	var err error
	if offset < l.start.Load() || offset <= l.segs[0].Base() {
		err = l.truncateFully(offset)
	} else {
		err = l.truncateTail(offset)
	}
	if err != nil {
		return l.commit.fail(fmt.Errorf("log %s: truncate to %d: %w", l.dir, offset, err))
	}
	l.logger.Info("log truncated", zap.Int64("offset", offset), zap.Int64("end", l.end.Load()), zap.Int64("previous_end", end))
	l.notify()
	return nil
}

// ResetTo empties the log and restarts it at offset, whatever its end: a
// follower whose whole log lies below the leader's log start (retention
// deleted what it would fetch next) starts again where the leader's log
// starts. It waits for readers holding Views, as TruncateTo does.
func (l *Log) ResetTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if offset < 0 {
		return fmt.Errorf("log %s: reset to %d: %w", l.dir, offset, ErrOffsetOutOfRange)
	}
	end := l.end.Load()
	if err := l.waitOnline(end, l.commit.gen.Load()); err != nil {
		return fmt.Errorf("log %s: reset to %d: %w", l.dir, offset, err)
	}
	l.commit.lock()
	defer l.commit.unlock()
	if err := l.lowerRecoveryPoint(min(offset, end)); err != nil {
		return err
	}
	if err := l.truncateFully(offset); err != nil {
		return l.commit.fail(fmt.Errorf("log %s: reset to %d: %w", l.dir, offset, err))
	}
	l.logger.Info("log reset", zap.Int64("offset", offset), zap.Int64("previous_end", end))
	l.notify()
	return nil
}

// truncateTail truncates inside the log: the segment holding offset becomes
// the active one and the later ones are deleted.
func (l *Log) truncateTail(offset int64) error {
	k := len(l.segs) - 1
	for l.segs[k].Base() > offset {
		k--
	}
	seg := l.segs[k]
	victims := slices.Clone(l.segs[k+1:])
	l.segMu.Lock()
	l.segs = slices.Clone(l.segs[:k+1])
	l.segMu.Unlock()
	l.cutCleaner(offset)
	l.activeSince = l.cfg.Now()
	l.dirtyMu.Lock()
	l.active = seg
	clear(l.unsynced) // synced and sealed by the sync TruncateTo started with
	l.unsynced = l.unsynced[:0]
	l.dirtyMu.Unlock()
	for _, v := range victims {
		if err := v.Delete(); err != nil {
			return fmt.Errorf("delete segment %d: %w", v.Base(), err)
		}
	}
	if err := seg.TruncateTo(offset); err != nil {
		return fmt.Errorf("segment %d: %w", seg.Base(), err)
	}
	// The cut must be durable before new batches can take its offsets,
	// or a crash could bring the removed batches back.
	if err := seg.Sync(); err != nil {
		return fmt.Errorf("segment %d: sync: %w", seg.Base(), err)
	}
	if len(victims) > 0 {
		if err := vfs.SyncDir(l.fs, l.dir); err != nil {
			return err
		}
	}
	newEnd := seg.NextOffset()
	l.end.Store(newEnd)
	if l.start.Load() > newEnd {
		// offset and the start offset were inside the same removed batch.
		if err := l.setStart(newEnd); err != nil {
			return err
		}
	}
	epoch, err := l.lastBatchEpoch()
	if err != nil {
		return err
	}
	l.lastEpoch = epoch
	if err := l.cutEpochs(newEnd); err != nil {
		return err
	}
	l.commit.cut(newEnd)
	return nil
}

// truncateFully deletes every segment and restarts the log at offset.
func (l *Log) truncateFully(offset int64) error {
	victims := l.segs
	l.segMu.Lock()
	l.segs = nil
	l.segMu.Unlock()
	l.cutCleaner(offset)
	for _, v := range victims {
		if err := v.Delete(); err != nil {
			return fmt.Errorf("delete segment %d: %w", v.Base(), err)
		}
	}
	seg, err := segment.Create(l.dir, offset, l.segCfg)
	if err != nil {
		return err
	}
	l.segMu.Lock()
	l.segs = []*segment.Segment{seg}
	l.segMu.Unlock()
	l.dirtyMu.Lock()
	l.active = seg
	clear(l.unsynced)
	l.unsynced = l.unsynced[:0]
	l.dirtyMu.Unlock()
	l.end.Store(offset)
	if err := l.setStart(offset); err != nil {
		return err
	}
	l.lastEpoch = -1
	if err := l.cutEpochs(-1); err != nil { // every epoch goes with the data
		return err
	}
	l.commit.reset(offset)
	return nil
}

// setStart moves the log start offset, checkpoint first.
func (l *Log) setStart(offset int64) error {
	if err := l.startFile.WriteInt64(offset); err != nil {
		return fmt.Errorf("log start offset: %w", err)
	}
	l.start.Store(offset)
	return nil
}

// lastBatchEpoch returns the leader epoch of the log's last batch, -1 if
// the log is empty. Caller holds mu.
func (l *Log) lastBatchEpoch() (int32, error) {
	for i := len(l.segs) - 1; i >= 0; i-- {
		e, err := segmentLastEpoch(l.segs[i])
		if err != nil || e >= 0 {
			return e, err
		}
	}
	return -1, nil
}

// segmentLastEpoch reads the leader epoch of a segment's last batch, -1 if
// the segment is empty.
func segmentLastEpoch(s *segment.Segment) (int32, error) {
	next := s.NextOffset()
	if next == s.Base() {
		return -1, nil
	}
	v, err := s.Read(next-1, next, 1)
	if err != nil {
		return -1, fmt.Errorf("segment %d: read last batch: %w", s.Base(), err)
	}
	defer v.Release()
	b, err := record.ParseHeader(v.Bytes(), 0)
	if err != nil {
		return -1, fmt.Errorf("segment %d: last batch: %w", s.Base(), err)
	}
	return b.LeaderEpoch(), nil
}

// DeleteRecordsBefore moves the log start offset up to offset (at most
// EndOffset) and deletes the closed segments wholly below it. Records
// below the start offset are no longer readable even where their segment
// remains.
func (l *Log) DeleteRecordsBefore(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if end := l.end.Load(); offset > end {
		return fmt.Errorf("log %s: delete records before %d (end %d): %w", l.dir, offset, end, ErrOffsetOutOfRange)
	}
	if offset <= l.start.Load() {
		return nil
	}
	if err := l.setStart(offset); err != nil {
		return fmt.Errorf("log %s: %w", l.dir, err)
	}
	_, err := l.enforceRetentionLocked()
	return err
}

// EnforceRetention deletes the closed segments that retention by bytes or
// age, or the log start offset, no longer keeps, and returns how many.
func (l *Log) EnforceRetention() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	return l.enforceRetentionLocked()
}

func (l *Log) enforceRetentionLocked() (int, error) {
	infos := make([]segInfo, len(l.segs))
	for i, s := range l.segs {
		infos[i] = segInfo{base: s.Base(), next: s.NextOffset(), size: s.Size(), maxTimestamp: s.MaxTimestamp()}
	}
	retBytes, retAge := l.cfg.RetentionBytes, l.cfg.RetentionAge
	if !l.cfg.CleanupPolicy.Delete() {
		// compact alone: only the log start offset deletes segments.
		retBytes, retAge = -1, -1
	}
	n := retentionCount(infos, l.start.Load(), retBytes, retAge, l.cfg.Now().UnixMilli())
	if n == 0 {
		return 0, nil
	}
	// No sync may touch a segment while it is deleted.
	l.commit.lock()
	defer l.commit.unlock()
	victims := slices.Clone(l.segs[:n])
	if newStart := l.segs[n].Base(); newStart > l.start.Load() {
		if err := l.setStart(newStart); err != nil {
			return 0, fmt.Errorf("log %s: retention: %w", l.dir, err)
		}
	}
	l.segMu.Lock()
	l.segs = slices.Clone(l.segs[n:])
	l.segMu.Unlock()
	l.dirtyMu.Lock()
	l.unsynced = slices.DeleteFunc(l.unsynced, func(s *segment.Segment) bool { return slices.Contains(victims, s) })
	l.dirtyMu.Unlock()
	for _, v := range victims {
		if err := v.Delete(); err != nil {
			return 0, fmt.Errorf("log %s: retention: delete segment %d: %w", l.dir, v.Base(), err)
		}
		l.logger.Info("segment deleted by retention",
			zap.Int64("segment", v.Base()), zap.Int64("size", infos[slices.Index(victims, v)].size), zap.Int64("start", l.start.Load()))
	}
	return n, nil
}
