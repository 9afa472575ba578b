package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/protocol"
)

// A connection runs three goroutines, as Kafka's network layer does:
//
//   - the reader reads frames, bounded by the in-flight request count
//     (slots), the connection's byte bound and the broker's memory budget,
//     and queues them to the handler;
//   - the handler processes requests one at a time in arrival order (so a
//     connection's produces append in order) and queues one response per
//     request, also in order; a response may complete later (a long-poll
//     Fetch), without holding the handler up;
//   - the writer takes the responses in order, waits for each to be
//     complete and writes it.
//
// Shutdown of a connection flows down the pipeline: the reader stops
// (end of stream, error, broker shutdown), closes reqs; the handler
// answers what was queued and closes resps; the writer writes what it
// can, then the connection is closed. A write error cancels ctx so the
// reader and any long-poll stop, and the writer drains the rest.
type conn struct {
	b      *Broker
	nc     net.Conn
	remote string
	ip     string // remote's host: the per-host count's key
	logger *zap.Logger

	// firstBy is when the whole first request must have arrived; first is
	// true until it has (reader-owned).
	firstBy time.Time
	first   bool
	// quiet: the reader has waited connQuiet for a request once since
	// the broker began draining (reader-owned).
	quiet bool
	// waiting: the reader waits for a request's first byte, not inside a
	// frame (wakeWaiting). dmu guards it with the read deadline.
	dmu     sync.Mutex
	waiting bool
	// linger: the connection ends after a response that refused the
	// request (closeAfter), and closes gracefully so that the client
	// reads it. Written by writeLoop, read by serve after it returned.
	linger bool
	// probation is the limit this connection was accepted past, or -1:
	// its first request must come from a broker (connlimit.go).
	// Handler-owned after the connection starts.
	probation refusal

	ctx    context.Context // cancelled when the connection must stop
	cancel context.CancelFunc
	// pollCtx is the long-polls' context (pollContext): ended with ctx,
	// or earlier by endPolls when the broker begins to drain its
	// connections (drain.go), which answers every parked long-poll at
	// once. lateCtx is the context of a long-poll a front end begins
	// during the drain: ended with ctx, or earlier by endLate once the
	// reader stopped (serve).
	pollCtx  context.Context
	endPolls context.CancelFunc
	lateCtx  context.Context
	endLate  context.CancelFunc

	br     *bufio.Reader
	prefix [frameHeaderLen]byte // reader-owned: a local would escape to the heap
	reqs   chan *request        // reader → handler
	resps  chan *response       // handler → writer
	slots  chan struct{}        // one per request read and not yet answered
	bytes  *budget              // request bytes held by this connection

	polls sync.WaitGroup // long-poll fetch goroutines (and a front end's, FrontConn.Go)

	// sess is who the connection is and what it may do (authz.go).
	sess Session

	// fe answers the requests of a front end's connection (ServeConn);
	// nil on the sluice listener.
	fe    FrontEnd
	front FrontConn

	// Handler-owned scratch, reused request after request.
	hdr     protocol.RequestHeader
	dec     protocol.Decoder
	scratch handlerScratch

	// Writer-owned.
	wbuf []byte
	bufs net.Buffers
	wr   net.Buffers
}

// request is one frame read from the connection.
type request struct {
	frame *[]byte // pooled buffer holding the frame after its length prefix
	size  int64   // budget bytes held for it
	read  Instant // when it was read whole; set only with an Observer
}

// response is the answer to one request, queued in request order.
type response struct {
	// ready is nil for a response complete when queued; otherwise it is
	// closed once the response is complete.
	ready chan struct{}
	frame *[]byte     // a whole response frame (pooled), or nil
	fetch *fetchState // a Fetch answered zero-copy, or nil
	reply *Reply      // a front end's answer, or nil
	// none: nothing is written (acks=0 produce, or a request skipped
	// after a malformed one).
	none bool
	// closeAfter closes the connection once this response is written;
	// the requests after it are not handled.
	closeAfter bool
	// timing is the request's path for the Observer (observe.go); its
	// instants are set only with one.
	timing RequestTiming
}

