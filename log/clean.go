package log

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// Compaction (cleanup.policy=compact): Clean rewrites the log's closed
// segments keeping, for each key, only the latest record, with Kafka's
// semantics, which clients depend on:
//
//   - Offsets never change: a rewritten batch keeps its header (base
//     offset, lastOffsetDelta, producer id, epoch and base sequence,
//     leader epoch, timestamps) and only loses records, so gaps appear
//     between the offsets of the records that remain. A run of batches
//     that lose every record becomes one empty batch covering their
//     offsets (record.AppendGap): a segment's batches still follow each
//     other offset by offset, which the segment and recovery check (R6).
//   - The active segment, segments not yet synced, and segments holding a
//     record younger than MinCompactionLag are never cleaned.
//   - A record without a key is removed (Kafka does the same).
//   - A tombstone (null value) is removed DeleteRetention after its
//     segment was first cleaned, not before, so a consumer that reads
//     within that time sees the delete.
//   - Each idempotent producer's last batch in the log is kept, as an
//     empty batch if all its records are superseded, so the producer's
//     sequence state survives compaction (R13) — while the producer is
//     active (CleanOptions.ActiveProducer).
//   - Transactional and control batches are kept whole and never enter
//     the key map: sluice has no transactions, and keeping them loses
//     nothing.
//
// A pass builds a key map (keyMap: 128-bit key hash → latest offset,
// bounded by CleanOptions.KeyMapBytes) from the dirty part of the log —
// from the first dirty offset to the first uncleanable one, or less when
// the map fills, in which case the next pass goes on from there — then
// rewrites every segment from the first up to the end of the map's range,
// dropping each record whose key has a later offset in the map.
//
// Crash safety: a segment that changes is written whole into the
// directory ".cleaned" (the log file, then its indexes, all synced);
// under the append lock that directory is renamed to ".swap" and the
// directory synced — the commit point — and then each file is renamed
// over the old one. Open finishes a swap it finds (".swap") and discards
// a half-written clean (".cleaned"), so a crash at any point leaves the
// old segments or the new ones, never a mix or a loss.
//
// Readers (R8): the old segments stay mapped for Views taken before the
// swap (their files are renamed over, not truncated) and are closed once
// those Views are released; a reader that looks a segment up after the
// swap gets the new one.

// Directories of a clean in progress inside a log directory.
const (
	cleanedDir = ".cleaned"
	swapDir    = ".swap"
)

// DefaultKeyMapBytes is the memory of a cleaner's key map when
// CleanOptions.KeyMapBytes is zero: about 700,000 keys per pass.
const DefaultKeyMapBytes = 16 << 20

// ErrNotCompacted is returned by Clean on a log whose CleanupPolicy does
// not include compaction.
var ErrNotCompacted = errors.New("log is not compacted (cleanup policy)")

// ErrKeyMapTooSmall is returned by Clean when one batch has more records
// than the key map can hold.
var ErrKeyMapTooSmall = errors.New("cleaner key map too small for one batch")

// CleanOptions configure Clean.
type CleanOptions struct {
	// KeyMapBytes bounds the key map of one pass (24 bytes a key, filled
	// to 75%). Default DefaultKeyMapBytes.
	KeyMapBytes int
	// Limits bound the decompression of batches read; zero fields take
	// record's defaults.
	Limits record.Limits
	// ActiveProducer, if set, says whether a producer id is still active
	// (the owner's idempotent-producer state has not expired it): only an
	// active producer's last batch is kept, as Kafka keeps the last batch
	// of the producers its producer state still holds. Nil keeps every
	// producer's last batch.
	ActiveProducer func(id int64) bool
}

// CleanResult says what Clean did.
type CleanResult struct {
	Passes      int   // key-map passes
	Segments    int   // segments rewritten
	DirtyBytes  int64 // bytes of dirty log covered by the key maps
	BytesBefore int64 // size of the segments scanned for rewriting
	BytesAfter  int64 // their size after
	Removed     int64 // records removed
	FirstDirty  int64 // the first dirty offset after the clean
}

