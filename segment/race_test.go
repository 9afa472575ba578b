package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/record"
)

func closingStarted(s *Segment) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.closing
}

func finished(s *Segment) bool {
	select {
	case <-s.finished:
		return true
	default:
		return false
	}
}

func TestCloseWaitsForViews(t *testing.T) {
	s := mustCreate(t, t.TempDir(), 0, testConfig(false))
	m := &model{}
	fill(t, s, m, specsN(20)...)
	v, err := s.Read(0, m.next(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released { // a failed check must not leave Close waiting
			v.Release()
		}
	}()
	want := bytes.Clone(v.Bytes())
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	poll.Until(t, 10*time.Second, "Close to start", func() bool { return closingStarted(s) })
	if _, err := s.Read(0, m.next(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close started: %v", err)
	}
	if finished(s) || s.live.Load() == 0 {
		t.Fatal("segment unmapped with a View outstanding")
	}
	// Still mapped: reading an unmapped page would kill the test binary.
	if !bytes.Equal(v.Bytes(), want) {
		t.Fatal("View bytes changed after Close")
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a View outstanding", err)
	default:
	}
	v.Release()
	released = true
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !finished(s) || s.live.Load() != 0 {
		t.Fatal("Close returned before unmapping")
	}
}

func TestDeleteDefersUnmap(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustCreate(t, dir, 0, testConfig(mode.mmap))
			m := &model{}
			fill(t, s, m, specsN(20)...)
			v, err := s.Read(m.batches[3].BaseOffset(), m.next(), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			want := m.bytes(3, 20)
			if err := s.Delete(); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{LogPath(dir, 0), IndexPath(dir, 0), TimeIndexPath(dir, 0)} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s after Delete: %v", p, err)
				}
			}
			if _, err := s.Read(0, m.next(), 1); !errors.Is(err, ErrClosed) {
				t.Fatalf("Read after Delete: %v", err)
			}
			if finished(s) {
				t.Fatal("Delete unmapped with a View outstanding")
			}
			if !bytes.Equal(v.Bytes(), want) {
				t.Fatal("View bytes changed after Delete")
			}
			// The descriptor sendfile(2) would use still reads the bytes.
			f, pos := v.File()
			got := make([]byte, v.Len())
			if err := pread(f, got, pos); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("pread of a deleted segment's View: %v", err)
			}
			if err := s.Delete(); err != nil {
				t.Fatalf("second Delete: %v", err)
			}
			v.Release()
			if !finished(s) {
				t.Fatal("last Release did not unmap and close")
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close after Delete: %v", err)
			}
		})
	}
}

