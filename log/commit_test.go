package log

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
)

// fakeSyncer stands in for the segment fsyncs: each sync covers what was
// "appended" when it started and blocks until the test releases it.
type fakeSyncer struct {
	appended atomic.Int64
	calls    atomic.Int64
	started  chan struct{}
	release  chan error
}

func newFakeSyncer() *fakeSyncer {
	return &fakeSyncer{started: make(chan struct{}, 100), release: make(chan error)}
}

func (f *fakeSyncer) sync() (int64, error) {
	covered := f.appended.Load()
	f.calls.Add(1)
	f.started <- struct{}{}
	return covered, <-f.release
}

// TestGroupCommitShares checks that appenders arriving during an fsync are
// all covered by the one next fsync, not one each.
func TestGroupCommitShares(t *testing.T) {
	f := newFakeSyncer()
	g := newGroupCommit(0, f.sync)
	var wg sync.WaitGroup
	var acked atomic.Int64
	appendAndWait := func() {
		defer wg.Done()
		target := f.appended.Add(1)
		if err := g.wait(target, 0); err != nil {
			t.Errorf("wait(%d): %v", target, err)
			return
		}
		acked.Add(1)
	}
	wg.Add(1)
	go appendAndWait()
	<-f.started // the first appender leads sync #1 and blocks in it
	const n = 10
	wg.Add(n)
	for range n {
		go appendAndWait()
	}
	poll.Until(t, 10*time.Second, "appends during the sync", func() bool { return f.appended.Load() == n+1 })
	f.release <- nil // sync #1 done: covers only the first appender
	<-f.started      // one of the n leads sync #2, covering all n
	if got := acked.Load(); got > 1 {
		t.Fatalf("%d appenders acknowledged before the sync covering them returned", got)
	}
	f.release <- nil
	wg.Wait()
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("%d syncs for %d appenders, want 2", got, n+1)
	}
	if got := g.synced(); got != n+1 {
		t.Fatalf("synced = %d, want %d", got, n+1)
	}
}

// TestGroupCommitErrorIsFatal checks R5: every waiter of the failed sync
// gets the error, none is acknowledged, and the sync is never retried.
func TestGroupCommitErrorIsFatal(t *testing.T) {
	f := newFakeSyncer()
	g := newGroupCommit(0, f.sync)
	// One clean sync first, so waiters it covered stay acknowledged.
	f.appended.Store(1)
	go func() { <-f.started; f.release <- nil }()
	if err := g.wait(1, 0); err != nil {
		t.Fatal(err)
	}

	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			target := f.appended.Add(1)
			errs <- g.wait(target, 0)
		}()
	}
	<-f.started
	poll.Until(t, 10*time.Second, "all appends", func() bool { return f.appended.Load() == n+1 })
	eio := errors.New("EIO")
	f.release <- eio
	for range n {
		err := <-errs
		if !errors.Is(err, ErrOffline) || !errors.Is(err, eio) {
			t.Fatalf("waiter got %v, want ErrOffline wrapping EIO", err)
		}
	}
	if err := g.wait(1, 0); err != nil {
		t.Fatalf("offset synced before the failure: %v", err)
	}
	if err := g.wait(n+5, 0); !errors.Is(err, ErrOffline) {
		t.Fatalf("later wait: %v, want ErrOffline", err)
	}
	if err := g.failed(); !errors.Is(err, ErrOffline) {
		t.Fatalf("failed() = %v", err)
	}
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("%d syncs, want 2: a failed sync must never be retried", got)
	}
	if got := g.synced(); got != 1 {
		t.Fatalf("synced = %d after the failure, want 1", got)
	}
}

// TestGroupCommitExclusive checks that no sync runs inside lock/unlock and
// that cut releases waiters whose batches were synced before a truncation.
func TestGroupCommitExclusive(t *testing.T) {
	f := newFakeSyncer()
	g := newGroupCommit(0, f.sync)
	g.lock()
	f.appended.Store(5)
	done := make(chan error, 1)
	go func() { done <- g.wait(5, 0) }()
	select {
	case <-f.started:
		t.Fatal("sync started inside an exclusive section")
	case <-time.After(20 * time.Millisecond):
	}
	g.cut(3)
	g.unlock()
	if err := <-done; err != nil {
		t.Fatalf("waiter across a cut: %v", err)
	}
	if got := g.synced(); got != 0 {
		t.Fatalf("synced = %d, want 0", got)
	}
	// A waiter of the new generation must wait for a real sync.
	go func() { done <- g.wait(5, g.gen.Load()) }()
	<-f.started
	f.release <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := g.synced(); got != 5 {
		t.Fatalf("synced = %d, want 5", got)
	}
}

func TestGroupCommitFail(t *testing.T) {
	f := newFakeSyncer()
	g := newGroupCommit(0, f.sync)
	if err := g.failed(); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("roll failed")
	if err := g.fail(cause); !errors.Is(err, ErrOffline) || !errors.Is(err, cause) {
		t.Fatalf("fail = %v", err)
	}
	if err := g.wait(1, 0); !errors.Is(err, ErrOffline) {
		t.Fatalf("wait after fail = %v", err)
	}
	if f.calls.Load() != 0 {
		t.Fatal("sync ran after fail")
	}
}