// CleanerStatus is the cleaner's view of a log, for choosing what to clean
// and for operators.
type CleanerStatus struct {
	Compact      bool    // the policy includes compaction
	FirstDirty   int64   // offsets below it are clean
	CleanableEnd int64   // the first offset the cleaner may not touch yet
	CleanBytes   int64   // bytes of cleaned segments
	DirtyBytes   int64   // bytes of cleanable segments not yet cleaned
	DirtyRatio   float64 // DirtyBytes / (CleanBytes + DirtyBytes)
	// Due: the dirty ratio reached MinCleanableDirtyRatio, or the oldest
	// dirty record is older than MaxCompactionLag, or a tombstone is past
	// DeleteRetention.
	Due       bool
	LastClean time.Time // end of the last Clean in this process; zero if none
}

// cleanPlan is a snapshot of what a pass may clean.
type cleanPlan struct {
	segs       []*segment.Segment // the log's segments, oldest first
	firstDirty int64
	dirtyIdx   int // index of the segment holding firstDirty
	endIdx     int // index of the first segment that may not be cleaned
	cleanBytes int64
	dirtyBytes int64
	tombsDue   bool
}

// plan looks at the segments (under segMu) and the cleaner state.
func (l *Log) plan(st *cleanerState, nowMs int64) cleanPlan {
	l.segMu.RLock()
	segs := slices.Clone(l.segs)
	l.segMu.RUnlock()
	p := cleanPlan{segs: segs}
	if len(segs) == 0 {
		return p
	}
	synced := l.commit.synced()
	minLag := l.cfg.MinCompactionLag.Milliseconds()
	p.endIdx = len(segs) - 1
	for i, s := range segs[:len(segs)-1] {
		if s.NextOffset() > synced || minLag > 0 && s.MaxTimestamp() > nowMs-minLag {
			p.endIdx = i
			break
		}
	}
	end := segs[p.endIdx].Base()
	p.firstDirty = min(max(st.firstDirty, segs[0].Base()), end)
	for p.dirtyIdx < p.endIdx && segs[p.dirtyIdx].NextOffset() <= p.firstDirty {
		p.cleanBytes += segs[p.dirtyIdx].Size()
		p.dirtyIdx++
	}
	for _, s := range segs[p.dirtyIdx:p.endIdx] {
		p.dirtyBytes += s.Size()
	}
	if dr := l.cfg.DeleteRetention; dr >= 0 {
		for _, c := range st.segs {
			if c.tombstones > 0 && c.base < end && nowMs >= c.firstCleanedMs+dr.Milliseconds() {
				p.tombsDue = true
			}
		}
	}
	return p
}

// CleanerStatus reports the log's dirty ratio and whether it is due for
// cleaning.
func (l *Log) CleanerStatus() CleanerStatus {
	st := CleanerStatus{Compact: l.cfg.CleanupPolicy.Compact()}
	if !st.Compact || l.closedFlag.Load() {
		return st
	}
	l.cleanerMu.Lock()
	cs, last := l.cleaner, l.lastClean
	l.cleanerMu.Unlock()
	nowMs := l.cfg.Now().UnixMilli()
	p := l.plan(&cs, nowMs)
	if len(p.segs) == 0 {
		return st
	}
	st.FirstDirty, st.CleanableEnd = p.firstDirty, p.segs[p.endIdx].Base()
	st.CleanBytes, st.DirtyBytes, st.LastClean = p.cleanBytes, p.dirtyBytes, last
	if total := p.cleanBytes + p.dirtyBytes; total > 0 {
		st.DirtyRatio = float64(p.dirtyBytes) / float64(total)
	}
	lagged := false
	if ml := l.cfg.MaxCompactionLag; ml >= 0 && p.dirtyIdx < p.endIdx {
		ts := p.segs[p.dirtyIdx].FirstTimestamp()
		lagged = ts >= 0 && nowMs-ts > ml.Milliseconds()
	}
	st.Due = p.dirtyBytes > 0 && (st.DirtyRatio >= l.cfg.MinCleanableDirtyRatio || lagged) || p.tombsDue
	return st
}

