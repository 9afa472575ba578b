package segment

import (
	"sync"
	"testing"
)

// sealedSegment makes a segment of n batches in a new directory and seals
// it; it is closed at the end of the test.
func sealedSegment(t *testing.T, mmapAppend bool, n int) (string, *Segment, *model) {
	t.Helper()
	dir := t.TempDir()
	s := mustCreate(t, dir, 0, testConfig(mmapAppend))
	t.Cleanup(func() { s.Close() })
	m := &model{base: 0}
	fill(t, s, m, specsN(n)...)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	return dir, s, m
}

// An inactive segment's index files are unmapped once they went unread
// from one UnmapIdleIndexes to the next, and mapped again by the next
// read or write, with the same answers (issue 13 item 6). A read since the
// last call keeps them; so does a reader in progress.
func TestIdleIndexesUnmapped(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			dir, s, m := sealedSegment(t, mode.mmap, 40)
			if got := mappedUnder(t, dir); got != 3 {
				t.Fatalf("sealed segment: %d files mapped, want 3", got)
			}
			read := func() { // both indexes
				t.Helper()
				check(t, s, m)
				if _, ok := s.FindTimestamp(0); !ok {
					t.Fatal("FindTimestamp found nothing")
				}
			}
			unmap := func(want int) {
				t.Helper()
				n, err := s.UnmapIdleIndexes()
				if err != nil || n != want {
					t.Fatalf("UnmapIdleIndexes = %d, %v; want %d", n, err, want)
				}
			}
			read()
			unmap(0) // read since the last call (none yet)
			unmap(2) // idle for a whole period
			if got := mappedUnder(t, dir); got != 1 {
				t.Fatalf("idle segment: %d files mapped, want 1 (the log)", got)
			}
			unmap(0) // nothing left to unmap
			read()
			if got := mappedUnder(t, dir); got != 3 {
				t.Fatalf("after reads: %d files mapped, want 3", got)
			}
			unmap(0) // just read

			// A reader in the middle of a lookup keeps the mapping.
			read()
			unmap(0)
			ix := s.idx.acquire()
			rel, pos := offsetAt(ix, 0)
			s.idx.touched.Store(false) // as if read before the last call
			if n, err := s.UnmapIdleIndexes(); err != nil || n != 1 {
				t.Fatalf("with a reader on the offset index: unmapped %d (%v), want 1 (the time index)", n, err)
			}
			if r, p := offsetAt(ix, 0); r != rel || p != pos { // faults if unmapped
				t.Fatalf("the reader's mapping changed: entry 0 (%d, %d), was (%d, %d)", r, p, rel, pos)
			}
			s.idx.release()

			// The writer maps them again to truncate, then appends.
			unmap(1)
			truncateAndAppend(t, s, m)
		})
	}
}

// Lookups racing with UnmapIdleIndexes always find the right position:
// an index is never unmapped under a reader (run with -race; a read of an
// unmapped page would fault).
func TestIdleUnmapRacesReaders(t *testing.T) {
	_, s, m := sealedSegment(t, false, 60)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := i % len(m.batches)
				if pos, err := s.FindOffset(m.batches[k].LastOffset()); err != nil || pos != m.pos[k] {
					t.Errorf("FindOffset(%d) = %d, %v; want %d", m.batches[k].LastOffset(), pos, err, m.pos[k])
					return
				}
				s.FindTimestamp(int64(i % 400))
			}
		}()
	}
	unmapped := 0
	for range 2000 {
		s.idx.touched.Store(false) // as if idle: unmap whenever no reader is inside
		s.tidx.touched.Store(false)
		n, err := s.UnmapIdleIndexes()
		if err != nil {
			t.Fatal(err)
		}
		unmapped += n
	}
	close(stop)
	wg.Wait()
	t.Logf("%d index unmaps while 3 readers looked up", unmapped)
	if unmapped == 0 {
		t.Error("nothing was unmapped: the test raced nothing")
	}
}
