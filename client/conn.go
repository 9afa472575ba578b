package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/protocol"
)

// conn is one TCP connection to one broker, shared by every request to it.
// Requests are pipelined: a writer goroutine encodes and writes them in the
// order they are handed over, a reader goroutine reads the responses, which
// a broker sends in request order, and matches each to the oldest
// outstanding request by correlation id. A mismatch means the stream can no
// longer be trusted, so the connection is closed.
//
// Once a conn fails (I/O error, bad frame, a request timeout, Close) it is
// dead for good: every request outstanding on it fails with a *connError
// saying whether it was sent, and the owner dials a new one.
type conn struct {
	addr     string
	nc       net.Conn
	clientID string
	maxFrame int

	versions [versionSlots]int16 // negotiated version per API (versionSlot); -1 unsupported

	calls    chan *call    // to the writer; unbuffered so a dead conn takes no more
	inflight chan *call    // writer → reader, in wire order
	die      chan struct{} // closed when the conn fails
	dieOnce  sync.Once
	err      error // why it died; written before die is closed
	done     chan struct{}

	// pending counts calls between do's start and return; a retiring conn
	// closes when it reaches zero (retire).
	pending  atomic.Int64
	retiring atomic.Bool
	// lastRead is when the reader last took a response off the wire
	// (unix nanoseconds; 0 for none): the producer tells a broker still
	// answering from a hung one by it (heardSince).
	lastRead atomic.Int64
	// refusedWhole: the broker answered a request with the uniform
	// BROKER_NOT_AVAILABLE refusal (refusedWhole), after which it handles
	// nothing more on the connection. Set before the conn fails, so every
	// call failed with it is reported not handled (sent false): safe to
	// send again, even without idempotence.
	refusedWhole atomic.Bool
}

// refusedWhole reports whether body, a response's body, is the uniform
// error response (protocol.AppendErrorResponse) with BROKER_NOT_AVAILABLE:
// the request was refused whole, by a broker that is draining its
// connections to shut down or has not started serving. From that refusal
// on, the broker handles no request of the connection: a draining broker
// refuses every request it reads until it closes, and a starting one
// closes the connection after the refusal without reading on (broker
// drain.go). So the requests still in flight on it were not handled, and
// the client closes the connection at once rather than wait for the
// broker to: a request it sent later could meet the close and end with an
// unknown outcome (R14).
func refusedWhole(body []byte) bool {
	return len(body) == 2 && protocol.ErrorCode(int16(uint16(body[0])<<8|uint16(body[1]))) == protocol.ErrBrokerNotAvailable
}

// errRefusedWhole ends a conn after the broker refused a request whole
// (refusedWhole).
var errRefusedWhole = errors.New("the broker refused a request whole (BROKER_NOT_AVAILABLE: shutting down or starting): it handles nothing more on the connection, closed")

// lostError is the error of a call sent on c and not answered when c died:
// its outcome is unknown, unless the broker refused a request before it
// whole (refusedWhole), which proves it was not handled.
func (c *conn) lostError() *connError {
	return &connError{addr: c.addr, sent: !c.refusedWhole.Load(), err: c.err}
}

// heardSince reports whether a response arrived on c at or after t, and
// c is not dead.
func (c *conn) heardSince(t time.Time) bool {
	return c.alive() && c.lastRead.Load() >= t.UnixNano()
}

// call is one request and, once it completes, its outcome.
type call struct {
	req     protocol.Message
	resp    protocol.Message // nil: no response expected (acks=0)
	version int16
	corr    int32
	// ownBody hands the frame to resp (the reader detaches it and reads
	// the next frame into a new buffer), so byte slices in resp (a
	// Fetch's record sets) stay valid and can be handed to the user
	// without a per-record copy.
	ownBody bool
	// buf holds the frame of an ownBody call's response, set before done
	// is signalled; the caller owns one hold on it (doOwned).
	buf  *fetchBuf
	sent atomic.Bool
	done chan error // buffered: the reader never blocks on an abandoned call
}

// maxPipelined bounds the requests written but not yet answered on one
// connection; the writer waits when it is reached.
const maxPipelined = 256

// versionSlots holds the Kafka-range keys below 80 (the consumer-group
// APIs reach 69) and, after them, the
// first few internal keys (protocol.InternalKeyBase and up).
const (
	kafkaSlots    = 80
	internalSlots = 16
	versionSlots  = kafkaSlots + internalSlots
)

