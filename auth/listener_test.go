package auth_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/internal/testcerts"
)

func tlsPair(t testing.TB, clientAuth auth.ClientAuth) (server *tls.Config, client func(string) *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	f := ca.Issue(t, dir, "broker", testcerts.Valid)
	r, err := auth.NewReloader(auth.TLSFiles{CertFile: f.CertFile, KeyFile: f.KeyFile, CAFile: f.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	server, err = r.ServerConfig(clientAuth)
	if err != nil {
		t.Fatal(err)
	}
	return server, r.ClientConfig
}

// echo serves ln: each accepted connection echoes one line.
func echo(t *testing.T, ln net.Listener) {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, line)
			}()
		}
	}()
}

func TestListenerServesHandshakenConns(t *testing.T) {
	server, client := tlsPair(t, auth.ClientAuthRequired)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := auth.NewListener(raw, server, auth.ListenerOptions{})
	echo(t, ln)
	c, err := auth.Dial(context.Background(), &net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) // a stall fails, never hangs
	io.WriteString(c, "hello\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	if _, ok := auth.ConnectionState(c); !ok {
		t.Fatalf("Dial returned %T, not a TLS connection", c)
	}
}

// A peer that never finishes its handshake is cut off after the
// handshake timeout and never reaches Accept; the failure is logged with
// its address.
func TestListenerHandshakeTimeout(t *testing.T) {
	server, _ := tlsPair(t, auth.ClientAuthNone)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	ln := auth.NewListener(raw, server, auth.ListenerOptions{Name: "test", HandshakeTimeout: 200 * time.Millisecond, Logger: zap.New(core)})
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x16, 0x03}) // the start of a ClientHello, then nothing
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a stalled handshake succeeded")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a stalled handshake open past 5 s")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v, want about the 200 ms handshake timeout", d)
	}
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("a connection that never finished its handshake was accepted")
	default:
	}
	if logs.FilterMessage("TLS handshake failed").Len() != 1 {
		t.Fatalf("log lines: %v", logs.All())
	}
	if got := logs.All()[0].ContextMap()["remote"]; got != c.LocalAddr().String() {
		t.Fatalf("remote logged as %v, want %s", got, c.LocalAddr())
	}
}

// Failed handshakes are logged at most once per 10 s, however many.
func TestListenerHandshakeLogIsRateLimited(t *testing.T) {
	server, _ := tlsPair(t, auth.ClientAuthNone)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	ln := auth.NewListener(raw, server, auth.ListenerOptions{Logger: zap.New(core)})
	defer ln.Close()
	for range 20 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n")) // not TLS
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a plaintext request was answered")
		}
		c.Close()
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d log lines for 20 failed handshakes, want 1", n)
	}
}

// A TLS client dialing a listener that is not TLS (and closes on what it
// cannot parse) gets ErrHandshake with a hint, within the dial timeout.
func TestDialPlaintextServer(t *testing.T) {
	_, client := tlsPair(t, auth.ClientAuthNone)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// A plaintext broker reads a frame length, finds it absurd
			// and closes.
			c.Read(make([]byte, 4))
			c.Close()
		}
	}()
	start := time.Now()
	_, err = auth.Dial(context.Background(), &net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), client)
	if !errors.Is(err, auth.ErrHandshake) || !strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("err = %v, want ErrHandshake with the plaintext hint", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}

	// A server that says nothing at all: the dial timeout ends it.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start = time.Now()
	_, err = auth.Dial(context.Background(), &net.Dialer{Timeout: 300 * time.Millisecond}, "tcp", silent.Addr().String(), client)
	if !errors.Is(err, auth.ErrHandshake) {
		t.Fatalf("err = %v, want ErrHandshake", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v with a 300 ms dial timeout", d)
	}
}

