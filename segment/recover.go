package segment

import (
	"fmt"
	"math"

	"github.com/sluicemq/sluice/record"
)

// RecoverResult says what Recover kept and what it dropped.
type RecoverResult struct {
	NextOffset     int64 // offset after the last valid batch
	LastEpoch      int32 // leader epoch of the last valid batch, -1 if none
	ValidBytes     int64 // bytes kept
	TruncatedBytes int64 // bytes dropped from the tail (0 = clean)
	// Reason is why the scan stopped before the end of the file, nil if it
	// reached it: a *record.CorruptError (errors.As), or an error wrapping
	// ErrNotContiguous or ErrEpochDecreased.
	Reason error
}

// Recover checks the whole log after an unclean stop (R6): from position 0,
// every batch must pass record.ParseHeader (bounded by the bytes left in the
// file) and VerifyCRC, have the base offset that follows the previous batch
// (Base() for the first), and a leader epoch no lower than the previous
// batch's (minEpoch for the first: the last epoch of the segment before).
// The file is truncated and synced at the first batch that fails, both
// indexes are rebuilt, and the returned error is for I/O failures only.
// Views made before Recover are waited for, as by TruncateTo.
func (s *Segment) Recover(minEpoch int32) (RecoverResult, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	fail := func(err error) (RecoverResult, error) {
		return RecoverResult{}, fmt.Errorf("segment %d: recover: %w", s.base, err)
	}
	if s.cur.Load() == nil {
		return fail(ErrClosed)
	}
	if err := s.mapIndexes(); err != nil {
		return fail(err)
	}
	if err := s.quiesce(0, s.base); err != nil {
		return fail(err)
	}
	st, err := s.log.Stat()
	if err != nil {
		return fail(err)
	}
	fileLen := st.Size()
	m := s.cur.Load()
	if fileLen > int64(len(m.mm)) {
		nm, err := s.mapLog(fileLen)
		if err != nil {
			return fail(err)
		}
		s.swap(nm)
		m = nm
	}
	if err := s.idx.reset(); err != nil {
		return fail(err)
	}
	if err := s.tidx.reset(); err != nil {
		return fail(err)
	}
	s.resetWriterState()
	v := verifier{minEpoch: minEpoch, last: -1}
	pos, next, reason := s.scan(m.mm, 0, fileLen, s.base, &v)
	if pos < fileLen {
		if err := s.log.Truncate(pos); err != nil {
			return fail(err)
		}
		if err := s.log.SyncData(); err != nil {
			return fail(fmt.Errorf("sync: %w", err))
		}
	}
	s.logFileLen = pos
	s.setFirstTS(m.mm, pos)
	s.tailErr = nil
	s.publish(pos, next)
	return RecoverResult{
		NextOffset:     next,
		LastEpoch:      v.last,
		ValidBytes:     pos,
		TruncatedBytes: fileLen - pos,
		Reason:         reason,
	}, nil
}

// verifier carries Recover's extra checks through scan.
type verifier struct {
	minEpoch int32 // lowest acceptable epoch for the next batch
	last     int32 // epoch of the last batch accepted, -1 before any
}

// scan walks the batches in mm[pos:end], the first of which must have base
// offset expect, indexing each one as Append does. It stops at the first
// batch that fails a check and returns the position and next offset after
// the last good batch, and why it stopped (nil at end). v adds the CRC and
// epoch checks of Recover.
func (s *Segment) scan(mm []byte, pos, end, expect int64, v *verifier) (int64, int64, error) {
	for pos < end {
		b, err := record.ParseHeader(mm[pos:end], 0)
		if err == nil && v != nil {
			err = b.VerifyCRC()
		}
		if err == nil && b.LastOffsetDelta() < 0 {
			err = &record.CorruptError{Check: record.CheckOffsetDelta, Detail: fmt.Sprintf("lastOffsetDelta %d", b.LastOffsetDelta())}
		}
		if err == nil && b.BaseOffset() != expect {
			err = fmt.Errorf("base offset %d, want %d: %w", b.BaseOffset(), expect, ErrNotContiguous)
		}
		if err == nil && b.LastOffset()-s.base > math.MaxUint32 {
			err = fmt.Errorf("last offset %d beyond a 32-bit relative offset: %w", b.LastOffset(), ErrFull)
		}
		if err == nil && v != nil && b.LeaderEpoch() < v.minEpoch {
			err = fmt.Errorf("leader epoch %d after %d: %w", b.LeaderEpoch(), v.minEpoch, ErrEpochDecreased)
		}
		if err != nil {
			return pos, expect, s.corruptAt(pos, err)
		}
		s.indexBatch(pos, b)
		if v != nil {
			v.minEpoch, v.last = b.LeaderEpoch(), b.LeaderEpoch()
		}
		expect = b.NextOffset()
		pos += int64(len(b))
	}
	return pos, expect, nil
}

