package faultproxy

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one client connection and, once connected, its upstream.
type conn struct {
	p      *Proxy
	client *net.TCPConn
	ctx    context.Context // canceled by close; bounds the upstream dial
	cancel context.CancelFunc

	mu     sync.Mutex
	server *net.TCPConn // nil until dialed
	closed bool

	closeOnce sync.Once
	open      atomic.Int32 // directions not yet finished by EOF
}

// chunk is bytes read from one side, due for delivery at due; eof marks the
// end of the stream (the source half-closed).
type chunk struct {
	buf *[chunkSize]byte
	n   int
	due time.Time
	eof bool
}

var bufPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

func newConn(p *Proxy, client *net.TCPConn) *conn {
	ctx, cancel := context.WithCancel(p.ctx)
	return &conn{p: p, client: client, ctx: ctx, cancel: cancel}
}

// serve holds the connection while the proxy is cut in blackhole mode, then
// connects upstream and starts the two directions. It runs under p.wg.
func (c *conn) serve() {
	defer c.p.wg.Done()
	if !c.p.held.pass(c.ctx.Done()) {
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(c.ctx, "tcp", c.p.upstream)
	if err != nil {
		// The upstream refuses or is gone: so does the proxy.
		c.close(true)
		return
	}
	server := nc.(*net.TCPConn)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		reset(server)
		return
	}
	c.server = server
	c.mu.Unlock()

	c.open.Store(2)
	c.pipe(c.client, server, ToServer)
	c.pipe(server, c.client, ToClient)
}

// pipe starts the reader and writer of one direction under p.wg.
func (c *conn) pipe(src, dst *net.TCPConn, d Direction) {
	q := make(chan chunk, queueLen)
	c.p.wg.Add(2)
	go func() {
		defer c.p.wg.Done()
		c.read(src, q, d)
	}()
	go func() {
		defer c.p.wg.Done()
		c.write(dst, q, d)
	}()
}

// read stamps every chunk read from src with its due time and queues it;
// the queue's capacity is the direction's buffer bound.
func (c *conn) read(src *net.TCPConn, q chan<- chunk, d Direction) {
	link := &c.p.links[dirIndex(d)]
	var last time.Time // due time of the previous chunk: never deliver earlier
	for {
		buf := bufPool.Get().(*[chunkSize]byte)
		n, err := src.Read(buf[:])
		if n > 0 {
			l := link.Load()
			due := time.Now().Add(l.Latency)
			if l.Jitter > 0 {
				due = due.Add(rand.N(l.Jitter))
			}
			if due.Before(last) {
				due = last
			}
			last = due
			select {
			case q <- chunk{buf: buf, n: n, due: due}:
			case <-c.ctx.Done():
				bufPool.Put(buf)
				return
			}
		} else {
			bufPool.Put(buf)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			// Delivered after every chunk before it, as a half-close.
			select {
			case q <- chunk{eof: true, due: last}:
			case <-c.ctx.Done():
			}
			return
		}
		// The source aborted (or the conn was closed): abort the other side.
		c.close(true)
		return
	}
}

// write delivers queued chunks to dst no earlier than they are due, paced by
// the bandwidth limit and held while the proxy is paused.
func (c *conn) write(dst *net.TCPConn, q <-chan chunk, d Direction) {
	link := &c.p.links[dirIndex(d)]
	done := c.ctx.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	wait := func(until time.Time) bool {
		dur := time.Until(until)
		if dur <= 0 {
			return true
		}
		timer.Reset(dur)
		select {
		case <-timer.C:
			return true
		case <-done:
			return false
		}
	}
	var next time.Time // pacing: when the next piece may be written
	for {
		var ch chunk
		select {
		case ch = <-q:
		case <-done:
			return
		}
		if !wait(ch.due) || !c.p.flow.pass(done) {
			putChunk(ch)
			return
		}
		if ch.eof {
			// Pass the half-close on; the connection ends when both
			// directions have.
			if err := dst.CloseWrite(); err != nil || c.open.Add(-1) == 0 {
				c.close(err != nil)
			}
			return
		}
		b := ch.buf[:ch.n]
		for len(b) > 0 {
			piece := len(b)
			if bw := link.Load().Bandwidth; bw > 0 {
				piece = min(piece, int(max(1, bw*int64(paceSlice)/int64(time.Second))))
				if now := time.Now(); next.Before(now) {
					next = now
				}
				if !wait(next) {
					putChunk(ch)
					return
				}
				next = next.Add(time.Duration(int64(piece) * int64(time.Second) / bw))
			}
			if !c.p.flow.pass(done) {
				putChunk(ch)
				return
			}
			if _, err := dst.Write(b[:piece]); err != nil {
				putChunk(ch)
				c.close(true)
				return
			}
			b = b[piece:]
		}
		putChunk(ch)
	}
}

func putChunk(ch chunk) {
	if ch.buf != nil {
		bufPool.Put(ch.buf)
	}
}

// close ends the connection on both sides, with RSTs when rst is set, and
// stops its goroutines. It is idempotent.
func (c *conn) close(rst bool) {
	c.closeOnce.Do(func() {
		c.cancel()
		c.mu.Lock()
		c.closed = true
		server := c.server
		c.mu.Unlock()
		for _, tc := range []*net.TCPConn{c.client, server} {
			if tc == nil {
				continue
			}
			if rst {
				reset(tc)
			} else {
				_ = tc.Close()
			}
		}
		c.p.remove(c)
	})
}