// Close stops handshakes in progress and returns.
func TestListenerCloseDuringHandshake(t *testing.T) {
	server, _ := tlsPair(t, auth.ClientAuthNone)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := auth.NewListener(raw, server, auth.ListenerOptions{HandshakeTimeout: time.Minute})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x16}) // a handshake that stalls
	done := make(chan struct{})
	go func() { ln.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a stalled handshake")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// countingListener counts the writes of the connections it accepts.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// A large Write on an accepted connection leaves in a few writes of
// gathered records, not one per 16 KiB record, and arrives intact.
func TestListenerGathersRecords(t *testing.T) {
	server, client := tlsPair(t, auth.ClientAuthNone)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	ln := auth.NewListener(countingListener{raw, &writes}, server, auth.ListenerOptions{})
	defer ln.Close()
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	// Each server write's error and the write(2)s it made.
	type wrote struct {
		err    error
		writes int64
	}
	sent := make(chan wrote, 1)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- wrote{err: err}
			return
		}
		accepted <- c
		c.SetDeadline(time.Now().Add(30 * time.Second)) // a stall fails, never hangs
		if _, ok := auth.ConnectionState(c); !ok {
			sent <- wrote{err: errors.New("ConnectionState: not a TLS connection")}
			return
		}
		writes.Store(0) // the handshake's
		_, err = c.Write(payload)
		sent <- wrote{err, writes.Load()}
	}()
	c, err := auth.Dial(context.Background(), &net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	w := <-sent
	if w.err != nil {
		t.Fatal(w.err)
	}
	conn := <-accepted
	defer conn.Close()
	if !bytes.Equal(got, payload) {
		t.Fatal("payload corrupted")
	}
	// 1 MiB is 64 records of 16 KiB: gathered by 256 KiB, 4 or 5 writes.
	if n := w.writes; n == 0 || n > 8 {
		t.Fatalf("%d writes for 1 MiB, want at most 8", n)
	}
	// writeBuffers has the server write a small head, data and a small
	// tail (a fetch response) with WriteBuffers, checks they arrive
	// intact and in order, and returns the write(2)s it made.
	writeBuffers := func(data []byte) int64 {
		t.Helper()
		go func() {
			writes.Store(0)
			bufs := net.Buffers{[]byte("head"), data, []byte("tail")}
			n, err := conn.(auth.BuffersWriter).WriteBuffers(&bufs)
			if err == nil && (n != int64(len(data)+8) || len(bufs) != 0) {
				err = fmt.Errorf("WriteBuffers wrote %d bytes and left %d buffers", n, len(bufs))
			}
			sent <- wrote{err, writes.Load()}
		}()
		got := make([]byte, len(data)+8)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		w := <-sent
		if w.err != nil {
			t.Fatal(w.err)
		}
		if !bytes.Equal(got, append(append([]byte("head"), data...), "tail"...)) {
			t.Fatalf("WriteBuffers of %d bytes: bytes corrupted or out of order", len(data))
		}
		return w.writes
	}
	// net.Buffers.WriteTo makes 8: one more for each small piece.
	if n := writeBuffers(payload); n == 0 || n > 6 {
		t.Fatalf("WriteBuffers: %d writes for 1 MiB and two small pieces, want at most 6", n)
	}
	// More than a gathering buffer holds: 3 MiB in 13 writes of 15
	// records.
	if n := writeBuffers(bytes.Repeat(payload, 3)); n < 12 || n > 16 {
		t.Fatalf("WriteBuffers: %d writes for 3 MiB, want 12 to 16", n)
	}
}

// dialListener starts an auth.Listener, serves the one connection it
// accepts with serve on a goroutine (its error comes on the channel, once
// serve returned; the connection is closed after it) and returns the client
// side: a TLS connection of auth.ClientHandshake over wrap(the TCP
// connection).
func dialListener(t *testing.T, wrap func(net.Conn) net.Conn, serve func(net.Conn) error) (net.Conn, <-chan error) {
	t.Helper()
	server, client := tlsPair(t, auth.ClientAuthNone)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := auth.NewListener(raw, server, auth.ListenerOptions{})
	t.Cleanup(func() { ln.Close() })
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second)) // a stall fails, never hangs
		served <- serve(c)
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := auth.ClientHandshake(ctx, wrap(nc), client("127.0.0.1"), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, served
}

// The client side gathers too: a 1 MiB Write leaves in a few writes.
func TestClientHandshakeGathersRecords(t *testing.T) {
	payload := bytes.Repeat([]byte("sluice"), 1<<20/6)
	got := make([]byte, len(payload))
	var writes atomic.Int64
	c, served := dialListener(t, func(nc net.Conn) net.Conn { return countingConn{nc, &writes} },
		func(c net.Conn) error { _, err := io.ReadFull(c, got); return err })
	writes.Store(0)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("payload corrupted")
	}
	// By 256 KiB: the broker starts reading a produce request while the
	// rest of it is sealed.
	if n := writes.Load(); n < 4 || n > 8 {
		t.Fatalf("%d writes for 1 MiB, want 4 to 8", n)
	}
}

// recordingConn keeps every byte read through it.
type recordingConn struct {
	net.Conn
	mu   sync.Mutex
	read []byte
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.read = append(c.read, b[:n]...)
	c.mu.Unlock()
	return n, err
}

// A server connection sends full 16 KiB records from its first byte of
// data on, not crypto/tls's small records for the first 128 KiB.
func TestListenerSendsFullRecords(t *testing.T) {
	payload := bytes.Repeat([]byte("sluice!!"), 64<<10/8)
	var rec *recordingConn
	c, served := dialListener(t, func(nc net.Conn) net.Conn { rec = &recordingConn{Conn: nc}; return rec },
		func(c net.Conn) error { _, err := c.Write(payload); return err })
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("payload corrupted")
	}
	// TLS 1.3 records on the wire: a 5-byte header (type, version,
	// length); a full one holds 16 KiB of data, its content type and
	// the 16-byte AEAD tag.
	rec.mu.Lock()
	wire := rec.read
	rec.mu.Unlock()
	full, sizes := 0, []int{}
	for len(wire) >= 5 {
		n := int(wire[3])<<8 | int(wire[4])
		if len(wire) < 5+n {
			break
		}
		if wire[0] == 23 { // application data (and TLS 1.3's encrypted handshake)
			sizes = append(sizes, n)
			if n == 16<<10+1+16 {
				full++
			}
		}
		wire = wire[5+n:]
	}
	if full != 4 {
		t.Fatalf("64 KiB arrived in %d full records, want 4 (record sizes %v)", full, sizes)
	}
}
