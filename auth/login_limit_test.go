package auth

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Free failures, then waits doubling to the cap; another key is not
// affected; failures are forgotten after the quiet time; a success resets
// nothing.
func TestLoginLimiter(t *testing.T) {
	clk := newFakeClock()
	l := NewLoginLimiter(LoginLimits{Free: 3, Base: time.Second, Max: 5 * time.Second, Forget: time.Minute, Now: clk.now})
	for i := range 3 {
		if w := l.Wait("a"); w != 0 {
			t.Fatalf("attempt %d waits %v", i+1, w)
		}
		if w := l.Failed("a"); w != 0 {
			t.Fatalf("failure %d of 3 free: wait %v", i+1, w)
		}
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := l.Failed("a"); got != w {
			t.Fatalf("failure %d past the free ones: wait %v, want %v", i+1, got, w)
		}
		if got := l.Wait("a"); got != w {
			t.Fatalf("Wait after failure %d: %v, want %v", i+1, got, w)
		}
		if got := l.Wait("b"); got != 0 {
			t.Fatalf("another key waits %v", got)
		}
		clk.add(w)
		if got := l.Wait("a"); got != 0 {
			t.Fatalf("still waiting %v after the wait", got)
		}
	}
	// One more failure right away: still at the cap.
	if got := l.Failed("a"); got != 5*time.Second {
		t.Fatalf("wait %v, want the cap", got)
	}
	clk.add(time.Minute)
	if got := l.Wait("a"); got != 0 {
		t.Fatalf("after the quiet time: wait %v", got)
	}
	if got := l.Failed("a"); got != 0 {
		t.Fatalf("first failure after the quiet time: wait %v", got)
	}
}

// The limiter holds at most MaxKeys keys; spraying new keys pushes out the
// quietest, not a key that is waiting.
func TestLoginLimiterBounded(t *testing.T) {
	clk := newFakeClock()
	l := NewLoginLimiter(LoginLimits{Free: 1, MaxKeys: 8, Forget: time.Hour, Now: clk.now})
	l.Failed("victim")
	l.Failed("victim") // waiting now
	for i := range 100 {
		clk.add(time.Millisecond)
		l.Failed(fmt.Sprintf("spray%d", i))
		if l.Len() > 8 {
			t.Fatalf("%d keys, bound 8", l.Len())
		}
		l.Failed("victim") // keeps failing: never the quietest
	}
	if l.Wait("victim") == 0 {
		t.Fatal("the waiting key was pushed out")
	}
	// A long key is held by its digest, and still counted as itself.
	long := strings.Repeat("x", 1<<20)
	l.Failed(long)
	l.Failed(long)
	if l.Wait(long) == 0 || l.Wait(long[1:]) != 0 {
		t.Fatal("a long key is not limited as itself")
	}
	l.mu.Lock()
	for k := range l.keys {
		if len(k) > maxKeyLen+len("sha256:") {
			t.Errorf("a key of %d bytes held", len(k))
		}
	}
	l.mu.Unlock()
}

// LogSampler lets one line through per interval and counts the others.
func TestLogSampler(t *testing.T) {
	var s LogSampler
	t0 := time.Unix(1_800_000_000, 0)
	if n, ok := s.Allow(t0, 10*time.Second); !ok || n != 0 {
		t.Fatalf("first line: %v %d", ok, n)
	}
	for i := range 3 {
		if _, ok := s.Allow(t0.Add(time.Duration(i+1)*time.Second), 10*time.Second); ok {
			t.Fatalf("line %d within the interval let through", i+2)
		}
	}
	if n, ok := s.Allow(t0.Add(10*time.Second), 10*time.Second); !ok || n != 3 {
		t.Fatalf("after the interval: %v, %d left out, want true and 3", ok, n)
	}
}
