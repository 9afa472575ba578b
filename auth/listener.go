package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Defaults of ListenerOptions.
const (
	// DefaultHandshakeTimeout bounds a server-side TLS handshake: a peer
	// that opens a connection and sends its ClientHello a byte at a time
	// (slowloris) is cut off after it.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxHandshakes bounds the handshakes in progress at once on
	// one listener; a connection accepted past it is closed at once.
	DefaultMaxHandshakes = 256
	// handshakeLogEvery is the least time between two log lines about
	// failed handshakes of one listener: a scanner or a misconfigured
	// client cannot flood the log.
	handshakeLogEvery = 10 * time.Second
)

// ListenerOptions configure NewListener.
type ListenerOptions struct {
	// Name names the listener in its log lines (field `listener`).
	Name string
	// HandshakeTimeout bounds each handshake. Default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the handshakes in progress at once. Default
	// DefaultMaxHandshakes.
	MaxHandshakes int
	// Logger receives a warning for failed handshakes, with the remote
	// address, at most one line per 10 s with the count of the others.
	// Default: no logs.
	Logger *zap.Logger
}

// Listener is a TLS listener whose Accept returns only connections that
// completed their handshake: each accepted TCP connection is handshaken on
// its own goroutine within HandshakeTimeout, so a peer that never finishes
// its handshake holds no goroutine of the server past that time and never
// reaches the code serving requests. The *tls.Conn it returns carries the
// peer's verified certificate (ConnectionState, PeerPrincipal).
//
// The Listener owns an accept goroutine and the handshake goroutines; Close
// stops the underlying listener, closes the connections in handshake and
// waits for every goroutine.
type Listener struct {
	ln   net.Listener
	cfg  *tls.Config
	opts ListenerOptions

	ready chan net.Conn // handshaken, waiting for Accept
	errs  chan error    // accept errors other than closing, for Accept
	done  chan struct{} // closed by Close
	sem   chan struct{} // one per handshake in progress
	wg    sync.WaitGroup

	mu        sync.Mutex
	inHand    map[net.Conn]struct{} // connections in handshake
	closed    bool
	logs      LogSampler
	closeErr  error
	closeOnce sync.Once
}

// NewListener wraps ln so that every connection it accepts is a TLS
// server connection under cfg, handshaken before Accept returns it. The
// Listener takes ln over: Close closes it.
func NewListener(ln net.Listener, cfg *tls.Config, opts ListenerOptions) *Listener {
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.MaxHandshakes <= 0 {
		opts.MaxHandshakes = DefaultMaxHandshakes
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	l := &Listener{ln: ln, cfg: cfg, opts: opts,
		ready: make(chan net.Conn), errs: make(chan error), done: make(chan struct{}),
		sem: make(chan struct{}, opts.MaxHandshakes), inHand: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.acceptLoop() }()
	return l
}

func (l *Listener) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: the caller's Accept
			// sees the error and decides (the broker backs off).
			select {
			case l.errs <- err:
				continue
			case <-l.done:
				return
			}
		}
		select {
		case l.sem <- struct{}{}:
		default:
			// Too many handshakes in progress: someone is opening
			// connections faster than they finish handshakes.
			l.logFailure(c.RemoteAddr(), errors.New("too many TLS handshakes in progress; closed"))
			c.Close()
			continue
		}
		if !l.track(c) {
			<-l.sem
			c.Close()
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.sem }()
			l.handshake(c)
		}()
	}
}

// track records c as in handshake; false once the Listener is closed.
func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.inHand[c] = struct{}{}
	return true
}

func (l *Listener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.inHand, c)
	l.mu.Unlock()
}

