package log

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// load opens the segments in l.dir and recovers them (R6, R7): after a
// clean shutdown every segment is opened as is; otherwise every segment
// from the one holding the recovery point on is rescanned batch by batch.
// The first bad batch, or a segment that does not start where the one
// before it ends, ends the log: what follows is truncated or removed and a
// warning says what was dropped. It sets segs, active, start, end, epochs
// and the recovery point, and removes the clean-shutdown marker.
//
// It runs in two phases: scanSegments opens (and where needed rescans)
// the segments and cuts the log at the first damage; finishLoad makes the
// rest of the log's state agree with what was kept.
func (l *Log) load() error {
	if err := l.recoverClean(); err != nil {
		return err
	}
	r, err := l.planRecovery()
	if err != nil {
		return err
	}
	if err := l.scanSegments(r); err != nil {
		return err
	}
	return l.finishLoad(r)
}

// recovery is load's state, from the files it finds to what it kept.
type recovery struct {
	bases    []int64 // base offsets of the segment files, in order
	marker   bool    // the clean-shutdown marker was there
	scanFrom int64   // segments from this base on are rescanned (MaxInt64: none)
	start    int64   // the log start offset checkpoint, -1 when unreadable
	// recoveryPoint is the recovery-point checkpoint, -1 when unreadable.
	recoveryPoint int64

	// The recovery mark (recoveryMarkFile): there at the start, and there
	// now.
	markHad, markSet bool

	lastEpoch int32              // epoch of the last batch kept, -1 if none
	recovered []*segment.Segment // segments rescanned by Recover
}

// planRecovery reads what the directory says about the last stop: the
// segment files, the markers and the checkpoints, and from them which
// segments to rescan.
func (l *Log) planRecovery() (*recovery, error) {
	bases, err := listSegments(l.fs, l.dir)
	if err != nil {
		return nil, err
	}
	r := &recovery{bases: bases, marker: l.hasFile(cleanShutdownFile), scanFrom: math.MaxInt64, lastEpoch: -1}
	// A recovery mark left behind: an earlier recovery cut the log (or a
	// crash interrupted it) and the owner never cleared it.
	if l.hasFile(recoveryMarkFile) {
		r.markHad, r.markSet = true, true
		l.recoveryTruncated = true
	}
	r.start = l.readCheckpoint(l.startFile, "log start offset")
	r.recoveryPoint = l.readCheckpoint(l.rpFile, "recovery point")
	// A directory with no segments is a new log: nothing to recover.
	if r.marker || len(bases) == 0 {
		return r, nil
	}
	r.scanFrom = 0
	if rp := r.recoveryPoint; rp >= 0 {
		// The segment holding the recovery point and all after it.
		for _, b := range bases {
			if b <= rp {
				r.scanFrom = b
			}
		}
	}
	l.logger.Info("recovering log after an unclean shutdown",
		zap.Int("segments", len(bases)), zap.Int64("scan_from", r.scanFrom))
	return r, nil
}

// scanSegments is load's scan phase: it opens the segments in order,
// rescans those from r.scanFrom on (and any with a torn tail), and stops
// at the first that does not chain or holds a bad batch, dropping what
// follows. The recovery mark is written before anything is cut.
func (l *Log) scanSegments(r *recovery) error {
	for i, base := range r.bases {
		if n := len(l.segs); n > 0 && l.segs[n-1].NextOffset() != base {
			prev := l.segs[n-1]
			if err := l.markRecovery(r); err != nil {
				return err
			}
			l.dropSegments(r.bases[i:], fmt.Errorf("segment %d starts at %d but the previous one ends at %d", base, base, prev.NextOffset()))
			return nil
		}
		seg, err := segment.Open(l.dir, base, l.segCfg)
		if err != nil {
			return fmt.Errorf("segment %d: %w", base, err)
		}
		l.segs = append(l.segs, seg)
		if base < r.scanFrom && !l.tornTail(seg) {
			if e, err := segmentLastEpoch(seg); err != nil {
				return err
			} else if e >= 0 {
				r.lastEpoch = e
			}
			continue
		}
		r.recovered = append(r.recovered, seg)
		if err := l.markRecovery(r); err != nil {
			return err
		}
		res, err := seg.Recover(r.lastEpoch)
		if err != nil {
			return fmt.Errorf("segment %d: recover: %w", base, err)
		}
		if res.LastEpoch >= 0 {
			r.lastEpoch = res.LastEpoch
		}
		if err := seg.Sync(); err != nil {
			return fmt.Errorf("segment %d: sync: %w", base, err)
		}
		if res.TruncatedBytes > 0 || res.Reason != nil {
			l.recoveryTruncated = true
			l.logger.Warn("log truncated at a bad batch",
				zap.Int64("segment", base), zap.Int64("offset", res.NextOffset),
				zap.Int64("valid_bytes", res.ValidBytes), zap.Int64("truncated_bytes", res.TruncatedBytes),
				zap.NamedError("reason", res.Reason))
			if i+1 < len(r.bases) {
				l.dropSegments(r.bases[i+1:], fmt.Errorf("after the bad batch at offset %d", res.NextOffset))
			}
			return nil
		}
	}
	return nil
}

