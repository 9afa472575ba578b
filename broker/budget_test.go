package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
)

func TestBudget(t *testing.T) {
	b := newBudget(10)
	ctx := context.Background()
	if err := b.acquire(ctx, 6); err != nil {
		t.Fatal(err)
	}
	// 6 more do not fit: the waiter blocks until a release.
	got := make(chan error, 1)
	go func() { got <- b.acquire(ctx, 6) }()
	poll.Until(t, 10*time.Second, "the waiter to queue", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.waiters.Len() == 1
	})
	select {
	case err := <-got:
		t.Fatalf("acquired past the budget: %v", err)
	default:
	}
	// A small request behind it waits too (first come, first served).
	cctx, cancel := context.WithCancel(ctx)
	small := make(chan error, 1)
	go func() { small <- b.acquire(cctx, 1) }()
	poll.Until(t, 10*time.Second, "the second waiter", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.waiters.Len() == 2
	})
	select {
	case err := <-small:
		t.Fatalf("small request overtook the queue: %v", err)
	default:
	}
	cancel()
	if err := <-small; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	b.release(6)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if n := b.inUse(); n != 6 {
		t.Fatalf("in use %d, want 6", n)
	}
	b.release(6)
	if n := b.inUse(); n != 0 {
		t.Fatalf("in use %d, want 0", n)
	}
}