// versionSlot is k's index in conn.versions, or -1 for a key this client
// never sends.
func versionSlot(k protocol.APIKey) int {
	switch {
	case k >= 0 && k < kafkaSlots:
		return int(k)
	case k >= protocol.InternalKeyBase && k < protocol.InternalKeyBase+internalSlots:
		return kafkaSlots + int(k-protocol.InternalKeyBase)
	}
	return -1
}

// dialConn connects to addr and negotiates API versions. The conn's
// goroutines stop when it fails or is closed; close waits for them.
func dialConn(ctx context.Context, cfg *config, addr string) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, cfg.dialTimeout)
	defer cancel()
	nc, err := cfg.dial(dctx, "tcp", addr)
	if err == nil && cfg.tls != nil {
		nc, err = auth.ClientHandshake(dctx, nc, cfg.tls, addr)
	}
	if err != nil {
		return nil, &connError{addr: addr, err: err}
	}
	c := &conn{
		addr: addr, nc: nc, clientID: cfg.clientID, maxFrame: cfg.maxFrameBytes,
		calls:    make(chan *call),
		inflight: make(chan *call, maxPipelined),
		die:      make(chan struct{}),
		done:     make(chan struct{}),
	}
	writerDone := make(chan struct{})
	go c.writeLoop(writerDone)
	go c.readLoop(writerDone)
	err = c.negotiate(dctx)
	if err == nil && cfg.sasl != nil {
		err = c.login(dctx, cfg.sasl)
	}
	if err != nil {
		c.close()
		if cfg.tls == nil && auth.ClosedByPeer(err) {
			// A TLS listener closes a connection whose first bytes are
			// not a TLS handshake, without a word.
			err = fmt.Errorf("%w (the broker closed the connection without answering: is its listener TLS? see client.TLS, or sluice --tls-ca)", err)
		}
		// Whatever the negotiation met, the request the caller dialled
		// for was never sent: a produce that fails here is definite.
		// Refused credentials are final: trying again fails the same way.
		return nil, &connError{addr: addr, err: err, final: errors.Is(err, ErrAuthentication)}
	}
	return c, nil
}

// negotiate asks ApiVersions (v0, which every broker reads) and picks, per
// API, the highest version both sides support.
func (c *conn) negotiate(ctx context.Context) error {
	for i := range c.versions {
		c.versions[i] = -1
	}
	c.versions[versionSlot(protocol.APIVersions)] = 0
	var resp protocol.APIVersionsResponse
	if err := c.do(ctx, &protocol.APIVersionsRequest{}, &resp, time.Hour, false); err != nil {
		return fmt.Errorf("broker %s: api versions: %w", c.addr, err)
	}
	if resp.ErrorCode == protocol.ErrThrottlingQuotaExceeded {
		// The broker's answer to the first request of a connection it
		// accepted past its connection limits, before it closes it.
		return fmt.Errorf("broker %s: %w", c.addr, ErrConnectionLimit)
	}
	if resp.ErrorCode != protocol.NoError && resp.ErrorCode != protocol.ErrUnsupportedVersion {
		return fmt.Errorf("broker %s: api versions: %w", c.addr, resp.ErrorCode.Err())
	}
	for _, r := range resp.APIs {
		lo, hi, ok := r.Key.Versions()
		slot := versionSlot(r.Key)
		if !ok || slot < 0 {
			continue
		}
		v := min(hi, r.Max)
		if v >= max(lo, r.Min) {
			c.versions[slot] = v
		}
	}
	return nil
}

// alive reports whether the conn can still take requests.
func (c *conn) alive() bool {
	select {
	case <-c.die:
		return false
	default:
		return true
	}
}

// fail kills the conn with err (the first cause wins).
func (c *conn) fail(err error) {
	c.dieOnce.Do(func() {
		c.err = err
		close(c.die)
		c.nc.Close()
	})
}

// close kills the conn and waits for its goroutines.
func (c *conn) close() {
	c.fail(ErrClosed)
	<-c.done
}

// errRetired ends a conn retired once its last request was answered.
var errRetired = errors.New("connection retired: the broker left the metadata or moved")