func (s *Segment) resetWriterState() {
	s.maxTS.Store(-1)
	s.firstTS.Store(-1)
	s.maxTSRel = 0
	s.sinceIndex = 0
}

func (s *Segment) setFirstTS(mm []byte, size int64) {
	s.firstTS.Store(-1)
	if size > 0 {
		if b, err := batchAt(mm, 0, size); err == nil {
			s.firstTS.Store(b.MaxTimestamp())
		}
	}
}

// resume rebuilds the writer state from the indexes and scans the batches
// after the last offset-index entry up to end: what Open and TruncateTo need
// to know the next offset, the timestamps and where the next index entry
// goes. It trusts the indexes (checked by the caller).
func (s *Segment) resume(mm []byte, end int64) (int64, int64, error) {
	s.resetWriterState()
	from, expect := int64(0), s.base
	if n := s.idx.n.Load(); n > 0 {
		rel, p := offsetAt(s.idx.mm(), n-1)
		from, expect = int64(p), s.base+int64(rel)
		first, err := batchAt(mm, 0, end)
		if err != nil {
			return 0, s.base, s.corruptAt(0, err)
		}
		// The running max before the last index point is the larger of the
		// first batch's and the last time entry's timestamp.
		s.maxTS.Store(first.MaxTimestamp())
		if tn := s.tidx.n.Load(); tn > 0 {
			if ts, rel := timeAt(s.tidx.mm(), tn-1); ts > first.MaxTimestamp() {
				s.maxTS.Store(ts)
				s.maxTSRel = rel
			}
		}
	}
	pos, next, err := s.scan(mm, from, end, expect, nil)
	s.setFirstTS(mm, pos)
	return pos, next, err
}

// load finds the state of an opened segment: indexes checked (or rebuilt),
// then the tail scanned.
func (s *Segment) load(m *mapping) error {
	end := s.logFileLen
	if s.idx.missing || s.tidx.missing || !(s.idx.countEntries() && s.tidx.countEntries() && s.indexesSane(m.mm, end)) {
		if err := s.idx.reset(); err != nil {
			return err
		}
		if err := s.tidx.reset(); err != nil {
			return err
		}
	}
	pos, next, err := s.resume(m.mm, end)
	s.tailErr = err
	s.logFileLen = max(s.logFileLen, pos)
	s.publish(pos, next)
	return nil
}

// indexesSane is Open's check of the index hints (R7): entries strictly
// increasing in both fields, never zero, positions inside the log, the last
// offset entry at a batch with that offset, and no time entry past the last
// offset entry (time entries are written at offset-index points).
func (s *Segment) indexesSane(mm []byte, end int64) bool {
	var prevRel, prevPos uint32
	n := s.idx.n.Load()
	for i := range n {
		rel, pos := offsetAt(s.idx.mm(), i)
		if rel <= prevRel || pos <= prevPos || int64(pos) >= end {
			return false
		}
		prevRel, prevPos = rel, pos
	}
	if n > 0 {
		b, err := batchAt(mm, int64(prevPos), end)
		if err != nil || b.BaseOffset() != s.base+int64(prevRel) {
			return false
		}
	}
	lastOffsetRel := prevRel
	prevRel = 0
	prevTS := int64(math.MinInt64)
	for i := range s.tidx.n.Load() {
		ts, rel := timeAt(s.tidx.mm(), i)
		if rel <= prevRel || ts <= prevTS || rel > lastOffsetRel {
			return false
		}
		prevRel, prevTS = rel, ts
	}
	return true
}