var (
	requestPool  = sync.Pool{New: func() any { return new(request) }}
	responsePool = sync.Pool{New: func() any { return new(response) }}
)

// bufPool recycles frame buffers. Buffers above maxPooledBuf are dropped so
// one large request does not pin its buffer.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

const (
	maxPooledBuf = 4 << 20
	// readChunk: a frame's buffer grows by at most max(readChunk, what has
	// arrived) before the bytes to fill it arrive, so memory tracks bytes
	// received and not the length a client declared.
	readChunk      = 64 << 10
	readBufferSize = 8 << 10
	frameHeaderLen = 4
)

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if b == nil || cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

func newConn(b *Broker, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(b.connCtx)
	pollCtx, endPolls := context.WithCancel(ctx)
	lateCtx, endLate := context.WithCancel(ctx)
	remote := nc.RemoteAddr().String()
	n := b.cfg.MaxInflightPerConn
	c := &conn{
		b:         b,
		nc:        nc,
		remote:    remote,
		logger:    b.logger.With(zap.String("remote", remote)),
		firstBy:   time.Now().Add(min(b.cfg.FirstRequestTimeout, b.cfg.IdleTimeout)),
		first:     true,
		probation: -1,
		ctx:       ctx,
		cancel:    cancel,
		pollCtx:   pollCtx,
		endPolls:  endPolls,
		lateCtx:   lateCtx,
		endLate:   endLate,
		br:        bufio.NewReaderSize(nc, readBufferSize),
		reqs:      make(chan *request, n),
		resps:     make(chan *response, n),
		slots:     make(chan struct{}, n),
		bytes:     newBudget(b.cfg.MaxInflightBytesPerConn),
	}
	c.sess.init(b, nc, remoteIP(nc.RemoteAddr()))
	return c
}

// serve runs the connection until it ends; it returns once every
// goroutine of the connection has stopped, the broker forgot it and the
// socket is closed.
func (c *conn) serve() {
	c.logger.Debug("connection opened")
	stop := context.AfterFunc(c.ctx, func() {
		// Wake a reader blocked in Read.
		c.nc.SetReadDeadline(time.Now())
	})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.handleLoop() }()
	go func() { defer wg.Done(); c.writeLoop() }()
	c.readLoop()
	c.endLate() // nothing more is read: a late long-poll answers now (drain.go)
	close(c.reqs)
	wg.Wait()
	c.polls.Wait()
	stop()
	c.cancel()
	// The connection's slot is free once it serves nothing more, before
	// a graceful close lingers (connection limits, the drain's count).
	c.b.mu.Lock()
	c.b.forget(c)
	c.b.mu.Unlock()
	if c.linger || c.b.refusing.Load() {
		closeGracefully(c.nc) // drain.go
	} else {
		c.nc.Close()
	}
	c.logger.Debug("connection closed")
}

// readLoop reads frames until the stream ends or the connection stops.
func (c *conn) readLoop() {
	for {
		select {
		case c.slots <- struct{}{}:
		case <-c.ctx.Done():
			return
		}
		req, err := c.readFrame()
		if err != nil {
			<-c.slots
			c.readError(err)
			return
		}
		c.reqs <- req
	}
}

// errIdle ends a connection that stayed idle past IdleTimeout.
var errIdle = errors.New("idle timeout")

// errDrained ends a connection the broker drained at shutdown (drain.go).
var errDrained = errors.New("drained for shutdown")

// errFirstRequest ends a connection whose first request did not arrive
// within FirstRequestTimeout.
var errFirstRequest = errors.New("first request timeout")

// readError logs why the reader stopped. A refused frame size is worth
// Info: the client is misconfigured or hostile. A first request that
// never came counts among the refused connections.
func (c *conn) readError(err error) {
	switch {
	case c.ctx.Err() != nil:
	case c.first && (errors.Is(err, errFirstRequest) || errors.Is(err, os.ErrDeadlineExceeded)):
		c.b.refused.add(c.b.logger, refusedFirstRequestTimeout, c.remote)
		c.logger.Debug("closing connection: no first request in time", zap.Error(err))
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, protocol.ErrFrameSize):
		c.logger.Info("refused frame; closing connection", zap.Error(err))
	default:
		c.logger.Debug("closing connection", zap.Error(err))
	}
}

