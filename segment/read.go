package segment

import (
	"fmt"

	"github.com/sluicemq/sluice/record"
)

// Read returns whole batches starting with the batch that contains offset,
// stopping before the first batch whose base offset is >= maxOffset and
// within maxBytes — but at least one whole batch if any qualifies, even one
// larger than maxBytes, so a consumer always makes progress. offset ==
// NextOffset(), or a first batch at or past maxOffset, gives an empty View.
// It returns ErrOffsetOutOfRange when offset < Base() or > NextOffset(), and
// ErrClosed after Close or Delete. Release the View when done with it.
func (s *Segment) Read(offset, maxOffset int64, maxBytes int) (View, error) {
	m, err := s.acquire()
	if err != nil {
		return View{}, err
	}
	pos, n, err := s.readRange(m.mm, offset, maxOffset, maxBytes)
	if err != nil || n == 0 {
		m.release()
		return View{}, err
	}
	return View{m: m, pos: pos, n: n}, nil
}

// readRange finds the bytes Read returns. The caller holds a reference on
// the mapping mm.
func (s *Segment) readRange(mm []byte, offset, maxOffset int64, maxBytes int) (pos int64, n int, err error) {
	next := s.next.Load()
	size := s.size.Load()
	if offset < s.base || offset > next {
		return 0, 0, s.outOfRange(offset, next)
	}
	pos, err = s.find(mm, offset, size)
	if err != nil {
		return 0, 0, err
	}
	end := pos
	for end < size {
		b, err := batchAt(mm, end, size)
		if err != nil {
			return 0, 0, s.corruptAt(end, err)
		}
		if b.BaseOffset() >= maxOffset || end > pos && end+int64(len(b))-pos > int64(maxBytes) {
			break
		}
		end += int64(len(b))
	}
	return pos, int(end - pos), nil
}

// FindOffset returns the file position of the batch that contains offset;
// for offset == NextOffset() it returns Size(), where that offset's batch
// would go.
func (s *Segment) FindOffset(offset int64) (pos int64, err error) {
	m, err := s.acquire()
	if err != nil {
		return 0, err
	}
	defer m.release()
	next := s.next.Load()
	if offset < s.base || offset > next {
		return 0, s.outOfRange(offset, next)
	}
	return s.find(m.mm, offset, s.size.Load())
}

