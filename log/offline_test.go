package log

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

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

// staysOffline checks that every operation of an offline log fails with
// ErrOffline (R5), and that closing it leaves no clean-shutdown marker.
func staysOffline(t *testing.T, l *Log) {
	t.Helper()
	for name, op := range map[string]func() error{
		"Append":     func() error { _, err := l.Append(makeBatch(nil, 1, 100, 1, nil)); return err },
		"Sync":       l.Sync,
		"TruncateTo": func() error { return l.TruncateTo(1) },
	} {
		if err := op(); !errors.Is(err, ErrOffline) {
			t.Fatalf("%s of an offline log: %v, want ErrOffline", name, err)
		}
	}
	if err := l.Close(); !errors.Is(err, ErrOffline) {
		t.Fatalf("Close of an offline log: %v, want ErrOffline", err)
	}
	if _, err := os.Stat(filepath.Join(l.dir, cleanShutdownFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an offline log wrote the clean-shutdown marker")
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
	poll.Until(t, 10*time.Second, "appends queued behind the failing fsync", func() bool {
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
	staysOffline(t, l)
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
	poll.Until(t, 10*time.Second, "the first appends synced", func() bool { return l.SyncedOffset() == l.EndOffset() })
	blocked := make(chan struct{}, 1)
	release := make(chan struct{})
	close(release)
	eio := fs.Arm(errorfs.Fault{Ops: errorfs.OpSync, Path: filepath.Join(dir, "*.log"), Err: syscall.EIO,
		Hook: holdFirst(blocked, release)})
	appendN(t, l, rand.New(rand.NewPCG(1, 9)), 1, 500, 1)
	<-blocked
	poll.Until(t, 10*time.Second, "log offline", func() bool {
		_, err := l.Append(makeBatch(nil, 1, 100, 1, nil))
		return errors.Is(err, ErrOffline)
	})
	if got := eio.Hits(); got != 1 {
		t.Fatalf("%d failing fsyncs, want 1", got)
	}
}

// TestFullDisk fills the disk under a running log (ENOSPC from the file
// system seam) in the ways appends meet it: the write of a batch, a
// write that ran out of space partway (a torn batch on disk), and the
// roll to a new segment. The log must go offline at once with an error
// that says why (ErrOffline wrapping ENOSPC and naming the file) and one
// error log line; every batch acknowledged before is still there after
// reopening, nothing torn, and the torn bytes of a short write are cut
// by recovery.
func TestFullDisk(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(dir string) errorfs.Fault
		torn  bool // the failed append left bytes on disk
	}{
		{"write", func(dir string) errorfs.Fault {
			return errorfs.Fault{Ops: errorfs.OpWrite, Path: dir, Err: syscall.ENOSPC}
		}, false},
		{"short write", func(dir string) errorfs.Fault {
			return errorfs.Fault{Ops: errorfs.OpWrite, Path: filepath.Join(dir, "*.log"), Err: syscall.ENOSPC, Short: true}
		}, true},
		{"roll", func(dir string) errorfs.Fault {
			// A new segment's files are created and their indexes
			// preallocated (a sparse truncate): the first fails.
			return errorfs.Fault{Ops: errorfs.OpCreate | errorfs.OpTruncate, Path: filepath.Join(dir, "0*"), Err: syscall.ENOSPC}
		}, false},
	} {
		for _, fsync := range []FsyncPolicy{FsyncAlways, FsyncInterval} {
			t.Run(tc.name+"/"+fsync.String(), func(t *testing.T) {
				dir := t.TempDir()
				fs := errorfs.New(vfs.Default)
				core, logs := observer.New(zapcore.ErrorLevel)
				cfg := smallConfig()
				cfg.Fsync = fsync
				cfg.FS = fs
				cfg.Logger = zap.New(core)
				l := openLog(t, dir, cfg)
				rnd := rand.New(rand.NewPCG(2, uint64(fsync)))
				acked := appendN(t, l, rnd, 3, 2000, 1)
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}

				full := fs.Arm(tc.fault(dir))
				var err error
				for i := 0; err == nil; i++ {
					if i == 100 {
						t.Fatal("100 appends on a full disk succeeded")
					}
					b := makeBatch(nil, 1+rnd.IntN(4), 100+rnd.IntN(1900), 10, rnd)
					if _, err = l.Append(b); err == nil {
						acked = append(acked, stored{base: b.BaseOffset(), bytes: b})
					}
				}
				if full.Hits() == 0 {
					t.Fatalf("append failed (%v) but the fault never fired", err)
				}
				var pe *os.PathError
				if !errors.Is(err, ErrOffline) || !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &pe) || !strings.HasPrefix(pe.Path, dir) {
					t.Fatalf("append on a full disk: %v; want ErrOffline wrapping ENOSPC on a file of %s", err, dir)
				}
				offline := logs.FilterMessageSnippet("log offline").All()
				if len(offline) != 1 || !strings.Contains(offline[0].ContextMap()["error"].(string), "no space left on device") {
					t.Fatalf("log lines at error level %v; want one saying the log went offline for ENOSPC", logs.All())
				}

				// The space comes back; the log stays offline until
				// reopened.
				full.Disarm()
				staysOffline(t, l)
				l2 := openLog(t, dir, smallConfig())
				sameBatches(t, readAll(t, l2), acked)
				if l2.EndOffset() != acked[len(acked)-1].next() {
					t.Fatalf("end offset %d after reopening, want %d", l2.EndOffset(), acked[len(acked)-1].next())
				}
				if l2.RecoveryTruncated() != tc.torn {
					t.Fatalf("RecoveryTruncated = %v, want %v (torn bytes on disk)", l2.RecoveryTruncated(), tc.torn)
				}
			})
		}
	}
}