// readFrame reads one frame: it waits up to IdleTimeout for the first
// byte (longer while requests are in flight), then gives the client
// FrameReadTimeout for the length prefix and again for the rest, after
// taking the frame's bytes from the connection's and the broker's budget.
// The connection's first frame must also arrive whole by firstBy.
func (c *conn) readFrame() (*request, error) {
	req, err := c.readNext()
	if err == nil {
		c.first, c.quiet = false, false
	}
	return req, err
}

func (c *conn) readNext() (*request, error) {
	cfg := &c.b.cfg
	for {
		if err := c.setReadDeadline(cfg.IdleTimeout, true); err != nil {
			return nil, err
		}
		_, err := c.br.Peek(1)
		if err == nil {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && c.ctx.Err() == nil {
			if c.b.refusing.Load() {
				// The broker drains its connections (drain.go): one more
				// connQuiet for a last request, then stop.
				if c.quiet {
					return nil, errDrained
				}
				c.quiet = true
				continue
			}
			if c.first {
				return nil, errFirstRequest
			}
			if len(c.slots) > 1 {
				continue // our own slot plus requests still being answered
			}
			return nil, errIdle
		}
		return nil, err
	}
	if err := c.setReadDeadline(cfg.FrameReadTimeout, false); err != nil {
		return nil, err
	}
	prefix := c.prefix[:]
	if _, err := io.ReadFull(c.br, prefix); err != nil {
		return nil, err
	}
	n := int64(int32(uint32(prefix[0])<<24 | uint32(prefix[1])<<16 | uint32(prefix[2])<<8 | uint32(prefix[3])))
	if n < 0 || n > int64(cfg.MaxFrameBytes) {
		return nil, &protocol.FrameSizeError{Length: n, Max: cfg.MaxFrameBytes}
	}
	if err := c.bytes.acquire(c.ctx, n); err != nil {
		return nil, err
	}
	if err := c.b.budget.acquire(c.ctx, n); err != nil {
		c.bytes.release(n)
		return nil, err
	}
	req := requestPool.Get().(*request)
	req.frame, req.size = getBuf(), n
	err := c.setReadDeadline(cfg.FrameReadTimeout, false)
	if err == nil {
		err = readBody(c.br, req.frame, int(n))
	}
	if err != nil {
		c.release(req)
		return nil, err
	}
	if c.b.obs != nil {
		req.read = observeNow()
	}
	return req, nil
}

// setReadDeadline arms the read deadline d from now (no later than
// firstBy for the first frame), then checks ctx: the shutdown hook sets a
// deadline in the past after ctx is cancelled, and a deadline set after
// the hook ran would otherwise override it.
func (c *conn) setReadDeadline(d time.Duration, waiting bool) error {
	now := time.Now()
	at := now.Add(d)
	if c.first && c.firstBy.Before(at) {
		at = c.firstBy
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.waiting = waiting
	c.nc.SetReadDeadline(at)
	// Checked after setting, as ctx is: drainConns sets refusing before
	// it wakes the readers. Only the wait for a request is cut to
	// connQuiet: a frame that has begun is read whole (FrameReadTimeout;
	// drainMax bounds the drain), and refused. Cut half way, it would end
	// the connection under a request the client sent, whose outcome it
	// then cannot know.
	if q := now.Add(connQuiet); waiting && c.b.refusing.Load() && at.After(q) {
		c.nc.SetReadDeadline(q)
	}
	return c.ctx.Err()
}

// wakeWaiting wakes the reader if it waits for a request (drainConns), so
// it waits again with connQuiet; a reader inside a frame reads it whole.
func (c *conn) wakeWaiting() {
	c.dmu.Lock()
	if c.waiting {
		c.nc.SetReadDeadline(time.Now())
	}
	c.dmu.Unlock()
}

// readBody reads n bytes into *buf, growing it no faster than bytes
// arrive.
func readBody(r io.Reader, buf *[]byte, n int) error {
	b := (*buf)[:0]
	for len(b) < n {
		want := n - len(b)
		if free := cap(b) - len(b); want > free {
			want = min(want, max(readChunk, len(b)))
			if want > free {
				grown := make([]byte, len(b), len(b)+want)
				copy(grown, b)
				b = grown
			}
		}
		m, err := io.ReadFull(r, b[len(b):len(b)+want])
		b = b[:len(b)+m]
		if err != nil {
			*buf = b[:0]
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	*buf = b
	return nil
}

// release gives a request's buffer and budget back. The handler calls it
// as soon as nothing refers to the frame any more.
func (c *conn) release(req *request) {
	if req.frame == nil {
		return
	}
	putBuf(req.frame)
	req.frame = nil
	c.b.budget.release(req.size)
	c.bytes.release(req.size)
	requestPool.Put(req)
}

// handleLoop answers requests in arrival order.
func (c *conn) handleLoop() {
	defer close(c.resps)
	poisoned := false
	for req := range c.reqs {
		var resp *response
		if poisoned {
			// After a malformed request the stream means nothing more.
			resp = responsePool.Get().(*response)
			resp.none = true
			c.release(req)
		} else {
			if c.fe != nil {
				resp = c.handleFront(req)
			} else {
				resp = c.handle(req)
			}
			poisoned = resp.closeAfter
			if c.b.obs != nil {
				// A response completed by a goroutine (resp.ready) is
				// owned by it now, but timing.Local is not written there.
				resp.timing.Local = observeNow()
			}
		}
		c.resps <- resp
	}
}

// writeLoop writes responses in order. Small responses are gathered in
// wbuf and written together when no further response is ready.
func (c *conn) writeLoop() {
	var failed error
	for resp := range c.resps {
		if resp.ready != nil {
			select {
			case <-resp.ready:
			default:
				failed = c.flushOrFail(failed)
				<-resp.ready // long-polls finish early once ctx is cancelled
			}
		}
		if failed == nil && !resp.none {
			failed = c.writeResponse(resp)
		}
		if c.b.obs != nil && !resp.timing.Start.IsZero() {
			c.observeRequest(resp)
		}
		closeAfter := resp.closeAfter
		c.recycle(resp)
		<-c.slots
		if failed == nil && (closeAfter || len(c.resps) == 0) {
			failed = c.flushOrFail(failed)
		}
		if failed == nil && closeAfter {
			failed = errors.New("closing after the response (a malformed request, or a broker not started)")
		}
		if failed != nil && c.ctx.Err() == nil {
			c.logger.Debug("closing connection", zap.Error(failed))
			c.cancel()
			if closeAfter {
				// The answer just written must reach the client: serve
				// closes gracefully, as a drain does (drain.go, step 3).
				c.linger = true
			} else {
				c.nc.Close()
			}
		}
	}
	c.flushOrFail(failed)
}

// flushOrFail writes wbuf unless the connection already failed.
func (c *conn) flushOrFail(failed error) error {
	if failed != nil || len(c.wbuf) == 0 {
		return failed
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	_, err := c.nc.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err
}

// wbufLimit: past it the gathered responses are written before the next.
const wbufLimit = 64 << 10

// writeResponse writes (or gathers) one complete response.
func (c *conn) writeResponse(resp *response) error {
	if resp.fetch != nil {
		return c.writeFetch(resp.fetch)
	}
	if resp.reply != nil {
		return c.writeReply(resp.reply)
	}
	if len(c.wbuf) > 0 && len(c.wbuf)+len(*resp.frame) > wbufLimit {
		if err := c.flushOrFail(nil); err != nil {
			return err
		}
	}
	if len(*resp.frame) >= wbufLimit {
		c.nc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
		_, err := c.nc.Write(*resp.frame)
		return err
	}
	c.wbuf = append(c.wbuf, *resp.frame...)
	return nil
}

// recycle releases what a written (or abandoned) response holds.
func (c *conn) recycle(resp *response) {
	if resp.fetch != nil {
		resp.fetch.releaseViews()
		putFetchState(resp.fetch)
	}
	if resp.reply != nil && resp.reply.Done != nil {
		resp.reply.Done()
	}
	putBuf(resp.frame)
	*resp = response{}
	responsePool.Put(resp)
}
