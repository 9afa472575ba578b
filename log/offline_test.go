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

	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// holdFirst returns a fault hook that blocks the first operation it sees
// until release is closed, after sending on blocked.
func holdFirst(blocked chan<- struct{}, release <-chan struct{}) func() {
	var seen atomic.Bool
	return func() {
		if seen.CompareAndSwap(false, true) {
			blocked <- struct{}{}
			<-release
		}
	}
}

// TestFsyncErrorTakesLogOffline checks R5 with fsync=always: the appenders
// waiting on the failed group commit all get the error, none is
// acknowledged, the fsync is not retried, and every later Append fails.
func TestFsyncErrorTakesLogOffline(t *testing.T) {
	dir := t.TempDir()
	fs := errorfs.New(vfs.Default)
	cfg := smallConfig()
	cfg.SegmentBytes = 1 << 20 // no roll: only the group commit syncs
	cfg.Fsync = FsyncAlways
	cfg.FS = fs
	l := openLog(t, dir, cfg)
	rnd := rand.New(rand.NewPCG(1, 7))
	before := appendN(t, l, rnd, 5, 2000, 1)
	synced := l.SyncedOffset()

	blocked, release := make(chan struct{}, 1), make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before openLog's Close, which would wait for the held fsync
	eio := fs.Arm(errorfs.Fault{Ops: errorfs.OpSync, Path: filepath.Join(dir, "*.log"), Err: syscall.EIO,
		Hook: holdFirst(blocked, release)})
	const n = 16
	type result struct {
		base int64
		err  error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := makeBatch(nil, 1, 1000, 1, rand.New(rand.NewPCG(uint64(i), 0)))
			base, err := l.Append(b)
			results <- result{base, err}
		}()
	}
	<-blocked // the group's leader is inside the failing fsync
	waitFor(t, "appends queued behind the failing fsync", func() bool {
		return l.EndOffset() == synced+n
	})
	unblock()
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
	if got := eio.Hits(); got != 1 {
		t.Fatalf("%d fsyncs after the failure, want 1: it must not be retried", got)
	}
	if l.SyncedOffset() != synced {
		t.Fatalf("synced offset moved to %d after the failure", l.SyncedOffset())
	}
	// Even with the disk healthy again, the log stays offline: a retried
	// fsync could report success for pages the kernel already dropped.
	eio.Disarm()
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
	dir := t.TempDir()
	fs := errorfs.New(vfs.Default)
	cfg := smallConfig()
	cfg.FlushInterval = time.Millisecond
	cfg.FS = fs
	l := openLog(t, dir, cfg)
	appendN(t, l, rand.New(rand.NewPCG(1, 8)), 3, 500, 1)
	// Arm only once the flusher synced those: armed earlier, its sync of
	// them could fail before the next append (the test's own race).
	waitFor(t, "the first appends synced", func() bool { return l.SyncedOffset() == l.EndOffset() })
	blocked := make(chan struct{}, 1)
	release := make(chan struct{})
	close(release)
	eio := fs.Arm(errorfs.Fault{Ops: errorfs.OpSync, Path: filepath.Join(dir, "*.log"), Err: syscall.EIO,
		Hook: holdFirst(blocked, release)})
	appendN(t, l, rand.New(rand.NewPCG(1, 9)), 1, 500, 1)
	<-blocked
	waitFor(t, "log offline", func() bool {
		_, err := l.Append(makeBatch(nil, 1, 100, 1, nil))
		return errors.Is(err, ErrOffline)
	})
	if got := eio.Hits(); got != 1 {
		t.Fatalf("%d failing fsyncs, want 1", got)
	}
}
