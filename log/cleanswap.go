package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// swapCleaned replaces the segments olds by their cleaned copies in the
// .cleaned directory (see the comment at the top of clean.go). It reports
// false, having changed nothing, when the log was truncated since the
// pass began (gen) or one of olds is no longer a closed segment of the
// log. An error after the commit point takes the log offline: its files
// are then finished by the next Open.
func (l *Log) swapCleaned(gen uint64, olds []*segment.Segment) (bool, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false, ErrClosed
	}
	if l.truncGen != gen {
		l.mu.Unlock()
		return false, nil
	}
	idx := make([]int, len(olds))
	for i, o := range olds {
		idx[i] = slices.Index(l.segs, o)
		if idx[i] < 0 || idx[i] == len(l.segs)-1 {
			l.mu.Unlock()
			return false, nil
		}
	}
	// No sync may touch a segment while it is swapped.
	l.commit.lock()
	l.dirtyMu.Lock()
	unsynced := slices.ContainsFunc(olds, func(s *segment.Segment) bool { return slices.Contains(l.unsynced, s) })
	l.dirtyMu.Unlock()
	if unsynced {
		l.commit.unlock()
		l.mu.Unlock()
		return false, nil
	}
	news, err := l.swapLocked(olds)
	if err == nil {
		l.segMu.Lock()
		for i, n := range news {
			l.segs[idx[i]] = n
		}
		l.segMu.Unlock()
	}
	l.commit.unlock()
	l.mu.Unlock()
	if err != nil {
		return false, err
	}
	// The old segments' files were renamed over; their mappings live on
	// for Views taken before the swap, and the last Release closes them
	// (R8).
	for _, o := range olds {
		o.Detach()
	}
	return true, nil
}

// swapLocked commits the swap and opens the new segments. Caller holds mu
// and the commit lock.
func (l *Log) swapLocked(olds []*segment.Segment) ([]*segment.Segment, error) {
	cleaned, swap := filepath.Join(l.dir, cleanedDir), filepath.Join(l.dir, swapDir)
	if err := vfs.SyncDir(l.fs, cleaned); err != nil {
		return nil, err
	}
	if err := l.fs.Rename(cleaned, swap); err != nil {
		return nil, fmt.Errorf("commit swap: %w", err)
	}
	// From here the swap must complete, now or at the next Open.
	fail := func(err error) ([]*segment.Segment, error) {
		return nil, l.commit.fail(fmt.Errorf("log %s: swap cleaned segments: %w", l.dir, err))
	}
	if err := vfs.SyncDir(l.fs, l.dir); err != nil {
		return fail(err)
	}
	if err := finishSwap(l.fs, l.dir); err != nil {
		return fail(err)
	}
	news := make([]*segment.Segment, 0, len(olds))
	for _, o := range olds {
		n, err := segment.Open(l.dir, o.Base(), l.segCfg)
		if err != nil {
			for _, n := range news {
				n.Close()
			}
			return fail(err)
		}
		news = append(news, n)
	}
	return news, nil
}

// finishSwap moves every file of the .swap directory over its namesake in
// dir, syncs dir and removes .swap. It is idempotent: Open runs it to
// finish a swap a crash interrupted.
func finishSwap(fs vfs.FS, dir string) error {
	swap := filepath.Join(dir, swapDir)
	entries, err := fs.ReadDir(swap)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if err := fs.Rename(filepath.Join(swap, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("swap in %s: %w", e.Name(), err)
		}
	}
	if err := vfs.SyncDir(fs, dir); err != nil {
		return err
	}
	if err := fs.RemoveAll(swap); err != nil {
		return err
	}
	return vfs.SyncDir(fs, dir)
}

// recoverClean is Open's part of the cleaner's crash safety: a committed
// swap (.swap) is finished, a clean that had not reached its commit point
// (.cleaned) is discarded.
func (l *Log) recoverClean() error {
	if _, err := l.fs.Stat(filepath.Join(l.dir, swapDir)); err == nil {
		l.logger.Info("finishing a cleaner swap interrupted by a crash")
		if err := finishSwap(l.fs, l.dir); err != nil {
			return fmt.Errorf("finish cleaner swap: %w", err)
		}
	}
	if _, err := l.fs.Stat(filepath.Join(l.dir, cleanedDir)); err == nil {
		if err := l.fs.RemoveAll(filepath.Join(l.dir, cleanedDir)); err != nil {
			return fmt.Errorf("discard an unfinished clean: %w", err)
		}
		if err := vfs.SyncDir(l.fs, l.dir); err != nil {
			return err
		}
	}
	st, err := l.loadCleanerState()
	if err != nil {
		l.logger.Warn("cleaner checkpoint unreadable; the next clean starts from the log start", zap.Error(err))
		st = cleanerState{}
	}
	l.cleaner = st
	return nil
}

func (l *Log) cleanerPath() string { return filepath.Join(l.dir, cleanerFile) }

// saveCleanerState makes st the cleaner's state, durably. A truncation
// since the pass began (gen) may have cut below st.firstDirty: the state
// it left (lowered) wins.
func (l *Log) saveCleanerState(gen uint64, st cleanerState) error {
	l.mu.Lock()
	if l.truncGen != gen {
		st.firstDirty = min(st.firstDirty, l.cleaner.firstDirty)
	}
	l.mu.Unlock()
	if err := NewCheckpoint(l.fs, l.cleanerPath()).Write(st.encode()); err != nil {
		return err
	}
	l.cleanerMu.Lock()
	l.cleaner = st
	l.cleanerMu.Unlock()
	return nil
}

// cutCleaner lowers the first dirty offset to offset after a truncation
// (in memory: a stale higher value on disk only leaves some records
// uncleaned until they are rewritten with later passes). Caller holds mu.
func (l *Log) cutCleaner(offset int64) {
	l.truncGen++
	l.cleanerMu.Lock()
	l.cleaner.firstDirty = min(l.cleaner.firstDirty, offset)
	l.cleanerMu.Unlock()
}
