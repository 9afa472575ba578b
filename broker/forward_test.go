package broker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

// TestForwarderReusesLoggedInConnection: forwarded controller writes to
// a leader that requires a SCRAM broker login share logged-in
// connections: writes one after another dial and log in once, a burst at
// most forwardConns times; a connection the leader closed is replaced
// before a write (no error); a leader change moves to the new leader and
// closes the old one's connection; close closes what is left.
func TestForwarderReusesLoggedInConnection(t *testing.T) {
	a, b := secureBroker(t, false), secureBroker(t, false)
	var logins atomic.Int64
	f := &forwarder{clientID: "broker-9", timeout: defaultAdminTimeout, login: func(c *protocol.Conn, deadline time.Time) error {
		logins.Add(1)
		return a.brokerLogin(c, deadline)
	}}
	f.hint(101, a.Addr())
	f.hint(102, b.Addr())
	ctx := context.Background()
	forward := func(to int32) {
		t.Helper()
		// Not a request the controller knows: the leader runs it and
		// answers with the decoding error, inside the payload.
		resp, err := f.Forward(ctx, controller.Server{ID: to}, []byte{0xff})
		if err != nil || len(resp) == 0 {
			t.Fatalf("forward to %d: %v (%d bytes)", to, err, len(resp))
		}
	}
	open := func(br *Broker, want int) {
		t.Helper()
		poll.Until(t, 10*time.Second, "the leader's open connections", func() bool { return br.Stats(false).ConnectionsOpen == want })
	}

	for range 20 {
		forward(101)
	}
	if n := logins.Load(); n != 1 {
		t.Fatalf("20 forwards one after another logged in %d times, want 1", n)
	}
	open(a, 1)

	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if _, err := f.Forward(ctx, controller.Server{ID: 101}, []byte{0xff}); err != nil {
				t.Errorf("forward in a burst: %v", err)
			}
		})
	}
	wg.Wait()
	if n := logins.Load(); n > forwardConns {
		t.Fatalf("a burst of 32 forwards: %d logins in all, want at most %d", n, forwardConns)
	}

	// The leader closes the connections (as a restart would): the next
	// write sees it before sending and dials again.
	a.mu.Lock()
	for c := range a.conns {
		c.nc.Close()
	}
	a.mu.Unlock()
	open(a, 0)
	before := logins.Load()
	forward(101)
	if n := logins.Load(); n != before+1 {
		t.Fatalf("after the leader closed the connections: %d logins, want %d", n, before+1)
	}

	// A leader change: the new leader gets one connection, the old one's
	// closes.
	for range 5 {
		forward(102)
	}
	if n := logins.Load(); n != before+2 {
		t.Fatalf("after the leader change: %d logins, want %d", n, before+2)
	}
	open(a, 0)
	open(b, 1)

	f.close()
	open(b, 0)
	// After close a write still goes through, on a connection of its own.
	forward(102)
	open(b, 0)
}

// BenchmarkForward: forwarded controller writes, one after another, to a
// leader that requires the SCRAM broker login.
func BenchmarkForward(b *testing.B) {
	a := secureBroker(b, false)
	f := &forwarder{clientID: "broker-9", timeout: defaultAdminTimeout, login: a.brokerLogin}
	f.hint(101, a.Addr())
	ctx := context.Background()
	for b.Loop() {
		if _, err := f.Forward(ctx, controller.Server{ID: 101}, []byte{0xff}); err != nil {
			b.Fatal(err)
		}
	}
}
