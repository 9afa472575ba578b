package segment

import (
	"fmt"
	"sync/atomic"

	"github.com/tysonmote/gommap"

	"github.com/sluicemq/sluice/vfs"
)

// mapping is one memory mapping of the log file, reference counted. The
// segment holds one reference on its current mapping; every View and every
// lookup in progress holds another. When the writer replaces the mapping (a
// batch that does not fit, TruncateTo, Recover) or the segment is closed, the
// segment drops its reference and the old mapping lives on until its last
// reader lets go: only then is it unmapped (R8). A mapping whose count has
// reached zero is dead for good, so acquiring is a compare-and-swap that
// refuses zero.
type mapping struct {
	s    *Segment
	mm   gommap.MMap
	refs atomic.Int64
	done chan struct{} // closed once unmapped
}

func (m *mapping) tryAcquire() bool {
	for {
		r := m.refs.Load()
		if r <= 0 {
			return false
		}
		if m.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (m *mapping) release() {
	switch r := m.refs.Add(-1); {
	case r > 0:
		return
	case r < 0:
		panic("segment: mapping released more often than acquired (View released twice?)")
	}
	if err := m.mm.UnsafeUnmap(); err != nil {
		m.s.noteErr(fmt.Errorf("segment %d: unmap log: %w", m.s.base, err))
	}
	close(m.done)
	if m.s.live.Add(-1) == 0 {
		m.s.finalize()
	}
}

// mapLog maps the first length bytes of the log file (past EOF is fine: no
// reader touches bytes past the published size) as a new current-mapping
// candidate holding the segment's reference.
func (s *Segment) mapLog(length int64) (*mapping, error) {
	prot := gommap.PROT_READ
	if s.cfg.mmapAppend {
		prot |= gommap.PROT_WRITE
	}
	mm, err := mapFile(s.log, length, prot)
	if err != nil {
		return nil, fmt.Errorf("segment %d: map log (%d bytes): %w", s.base, length, err)
	}
	m := &mapping{s: s, mm: mm, done: make(chan struct{})}
	m.refs.Store(1)
	s.live.Add(1)
	return m, nil
}

// mapFile maps the first length bytes of f, shared, through its
// descriptor: the mapping stays valid after f is closed.
func mapFile(f vfs.File, length int64, prot gommap.ProtFlags) (gommap.MMap, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var mm gommap.MMap
	var merr error
	if err := rc.Control(func(fd uintptr) {
		mm, merr = gommap.MapRegion(fd, 0, length, prot, gommap.MAP_SHARED)
	}); err != nil {
		return nil, err
	}
	return mm, merr
}

// swap installs m (nil when closing) as the current mapping and drops the
// segment's reference on the old one, which stays mapped for its readers.
// Writer only.
func (s *Segment) swap(m *mapping) {
	old := s.cur.Swap(m)
	if old == nil {
		return
	}
	live := s.retired[:0]
	for _, r := range s.retired {
		select {
		case <-r.done:
		default:
			live = append(live, r)
		}
	}
	s.retired = append(live, old)
	old.release()
}

// waitRetired blocks until every replaced mapping has been released by its
// readers. Writer only.
func (s *Segment) waitRetired() {
	for _, r := range s.retired {
		<-r.done
	}
	clear(s.retired)
	s.retired = s.retired[:0]
}

// acquire takes a reference on the current mapping. A reader that loses the
// race with a swap finds the new mapping on the next load, because the swap
// happens before the old mapping's count can reach zero.
func (s *Segment) acquire() (*mapping, error) {
	for {
		m := s.cur.Load()
		if m == nil {
			return nil, fmt.Errorf("segment %d: %w", s.base, ErrClosed)
		}
		if m.tryAcquire() {
			return m, nil
		}
	}
}

// View is a reference-counted window on whole batches of one segment,
// returned by Read. The bytes stay mapped, and the file open, until Release,
// even if the segment is closed, deleted or truncated meanwhile (those wait
// or defer their work). A View is a small value: copying it does not take a
// reference, so release exactly one copy, exactly once. The zero View is
// empty and its Release is a no-op.
type View struct {
	m   *mapping
	pos int64
	n   int
}

// Len is the number of bytes in the view.
func (v View) Len() int { return v.n }

// Bytes returns the batches, back to back, straight from the mapping. They
// are valid until Release and must not be modified.
func (v View) Bytes() []byte {
	if v.m == nil {
		return nil
	}
	end := v.pos + int64(v.n)
	return v.m.mm[v.pos:end:end]
}

// File returns the log file and the position of the view's first byte,
// for sendfile(2) from its descriptor (File.SyscallConn). Both are valid
// until Release; the empty View returns nil.
func (v View) File() (f vfs.File, pos int64) {
	if v.m == nil {
		return nil, 0
	}
	return v.m.s.log, v.pos
}

// Release gives the view's reference back. Call it exactly once.
func (v View) Release() {
	if v.m != nil {
		v.m.release()
	}
}
