package protocol

import (
	"context"
	"errors"
	"fmt"
	"net"
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
// same error. Not safe for concurrent use.
type Conn struct {
	nc       net.Conn
	fr       *FrameReader
	d        Decoder
	clientID string
	corr     int32
	buf      []byte
	broken   error
	ctx      context.Context
	stop     func() bool // unregisters the close on ctx's end
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
	if c.broken == nil {
		c.broken = net.ErrClosed
	}
	if err := c.nc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// RoundTrip sends req at version and decodes the matching response into
// resp, both before deadline (zero: none). The response must carry the
// request's correlation id. An error wraps ErrNotSent when nothing was
// written, and the context's error when the Conn's context ended.
func (c *Conn) RoundTrip(deadline time.Time, req, resp Message, version int16) error {
	if c.broken != nil {
		return fmt.Errorf("%v: %w: %w", req.Key(), ErrNotSent, c.broken)
	}
	c.corr++
	h := RequestHeader{Key: req.Key(), Version: version, CorrelationID: c.corr, ClientID: c.clientID}
	var err error
	if c.buf, err = AppendRequest(c.buf[:0], &h, req); err != nil {
		return fmt.Errorf("encode %v: %w: %w", req.Key(), ErrNotSent, err)
	}
	// The deadline is set before ctx is looked at: ctx ending from here on
	// closes the connection after it, so no write or read outlives ctx.
	if err := c.nc.SetDeadline(deadline); err != nil {
		return c.fail(fmt.Errorf("%v: set deadline: %w: %w", req.Key(), ErrNotSent, err))
	}
	if c.ctx.Err() != nil {
		return c.fail(fmt.Errorf("%v: %w", req.Key(), ErrNotSent))
	}
	if _, err := c.nc.Write(c.buf); err != nil {
		return c.fail(fmt.Errorf("send %v: %w", req.Key(), err))
	}
	frame, err := c.fr.Next()
	if err != nil {
		return c.fail(fmt.Errorf("read %v response: %w", req.Key(), err))
	}
	corr, body, err := ParseResponse(frame)
	if err == nil && corr != h.CorrelationID {
		err = fmt.Errorf("correlation id %d, want %d", corr, h.CorrelationID)
	}
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

// fail breaks the Conn with err, adding the context's error when it ended
// (the cause of a closed connection).
func (c *Conn) fail(err error) error {
	if ctxErr := c.ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", err, ctxErr)
	}
	if c.broken == nil {
		c.broken = err
		c.nc.Close()
	}
	return err
}