// Clean compacts the log (see the comment at the top of this file),
// in as many key-map passes as the dirty part needs, and returns what it
// did. One Clean runs at a time per log; appends and reads go on
// meanwhile, blocked only for the swap. A Clean interrupted by ctx, Close
// or a truncation leaves the log as it was, or with some passes done.
func (l *Log) Clean(ctx context.Context, opts CleanOptions) (CleanResult, error) {
	var res CleanResult
	if !l.cfg.CleanupPolicy.Compact() {
		return res, fmt.Errorf("log %s: clean: %w", l.dir, ErrNotCompacted)
	}
	if opts.KeyMapBytes <= 0 {
		opts.KeyMapBytes = DefaultKeyMapBytes
	}
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	c := &cleaner{l: l, opts: opts, km: newKeyMap(opts.KeyMapBytes), filter: record.NewFilter(opts.Limits), res: &res}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if l.closedFlag.Load() || l.cleanStop.Load() {
			return res, ErrClosed
		}
		if err := l.commit.failed(); err != nil {
			return res, fmt.Errorf("log %s: clean: %w", l.dir, err) // offline (R5): nothing is swapped in
		}
		more, err := c.pass()
		if err != nil {
			return res, fmt.Errorf("log %s: clean: %w", l.dir, err)
		}
		if !more {
			break
		}
		c.km.reset()
	}
	l.cleanerMu.Lock()
	l.lastClean = l.cfg.Now()
	res.FirstDirty = l.cleaner.firstDirty
	l.cleanerMu.Unlock()
	return res, nil
}

// cleaner is one Clean's working state.
type cleaner struct {
	l      *Log
	opts   CleanOptions
	km     *keyMap
	filter *record.Filter
	res    *CleanResult
	last   map[int64]int64 // producer id → base offset of its last batch
	mapEnd int64           // offsets below it have been in a key map
	rdr    record.Reader
	// scratch holds a rewritten batch, gapBuf gap batches.
	scratch, gapBuf []byte
}

