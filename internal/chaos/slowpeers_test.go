package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/faultproxy"
	"github.com/sluicemq/sluice/internal/netns"
)

// The slow-peers fault must slow what the brokers send each other: new
// connections between the slowed host and the others, opened by either
// side, on every port it bends, and no others; connections open before
// the fault must not keep a fast path (they are reset); healing must
// leave fast direct links and no rule. A proxy bypassed by a missing or
// wrong rule shows as a fast round trip, a kept old connection as one that
// still answers. Twice: with no rule needing conntrack in the hosts (as
// in the suite), conntrack starts with the redirect and meets the old
// connections mid-stream, so the redirect alone resets them; then with
// conntrack tracking them already (a ctstate rule, as a firewall would
// have), where only the explicit reset (ss -K in netns.sh redirect) takes
// them off the fast path. Runs as root with ip netns, without
// SLUICE_CHAOS (it starts no broker; about 6 s).
func TestSlowHostLinks(t *testing.T) {
	h := netns.Setup(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for i := 1; i <= h.N; i++ {
		for _, port := range PeerPorts {
			startEchoIn(t, h, i, port)
		}
	}
	t.Log("no conntrack before the fault")
	checkSlowLinks(ctx, t, h)
	if t.Failed() {
		return
	}
	t.Log("conntrack tracking every connection before the fault")
	for i := 1; i <= h.N; i++ {
		// Gone with the hosts at cleanup.
		out, err := h.Command(ctx, i, "iptables", "-w", "5", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED",
			"-m", "comment", "--comment", "sluice-netns:test-conntrack", "-j", "ACCEPT").CombinedOutput()
		if err != nil {
			t.Fatalf("host %d: conntrack rule: %v: %s", i, err, out)
		}
	}
	checkSlowLinks(ctx, t, h)
}

// checkSlowLinks slows host 1's links, checks which round trips are slow
// and that old connections are cut, heals, and checks they are fast again.
func checkSlowLinks(ctx context.Context, t *testing.T, h *netns.Hosts) {
	const latency = 100 * time.Millisecond
	const slowRTT, fastRTT = 2 * latency, latency // the delay both ways; well under it

	// Opened before the fault, by each side of a slowed link.
	before := []*net.TCPConn{dialFrom(t, h, 1, 2, ClientPort), dialFrom(t, h, 3, 1, RaftPort)}
	for i, c := range before {
		if rtt, err := minRTT(c); err != nil || rtt >= fastRTT {
			t.Fatalf("connection %d before the fault: round trip %v, %v; want under %v", i, rtt, err, fastRTT)
		}
	}

	s, err := SlowHostLinks(ctx, h, 1, PeerPorts, faultproxy.Link{Latency: latency})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Heal(context.Background()); err != nil {
			t.Errorf("heal: %v", err)
		}
	}()
	for i, c := range before {
		if _, err := roundTripOnce(c); err == nil {
			t.Errorf("connection %d opened before the fault still answers: it would bypass the proxies", i)
		} else {
			t.Logf("connection %d opened before the fault: %v", i, err)
		}
	}

	links := []struct {
		from, to, port int
		slow           bool
	}{
		{1, 2, ClientPort, true},
		{1, 3, RaftPort, true},
		{2, 1, ClientPort, true},
		{3, 1, RaftPort, true},
		{2, 3, ClientPort, false},
		{3, 2, RaftPort, false},
	}
	var during []*net.TCPConn
	for _, l := range links {
		c := dialFrom(t, h, l.from, l.to, l.port)
		rtt, err := minRTT(c)
		switch {
		case err != nil:
			t.Errorf("%d->%d:%d: %v", l.from, l.to, l.port, err)
		case l.slow && rtt < slowRTT:
			t.Errorf("%d->%d:%d: round trip %v, want at least %v: not through the proxy", l.from, l.to, l.port, rtt, slowRTT)
		case !l.slow && rtt >= fastRTT:
			t.Errorf("%d->%d:%d: round trip %v, want under %v: a link of other hosts was slowed", l.from, l.to, l.port, rtt, fastRTT)
		default:
			t.Logf("%d->%d:%d: round trip %v (slowed: %v)", l.from, l.to, l.port, rtt, l.slow)
		}
		if l.slow {
			during = append(during, c)
		}
	}
	if n := s.Conns(); n != len(during) {
		t.Errorf("proxies hold %d connections, want the %d slowed ones", n, len(during))
	}

	if err := s.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	for i, c := range during {
		if err := endedPromptly(c); err != nil {
			t.Errorf("slowed connection %d after the heal: %v", i, err)
		}
	}
	for _, l := range links {
		if rtt, err := minRTT(dialFrom(t, h, l.from, l.to, l.port)); err != nil || rtt >= fastRTT {
			t.Errorf("%d->%d:%d after the heal: round trip %v, %v; want under %v", l.from, l.to, l.port, rtt, err, fastRTT)
		}
	}
	for i := 1; i <= h.N; i++ {
		out, err := h.Command(ctx, i, "iptables", "-w", "5", "-t", "nat", "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("host %d: iptables -t nat -S: %v: %s", i, err, out)
		}
		if strings.Contains(string(out), "sluice-netns") {
			t.Errorf("host %d: nat rules left after the heal:\n%s", i, out)
		}
	}
}

// startEchoIn serves TCP echo on host i's port, in its namespace, from
// this process, until the test ends.
func startEchoIn(t *testing.T, h *netns.Hosts, i, port int) {
	t.Helper()
	var ln net.Listener
	err := h.In(i, func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", h.Addr(i), port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// dialFrom connects from inside host from to host to's port.
func dialFrom(t *testing.T, h *netns.Hosts, from, to, port int) *net.TCPConn {
	t.Helper()
	var c net.Conn
	err := h.In(from, func() error {
		var err error
		c, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", h.Addr(to), port), 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("dial %d->%d:%d: %v", from, to, port, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// endedPromptly checks that c, whose proxy the heal closed, fails at once
// on a read with an end (EOF, a reset), not by a timeout: a broker blocked
// reading a connection whose end never reaches it waits for its own
// request timeout, seconds with no replication after every heal.
func endedPromptly(c *net.TCPConn) error {
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(time.Second)); err != nil {
		return err
	}
	n, err := c.Read(make([]byte, 64))
	var ne net.Error
	switch {
	case err == nil:
		return fmt.Errorf("read %d bytes: the proxy still forwards", n)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no end seen within %v: the proxy's close did not reach this side", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// minRTT is the shortest of 3 round trips on c: scheduling can only make
// one longer, never shorter than the link.
func minRTT(c *net.TCPConn) (time.Duration, error) {
	best := time.Duration(1<<63 - 1)
	for range 3 {
		rtt, err := roundTripOnce(c)
		if err != nil {
			return 0, err
		}
		best = min(best, rtt)
	}
	return best, nil
}

// roundTripOnce sends a few bytes on c and times their echo, within 3 s.
func roundTripOnce(c *net.TCPConn) (time.Duration, error) {
	msg := []byte("sluice")
	start := time.Now()
	if err := c.SetDeadline(start.Add(3 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.Write(msg); err != nil {
		return 0, err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return 0, err
	}
	if string(got) != string(msg) {
		return 0, errors.New("echo differs")
	}
	return time.Since(start), nil
}
