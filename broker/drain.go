package broker

import (
	"context"
	"io"
	"net"
	"time"

	"go.uber.org/zap"
)

// Connection drain at shutdown. Once controlled shutdown has moved the
// leaderships away (lifecycle.go), Close drains every connection before
// closing it, so that no request a client sent is cut by the close: a
// produce cut by a closed connection has an unknown outcome for the
// client (R14), since it cannot tell whether the broker read it.
//
//  1. Refuse: from now on every request read on the sluice listener is
//     answered with BROKER_NOT_AVAILABLE (the uniform error response:
//     definite, retriable, and the client refreshes its metadata), never
//     served. Requests read before are served as usual. The refusal is a
//     promise the client relies on: nothing of the connection is handled
//     after it (as a broker not started closes the connection after
//     that refusal, handlers.go), so the client closes the connection at
//     once and resends what it had in flight there as not sent, even a
//     plain producer (client conn.refusedWhole). A front end's
//     connections (the Kafka listener) drain the same way, but their
//     requests are answered by the front end as usual: with the
//     leaderships gone, a produce there is refused NOT_LEADER_OR_FOLLOWER.
//     The long-polls parked on the connections (fetches: followers'
//     replica fetches, consumers'; queue receives; a front end's, such as
//     Kafka's Fetch and ShareFetch) are answered at once with what is
//     there, as at the end of their max wait: the controlled shutdown
//     before the drain usually ended the fetches already, by moving the
//     leaderships (a woken long-poll finds the partition not led here),
//     but not when it failed or the move was not applied here yet, and a
//     queue receive waits for records whoever leads; a long-poll left
//     parked kept its connection, and so the drain, busy up to drainMax.
//     A long-poll a front end begins during the drain is not answered at
//     once: its client would ask again at once and be answered at once,
//     a loop of empty answers until the drain's bound (a consumer whose
//     partition is still led here). It parks as before the drain, until
//     its max wait, its data or a leadership change (a fetch then answers
//     NOT_LEADER_OR_FOLLOWER), or until its connection reads no more
//     requests (step 2): pollContext.
//  2. Quiet: each connection keeps reading, and refusing, until no request
//     has come for connQuiet — the client got its refusals and moved to
//     other brokers — or until drainMax has passed since the drain began.
//     Only the wait for a request's first byte is cut to connQuiet: a
//     frame that has begun is read whole (conn.wakeWaiting).
//  3. Close gracefully: the responses are written, then the connection is
//     half-closed (FIN), and what the client still sends is read and
//     dropped until it closes its side or drainLinger passes. Closing a
//     socket with unread bytes would send a reset, and a reset makes the
//     client's kernel drop the responses it has not read yet: the answers
//     just written would be lost with the connection.
//
// A request that arrives after its connection went quiet and was closed
// is still cut; a client that got a refusal on a connection closes it, so
// that takes a client that stayed silent for connQuiet and then sent a
// request within the instant of the close.

const (
	// connQuiet is how long a draining connection must have read no
	// request before it closes: above a client's first retry backoff, so
	// a refused client's metadata refresh and retry go elsewhere first.
	connQuiet = 100 * time.Millisecond
	// drainMax bounds the drain of all connections.
	drainMax = 2 * time.Second
	// drainLinger bounds the read of what a client sends after the
	// half-close.
	drainLinger = 500 * time.Millisecond
)

// drainConns refuses every further request and waits, up to drainMax,
// for the connections to go quiet and close. The caller then cancels
// connCtx, which stops what is left.
func (b *Broker) drainConns() {
	b.mu.Lock()
	b.refusing.Store(true)
	for c := range b.conns {
		// Wake a reader waiting for a request with the idle timeout: it
		// waits again with connQuiet (readNext). One inside a frame
		// reads it whole first: cut, the request would end with an
		// unknown outcome.
		c.wakeWaiting()
		// Answer the parked long-polls now, with what is there, rather
		// than wait them out to drainMax.
		c.endPolls()
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() {
		b.connWG.Wait()
		close(done)
	}()
	t := time.NewTimer(drainMax)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.mu.Lock()
		n := len(b.conns)
		b.mu.Unlock()
		b.logger.Info("connections still busy after the drain; closing them", zap.Int("connections", n))
	}
}

// pollContext is the context a long-poll begun now on c waits on (a
// Fetch, a queue receive; FrontConn.PollContext for a front end's): before
// the drain, pollCtx, which the drain's start ends; during it, on a front
// end's connection, whose requests are still served, lateCtx, which ends
// once the reader stopped: no request for connQuiet, the client closed
// the connection, or drainMax. On the sluice listener a request handled
// during the drain is refused, never waits, and pollCtx stays.
func (c *conn) pollContext() context.Context {
	if c.fe != nil && c.b.refusing.Load() {
		return c.lateCtx
	}
	return c.pollCtx
}

// closeGracefully half-closes nc, reads and drops what the peer still
// sends until it closes its side or drainLinger passes, then closes nc
// (step 3 above).
func closeGracefully(nc net.Conn) {
	if hc, ok := nc.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
		nc.SetReadDeadline(time.Now().Add(drainLinger))
		io.Copy(io.Discard, nc)
	}
	nc.Close()
}