// pass runs one key-map pass and reports whether the dirty part goes on
// past what the map could hold.
func (c *cleaner) pass() (more bool, err error) {
	l := c.l
	l.mu.Lock()
	gen := l.truncGen
	l.mu.Unlock()
	l.cleanerMu.Lock()
	st := l.cleaner
	st.segs = slices.Clone(st.segs)
	l.cleanerMu.Unlock()
	now := l.cfg.Now()
	nowMs := now.UnixMilli()
	p := l.plan(&st, nowMs)
	if len(p.segs) == 0 || p.dirtyIdx >= p.endIdx && !p.tombsDue {
		return false, nil
	}
	c.res.Passes++
	mapEnd, full, err := c.buildMap(p)
	if err != nil {
		return false, err
	}
	if err := c.producerLastBatches(p.segs); err != nil {
		return false, err
	}
	// Segments to rewrite: every clean one, and the dirty ones the map
	// reaches into.
	k := p.dirtyIdx
	for k < p.endIdx && p.segs[k].Base() < mapEnd {
		k++
	}
	if k == 0 {
		return false, nil
	}
	c.mapEnd = mapEnd
	if err := l.fs.RemoveAll(filepath.Join(l.dir, cleanedDir)); err != nil {
		return false, err
	}
	if err := l.fs.MkdirAll(filepath.Join(l.dir, cleanedDir), directoryPerm); err != nil {
		return false, err
	}
	var olds [][]*segment.Segment
	next := cleanerState{firstDirty: mapEnd}
	for _, g := range l.groupSegments(p.segs[:k]) {
		changed, tombs, err := c.rewriteGroup(g, &st, nowMs)
		if err != nil {
			return false, err
		}
		if changed {
			olds = append(olds, g)
			// The members after the first are deleted by the swap:
			// recorded in .cleaned, so a swap finished by Open deletes
			// them too.
			for _, m := range g[1:] {
				if err := vfs.WriteFile(l.fs, filepath.Join(l.dir, cleanedDir, deletedName(m.Base())), nil); err != nil {
					return false, err
				}
			}
		}
		// The merged segment's tombstone clock is its youngest member's:
		// no tombstone goes before its time.
		e := cleanedSeg{base: g[0].Base(), firstCleanedMs: math.MinInt64, tombstones: tombs}
		for _, m := range g {
			prev, had := st.seg(m.Base())
			if !had {
				prev.firstCleanedMs = nowMs
			}
			e.firstCleanedMs = max(e.firstCleanedMs, prev.firstCleanedMs)
		}
		next.segs = append(next.segs, e)
	}
	if len(olds) > 0 {
		ok, err := l.swapCleaned(gen, olds)
		if err != nil {
			return false, err
		}
		if !ok {
			// A truncation or retention changed the log under the pass:
			// nothing was swapped; the next Clean starts over.
			l.logger.Info("clean abandoned: the log changed under it")
			return false, l.fs.RemoveAll(filepath.Join(l.dir, cleanedDir))
		}
		for _, g := range olds {
			c.res.Segments += len(g)
		}
	} else if err := l.fs.RemoveAll(filepath.Join(l.dir, cleanedDir)); err != nil {
		return false, err
	}
	// Segments past the rewritten ones keep their entries.
	for _, e := range st.segs {
		if e.base >= p.segs[k-1].NextOffset() && e.base < p.segs[p.endIdx].Base() {
			next.segs = append(next.segs, e)
		}
	}
	if err := l.saveCleanerState(gen, next); err != nil {
		return false, err
	}
	l.logger.Debug("log cleaned", zap.Int("segments", len(olds)), zap.Int64("first_dirty", mapEnd),
		zap.Int64("bytes_before", c.res.BytesBefore), zap.Int64("bytes_after", c.res.BytesAfter))
	return full, nil
}

// buildMap fills the key map from the dirty part of p, batch by batch,
// and returns the offset after the last batch it took and whether it
// stopped because the map was full.
func (c *cleaner) buildMap(p cleanPlan) (mapEnd int64, full bool, err error) {
	l := c.l
	mapEnd = p.firstDirty
	for _, s := range p.segs[p.dirtyIdx:p.endIdx] {
		v, err := s.Read(max(mapEnd, s.Base()), math.MaxInt64, math.MaxInt)
		if err != nil {
			return 0, false, fmt.Errorf("segment %d: %w", s.Base(), err)
		}
		for in := v.Bytes(); len(in) > 0; {
			b, rest, err := record.NextBatch(in, 0)
			if err != nil {
				v.Release()
				return 0, false, fmt.Errorf("segment %d: %w", s.Base(), err)
			}
			in = rest
			if l.cleanStop.Load() {
				v.Release()
				return 0, false, ErrClosed
			}
			if !c.km.room(int(b.RecordCount())) {
				v.Release()
				if mapEnd == p.firstDirty {
					return 0, false, fmt.Errorf("%w: %d records at offset %d, room for %d keys", ErrKeyMapTooSmall, b.RecordCount(), b.BaseOffset(), c.km.limit)
				}
				return mapEnd, true, nil
			}
			if a := b.Attributes(); !a.Control() && !a.Transactional() {
				if err := c.rdr.Reset(b); err != nil {
					v.Release()
					return 0, false, fmt.Errorf("segment %d: batch at %d: %w", s.Base(), b.BaseOffset(), err)
				}
				for c.rdr.Next() {
					if r := c.rdr.Record(); r.Key != nil {
						c.km.put(r.Key, r.Offset)
					}
				}
				if err := c.rdr.Err(); err != nil {
					v.Release()
					return 0, false, fmt.Errorf("segment %d: batch at %d: %w", s.Base(), b.BaseOffset(), err)
				}
			}
			mapEnd = b.NextOffset()
			c.res.DirtyBytes += int64(len(b))
		}
		v.Release()
		mapEnd = max(mapEnd, s.NextOffset())
	}
	return mapEnd, false, nil
}

