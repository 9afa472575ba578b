package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicemq/sluice/protocol"
)

// The forwarder's connections to the controller leader. A forwarded write
// takes an idle connection, or dials and logs in a new one while fewer
// than forwardConns are open, or else waits for one to come back; a
// connection goes back idle after a round trip that worked, and is closed
// after one that failed (its stream is at an unknown place). Writes one
// after another use one connection; a burst dials at most forwardConns.
// They are the connections of one leader: a write to another broker
// (a leader change) closes the old leader's idle connections, and those
// in use are closed when they come back. close (at the broker's
// shutdown) closes them all, and from then on a connection is closed
// after its one write.
//
// "Not sent" stays exact on a reused connection as far as can be seen: a
// connection idle for forwardIdle or longer, or that the peer has closed
// (or sent anything on) while idle, is closed and replaced before the
// write, so a leader that stopped or restarted costs a dial, not an
// unknown outcome. What no check can see — the peer failing between the
// check and its reading of the request — is an unknown outcome, as it is
// on a fresh connection failing after the write.

const (
	// forwardConns bounds the connections to the leader: concurrent
	// writes (a topic creation beside the ISR changes) need not queue
	// behind a slow one, and a burst cannot become a burst of logins.
	forwardConns = 4
	// forwardIdle is how long a connection stays idle before it is
	// replaced rather than used: well below the leader's idle timeout
	// (DefaultIdleTimeout), so the leader does not close it under a write.
	forwardIdle = 30 * time.Second
	// aliveWait is how long alive reads a TLS connection for.
	aliveWait = time.Millisecond
)

// leaderConn is one logged-in connection to the leader.
type leaderConn struct {
	nc   net.Conn // c's connection, read while idle to see it closed
	c    *protocol.Conn
	gen  uint64    // leaderConns.gen when dialled
	used time.Time // when it went idle
}

// leaderConns are the connections to the current leader; the zero value
// is ready.
type leaderConns struct {
	mu     sync.Mutex
	ctx    context.Context // the connections' (NewConn), ended by close
	cancel context.CancelFunc
	id     int32
	addr   string
	gen    uint64 // counts the leader changes and close
	idle   []*leaderConn
	open   int           // connections of gen, idle or in use
	freed  chan struct{} // closed (and replaced) when one comes back or closes
	closed bool
}

// dialFunc opens a logged-in connection (forwarder.dial): ctx bounds the
// dial and login, connCtx is the connection's.
type dialFunc func(ctx, connCtx context.Context, addr string, deadline time.Time) (net.Conn, *protocol.Conn, error)

// get returns a connection to broker id at addr, before deadline.
func (lc *leaderConns) get(ctx context.Context, id int32, addr string, deadline time.Time, dial dialFunc) (*leaderConn, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		lc.mu.Lock()
		if lc.ctx == nil {
			lc.ctx, lc.cancel = context.WithCancel(context.Background())
		}
		if lc.id != id || lc.addr != addr {
			lc.retargetLocked(id, addr)
		}
		if n := len(lc.idle); n > 0 {
			c := lc.idle[n-1]
			lc.idle = lc.idle[:n-1]
			lc.mu.Unlock()
			if time.Since(c.used) < forwardIdle && alive(c.nc) {
				return c, nil
			}
			c.c.Close()
			lc.drop(c.gen)
			continue
		}
		if lc.open < forwardConns || lc.closed {
			lc.open++
			gen, connCtx := lc.gen, lc.ctx
			if lc.closed {
				connCtx = ctx // one write, then closed (put)
			}
			lc.mu.Unlock()
			nc, c, err := dial(ctx, connCtx, addr, deadline)
			if err != nil {
				lc.drop(gen)
				return nil, err
			}
			return &leaderConn{nc: nc, c: c, gen: gen}, nil
		}
		freed := lc.freedLocked()
		lc.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for a connection to the leader: %w: %w", protocol.ErrNotSent, ctx.Err())
		case <-timer.C:
			return nil, fmt.Errorf("wait for a connection to the leader: %w: %w", protocol.ErrNotSent, context.DeadlineExceeded)
		}
	}
}

// put gives c back after a round trip: idle when ok, else closed.
func (lc *leaderConns) put(c *leaderConn, ok bool) {
	lc.mu.Lock()
	if ok && c.gen == lc.gen && !lc.closed {
		c.used = time.Now()
		lc.idle = append(lc.idle, c)
		lc.wakeLocked()
		lc.mu.Unlock()
		return
	}
	lc.mu.Unlock()
	c.c.Close()
	lc.drop(c.gen)
}

// drop forgets a connection of gen that closed or failed to open.
func (lc *leaderConns) drop(gen uint64) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if gen == lc.gen {
		lc.open--
		lc.wakeLocked()
	}
}

// retargetLocked makes broker id at addr the leader: the old leader's
// idle connections close, those in use close when they come back.
func (lc *leaderConns) retargetLocked(id int32, addr string) {
	lc.closeIdleLocked()
	lc.id, lc.addr = id, addr
}

// closeIdleLocked closes the idle connections and starts a generation.
func (lc *leaderConns) closeIdleLocked() {
	for _, c := range lc.idle {
		c.c.Close()
	}
	lc.idle, lc.open = nil, 0
	lc.gen++
	lc.wakeLocked()
}

// close closes every connection (those in use as they come back).
func (lc *leaderConns) close() {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.closed = true
	lc.closeIdleLocked()
	if lc.cancel != nil {
		lc.cancel()
	}
}

func (lc *leaderConns) freedLocked() chan struct{} {
	if lc.freed == nil {
		lc.freed = make(chan struct{})
	}
	return lc.freed
}

func (lc *leaderConns) wakeLocked() {
	if lc.freed != nil {
		close(lc.freed)
		lc.freed = nil
	}
}

// alive reports whether an idle connection is still open: nothing to
// read. EOF, a reset or unexpected bytes mean it must not carry a
// request. A socket is peeked at (recv with MSG_PEEK, not waiting); a TLS
// connection is read for an instant, through the TLS layer (the peer's
// close_notify is a record), with a read deadline that a timeout leaves
// the connection usable after.
func alive(nc net.Conn) bool {
	if sc, ok := nc.(syscall.Conn); ok {
		rc, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			var b [1]byte
			_, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			return true
		}); err != nil {
			return false
		}
		// Data (n > 0) or EOF (0, nil) or a reset: not idle and open.
		return errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EWOULDBLOCK)
	}
	if err := nc.SetReadDeadline(time.Now().Add(aliveWait)); err != nil {
		return false
	}
	var b [1]byte
	n, err := nc.Read(b[:])
	var ne net.Error
	return n == 0 && errors.As(err, &ne) && ne.Timeout()
}
