package log

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
)

// failingSync is a syncHook that, once armed, blocks the next segment sync
// until released and then fails it (and every later one) with EIO.
type failingSync struct {
	armed   atomic.Bool
	calls   atomic.Int64 // syncs that reached the hook while armed
	blocked chan struct{}
	release chan struct{}
}

func newFailingSync() *failingSync {
	return &failingSync{blocked: make(chan struct{}, 1), release: make(chan struct{})}
}

func (f *failingSync) hook(sync func() error) error {
	if !f.armed.Load() {
		return sync()
	}
	if f.calls.Add(1) == 1 {
		f.blocked <- struct{}{}
		<-f.release
	}
	return syscall.EIO
}

// TestFsyncErrorTakesLogOffline checks R5 with fsync=always: the appenders
// waiting on the failed group commit all get the error, none is
// acknowledged, the fsync is not retried, and every later Append fails.
func TestFsyncErrorTakesLogOffline(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.Fsync = FsyncAlways
	fs := newFailingSync()
	cfg.syncHook = fs.hook
	l := openLog(t, dir, cfg)
	rnd := rand.New(rand.NewPCG(1, 7))
	before := appendN(t, l, rnd, 5, 2000, 1)
	synced := l.SyncedOffset()

	fs.armed.Store(true)
	const n = 16
	type result struct {
		base int64
		err  error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	var appended atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := makeBatch(nil, 1, 1000, 1, rand.New(rand.NewPCG(uint64(i), 0)))
			appended.Add(1)
			base, err := l.Append(b)
			results <- result{base, err}
		}()
	}
	<-fs.blocked // the group's leader is inside the failing fsync
	poll.Until(t, 10*time.Second, "appends queued behind the failing fsync", func() bool {
		return l.EndOffset() == synced+n
	})
	close(fs.release)
	wg.Wait()
	close(results)
	for r := range results {
		if r.err == nil {
			t.Fatalf("batch at %d acknowledged although its fsync failed", r.base)
		}
		if !errors.Is(r.err, ErrOffline) || !errors.Is(r.err, syscall.EIO) {
			t.Fatalf("append error %v, want ErrOffline wrapping EIO", r.err)
		}
	}
	if got := fs.calls.Load(); got != 1 {
		t.Fatalf("%d fsyncs after the failure, want 1: it must not be retried", got)
	}
	if l.SyncedOffset() != synced {
		t.Fatalf("synced offset moved to %d after the failure", l.SyncedOffset())
	}
	if _, err := l.Append(makeBatch(nil, 1, 100, 1, nil)); !errors.Is(err, ErrOffline) {
		t.Fatalf("later Append: %v, want ErrOffline", err)
	}
	if err := l.Sync(); !errors.Is(err, ErrOffline) {
		t.Fatalf("Sync: %v, want ErrOffline", err)
	}
	if err := l.TruncateTo(1); !errors.Is(err, ErrOffline) {
		t.Fatalf("TruncateTo: %v, want ErrOffline", err)
	}
	if err := l.Close(); !errors.Is(err, ErrOffline) {
		t.Fatalf("Close of an offline log: %v, want ErrOffline", err)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an offline log wrote the clean-shutdown marker")
	}
	// Reopening recovers; the acknowledged batches are there.
	l2 := openLog(t, dir, smallConfig())
	got := readAll(t, l2)
	sameBatches(t, got[:len(before)], before)
}

func TestFsyncErrorInterval(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushInterval = time.Millisecond
	fs := newFailingSync()
	close(fs.release)
	cfg.syncHook = fs.hook
	l := openLog(t, t.TempDir(), cfg)
	appendN(t, l, rand.New(rand.NewPCG(1, 8)), 3, 500, 1)
	// Arm only once the flusher synced those: armed earlier, its sync of
	// them could fail before the next append (the test's own race).
	poll.Until(t, 10*time.Second, "the first appends synced", func() bool { return l.SyncedOffset() == l.EndOffset() })
	fs.armed.Store(true)
	appendN(t, l, rand.New(rand.NewPCG(1, 9)), 1, 500, 1)
	<-fs.blocked
	poll.Until(t, 10*time.Second, "log offline", func() bool {
		_, err := l.Append(makeBatch(nil, 1, 100, 1, nil))
		return errors.Is(err, ErrOffline)
	})
	if got := fs.calls.Load(); got != 1 {
		t.Fatalf("%d failing fsyncs, want 1", got)
	}
}