// producerLastBatches finds each idempotent producer's last batch in the
// whole log, from the batch headers.
func (c *cleaner) producerLastBatches(segs []*segment.Segment) error {
	c.last = make(map[int64]int64)
	for _, s := range segs {
		v, err := s.Read(s.Base(), math.MaxInt64, math.MaxInt)
		if err != nil {
			return fmt.Errorf("segment %d: %w", s.Base(), err)
		}
		for in := v.Bytes(); len(in) > 0; {
			b, rest, err := record.NextBatch(in, 0)
			if err != nil {
				v.Release()
				return fmt.Errorf("segment %d: %w", s.Base(), err)
			}
			if id := b.ProducerID(); id >= 0 && (c.opts.ActiveProducer == nil || c.opts.ActiveProducer(id)) {
				c.last[id] = b.BaseOffset()
			}
			in = rest
		}
		v.Release()
	}
	return nil
}

// cleanedWriteChunk is the write buffer of a rewritten segment.
const cleanedWriteChunk = 1 << 20

// rewriteGroup filters a group of consecutive segments into one segment
// in the .cleaned directory, named by the first one's base. A single
// segment is written only from its first batch that changes on (the
// unchanged prefix copied then); one that does not change at all leaves
// no file and reports changed false. A group of several is always
// written: merging is a change. It returns how many tombstones the
// result keeps that a later pass may remove.
func (c *cleaner) rewriteGroup(g []*segment.Segment, st *cleanerState, nowMs int64) (changed bool, tombs uint32, err error) {
	l := c.l
	first, last := g[0], g[len(g)-1]
	w := &cleanedWriter{fs: l.fs, path: segment.LogPath(filepath.Join(l.dir, cleanedDir), first.Base())}
	defer w.close()
	if len(g) > 1 {
		if err := w.start(0); err != nil {
			return false, 0, err
		}
	}
	var inBytes int64
	for _, s := range g {
		prev, had := st.seg(s.Base())
		expired := had && l.cfg.DeleteRetention >= 0 && nowMs >= prev.firstCleanedMs+l.cfg.DeleteRetention.Milliseconds()
		n, t, err := c.rewriteInto(w, s, expired)
		if err != nil {
			return false, 0, err
		}
		inBytes += n
		tombs += t
	}
	if !w.started() {
		c.res.BytesAfter += inBytes
		return false, tombs, nil
	}
	if err := w.finish(); err != nil {
		return false, 0, err
	}
	c.res.BytesAfter += w.written
	// Opening the new segment builds its indexes from the batches (and
	// checks they chain); closing trims and syncs them.
	ns, err := segment.Open(filepath.Join(l.dir, cleanedDir), first.Base(), l.cleanedSegConfig())
	if err != nil {
		return false, 0, err
	}
	if ns.NextOffset() != last.NextOffset() || ns.Size() != w.written {
		ns.Close()
		return false, 0, fmt.Errorf("segment %d: cleaned copy ends at %d (%d bytes), want %d (%d bytes)", first.Base(), ns.NextOffset(), ns.Size(), last.NextOffset(), w.written)
	}
	if err := ns.Close(); err != nil {
		return false, 0, err
	}
	return true, tombs, nil
}