// FindTimestamp returns the base offset of the first batch whose
// maxTimestamp is >= ts; ok is false when there is none (or the segment is
// closed).
func (s *Segment) FindTimestamp(ts int64) (offset int64, ok bool) {
	m, err := s.acquire()
	if err != nil {
		return 0, false
	}
	defer m.release()
	next := s.next.Load()
	size := s.size.Load()
	if s.maxTS.Load() < ts || size == 0 {
		return 0, false
	}
	// The last time entry with T < ts: no batch before its relative offset
	// reaches ts. Entries are increasing in both fields, so the predicate
	// holds on a prefix.
	tm := s.tidx.acquire()
	defer s.tidx.release()
	lo, hi := int64(0), s.tidx.n.Load()
	if tm == nil {
		hi = 0 // the index could not be mapped: scan from the start
	}
	for lo < hi {
		mid := int64(uint64(lo+hi) >> 1)
		t, rel := timeAt(tm, mid)
		if t < ts && int64(rel) < next-s.base {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	start := s.base
	if lo > 0 {
		_, rel := timeAt(tm, lo-1)
		start += int64(rel)
	}
	pos, err := s.find(m.mm, start, size)
	if err != nil {
		return 0, false
	}
	for pos < size {
		b, err := batchAt(m.mm, pos, size)
		if err != nil {
			return 0, false
		}
		if b.MaxTimestamp() >= ts {
			return b.BaseOffset(), true
		}
		pos += int64(len(b))
	}
	return 0, false
}

// find returns the position of the batch containing offset (the first whose
// last offset is >= offset), or size if there is none: the offset index
// gives a starting point, then batch headers are read forward.
func (s *Segment) find(mm []byte, offset, size int64) (int64, error) {
	pos := s.lookup(offset-s.base, size)
	for pos < size {
		b, err := batchAt(mm, pos, size)
		if err != nil {
			return 0, s.corruptAt(pos, err)
		}
		if b.LastOffset() >= offset {
			return pos, nil
		}
		pos += int64(len(b))
	}
	return size, nil
}

// lookup returns the position of the last offset-index entry at or below
// the relative offset rel and inside size (a reader's size may trail the
// published entries), or 0.
func (s *Segment) lookup(rel, size int64) int64 {
	im := s.idx.acquire()
	defer s.idx.release()
	if im == nil {
		return 0 // the index could not be mapped: a hint, so scan
	}
	lo, hi := int64(0), s.idx.n.Load()
	for lo < hi {
		mid := int64(uint64(lo+hi) >> 1)
		r, p := offsetAt(im, mid)
		if int64(r) <= rel && int64(p) <= size {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0
	}
	_, p := offsetAt(im, lo-1)
	return int64(p)
}

// batchAt returns the whole batch at pos, checked against size. Bytes below
// the published size were validated on append, so an error here means the
// file changed under us or an index hint is wrong.
func batchAt(mm []byte, pos, size int64) (record.Batch, error) {
	return record.ParseHeader(mm[pos:size], 0)
}

func (s *Segment) outOfRange(offset, next int64) error {
	return fmt.Errorf("segment %d: offset %d not in [%d, %d]: %w", s.base, offset, s.base, next, ErrOffsetOutOfRange)
}

func (s *Segment) corruptAt(pos int64, err error) error {
	return fmt.Errorf("segment %d: batch at position %d: %w", s.base, pos, err)
}

// TruncateTo removes every batch whose last offset is >= offset, so that
// NextOffset() <= offset afterwards, with their index entries, and syncs the
// log file. It waits until no View made before it is still held (R8), never
// truncating under a reader. A sealed segment becomes appendable again, and
// so does one whose torn tail Open found (the tail is cut with the rest).
func (s *Segment) TruncateTo(offset int64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	m := s.cur.Load()
	if m == nil {
		return fmt.Errorf("segment %d: truncate: %w", s.base, ErrClosed)
	}
	if err := s.mapIndexes(); err != nil {
		return fmt.Errorf("segment %d: truncate: %w", s.base, err)
	}
	if offset >= s.next.Load() {
		return nil
	}
	size := s.size.Load()
	pos, err := s.find(m.mm, max(offset, s.base), size)
	if err != nil {
		return fmt.Errorf("segment %d: truncate to %d: %w", s.base, offset, err)
	}
	next := s.base
	if pos < size {
		b, err := batchAt(m.mm, pos, size)
		if err != nil {
			return s.corruptAt(pos, err)
		}
		next = b.BaseOffset()
	}
	if err := s.quiesce(pos, next); err != nil {
		return fmt.Errorf("segment %d: truncate to %d: %w", s.base, offset, err)
	}
	if err := s.log.Truncate(pos); err != nil {
		return fmt.Errorf("segment %d: truncate to %d: %w", s.base, offset, err)
	}
	s.logFileLen = pos
	if err := s.log.SyncData(); err != nil {
		return fmt.Errorf("segment %d: truncate to %d: sync: %w", s.base, offset, err)
	}
	m = s.cur.Load()
	end, next2, err := s.resume(m.mm, pos)
	if err != nil {
		return fmt.Errorf("segment %d: truncate to %d: rescan: %w", s.base, offset, err)
	}
	if end != pos || next2 != next {
		return fmt.Errorf("segment %d: truncate to %d: rescan ended at position %d, offset %d; want %d, %d", s.base, offset, end, next2, pos, next)
	}
	// Whatever Open found past the old end is gone with the file's tail.
	s.tailErr = nil
	s.sealed = false
	return nil
}

// quiesce cuts the published state down to (size, next) and the index
// entries with it, then replaces the mapping and waits until every reader of
// the old mappings is gone. Afterwards no reader can look at anything past
// size, and the removed index entries can be cleared. Writer only.
func (s *Segment) quiesce(size, next int64) error {
	keepIdx := s.countEntries(s.idx, func(i int64) bool {
		_, p := offsetAt(s.idx.mm(), i)
		return int64(p) < size
	})
	var lastRel uint32
	if keepIdx > 0 {
		lastRel, _ = offsetAt(s.idx.mm(), keepIdx-1)
	}
	keepT := s.countEntries(s.tidx, func(i int64) bool {
		_, rel := timeAt(s.tidx.mm(), i)
		return keepIdx > 0 && rel <= lastRel
	})
	s.next.Store(next)
	s.size.Store(size)
	if size == 0 {
		s.firstTS.Store(-1)
	}
	oldIdx, oldT := s.idx.n.Swap(keepIdx), s.tidx.n.Swap(keepT)
	cur := s.cur.Load()
	nm, err := s.mapLog(int64(len(cur.mm)))
	if err != nil {
		return err
	}
	s.swap(nm)
	s.waitRetired()
	clear(s.idx.mm()[keepIdx*offsetEntrySize : oldIdx*offsetEntrySize])
	clear(s.tidx.mm()[keepT*timeEntrySize : oldT*timeEntrySize])
	return nil
}

// countEntries returns how many leading entries of ix satisfy keep, which
// holds on a prefix.
func (s *Segment) countEntries(ix *index, keep func(i int64) bool) int64 {
	lo, hi := int64(0), ix.n.Load()
	for lo < hi {
		mid := int64(uint64(lo+hi) >> 1)
		if keep(mid) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