// finishLoad is load's finish phase: it seals what recovery rebuilt,
// makes sure there is an active segment, settles the start and end
// offsets and the leader-epoch cache on the kept segments, moves the
// recovery point to the end and removes the markers this start is done
// with.
func (l *Log) finishLoad(r *recovery) error {
	// Rolled segments a crash left unsealed, and those Recover rebuilt
	// indexes for, are sealed (indexes trimmed and synced).
	for _, s := range r.recovered {
		if s != l.segs[len(l.segs)-1] {
			if err := s.Seal(); err != nil {
				return fmt.Errorf("segment %d: seal: %w", s.Base(), err)
			}
		}
	}
	start := r.start
	if len(l.segs) == 0 {
		seg, err := segment.Create(l.dir, max(start, 0), l.segCfg)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, seg)
	}
	// A segment wholly below the start offset survives when a crash lost
	// its unlink; it is deleted now.
	for len(l.segs) > 1 && l.segs[0].NextOffset() <= start {
		if err := l.segs[0].Delete(); err != nil {
			return fmt.Errorf("segment %d: delete below the start offset: %w", l.segs[0].Base(), err)
		}
		l.segs = l.segs[1:]
	}
	l.active = l.segs[len(l.segs)-1]
	l.activeSince = l.cfg.Now()
	end := l.active.NextOffset()
	first := l.segs[0].Base()
	switch {
	case start < first:
		start = first
	case start > end:
		l.logger.Warn("log start offset past the recovered end", zap.Int64("start", start), zap.Int64("end", end))
		start = end
	}
	// After a clean shutdown the checkpoints read are durable (the
	// marker, written last, was synced after them): one that already
	// holds the value is not written again. Opening thousands of logs at
	// a start then costs one directory sync each (the marker's removal),
	// not five.
	//
	// A missing checkpoint is not written either when it would say what
	// its absence says: a missing start offset reads as the first
	// segment's base, and for a new log (no segment was there, end 0) a
	// missing recovery point reads as "rescan from the first segment",
	// which is nothing. Creating a topic of thousands of partitions then
	// costs no checkpoint syncs per partition. (An unreadable one is
	// written again.)
	fresh := len(r.bases) == 0 && end == 0
	if (r.marker && start == r.start) || (r.start < 0 && start == l.segs[0].Base() && !l.hasFile(startOffsetFile)) {
		l.start.Store(start)
	} else if err := l.setStart(start); err != nil {
		return err
	}
	l.end.Store(end)
	l.lastEpoch = r.lastEpoch
	l.epoch.Store(max(r.lastEpoch, 0))
	if err := l.loadEpochs(); err != nil {
		return err
	}

	// Everything is synced now (scanned segments above, the rest before
	// the recovery point), so the recovery point moves to the end.
	if !(r.marker && r.recoveryPoint == end) && !(fresh && r.recoveryPoint < 0 && !l.hasFile(recoveryPointFile)) {
		if err := l.rpFile.WriteInt64(end); err != nil {
			return err
		}
	}
	l.rpWritten = end
	if r.markSet && !r.markHad && !l.recoveryTruncated {
		if err := ClearRecoveryTruncated(l.fs, l.dir); err != nil {
			return err
		}
	}
	if r.marker {
		if err := NewCheckpoint(l.fs, filepath.Join(l.dir, cleanShutdownFile)).Remove(); err != nil {
			return fmt.Errorf("clean-shutdown marker: %w", err)
		}
	}
	return nil
}

// markRecovery writes the recovery mark, durably, before recovery may cut
// the log.
func (l *Log) markRecovery(r *recovery) error {
	if r.markSet {
		return nil
	}
	if err := l.writeMarker(recoveryMarkFile); err != nil {
		return err
	}
	r.markSet = true
	return nil
}

// tornTail reports whether a segment opened without a scan has bytes past
// its last whole batch, which only an unclean stop leaves: it is then
// scanned even though the recovery point or the marker said otherwise.
func (l *Log) tornTail(s *segment.Segment) bool {
	st, err := l.fs.Stat(segment.LogPath(l.dir, s.Base()))
	return err != nil || st.Size() != s.Size()
}

// readCheckpoint reads an offset checkpoint, -1 when it is missing or
// damaged (with a warning: recovery then assumes the worst).
func (l *Log) readCheckpoint(c *Checkpoint, what string) int64 {
	v, err := c.ReadInt64()
	switch {
	case err == nil && v >= 0:
		return v
	case errors.Is(err, os.ErrNotExist):
		return -1
	}
	l.logger.Warn("checkpoint unreadable, ignored", zap.String("checkpoint", what), zap.Int64("value", v), zap.Error(err))
	return -1
}

// dropSegments removes the files of segments recovery cannot keep.
func (l *Log) dropSegments(bases []int64, why error) {
	l.recoveryTruncated = true
	for _, b := range bases {
		l.logger.Warn("segment dropped by recovery", zap.Int64("segment", b), zap.NamedError("reason", why))
		for _, p := range []string{segment.LogPath(l.dir, b), segment.IndexPath(l.dir, b), segment.TimeIndexPath(l.dir, b)} {
			if err := l.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				l.logger.Warn("remove segment file", zap.String("path", p), zap.Error(err))
			}
		}
	}
	if err := vfs.SyncDir(l.fs, l.dir); err != nil {
		l.logger.Warn("sync dir after dropping segments", zap.Error(err))
	}
}

// listSegments returns the base offsets of the segment log files in dir,
// in order.
func listSegments(fs vfs.FS, dir string) ([]int64, error) {
	entries, err := fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		if b, ok := segment.ParseBase(e.Name()); ok {
			bases = append(bases, b)
		}
	}
	slices.Sort(bases)
	return bases, nil
}
