package poll

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// fakeT records the failure of an Until it is given and, as testing.T's
// FailNow does, ends the goroutine that called Fatalf.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls Until with a fakeT on its own goroutine and returns the
// failure message ("" when Until returned) and how long it took.
func run[C Cond](timeout time.Duration, what string, cond C) (string, time.Duration) {
	f := &fakeT{}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		Until(f, timeout, what, cond)
	}()
	<-done
	return f.failed, time.Since(start)
}

func TestUntil(t *testing.T) {
	t.Run("holds at once", func(t *testing.T) {
		calls := 0
		msg, _ := run(time.Second, "x", func() bool { calls++; return true })
		if msg != "" || calls != 1 {
			t.Fatalf("failure %q after %d checks, want none after 1", msg, calls)
		}
	})
	t.Run("holds after a few checks", func(t *testing.T) {
		calls := 0
		msg, _ := run(10*time.Second, "x", func() error {
			if calls++; calls < 5 {
				return errors.New("not yet")
			}
			return nil
		})
		if msg != "" || calls != 5 {
			t.Fatalf("failure %q after %d checks, want none after 5", msg, calls)
		}
	})
	t.Run("bool never holds", func(t *testing.T) {
		msg, took := run(30*time.Millisecond, "the thing", func() bool { return false })
		if msg != "timed out after 30ms waiting for the thing" {
			t.Fatalf("failure %q", msg)
		}
		if took < 30*time.Millisecond {
			t.Fatalf("failed after %v, before the 30ms timeout", took)
		}
	})
	t.Run("error never nil", func(t *testing.T) {
		n := 0
		msg, _ := run(30*time.Millisecond, "the thing", func() error { n++; return fmt.Errorf("attempt %d", n) })
		if want := fmt.Sprintf("timed out after 30ms waiting for the thing: attempt %d", n); msg != want {
			t.Fatalf("failure %q, want %q (the last reason)", msg, want)
		}
	})
	t.Run("checked once more after the deadline", func(t *testing.T) {
		// The first check outlasts the timeout; the condition holds
		// by the next one, which must still happen.
		calls := 0
		msg, _ := run(10*time.Millisecond, "x", func() bool {
			calls++
			if calls == 1 {
				time.Sleep(30 * time.Millisecond)
				return false
			}
			return true
		})
		if msg != "" || calls != 2 {
			t.Fatalf("failure %q after %d checks, want none after 2", msg, calls)
		}
	})
	t.Run("pauses between checks", func(t *testing.T) {
		checks := 0
		run(300*time.Millisecond, "x", func() bool { checks++; return false })
		// 1+2+4+8+16 ms, then 20 ms each: about 17 checks in 300 ms,
		// not thousands (a busy loop).
		if checks < 2 || checks > 40 {
			t.Fatalf("%d checks in 300ms, want about 17", checks)
		}
	})
}

// Listen waits for a held port to be free, as a restarted server's.
func TestListenWaitsForThePort(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := held.Addr().String()
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(50 * time.Millisecond) // the port held a moment after the restart began
		held.Close()
	}()
	ln := Listen(t, addr)
	<-released
	defer ln.Close()
	if ln.Addr().String() != addr {
		t.Fatalf("listening on %s, want %s", ln.Addr(), addr)
	}
}