// retire closes the conn once no request is outstanding on it, rather
// than at once: the broker left the metadata (it shut down or was fenced)
// or moved, but what was already sent to it still gets its answer. Cut
// off, a produce in flight would end "maybe written"; answered, it is
// NOT_LEADER_OR_FOLLOWER and retried. A broker that is gone fails the
// conn by itself, or the request timeout does.
func (c *conn) retire() {
	c.retiring.Store(true)
	if c.pending.Load() == 0 {
		c.fail(errRetired)
	}
}

// callDone ends a call's stay in pending (see retire).
func (c *conn) callDone() {
	if c.pending.Add(-1) == 0 && c.retiring.Load() {
		c.fail(errRetired)
	}
}

// do sends req and waits for its response, decoded into resp (nil for a
// request the broker does not answer: do returns once it is written).
// timeout bounds the wait after sending; on expiry the conn is closed, as a
// late response would otherwise be read as the answer to nothing. ctx ends
// the wait but not the conn: the request may still be sent and answered,
// so the caller must not reuse resp after an error. ownBody: see call.
func (c *conn) do(ctx context.Context, req, resp protocol.Message, timeout time.Duration, ownBody bool) error {
	cl, err := c.start(ctx, req, resp, ownBody)
	if err != nil {
		return err
	}
	return c.wait(ctx, cl, timeout)
}

// doOwned is do with ownBody for a fetch: it also returns the buffer the
// response was read into, held once for the caller, whose byte slices
// (the record sets) alias it.
func (c *conn) doOwned(ctx context.Context, req, resp protocol.Message, timeout time.Duration) (*fetchBuf, error) {
	cl, err := c.start(ctx, req, resp, true)
	if err != nil {
		return nil, err
	}
	if err := c.wait(ctx, cl, timeout); err != nil {
		return nil, err
	}
	return cl.buf, nil
}

// start hands req to the writer and returns without waiting for the
// response: requests started one after another from one goroutine go on
// the wire in that order (the idempotent producer's batches of a partition
// must). Every call start returns must be passed to wait.
func (c *conn) start(ctx context.Context, req, resp protocol.Message, ownBody bool) (*call, error) {
	v := int16(-1)
	if slot := versionSlot(req.Key()); slot >= 0 {
		v = c.versions[slot]
	}
	if v < 0 {
		return nil, fmt.Errorf("broker %s: %v: %w", c.addr, req.Key(), protocol.ErrUnsupportedVersion)
	}
	cl := &call{req: req, resp: resp, version: v, ownBody: ownBody, done: make(chan error, 1)}
	c.pending.Add(1)
	select {
	case c.calls <- cl:
		return cl, nil
	case <-c.die:
		c.callDone()
		return nil, &connError{addr: c.addr, err: c.err}
	case <-ctx.Done():
		c.callDone()
		return nil, &connError{addr: c.addr, err: ctx.Err()}
	}
}

// wait waits for the response to cl, which start returned; timeout and
// ctx as for do.
func (c *conn) wait(ctx context.Context, cl *call, timeout time.Duration) error {
	defer c.callDone()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-cl.done:
		return err
	case <-t.C:
		c.fail(fmt.Errorf("%v request timed out after %v", cl.req.Key(), timeout))
		// The writer may be writing the request's bytes (a produce's
		// batches are written from the caller's memory, not copied):
		// return once it stopped, so the caller may reuse them.
		<-c.done
		return &connError{addr: c.addr, sent: true, timeout: true, err: context.DeadlineExceeded}
	case <-ctx.Done():
		return &connError{addr: c.addr, sent: cl.sent.Load(), err: ctx.Err()}
	}
}