// rewriteInto filters one segment into w: from its first change on
// unless w has started already. tombstoneExpired says the segment's
// tombstones are past DeleteRetention. It returns the segment's size and
// how many tombstones a later pass may remove that it keeps.
func (c *cleaner) rewriteInto(w *cleanedWriter, s *segment.Segment, tombstoneExpired bool) (size int64, tombs uint32, err error) {
	l := c.l
	v, err := s.Read(s.Base(), math.MaxInt64, math.MaxInt)
	if err != nil {
		return 0, 0, fmt.Errorf("segment %d: %w", s.Base(), err)
	}
	defer v.Release()
	in := v.Bytes()
	c.res.BytesBefore += int64(len(in))
	w.in = in
	defer func() { w.in = nil }() // the View's bytes are not the writer's past this call
	keep := func(r *record.Record) bool {
		if r.Key == nil {
			c.res.Removed++
			return false
		}
		if off, ok := c.km.get(r.Key); ok && r.Offset < off {
			c.res.Removed++
			return false
		}
		if r.Value == nil {
			// Only a tombstone some key map has covered: the records it
			// deletes are gone with that map's pass.
			if tombstoneExpired && r.Offset < c.mapEnd {
				c.res.Removed++
				return false
			}
			if r.Offset < c.mapEnd {
				tombs++ // one a later pass may remove
			}
		}
		return true
	}
	var g gapRun
	for pos := 0; pos < len(in); {
		b, _, err := record.NextBatch(in[pos:], 0)
		if err != nil {
			return 0, 0, fmt.Errorf("segment %d: at %d: %w", s.Base(), pos, err)
		}
		if l.cleanStop.Load() {
			return 0, 0, ErrClosed
		}
		at := pos
		pos += len(b)
		lastOff, isProducer := c.last[b.ProducerID()]
		last := isProducer && lastOff == b.BaseOffset()
		a := b.Attributes()
		switch {
		case a.Control() || a.Transactional() || b.RecordCount() == 0 && last:
			// Kept whole.
		case b.RecordCount() == 0:
			if err := c.drop(w, &g, b, at); err != nil {
				return 0, 0, err
			}
			continue
		default:
			// A batch rewritten gets a new CRC: check the old one first,
			// so damage on disk is reported, never sealed in.
			if err := b.VerifyCRC(); err != nil {
				return 0, 0, fmt.Errorf("segment %d: batch at %d: %w", s.Base(), b.BaseOffset(), err)
			}
			var kept int
			c.scratch, kept, err = c.filter.Apply(c.scratch[:0], b, keep)
			if err != nil {
				return 0, 0, fmt.Errorf("segment %d: batch at %d: %w", s.Base(), b.BaseOffset(), err)
			}
			switch {
			case kept == int(b.RecordCount()):
				// Kept whole.
			case kept > 0:
				if err := c.replace(w, &g, at, c.scratch); err != nil {
					return 0, 0, err
				}
				continue
			case last:
				c.scratch = record.AppendEmpty(c.scratch[:0], b)
				if err := c.replace(w, &g, at, c.scratch); err != nil {
					return 0, 0, err
				}
				continue
			default:
				if err := c.drop(w, &g, b, at); err != nil {
					return 0, 0, err
				}
				continue
			}
		}
		if err := c.closeGap(w, &g); err != nil {
			return 0, 0, err
		}
		if w.started() {
			if err := w.write(b); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := c.closeGap(w, &g); err != nil {
		return 0, 0, err
	}
	return int64(len(in)), tombs, nil
}

// gapRun is a run of removed batches not yet written: it becomes one
// empty batch covering their offsets (record.AppendGap).
type gapRun struct {
	on         bool
	base, next int64
	epoch      int32
	maxTS      int64
	inStart    int  // input position of the run's first batch
	same       bool // the run is one gap batch that AppendGap would write again as is
}

// drop adds the removed batch b (at input position at) to the gap run.
func (c *cleaner) drop(w *cleanedWriter, g *gapRun, b record.Batch, at int) error {
	if g.on && b.LeaderEpoch() != g.epoch {
		// Epochs only grow in a log; one gap batch holds one epoch.
		if err := c.closeGap(w, g); err != nil {
			return err
		}
	}
	if !g.on {
		*g = gapRun{on: true, base: b.BaseOffset(), maxTS: b.MaxTimestamp(), inStart: at, same: isGapBatch(b)}
	} else {
		g.same = false
	}
	g.next, g.epoch, g.maxTS = b.NextOffset(), b.LeaderEpoch(), max(g.maxTS, b.MaxTimestamp())
	return nil
}

// isGapBatch reports whether b is exactly what AppendGap writes.
func isGapBatch(b record.Batch) bool {
	return len(b) == record.HeaderSize && b.RecordCount() == 0 && b.ProducerID() < 0 &&
		b.Attributes() == 0 && b.BaseTimestamp() == b.MaxTimestamp()
}

// closeGap writes the pending gap run, if any.
func (c *cleaner) closeGap(w *cleanedWriter, g *gapRun) error {
	if !g.on {
		return nil
	}
	g.on = false
	if g.same && !w.started() {
		return nil // unchanged so far
	}
	if err := w.start(g.inStart); err != nil {
		return err
	}
	c.gapBuf = c.gapBuf[:0]
	for base := g.base; base < g.next; {
		n := min(g.next-base, math.MaxInt32)
		c.gapBuf = record.AppendGap(c.gapBuf, base, base+n, g.epoch, g.maxTS)
		base += n
	}
	return w.write(c.gapBuf)
}

// replace writes nb in place of the input batch at input position at.
func (c *cleaner) replace(w *cleanedWriter, g *gapRun, at int, nb []byte) error {
	if err := c.closeGap(w, g); err != nil {
		return err
	}
	if err := w.start(at); err != nil {
		return err
	}
	return w.write(nb)
}

// cleanedWriter writes one rewritten segment's log file, created at the
// first change with the unchanged prefix of the input copied in.
type cleanedWriter struct {
	fs      vfs.FS
	path    string
	in      []byte
	f       vfs.File
	w       *bufio.Writer
	written int64
}

func (w *cleanedWriter) started() bool { return w.f != nil }

// start creates the file, if not yet, with in[:prefix].
func (w *cleanedWriter) start(prefix int) error {
	if w.f != nil {
		return nil
	}
	f, err := w.fs.OpenFile(w.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	w.f = f
	w.w = bufio.NewWriterSize(f, cleanedWriteChunk)
	return w.write(w.in[:prefix])
}

func (w *cleanedWriter) write(b []byte) error {
	n, err := w.w.Write(b)
	w.written += int64(n)
	if err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	return nil
}

// finish flushes and syncs the file.
func (w *cleanedWriter) finish() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", w.path, err)
	}
	return nil
}

func (w *cleanedWriter) close() {
	if w.f != nil {
		w.f.Close()
	}
}

// groupSegments splits segs (consecutive) into groups that one cleaned
// segment can hold, as Kafka's cleaner does: members whose sizes add up
// to at most SegmentBytes, whose offsets fit a segment's 32-bit relative
// offsets and whose index entries fit MaxIndexBytes. Cleaned segments
// shrink, so later cleans merge them and a compacted log does not keep
// one small segment (and its files and mappings) per segment ever
// rolled.
func (l *Log) groupSegments(segs []*segment.Segment) [][]*segment.Segment {
	var out [][]*segment.Segment
	maxEntries := int64(l.segCfg.MaxIndexBytes) / 12 // a time-index entry, the larger
	for i := 0; i < len(segs); {
		j, size := i+1, segs[i].Size()
		for j < len(segs) {
			n := size + segs[j].Size()
			if n > l.cfg.SegmentBytes || segs[j].NextOffset()-segs[i].Base() >= math.MaxUint32 ||
				n/int64(max(l.segCfg.IndexIntervalBytes, 1))+2 > maxEntries {
				break
			}
			size = n
			j++
		}
		out = append(out, segs[i:j])
		i = j
	}
	return out
}

// deletedName is the marker of a merged segment's member that the swap
// deletes: "<base>.deleted".
func deletedName(base int64) string {
	return strings.TrimSuffix(filepath.Base(segment.LogPath("", base)), ".log") + deletedSuffix
}

const deletedSuffix = ".deleted"

// cleanedSegConfig is the segment config of a rewritten segment: the
// log's, with room for any size (a rewritten batch may recompress a few
// bytes larger than it was).
func (l *Log) cleanedSegConfig() segment.Config {
	c := l.segCfg
	c.MaxLogBytes = math.MaxUint32
	return c
}
