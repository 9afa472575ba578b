package protocol

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ErrNotSent matches (errors.Is) a RoundTrip failure before any byte of the
// request was written: the peer cannot have seen it, so sending it again
// cannot apply it twice.
var ErrNotSent = errors.New("request not sent")

// Conn is a blocking request/response connection: one request written, its
// response read, then the next — what brokers need between themselves (a
// follower's fetches, a controller write forwarded to the leader), where
// there is one request in flight at a time. (The client pipelines many
// requests per connection and matches responses by itself.)
//
// A Conn reuses its request buffer, frame reader and decoder, so a round
// trip allocates nothing of its own: byte slices decoded into a response
// (a Fetch's record sets) alias the frame buffer and are valid until the
// next RoundTrip.
//
// After a failure other than ErrNotSent the stream's position is unknown:
// the Conn is broken for good and every later RoundTrip fails with the
// same error. RoundTrip is not safe for concurrent use; Interject and
// Close may be called from any goroutine, also during a RoundTrip.
type Conn struct {
	nc       net.Conn
	fr       *FrameReader
	d        Decoder
	clientID string
	ctx      context.Context
	stop     func() bool // unregisters the close on ctx's end

	// mu guards the writes to nc and what they number: a request is
	// written whole under it, so an Interject never splits one.
	mu     sync.Mutex
	corr   int32
	buf    []byte
	ibuf   []byte  // Interject's request buffer
	skip   []int32 // correlation ids of interjected requests not yet answered, in order
	broken error
}

// NewConn takes over nc: requests carry clientID, responses longer than
// maxFrameSize (<= 0: DefaultMaxFrameSize) are refused, and nc is closed
// as soon as ctx ends, which cuts a RoundTrip short. The caller must Close
// the Conn, which also lets go of ctx.
func NewConn(ctx context.Context, nc net.Conn, clientID string, maxFrameSize int) *Conn {
	return &Conn{
		nc:       nc,
		fr:       NewFrameReader(nc, maxFrameSize),
		clientID: clientID,
		ctx:      ctx,
		stop:     context.AfterFunc(ctx, func() { nc.Close() }),
	}
}

// Close closes the connection. Idempotent.
func (c *Conn) Close() error {
	c.stop()
	// nc first: it cuts short a write that holds mu.
	err := c.nc.Close()
	c.mu.Lock()
	if c.broken == nil {
		c.broken = net.ErrClosed
	}
	c.mu.Unlock()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// RoundTrip sends req at version and decodes the matching response into
// resp, both before deadline (zero: none). The response must carry the
// request's correlation id. An error wraps ErrNotSent when nothing was
// written, and the context's error when the Conn's context ended.
func (c *Conn) RoundTrip(deadline time.Time, req, resp Message, version int16) error {
	return c.RoundTripSent(deadline, req, resp, version, nil)
}

// RoundTripSent is RoundTrip, calling sent (when not nil) once req is
// written and before its response is read: from then on a request
// written by Interject reaches the peer after req.
func (c *Conn) RoundTripSent(deadline time.Time, req, resp Message, version int16, sent func()) error {
	corr, err := c.send(deadline, req, version)
	if err != nil {
		return err
	}
	if sent != nil {
		sent()
	}
	frame, err := c.next(corr)
	if err != nil {
		return c.fail(fmt.Errorf("read %v response: %w", req.Key(), err))
	}
	_, body, err := ParseResponse(frame)
	if err == nil {
		c.d.Reset(body)
		err = resp.Decode(&c.d, version)
		c.d.Reset(nil) // do not pin the frame through the decoder
	}
	if err != nil {
		return c.fail(fmt.Errorf("%v response: %w", req.Key(), err))
	}
	return nil
}

// send writes req at version with the next correlation id, before
// deadline (zero: none), which also becomes the read deadline.
func (c *Conn) send(deadline time.Time, req Message, version int16) (int32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return 0, fmt.Errorf("%v: %w: %w", req.Key(), ErrNotSent, c.broken)
	}
	c.corr++
	h := RequestHeader{Key: req.Key(), Version: version, CorrelationID: c.corr, ClientID: c.clientID}
	var err error
	if c.buf, err = AppendRequest(c.buf[:0], &h, req); err != nil {
		return 0, fmt.Errorf("encode %v: %w: %w", req.Key(), ErrNotSent, err)
	}
	// The deadline is set before ctx is looked at: ctx ending from here on
	// closes the connection after it, so no write or read outlives ctx.
	if err := c.nc.SetDeadline(deadline); err != nil {
		return 0, c.failLocked(fmt.Errorf("%v: set deadline: %w: %w", req.Key(), ErrNotSent, err))
	}
	if c.ctx.Err() != nil {
		return 0, c.failLocked(fmt.Errorf("%v: %w", req.Key(), ErrNotSent))
	}
	if _, err := c.nc.Write(c.buf); err != nil {
		return 0, c.failLocked(fmt.Errorf("send %v: %w", req.Key(), err))
	}
	return h.CorrelationID, nil
}

// next reads the response frame of correlation id corr, first dropping
// the answers to interjected requests written before it.
func (c *Conn) next(corr int32) ([]byte, error) {
	for {
		frame, err := c.fr.Next()
		if err != nil {
			return nil, err
		}
		got, _, err := ParseResponse(frame)
		if err != nil {
			return nil, err
		}
		if got == corr {
			return frame, nil
		}
		c.mu.Lock()
		interjected := len(c.skip) > 0 && c.skip[0] == got
		if interjected {
			c.skip = c.skip[1:]
		}
		c.mu.Unlock()
		if !interjected {
			return nil, fmt.Errorf("correlation id %d, want %d", got, corr)
		}
	}
}

// Interject writes req at version while a RoundTrip may be waiting for
// its own response, from any goroutine, the write bounded by deadline.
// Its response is read and dropped by the RoundTrip that meets it (the
// one in flight, after its own response, or the next). It is for a
// request whose answer does not matter and whose arrival does: a
// follower's empty Fetch that ends the leader's wait for the one in
// flight. A failed write breaks the Conn, as in RoundTrip.
func (c *Conn) Interject(deadline time.Time, req Message, version int16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return fmt.Errorf("%v: %w: %w", req.Key(), ErrNotSent, c.broken)
	}
	c.corr++
	h := RequestHeader{Key: req.Key(), Version: version, CorrelationID: c.corr, ClientID: c.clientID}
	var err error
	if c.ibuf, err = AppendRequest(c.ibuf[:0], &h, req); err != nil {
		return fmt.Errorf("encode %v: %w: %w", req.Key(), ErrNotSent, err)
	}
	if err := c.nc.SetWriteDeadline(deadline); err != nil {
		return c.failLocked(fmt.Errorf("%v: set deadline: %w: %w", req.Key(), ErrNotSent, err))
	}
	if _, err := c.nc.Write(c.ibuf); err != nil {
		return c.failLocked(fmt.Errorf("send %v: %w", req.Key(), err))
	}
	c.skip = append(c.skip, h.CorrelationID)
	return nil
}

// fail breaks the Conn with err, adding the context's error when it ended
// (the cause of a closed connection).
func (c *Conn) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failLocked(err)
}

func (c *Conn) failLocked(err error) error {
	if ctxErr := c.ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", err, ctxErr)
	}
	if c.broken == nil {
		c.broken = err
		c.nc.Close()
	}
	return err
}