// writeLoop encodes requests into one reused buffer and writes them,
// coalescing calls that are already waiting into a single write. A
// produce request's record sets are not copied: its frame is encoded
// with holes (protocol.ProduceRequest.AppendSplitFrame) and the batches'
// own bytes fill them in one writev, so the sender must keep them intact
// until the call is done, and a call that times out waits for the writer
// to stop (wait).
func (c *conn) writeLoop(done chan<- struct{}) {
	defer close(done)
	var (
		f       protocol.SplitFrame
		records [][]byte
		bufs    net.Buffers
		corr    int32
		batch   []*call
		hdr     = protocol.RequestHeader{ClientID: c.clientID}
	)
	for {
		var first *call
		select {
		case first = <-c.calls:
		case <-c.die:
			return
		}
		f.Head, f.Holes, records, batch = f.Head[:0], f.Holes[:0], records[:0], append(batch[:0], first)
		if !c.alive() {
			// Taken as the conn died: nothing of it was written.
			first.done <- &connError{addr: c.addr, err: c.err}
			return
		}
	more:
		for len(batch) < maxPipelined {
			select {
			case cl := <-c.calls:
				batch = append(batch, cl)
			default:
				break more
			}
		}
		queued := batch[:0]
		for _, cl := range batch {
			corr++
			cl.corr = corr
			hdr.Key, hdr.Version, hdr.CorrelationID = cl.req.Key(), cl.version, corr
			var err error
			if pr, ok := cl.req.(*protocol.ProduceRequest); ok {
				if err = pr.AppendSplitFrame(&f, &hdr); err == nil {
					for i := range pr.Topics {
						for j := range pr.Topics[i].Partitions {
							records = append(records, pr.Topics[i].Partitions[j].Records)
						}
					}
				}
			} else {
				f.Head, err = protocol.AppendRequest(f.Head, &hdr, cl.req)
			}
			if err != nil {
				cl.done <- fmt.Errorf("broker %s: encode: %w", c.addr, err)
				continue
			}
			queued = append(queued, cl)
		}
		for _, cl := range queued {
			cl.sent.Store(true)
			if cl.resp == nil {
				continue
			}
			select {
			case c.inflight <- cl:
			case <-c.die:
				// The reader drains inflight after this loop ends; calls not
				// queued yet are failed here, with sent=true as they are
				// marked: their bytes were about to go out with the rest.
				cl.done <- c.lostError()
			}
		}
		var err error
		if len(records) == 0 {
			_, err = c.nc.Write(f.Head)
		} else if bufs, err = f.Buffers(bufs[:0], records); err == nil {
			wire := bufs // WriteTo consumes its receiver; bufs keeps the storage
			_, err = wire.WriteTo(c.nc)
		}
		// Hold no batch's bytes past the write.
		clear(records)
		clear(bufs[:cap(bufs)])
		if err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			for _, cl := range queued {
				if cl.resp == nil {
					cl.done <- &connError{addr: c.addr, sent: !c.refusedWhole.Load(), err: err}
				}
			}
			return
		}
		for _, cl := range queued {
			if cl.resp == nil {
				cl.done <- nil
			}
		}
		if cap(f.Head) > 4<<20 {
			f.Head = nil // do not pin a buffer grown for one huge request
		}
	}
}

// readLoop reads responses and completes calls in order. When the conn
// dies it waits for the writer to stop, then fails every call still
// waiting for a response.
func (c *conn) readLoop(writerDone <-chan struct{}) {
	defer close(c.done)
	fr := protocol.NewFrameReader(c.nc, c.maxFrame)
	// After a detached frame, the next is read into a released fetch
	// buffer when there is one (fetchBufs): next is it.
	var next *fetchBuf
	fr.SetAlloc(func(int) []byte {
		next = getFetchBuf()
		return next.frame
	})
	var d protocol.Decoder
	for {
		frame, err := fr.Next()
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			break
		}
		c.lastRead.Store(time.Now().UnixNano())
		corr, body, err := protocol.ParseResponse(frame)
		if err != nil {
			c.fail(err)
			break
		}
		var cl *call
		select {
		case cl = <-c.inflight:
		default:
		}
		if cl == nil || cl.corr != corr {
			c.fail(fmt.Errorf("response with correlation id %d does not match the oldest request", corr))
			if cl != nil {
				cl.done <- &connError{addr: c.addr, sent: true, err: c.err}
			}
			break
		}
		if cl.ownBody {
			// The body is the caller's from now on (records alias it):
			// the reader reads the next frame into a buffer of its own.
			fr.Detach()
			if next == nil {
				next = getFetchBuf()
			}
			next.frame, cl.buf, next = frame, next, nil
		}
		whole := refusedWhole(body)
		if whole {
			c.refusedWhole.Store(true) // before fail: the calls after it were not handled
		}
		d.Reset(body)
		if err := cl.resp.Decode(&d, cl.version); err != nil {
			// The frame boundary is intact, so the conn survives; the
			// request's outcome is unknown to us.
			cl.done <- fmt.Errorf("broker %s: %w", c.addr, err)
		} else {
			cl.done <- nil
		}
		if whole {
			c.fail(errRefusedWhole)
			break
		}
	}
	<-writerDone
	for {
		select {
		case cl := <-c.inflight:
			cl.done <- c.lostError()
		default:
			return
		}
	}
}