func (l *Listener) handshake(c net.Conn) {
	raw := &gatherConn{Conn: c}
	tc := tls.Server(raw, l.cfg)
	_ = c.SetDeadline(time.Now().Add(l.opts.HandshakeTimeout))
	err := tc.Handshake()
	l.untrack(c)
	if err != nil {
		select {
		case <-l.done: // closed under it: not the peer's failure
		default:
			// A peer that closes before sending a byte (a TCP health
			// check, a client abandoning a dial) is not worth a line.
			if !errors.Is(err, io.EOF) {
				l.logFailure(c.RemoteAddr(), err)
			}
		}
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	select {
	case l.ready <- &Conn{Conn: tc, raw: raw}:
	case <-l.done:
		tc.Close()
	}
}

// logFailure logs a failed handshake, at most once per handshakeLogEvery.
func (l *Listener) logFailure(remote net.Addr, err error) {
	suppressed, ok := l.logs.Allow(time.Now(), handshakeLogEvery)
	if !ok {
		return
	}
	l.opts.Logger.Warn("TLS handshake failed", zap.String("listener", l.opts.Name),
		zap.String("remote", remote.String()), zap.Error(err),
		zap.Int("others_since_last_line", suppressed))
}

// Accept returns the next connection that completed its TLS handshake.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, closes the connections in handshake and those
// handshaken but not yet accepted, and waits for its goroutines.
// Idempotent.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		for c := range l.inHand {
			c.Close()
		}
		l.mu.Unlock()
		close(l.done)
		l.closeErr = l.ln.Close()
		l.wg.Wait()
	})
	return l.closeErr
}

// Addr is the underlying listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// ErrHandshake matches the error of a TLS handshake that failed on the
// client side: the server's certificate did not verify, the server refused
// ours, or the server is not speaking TLS.
var ErrHandshake = errors.New("TLS handshake failed")

// Dial opens a TCP connection to addr with d and, when cfg is not nil,
// runs the TLS handshake as a client of cfg(host of addr) within ctx. A
// failed handshake is ErrHandshake with the cause and, when the server
// closed the connection without a word, a hint that its listener may be
// plaintext.
func Dial(ctx context.Context, d *net.Dialer, network, addr string, cfg func(serverName string) *tls.Config) (net.Conn, error) {
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil || cfg == nil {
		return nc, err
	}
	hctx := ctx
	if !d.Deadline.IsZero() || d.Timeout > 0 {
		var cancel context.CancelFunc
		deadline := d.Deadline
		if d.Timeout > 0 && (deadline.IsZero() || time.Now().Add(d.Timeout).Before(deadline)) {
			deadline = time.Now().Add(d.Timeout)
		}
		hctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	return ClientHandshake(hctx, nc, cfg(serverName(addr)), addr)
}

// serverName is the host of addr, which the server's certificate must
// name.
func serverName(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// ClientHandshake runs the client side of a TLS handshake on nc, a
// connection to addr, within ctx, and returns the TLS connection (a Conn,
// which gathers the records of a large Write). Without
// cfg.ServerName the server's certificate must name the host of addr. On
// failure nc is closed and the error is ErrHandshake with the cause and,
// when the server hung up without a TLS answer (a plaintext listener
// closes on a ClientHello it cannot parse), a hint saying so.
func ClientHandshake(ctx context.Context, nc net.Conn, cfg *tls.Config, addr string) (net.Conn, error) {
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = serverName(addr)
	}
	raw := &gatherConn{Conn: nc}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		hint := ""
		if ClosedByPeer(err) {
			hint = " (the server closed the connection without a TLS answer: is its listener plaintext?)"
		}
		return nil, fmt.Errorf("%w with %s: %w%s", ErrHandshake, addr, err, hint)
	}
	return &Conn{Conn: tc, raw: raw}, nil
}

// ClosedByPeer reports whether err is the peer closing or resetting the
// connection: what a TLS listener does to a plaintext client, and a
// plaintext listener to a TLS one.
func ClosedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// Transport is the TLS of one kind of link, both ends: Server for the
// listener that serves it, Client for the dials to such listeners (a
// broker dials other brokers' listeners with its own certificate, which
// mutual TLS verifies). A nil *Transport is plaintext: Listen returns the
// listener as it is and Dial dials plain TCP.
type Transport struct {
	Server *tls.Config                         // nil: the listener stays plaintext
	Client func(serverName string) *tls.Config // nil: dials are plaintext
	// HandshakeTimeout bounds a server-side handshake; default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
}

// NewTransport is the Transport of r's files: listeners present r's
// certificate and ask for client certificates as clientAuth says; dials
// verify the peer against r's CA and offer r's certificate.
func NewTransport(r *Reloader, clientAuth ClientAuth) (*Transport, error) {
	server, err := r.ServerConfig(clientAuth)
	if err != nil {
		return nil, err
	}
	return &Transport{Server: server, Client: r.ClientConfig}, nil
}

