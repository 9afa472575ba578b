package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// swapCleaned replaces each group of segments in groups by its cleaned
// copy in the .cleaned directory (see the comment at the top of
// clean.go). It reports false, having changed nothing, when the log was
// truncated since the pass began (gen) or a segment of a group is no
// longer a closed segment of the log. An error after the commit point
// takes the log offline: its files are then finished by the next Open.
func (l *Log) swapCleaned(gen uint64, groups [][]*segment.Segment) (bool, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false, ErrClosed
	}
	if l.truncGen != gen {
		l.mu.Unlock()
		return false, nil
	}
	var olds []*segment.Segment
	for _, g := range groups {
		olds = append(olds, g...)
	}
	for _, o := range olds {
		if i := slices.Index(l.segs, o); i < 0 || i == len(l.segs)-1 {
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
	news, err := l.swapLocked(groups)
	if err == nil {
		// Each group's first member becomes its new segment; the other
		// members go.
		repl := make(map[*segment.Segment]*segment.Segment, len(olds))
		for i, g := range groups {
			for _, m := range g {
				repl[m] = nil
			}
			repl[g[0]] = news[i]
		}
		segs := make([]*segment.Segment, 0, len(l.segs))
		for _, s := range l.segs {
			n, ok := repl[s]
			switch {
			case !ok:
				segs = append(segs, s)
			case n != nil:
				segs = append(segs, n)
			}
		}
		l.segMu.Lock()
		l.segs = segs
		l.segMu.Unlock()
	}
	l.commit.unlock()
	l.mu.Unlock()
	if err != nil {
		return false, err
	}
	// The old segments' files were renamed over or deleted; their
	// mappings live on for Views taken before the swap, and the last
	// Release closes them (R8).
	for _, o := range olds {
		o.Detach()
	}
	return true, nil
}

// swapLocked commits the swap and opens the new segments, one per group.
// Caller holds mu and the commit lock.
func (l *Log) swapLocked(groups [][]*segment.Segment) ([]*segment.Segment, error) {
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
	news := make([]*segment.Segment, 0, len(groups))
	for _, g := range groups {
		n, err := segment.Open(l.dir, g[0].Base(), l.segCfg)
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
// dir, then deletes the segments its "<base>.deleted" markers name (the
// merged members: only once the merged segment covering their offsets is
// in place), syncs dir and removes .swap. It is idempotent: Open runs it
// to finish a swap a crash interrupted.
func finishSwap(fs vfs.FS, dir string) error {
	swap := filepath.Join(dir, swapDir)
	entries, err := fs.ReadDir(swap)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var deleted []int64
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if name, ok := strings.CutSuffix(e.Name(), deletedSuffix); ok {
			if base, ok := segment.ParseBase(name + ".log"); ok {
				deleted = append(deleted, base)
			}
			continue
		}
		if err := fs.Rename(filepath.Join(swap, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("swap in %s: %w", e.Name(), err)
		}
	}
	if err := vfs.SyncDir(fs, dir); err != nil {
		return err
	}
	for _, base := range deleted {
		for _, p := range []string{segment.LogPath(dir, base), segment.IndexPath(dir, base), segment.TimeIndexPath(dir, base)} {
			if err := fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("delete merged segment %d: %w", base, err)
			}
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
