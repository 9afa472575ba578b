// Package poll is how a test waits for something to happen: Until checks
// a condition again and again until it holds, and fails the test when a
// deadline passes first, instead of sleeping for a guessed time.
//
// It imports nothing of sluice, so the tests of every package can use it,
// segment and log included; the multi-broker harness
// (internal/testcluster) waits with it too.
//
// The interval between checks starts at 1 ms and doubles up to 20 ms:
// cheap conditions that hold soon are seen at once, and a condition that
// sends a request to a cluster is not sent more than 50 times a second.
//
// Listen is the one wait of that kind the harnesses share: for an
// address to be free again, when a restarted server takes back its port.
package poll

import (
	"net"
	"testing"
	"time"
)

// maxInterval is the longest pause between two checks.
const maxInterval = 20 * time.Millisecond

// Cond is a condition Until checks: a func() bool reports whether it
// holds; a func() error returns nil when it holds and otherwise why not,
// which the failure message quotes.
type Cond interface {
	func() bool | func() error
}

// Until checks cond until it holds and fails the test (t.Fatalf) if it
// does not hold within timeout; what names the condition in the message,
// as in "timed out after 10s waiting for <what>". Like t.Fatalf, it must
// be called from the goroutine running the test. cond is always checked
// at least once, and once more after the deadline passed.
func Until[C Cond](t testing.TB, timeout time.Duration, what string, cond C) {
	t.Helper()
	var why error // the last reason a func() error condition gave
	var holds func() bool
	switch c := any(cond).(type) {
	case func() bool:
		holds = c
	case func() error:
		holds = func() bool { why = c(); return why == nil }
	}
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		late := time.Now().After(deadline)
		if holds() {
			return
		}
		if late {
			if why != nil {
				t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, why)
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
			return
		}
		time.Sleep(interval) // the pause between checks, not a wait for the condition
		interval = min(2*interval, maxInterval)
	}
}

// Listen listens on TCP address addr, waiting up to 5 s for it to be
// free: a server restarted on its former port may find it still held for
// a moment. A "host:0" address picks a free port.
func Listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	Until(t, 5*time.Second, "listen on "+addr, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln
}