// Listen wraps ln in a Listener (NewListener) when t has a server side;
// name and logger go to its log lines about failed handshakes.
func (t *Transport) Listen(ln net.Listener, name string, logger *zap.Logger) net.Listener {
	if t == nil || t.Server == nil {
		return ln
	}
	return NewListener(ln, t.Server, ListenerOptions{Name: name, HandshakeTimeout: t.HandshakeTimeout, Logger: logger})
}

// Dial opens a connection to addr with d, TLS when t has a client side.
func (t *Transport) Dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	if t == nil || t.Client == nil {
		return d.DialContext(ctx, network, addr)
	}
	return Dial(ctx, d, network, addr, t.Client)
}

// writeBatch bounds the TLS records gathered into one write(2) on a
// server connection; maxRecord is the most data one record holds.
const (
	writeBatch = 256 << 10
	maxRecord  = 16 << 10
)

// batchBufs are the buffers writes gather records in, lent for one Write.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBatch); return &b }}

// Conn is a TLS connection of a Listener or of ClientHandshake. crypto/tls
// writes every record (at most 16 KiB of data) with a write(2) of its
// own; a Write of Conn gathers the records of one call into writes of up
// to 256 KiB, so a 1 MiB fetch response or produce request costs 4 system
// calls instead of 64.
// Everything else is the embedded *tls.Conn's (ConnectionState for the
// peer's certificate).
type Conn struct {
	*tls.Conn
	raw *gatherConn
	wmu sync.Mutex
}

// Write encrypts b and writes it, gathering its records when there are
// several.
func (c *Conn) Write(b []byte) (int, error) {
	if len(b) <= maxRecord {
		return c.Conn.Write(b) // one record: nothing to gather
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.raw.gather(true)
	n, err := c.Conn.Write(b)
	if ferr := c.raw.gather(false); err == nil && ferr != nil {
		err = ferr
	}
	return n, err
}

// WriteBuffers writes the buffers in order, their records gathered as one
// Write's are, and consumes them as net.Buffers.WriteTo does (which on a
// TLS connection makes a write(2) of every buffer): a fetch response's
// small head pieces share the writes of its record bytes instead of
// costing a system call each.
func (c *Conn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.raw.gather(true)
	var n int64
	var err error
	for len(*bufs) > 0 && err == nil {
		var m int
		m, err = c.Conn.Write((*bufs)[0])
		n += int64(m)
		if err == nil {
			*bufs = (*bufs)[1:]
		}
	}
	if ferr := c.raw.gather(false); err == nil && ferr != nil {
		err = ferr
	}
	return n, err
}

// BuffersWriter is a connection with a WriteBuffers that beats
// net.Buffers.WriteTo (a Conn).
type BuffersWriter interface {
	WriteBuffers(bufs *net.Buffers) (int64, error)
}

// ConnectionState is the TLS state of nc when it is a TLS connection (a
// *tls.Conn, or a Conn of a Listener).
func ConnectionState(nc net.Conn) (tls.ConnectionState, bool) {
	switch c := nc.(type) {
	case *Conn:
		return c.ConnectionState(), true
	case *tls.Conn:
		return c.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// gatherConn is the TCP side of a Conn: while gathering, writes append to
// a lent buffer, written out when full and when gathering stops; other
// writes (handshake, alerts) go straight through.
type gatherConn struct {
	net.Conn
	mu  sync.Mutex
	buf *[]byte // non-nil while gathering
}

func (g *gatherConn) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.buf == nil {
		return g.Conn.Write(b)
	}
	if len(*g.buf)+len(b) > writeBatch {
		if err := g.flushLocked(); err != nil {
			return 0, err
		}
		if len(b) > writeBatch {
			return g.Conn.Write(b)
		}
	}
	*g.buf = append(*g.buf, b...)
	return len(b), nil
}

func (g *gatherConn) flushLocked() error {
	if len(*g.buf) == 0 {
		return nil
	}
	_, err := g.Conn.Write(*g.buf)
	*g.buf = (*g.buf)[:0]
	return err
}

// gather starts gathering (on) or writes what was gathered and stops.
func (g *gatherConn) gather(on bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if on {
		g.buf = batchBufs.Get().(*[]byte)
		return nil
	}
	err := g.flushLocked()
	*g.buf = (*g.buf)[:0]
	batchBufs.Put(g.buf)
	g.buf = nil
	return err
}
