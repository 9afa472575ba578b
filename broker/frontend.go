package broker

import (
	"context"
	"errors"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// Front ends other than the sluice protocol (the Kafka protocol, package
// kafka) are served over this package's connection handling, not a copy
// of it: a connection accepted on a front end's listener is admitted
// against the same connection limits (MaxConnections, MaxConnectionsPerIP;
// no broker reserve: brokers never connect there), and its frames are
// read by the same reader, under the same MaxFrameBytes, in-flight bounds
// (MaxInflightPerConn, MaxInflightBytesPerConn), broker-wide MemoryBudget
// and timeouts (FirstRequestTimeout, FrameReadTimeout, IdleTimeout,
// WriteTimeout). The front end only answers frames: Handle is called on
// the connection's handler goroutine, one frame at a time in arrival
// order, and its replies are written in the same order.

// FrontEnd answers the frames of one wire protocol. Both wire formats
// frame requests the same way (a big-endian i32 length, then the
// request), so one reader serves both.
type FrontEnd interface {
	// Handle answers one request: frame is the request after its length
	// prefix, valid only during the call (copy what outlives it). A nil
	// Reply writes nothing. Handle must not block on anything but the
	// core's own calls; a wait (a long-poll, an acknowledgement) runs in
	// a goroutine started with FrontConn.Go that completes the Reply and
	// closes its Ready.
	Handle(fc *FrontConn, frame []byte) *Reply
	// Name names the front end in metrics (the listener label of the
	// request series): a short constant, "kafka".
	Name() string
}

// Reply is a front end's answer to one request.
type Reply struct {
	// Ready, when not nil, is closed once the Reply is complete; the
	// writer waits for it in request order.
	Ready chan struct{}
	// Frame is the whole response frame, length prefix included, as one
	// or more pieces (written with writev); empty writes nothing.
	Frame net.Buffers
	// Close closes the connection once this Reply is written; the
	// requests read after it are not answered. Set it before Handle
	// returns.
	Close bool
	// Done, when not nil, is called once the Reply was written or
	// abandoned: it releases what Frame refers to (segment Views).
	Done func()
	// API and Code are what the metrics count the request under
	// (Observer.Request): the API's name in the front end's protocol,
	// from a fixed set ("other" for an API it does not serve), and the
	// request's error in the shared code table (Kafka's numbers), set
	// before Ready is closed.
	API  string
	Code protocol.ErrorCode

	completed Instant // set by FrontConn.Finish with an Observer
}

// Finish completes r, made with a Ready, from the goroutine that filled
// it: it notes when (for the request's wait stage, with an Observer) and
// closes Ready. A front end calls it rather than closing Ready itself.
func (fc *FrontConn) Finish(r *Reply) {
	if fc.c.b.obs != nil {
		r.completed = observeNow()
	}
	close(r.Ready)
}

// FrontConn is a front end's view of one connection.
type FrontConn struct{ c *conn }

// Context is cancelled when the connection stops.
func (fc *FrontConn) Context() context.Context { return fc.c.ctx }

// PollContext is the context a long-poll begun now waits on, as the
// sluice front end's fetches and queue receives do (drain.go,
// pollContext): cancelled with Context; before the broker drains its
// connections, cancelled when the drain begins, so that a parked wait
// answers at once with what is there; during the drain, cancelled once
// the connection reads no more requests. A front end takes it once per
// request, when the request begins, and waits on it, not on Context, in
// every long-poll: a Fetch (Broker.WaitFetch), a queue receive
// (Broker.QueueReceiveVia).
func (fc *FrontConn) PollContext() context.Context { return fc.c.pollContext() }

// Logger logs with the connection's remote address.
func (fc *FrontConn) Logger() *zap.Logger { return fc.c.logger }

// RemoteHost is the connection's remote host (a group member's client
// host, as the sluice protocol's handlers record it).
func (fc *FrontConn) RemoteHost() string { return fc.c.ip }

// Session is the connection's identity and access (authz.go): a front
// end runs its requests' checks through it.
func (fc *FrontConn) Session() *Session { return &fc.c.sess }

// Go runs f in a goroutine that the connection waits for before it
// closes. f must return soon after Context is cancelled.
func (fc *FrontConn) Go(f func()) {
	fc.c.polls.Add(1)
	go func() {
		defer fc.c.polls.Done()
		f()
	}()
}

// Closing is closed when Close begins. From then on the broker admits
// no new connection, on its own listener or through ServeConn: a front
// end's listener stops accepting then, so that a client dialling it is
// refused (a dial error, which Kafka clients retry elsewhere) rather than
// accepted and closed at once (franz-go takes a connection closed before
// its first answer for a misconfiguration and does not retry: the
// produce or metadata request fails). The connections already open are
// served through the controlled shutdown and drained (drain.go).
func (b *Broker) Closing() <-chan struct{} { return b.closed }

// ErrConnRefused is returned by ServeConn for a connection refused at a
// connection limit or because the broker is not serving.
var ErrConnRefused = errors.New("connection refused")

// ServeConn serves nc, accepted on a front end's listener, with fe until
// the connection ends, ctx is cancelled or the broker stops; it closes nc
// and returns once every goroutine of the connection has stopped. A
// connection past a connection limit, or arriving before Start finished
// or after Close began, is closed at once (ErrConnRefused). The broker's
// Close waits for connections served here, as for its own.
func (b *Broker) ServeConn(ctx context.Context, nc net.Conn, fe FrontEnd) error {
	if !b.ready.Load() {
		nc.Close()
		return ErrConnRefused
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		nc.Close()
		return ErrConnRefused
	}
	c, why := b.admit(nc, false)
	if c == nil {
		b.mu.Unlock()
		b.refused.add(b.logger, why, nc.RemoteAddr().String())
		nc.Close()
		return ErrConnRefused
	}
	c.fe, c.front = fe, FrontConn{c: c}
	c.sess.frontEnd = true // the broker login is the sluice listener's only
	b.connWG.Add(1)
	b.mu.Unlock()
	defer b.connWG.Done()
	stop := context.AfterFunc(ctx, c.cancel)
	defer stop()
	c.serve()
	return nil
}

// handleFront answers one request of a front end's connection. A panic
// in the front end is recovered, logged with its stack and closes the
// connection: the front end's wire format may have no answer that every
// client reads.
func (c *conn) handleFront(req *request) (resp *response) {
	resp = responsePool.Get().(*response)
	defer c.release(req)
	defer func() {
		if r := recover(); r != nil {
			c.b.panics.Add(1)
			c.logger.Error("panic in request handler", zap.Any("panic", r), zap.Stack("stack"))
			*resp = response{none: true, closeAfter: true}
		}
	}()
	if c.b.obs != nil {
		resp.timing.Read, resp.timing.Start = req.read, observeNow()
	}
	r := c.fe.Handle(&c.front, *req.frame)
	if r == nil {
		resp.timing = RequestTiming{} // not observed: nothing says what it was
		resp.none = true
		return resp
	}
	resp.reply, resp.ready, resp.closeAfter = r, r.Ready, r.Close
	return resp
}

// writeReply writes (or gathers, when small) a front end's reply.
func (c *conn) writeReply(r *Reply) error {
	n := 0
	for _, b := range r.Frame {
		n += len(b)
	}
	switch {
	case n == 0:
		return nil
	case n < wbufLimit:
		if len(c.wbuf)+n > wbufLimit {
			if err := c.flushOrFail(nil); err != nil {
				return err
			}
		}
		for _, b := range r.Frame {
			c.wbuf = append(c.wbuf, b...)
		}
		return nil
	}
	if err := c.flushOrFail(nil); err != nil {
		return err
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	c.wr = append(c.wr[:0], r.Frame...)
	_, err := c.wr.WriteTo(c.nc)
	c.wr = nil
	return err
}

// ID is this broker's id.
func (b *Broker) ID() int32 { return b.cfg.BrokerID }

// ClusterID is the cluster id reported in Metadata.
func (b *Broker) ClusterID() string { return b.cfg.ClusterID }

// MaxFetchWait caps a Fetch's max wait (Config.MaxFetchWait).
func (b *Broker) MaxFetchWait() time.Duration { return b.cfg.MaxFetchWait }

// Members is serf's member list as this broker sees it (nil before
// Start): each broker's addresses, the Kafka listener's among them.
func (b *Broker) Members() []controller.Member {
	b.mu.Lock()
	m := b.members
	b.mu.Unlock()
	if m == nil {
		return nil
	}
	return m.Members()
}

// FetchSessionStats is what a front end's cache of fetch sessions
// (KIP-227, the Kafka listener's) reports to the metrics: counters since
// the listener started and what the cache holds now. It lives here, with
// the front ends' other shared types, so the metrics (package httpapi)
// read it without importing a front end.
type FetchSessionStats struct {
	Slots       int   // sessions the cache may hold (0: sessions off)
	Sessions    int   // sessions held now
	Partitions  int   // partitions held by them
	Created     int64 // sessions opened by a full fetch
	Incremental int64 // incremental fetches served
	Sessionless int64 // fetches answered without a session (id 0)
	// CacheFull counts full fetches that asked for a session and were
	// answered without one because the cache had no room (every slot
	// held by a session used within the idle age, or the partition cap
	// reached); they are in Sessionless too.
	CacheFull int64
	// Sessions evicted, by reason: idle (the cache's least recently used,
	// idle past the eviction age, for a new session), ConnCap (the
	// connection's least recently used, for its new session past the
	// per-connection cap), TooLarge (an incremental fetch grew it past
	// the partition caps; answered FETCH_SESSION_ID_NOT_FOUND).
	EvictedIdle, EvictedConnCap, EvictedTooLarge int64
	NotFound                                     int64 // fetches answered FETCH_SESSION_ID_NOT_FOUND (70)
	BadEpoch                                     int64 // fetches answered INVALID_FETCH_SESSION_EPOCH (71)
}

// Evicted is the sessions evicted for any reason.
func (s FetchSessionStats) Evicted() int64 {
	return s.EvictedIdle + s.EvictedConnCap + s.EvictedTooLarge
}

// GroupWriteTimeout bounds a front end's wait for a group or queue call's
// records to commit. It does not derive from the connection: a change
// asked for is finished, not abandoned halfway, on every front end.
const GroupWriteTimeout = groupWriteTimeout
