package controller

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// heldListener hands out connections whose reads wait while the listener
// is held: the node behind it stops receiving Raft traffic, so its
// metadata falls behind the leader's, as a loaded follower's can.
type heldListener struct {
	net.Listener

	mu    sync.Mutex
	held  bool
	free  chan struct{} // closed when released
	conns map[*heldConn]struct{}
}

func newHeldListener(ln net.Listener) *heldListener {
	l := &heldListener{Listener: ln, free: make(chan struct{}), conns: map[*heldConn]struct{}{}}
	close(l.free)
	return l
}

func (l *heldListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	hc := &heldConn{Conn: c, l: l, closed: make(chan struct{})}
	l.mu.Lock()
	l.conns[hc] = struct{}{}
	l.mu.Unlock()
	return hc, nil
}

// hold stops every read, those blocked now included: once it returns, no
// byte reaches the node until release.
func (l *heldListener) hold() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		return
	}
	l.held, l.free = true, make(chan struct{})
	for c := range l.conns {
		c.Conn.SetReadDeadline(time.Unix(1, 0)) // wakes a read in progress
	}
}

func (l *heldListener) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		l.held = false
		close(l.free)
	}
}

// gate returns whether reads are held, and the channel closed on release.
func (l *heldListener) gate() (bool, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held, l.free
}

type heldConn struct {
	net.Conn
	l         *heldListener
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *heldConn) Read(b []byte) (int, error) {
	for {
		held, free := c.l.gate()
		if held {
			select {
			case <-free:
			case <-c.closed:
				return 0, net.ErrClosed
			}
			continue
		}
		c.Conn.SetReadDeadline(time.Time{})
		n, err := c.Conn.Read(b)
		if n == 0 && errors.Is(err, context.DeadlineExceeded) || n == 0 && isTimeout(err) {
			continue // woken by hold
		}
		return n, err
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *heldConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// Sync is a read barrier: on a node whose metadata lags (its Raft traffic
// held), it does not return before the node has applied what the leader
// had committed when Sync was called, and then the node's metadata holds
// it. ElectPreferredLeaders on a broker plans after it.
func TestSyncWaitsForTheLeadersCommits(t *testing.T) {
	var held *heldListener
	c := startTestClusterWith(t, 3, 1, func(cfg *NodeConfig) {
		if cfg.ID == 4 {
			held = newHeldListener(cfg.Listener)
			cfg.Listener = held
		}
	})
	t.Cleanup(held.release) // before the nodes close
	ctx := testContext(t)
	lagging, leader := c.node(4), c.leader()
	held.hold()
	if _, err := leader.RegisterBroker(ctx, Broker{ID: 9, Addr: "127.0.0.1:9009"}, PreviousEpochEmpty); err != nil {
		t.Fatal(err)
	}
	if _, ok := lagging.Metadata().Brokers[9]; ok {
		t.Fatal("node 4 applied the registration while its Raft traffic was held: the test checks nothing")
	}
	// While held, Sync cannot finish.
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err := lagging.Sync(short)
	cancel()
	if err == nil {
		t.Fatal("Sync returned on a node that lacks a committed registration")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sync on a held node: %v, want a deadline", err)
	}
	// Called while held, it returns once the node caught up, with the
	// registration in its metadata.
	done := make(chan error, 1)
	go func() { done <- lagging.Sync(ctx) }()
	held.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := lagging.Metadata().Brokers[9]; !ok {
		t.Fatal("Sync returned before node 4 applied the registration the leader had committed")
	}
	// The leader itself answers after a barrier.
	if err := leader.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}
