package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"go.uber.org/goleak"
)

func TestForwardsBytesUnchanged(t *testing.T) {
	tests := []struct {
		name  string
		link  Link
		conns int
		size  int
	}{
		{"plain", Link{}, 8, 1 << 20},
		{"jitter keeps order", Link{Latency: time.Millisecond, Jitter: 5 * time.Millisecond}, 4, 256 << 10},
		{"slow link", Link{Bandwidth: 4 << 20}, 2, 256 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := startEcho(t)
			p := newProxy(t, echo.addr())
			if err := p.SetLink(Both, tt.link); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make([]error, tt.conns)
			for i := range tt.conns {
				c := dial(t, p.Addr())
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = echoPayload(c, randomPayload(uint64(i+1), tt.size))
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("conn %d: %v", i, err)
				}
			}
			// Both halves closed: the proxy drops the connections.
			poll.Until(t, 5*time.Second, "proxy conns to end", func() bool { return p.Conns() == 0 })
		})
	}
}

// The payload check must catch an upstream that changes a byte.
func TestEchoCheckCatchesCorruption(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		if len(b) > 1000 {
			b[1000] ^= 1
		}
		_, _ = c.Write(b)
	}()
	p := newProxy(t, ln.Addr().String())
	err = echoPayload(dial(t, p.Addr()), randomPayload(7, 64<<10))
	if err == nil || err.Error() != "echo differs at byte 1000: got 65536 bytes, want 65536" {
		t.Fatalf("echoPayload over a corrupting upstream = %v, want a difference at byte 1000", err)
	}
}

func TestLatencyAddsAtLeastTheDelay(t *testing.T) {
	tests := []struct {
		name   string
		dir    Direction
		link   Link
		minRTT time.Duration
	}{
		{"to server", ToServer, Link{Latency: 80 * time.Millisecond}, 80 * time.Millisecond},
		{"to client", ToClient, Link{Latency: 80 * time.Millisecond}, 80 * time.Millisecond},
		{"both ways", Both, Link{Latency: 50 * time.Millisecond}, 100 * time.Millisecond},
		{"with jitter", Both, Link{Latency: 20 * time.Millisecond, Jitter: 30 * time.Millisecond}, 40 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := startEcho(t)
			p := newProxy(t, echo.addr())
			if err := p.SetLink(tt.dir, tt.link); err != nil {
				t.Fatal(err)
			}
			c := dial(t, p.Addr())
			for i := range 5 {
				msg := []byte(fmt.Sprintf("ping %d", i))
				start := time.Now()
				got, err := roundTrip(c, msg, 5*time.Second)
				rtt := time.Since(start)
				if err != nil || string(got) != string(msg) {
					t.Fatalf("round trip %d = %q, %v", i, got, err)
				}
				if rtt < tt.minRTT {
					t.Errorf("round trip %d took %v, want at least %v", i, rtt, tt.minRTT)
				}
			}
		})
	}
}

