package controller

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluicemq/sluice/auth"
)

// streamLayer is Raft's TCP stream layer on a listener we own, TLS on
// both ends when the node has a Transport (the listener is then an
// auth.Listener, which hands over only handshaken connections). Unlike
// raft.NewTCPTransport it accepts a listener opened by the caller (tests
// bind port 0 before they know every address), and it closes every
// connection it accepted or dialed when closed: raft's NetworkTransport
// leaves those to the peer, which would keep goroutines blocked in reads
// after Shutdown.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	tls       *auth.Transport // nil: plain TCP

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(ln net.Listener, advertise net.Addr, t *auth.Transport) *streamLayer {
	return &streamLayer{ln: ln, advertise: advertise, tls: t, conns: map[*trackedConn]struct{}{}}
}

func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, s: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := s.tls.Dial(context.Background(), &d, "tcp", string(addr))
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Close closes the listener and every connection. Idempotent.
func (s *streamLayer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	err := s.ln.Close()
	for c := range conns {
		c.Conn.Close()
	}
	return err
}

type trackedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return err
}