func TestTruncateWaitsForViews(t *testing.T) {
	dir := t.TempDir()
	s := mustCreate(t, dir, 0, testConfig(false))
	defer s.Close()
	m := &model{}
	fill(t, s, m, specsN(30)...)
	v, err := s.Read(m.batches[25].BaseOffset(), m.next(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released { // a failed check must not leave TruncateTo waiting
			v.Release()
		}
	}()
	want := m.bytes(25, 30)
	cut := m.batches[10].BaseOffset()
	done := make(chan error, 1)
	go func() { done <- s.TruncateTo(cut) }()
	poll.Until(t, 10*time.Second, "TruncateTo to hide the tail", func() bool { return s.NextOffset() == cut })
	// New readers see the truncated segment at once ...
	if _, err := s.Read(m.batches[20].BaseOffset(), m.next(), 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Read past the truncation point: %v", err)
	}
	// ... but the file is not cut under the View.
	if got := fileSize(t, LogPath(dir, 0)); got != m.size() {
		t.Fatalf("log file cut to %d with a View outstanding", got)
	}
	if !bytes.Equal(v.Bytes(), want) {
		t.Fatal("View bytes changed during TruncateTo")
	}
	select {
	case err := <-done:
		t.Fatalf("TruncateTo returned (%v) with a View outstanding", err)
	default:
	}
	v.Release()
	released = true
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m.truncate(cut)
	if got := fileSize(t, LogPath(dir, 0)); got != m.size() {
		t.Fatalf("log file %d bytes after TruncateTo, want %d", got, m.size())
	}
	check(t, s, m)
}

// TestReadersRace runs readers that read and check Views without pause,
// and a syncer, while the writer appends, truncates, and finally closes or
// deletes the segment. Run under -race; a View on an unmapped or truncated page would
// kill the process with SIGSEGV or SIGBUS.
func TestReadersRace(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	for _, mode := range modes {
		for _, end := range []string{"close", "delete"} {
			t.Run(mode.name+"/"+end, func(t *testing.T) {
				s := mustCreate(t, t.TempDir(), 0, testConfig(mode.mmap))
				m := &model{}
				fill(t, s, m, specsN(20)...)
				var wg sync.WaitGroup
				errs := make(chan error, 4)
				for r := range 3 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := readLoop(s, uint64(r)); err != nil {
							errs <- err
						}
					}()
				}
				wg.Add(1)
				go func() { // a group-commit syncer beside the writer
					defer wg.Done()
					for {
						err := s.Sync()
						if errors.Is(err, ErrClosed) {
							return
						}
						if err != nil {
							errs <- err
							return
						}
						runtime.Gosched()
					}
				}()
				rng := rand.New(rand.NewPCG(1, 2))
				for i := range rounds {
					fill(t, s, m, spec{count: int32(1 + i%4), epoch: 1, maxTS: int64(i), payload: 50 + rng.IntN(3000)})
					if s.Full(4000) || i%40 == 39 {
						cut := m.base + rng.Int64N(m.next()-m.base)
						if err := s.TruncateTo(cut); err != nil {
							t.Fatal(err)
						}
						m.truncate(cut)
					}
				}
				var err error
				if end == "delete" {
					err = s.Delete()
				} else {
					err = s.Close()
				}
				if err != nil {
					t.Fatal(err)
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// readLoop reads random offsets until the segment is closed, checking that
// every View holds whole, valid batches starting with the one asked for.
func readLoop(s *Segment, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 7))
	buf := make([]byte, 0, 1<<16)
	for i := 0; ; i++ {
		next := s.NextOffset()
		off := s.Base() + rng.Int64N(next-s.Base()+1)
		v, err := s.Read(off, math.MaxInt64, 1+rng.IntN(16384))
		switch {
		case errors.Is(err, ErrClosed):
			return nil
		case errors.Is(err, ErrOffsetOutOfRange):
			continue // truncated since NextOffset was read
		case err != nil:
			return err
		}
		b := v.Bytes()
		for first := true; len(b) > 0; first = false {
			batch, err := record.ParseHeader(b, 0)
			if err == nil {
				err = batch.VerifyCRC()
			}
			if err == nil && first && (batch.BaseOffset() > off || batch.LastOffset() < off) {
				err = fmt.Errorf("asked for %d, got batch [%d, %d]", off, batch.BaseOffset(), batch.LastOffset())
			}
			if err != nil {
				v.Release()
				return err
			}
			b = b[len(batch):]
		}
		if f, pos := v.File(); f != nil && i%8 == 0 {
			buf = buf[:min(v.Len(), cap(buf))]
			if err := pread(f, buf, pos); err != nil || !bytes.Equal(buf, v.Bytes()[:len(buf)]) {
				v.Release()
				return fmt.Errorf("pread at %d: %v", pos, err)
			}
		}
		if i%4 == 0 {
			runtime.Gosched() // hold the View across a reschedule
		}
		v.Release()
		if i%16 == 0 {
			s.FindTimestamp(rng.Int64N(400))
			if _, err := s.FindOffset(off); err != nil && !errors.Is(err, ErrOffsetOutOfRange) && !errors.Is(err, ErrClosed) {
				return err
			}
		}
	}
}