func TestLatencyChangesOnOpenConnection(t *testing.T) {
	echo := startEcho(t)
	p := newProxy(t, echo.addr())
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, []byte("warm"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.SetLink(ToServer, Link{Latency: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := roundTrip(c, []byte("slow"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 100*time.Millisecond {
		t.Errorf("round trip after SetLink took %v, want at least 100ms", rtt)
	}
}

func TestBandwidthLimitSlowsTransfer(t *testing.T) {
	const (
		rate = 256 << 10 // bytes per second
		size = 128 << 10 // about 500ms at rate
		// Generous: the first pacing slice goes out at once, and only a
		// lower bound is checked, never an upper one.
		atLeast = 350 * time.Millisecond
	)
	for _, dir := range []Direction{ToServer, ToClient} {
		t.Run(fmt.Sprint(dir), func(t *testing.T) {
			echo := startEcho(t)
			p := newProxy(t, echo.addr())
			if err := p.SetLink(dir, Link{Bandwidth: rate}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := echoPayload(dial(t, p.Addr()), randomPayload(3, size)); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took < atLeast {
				t.Errorf("%d bytes at %d B/s took %v, want at least %v", size, rate, took, atLeast)
			}
		})
	}
}

// cutOpenConn starts an echo server behind a proxy, opens a conn through it,
// cuts the proxy in mode and checks the conn was reset.
func cutOpenConn(t *testing.T, mode CutMode) (*echoServer, *Proxy) {
	t.Helper()
	echo := startEcho(t)
	p := newProxy(t, echo.addr())
	old := dial(t, p.Addr())
	if _, err := roundTrip(old, []byte("before"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Cut(mode); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(old, []byte("after"), 5*time.Second); !isReset(err) {
		t.Fatalf("existing conn after Cut(%v): %v, want a reset", mode, err)
	}
	return echo, p
}

func TestCutResetResetsAndRefuses(t *testing.T) {
	echo, p := cutOpenConn(t, CutReset)
	// The upstream side is closed too.
	poll.Until(t, 5*time.Second, "upstream conn to end", func() bool { return echo.ended.Load() == 1 })

	accepted := echo.accepted.Load()
	if err := dialRoundTrip(p.Addr(), "new"); !isReset(err) {
		t.Fatalf("new conn while cut: %v, want a reset", err)
	}
	if n := echo.accepted.Load(); n != accepted {
		t.Errorf("upstream accepted %d conns while cut", n-accepted)
	}

	p.Heal()
	if got, err := roundTrip(dial(t, p.Addr()), []byte("healed"), 5*time.Second); err != nil || string(got) != "healed" {
		t.Fatalf("after Heal: %q, %v", got, err)
	}
}

func TestCutBlackholeHoldsNewConnsUntilHeal(t *testing.T) {
	echo, p := cutOpenConn(t, CutBlackhole)

	accepted := echo.accepted.Load()
	held := dial(t, p.Addr())
	if _, err := roundTrip(held, []byte("held"), 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new conn while blackholed: %v, want a timeout", err)
	}
	if n := echo.accepted.Load(); n != accepted {
		t.Errorf("upstream accepted %d conns while blackholed", n-accepted)
	}
	if n := p.Conns(); n != 1 {
		t.Errorf("Conns() = %d while one conn is held, want 1", n)
	}

	// After Heal the held conn is connected and what it sent arrives.
	p.Heal()
	got := make([]byte, len("held"))
	if err := held.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(held, got); err != nil || string(got) != "held" {
		t.Fatalf("held conn after Heal: %q, %v", got, err)
	}
}

func TestPauseHangsWithoutClosing(t *testing.T) {
	echo := startEcho(t)
	p := newProxy(t, echo.addr())
	old := dial(t, p.Addr())
	if _, err := roundTrip(old, []byte("before"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Pause()
	if _, err := roundTrip(old, []byte("paused"), 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("existing conn while paused: %v, want a timeout", err)
	}
	fresh := dial(t, p.Addr())
	if _, err := roundTrip(fresh, []byte("fresh"), 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new conn while paused: %v, want a timeout", err)
	}
	if n, ended := p.Conns(), echo.ended.Load(); n != 2 || ended != 0 {
		t.Fatalf("while paused: %d proxy conns, %d upstream conns ended; want 2 and 0", n, ended)
	}
	p.Resume()
	for _, tc := range []struct {
		c    net.Conn
		want string
	}{{old, "paused"}, {fresh, "fresh"}} {
		got := make([]byte, len(tc.want))
		if err := tc.c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(tc.c, got); err != nil || string(got) != tc.want {
			t.Fatalf("after Resume: %q, %v; want %q", got, err, tc.want)
		}
	}
}

func TestUpstreamDownResetsClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := newProxy(t, addr)
	if err := dialRoundTrip(p.Addr(), "x"); !isReset(err) {
		t.Fatalf("conn to a dead upstream: %v, want a reset", err)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	echo := startEcho(t)
	p, err := Listen("127.0.0.1:0", echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetLink(Both, Link{Latency: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// One conn with bytes waiting out a long latency, one paused, one held.
	slow := dial(t, p.Addr())
	if _, err := slow.Write([]byte("slow")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "upstream conn", func() bool { return echo.accepted.Load() == 1 })
	p.Pause()
	dial(t, p.Addr())
	poll.Until(t, 5*time.Second, "second upstream conn", func() bool { return echo.accepted.Load() == 2 })
	if err := p.Cut(CutBlackhole); err != nil {
		t.Fatal(err)
	}
	dial(t, p.Addr())
	poll.Until(t, 5*time.Second, "held conn", func() bool { return p.Conns() == 1 })

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("dial after Close succeeded")
	}
	echo.close()
	goleak.VerifyNone(t)
}

func TestBadArguments(t *testing.T) {
	echo := startEcho(t)
	p := newProxy(t, echo.addr())
	for _, tc := range []struct {
		name string
		dir  Direction
		link Link
	}{
		{"negative latency", ToServer, Link{Latency: -1}},
		{"negative jitter", ToClient, Link{Jitter: -1}},
		{"negative bandwidth", Both, Link{Bandwidth: -1}},
		{"no direction", 0, Link{}},
		{"unknown direction", 8, Link{}},
	} {
		if err := p.SetLink(tc.dir, tc.link); err == nil {
			t.Errorf("%s: SetLink accepted it", tc.name)
		}
	}
	if err := p.Cut(0); !errors.Is(err, ErrBadMode) {
		t.Errorf("Cut(0) = %v, want ErrBadMode", err)
	}
}

// Serve proxies through a listener the caller made (in the chaos suite, one
// made inside a host's network namespace) and closes it in Close.
func TestServeUsesAndClosesTheGivenListener(t *testing.T) {
	echo := startEcho(t)
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := Serve(ln, echo.addr())
	if p.Addr() != ln.Addr().String() {
		t.Errorf("Addr() = %s, want the listener's %s", p.Addr(), ln.Addr())
	}
	if err := p.SetLink(Both, Link{Latency: 40 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ln.Addr().String())
	start := time.Now()
	if got, err := roundTrip(c, []byte("via serve"), 5*time.Second); err != nil || string(got) != "via serve" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	if rtt := time.Since(start); rtt < 80*time.Millisecond {
		t.Errorf("round trip took %v, want at least 80ms (the link's latency both ways)", rtt)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed (the proxy closes the listener it serves)", err)
	}
}
