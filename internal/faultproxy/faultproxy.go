// Package faultproxy is a fault-injecting TCP proxy for tests and the chaos
// suite: one listener forwards every connection to one upstream address and
// can slow, stall or cut the traffic on command.
//
// The faults, each changeable at any time while connections are open:
//
//   - SetLink: per-direction added latency (fixed plus uniform jitter) and a
//     bandwidth limit. Latency is applied per chunk read from the source; a
//     chunk is never delivered before the one read ahead of it, so jitter
//     delays bytes but never reorders them.
//   - Cut(CutReset): every proxied connection is reset (RST on both sides),
//     and every new connection is accepted and reset at once, so a client
//     sees ECONNRESET (or EOF) on its first read or write.
//   - Cut(CutBlackhole): every proxied connection is reset, and new
//     connections are accepted and held without reading or forwarding, like a
//     dropped network; Heal connects the held ones upstream and forwards
//     whatever the client sent meanwhile, like TCP retransmitting after a
//     partition heals.
//   - Heal: undoes Cut.
//   - Pause/Resume: data stops flowing in both directions on every connection,
//     existing and new, without anything being closed (a hung peer or a link
//     that silently stops delivering); Resume lets the held bytes through.
//
// Memory is bounded per connection and direction: at most queueLen+2 chunks
// of chunkSize bytes are in flight; beyond that the proxy stops reading and
// TCP flow control pushes back on the sender. With added latency L, the
// queue bounds a connection's throughput to about queueLen*chunkSize/L.
//
// Concurrency: every method is safe for concurrent use. The proxy owns every
// goroutine it starts (one accept loop, one per held connection, four per
// forwarded connection); Close stops them all and waits for them.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// chunkSize is the largest read from one side, and so the unit latency
	// is applied to.
	chunkSize = 32 << 10
	// queueLen is how many read chunks may wait for delivery per direction.
	queueLen = 8
	// paceSlice is the pacing granularity of a bandwidth limit: a write is cut
	// into pieces of about this much time at the configured rate.
	paceSlice = 20 * time.Millisecond
	// dialTimeout bounds the connection to the upstream.
	dialTimeout = 5 * time.Second
)

// Direction selects which way through the proxy a Link applies to.
type Direction int

const (
	// ToServer is the direction from the client to the upstream.
	ToServer Direction = 1 << iota
	// ToClient is the direction from the upstream back to the client.
	ToClient
	// Both is ToServer and ToClient.
	Both = ToServer | ToClient
)

// Link describes the faults of one direction. The zero Link adds nothing.
type Link struct {
	// Latency is added to every chunk, fixed.
	Latency time.Duration
	// Jitter adds a further uniform random delay in [0, Jitter) per chunk,
	// never reordering bytes.
	Jitter time.Duration
	// Bandwidth limits the direction to this many bytes per second on each
	// connection; 0 means unlimited.
	Bandwidth int64
}

// Validate reports a negative field by name.
func (l Link) Validate() error {
	switch {
	case l.Latency < 0:
		return fmt.Errorf("faultproxy: link latency %v is negative", l.Latency)
	case l.Jitter < 0:
		return fmt.Errorf("faultproxy: link jitter %v is negative", l.Jitter)
	case l.Bandwidth < 0:
		return fmt.Errorf("faultproxy: link bandwidth %d is negative", l.Bandwidth)
	}
	return nil
}

// CutMode says what a cut does to new connections.
type CutMode int

const (
	// CutReset accepts new connections and resets them at once.
	CutReset CutMode = iota + 1
	// CutBlackhole accepts new connections and holds them, forwarding
	// nothing, until Heal.
	CutBlackhole
)

func (m CutMode) String() string {
	switch m {
	case CutReset:
		return "reset"
	case CutBlackhole:
		return "blackhole"
	}
	return fmt.Sprintf("CutMode(%d)", int(m))
}

// Proxy forwards TCP connections from its listener to one upstream address,
// injecting the faults it is told to. Create one with Listen.
type Proxy struct {
	ln       net.Listener
	upstream string
	ctx      context.Context // canceled by Close; parent of every dial
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	links [2]atomic.Pointer[Link] // by dirIndex
	flow  gate                    // shut while paused
	held  gate                    // shut while cut in blackhole mode

	mu     sync.Mutex
	cut    CutMode // 0 when not cut
	conns  map[*conn]struct{}
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// ErrBadMode is returned by Cut for an unknown CutMode.
var ErrBadMode = errors.New("faultproxy: unknown cut mode")

// Listen starts a proxy listening on addr (use "127.0.0.1:0" for a free
// loopback port) that forwards to upstream.
func Listen(addr, upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen %s: %w", addr, err)
	}
	return Serve(ln.(*net.TCPListener), upstream), nil
}

// Serve starts a proxy on a listener the caller made, for one that Listen
// cannot make: in another network namespace, say. The proxy owns ln from
// then on and closes it in Close. Connections upstream are dialed from
// whatever namespace the process is in.
func Serve(ln *net.TCPListener, upstream string) *Proxy {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln:       ln,
		upstream: upstream,
		ctx:      ctx,
		cancel:   cancel,
		conns:    make(map[*conn]struct{}),
	}
	for i := range p.links {
		p.links[i].Store(&Link{})
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p
}

// Addr is the address clients dial to go through the proxy.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Upstream is the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// SetLink sets the faults of the direction(s) d. It applies at once to
// chunks read afterwards on every connection, existing ones included.
func (p *Proxy) SetLink(d Direction, l Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if d&Both == 0 || d&^Both != 0 {
		return fmt.Errorf("faultproxy: unknown direction %d", int(d))
	}
	for _, one := range []Direction{ToServer, ToClient} {
		if d&one != 0 {
			cp := l
			p.links[dirIndex(one)].Store(&cp)
		}
	}
	return nil
}

// Cut resets every proxied connection and, until Heal, treats new ones as
// mode says. Cutting an already cut proxy changes the mode and resets again.
func (p *Proxy) Cut(mode CutMode) error {
	if mode != CutReset && mode != CutBlackhole {
		return fmt.Errorf("%w: %d", ErrBadMode, int(mode))
	}
	p.mu.Lock()
	p.cut = mode
	// Shut before the lock is released so no new connection can pass
	// between the mode change and the gate.
	p.held.shut()
	victims := p.snapshotLocked()
	p.mu.Unlock()
	for _, c := range victims {
		c.close(true)
	}
	return nil
}

// Heal ends a cut: new connections are forwarded again, and connections held
// by CutBlackhole are connected upstream.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = 0
	p.held.open()
	p.mu.Unlock()
}

// Pause stops the data flowing in both directions on every connection
// without closing any; bytes already read wait in the proxy.
func (p *Proxy) Pause() { p.flow.shut() }

// Resume lets the data flow again after Pause.
func (p *Proxy) Resume() { p.flow.open() }

// Conns is the number of client connections the proxy holds open, held
// (blackholed) ones included.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops the listener, closes every connection and waits for every
// goroutine of the proxy to return. It is idempotent.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		victims := p.snapshotLocked()
		p.mu.Unlock()
		p.cancel()
		if err := p.ln.Close(); err != nil {
			p.closeErr = fmt.Errorf("faultproxy: close listener: %w", err)
		}
		for _, c := range victims {
			c.close(false)
		}
		p.wg.Wait()
	})
	return p.closeErr
}

func (p *Proxy) snapshotLocked() []*conn {
	out := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	return out
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off rather than
			// spin, and give up when the proxy closes.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
				continue
			case <-p.ctx.Done():
				return
			}
		}
		backoff = 0
		client := nc.(*net.TCPConn)
		p.mu.Lock()
		if p.closed || p.cut == CutReset {
			p.mu.Unlock()
			reset(client)
			continue
		}
		c := newConn(p, client)
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go c.serve()
	}
}

func (p *Proxy) remove(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func dirIndex(d Direction) int {
	if d == ToServer {
		return 0
	}
	return 1
}

// reset closes a TCP connection with an RST instead of a FIN.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// gate blocks those who pass it while it is shut.
type gate struct {
	mu   sync.Mutex
	wait chan struct{} // non-nil while shut; closed when opened
}

func (g *gate) shut() {
	g.mu.Lock()
	if g.wait == nil {
		g.wait = make(chan struct{})
	}
	g.mu.Unlock()
}

func (g *gate) open() {
	g.mu.Lock()
	if g.wait != nil {
		close(g.wait)
		g.wait = nil
	}
	g.mu.Unlock()
}

// pass waits until the gate is open and reports true, or reports false when
// done closes first.
func (g *gate) pass(done <-chan struct{}) bool {
	for {
		g.mu.Lock()
		w := g.wait
		g.mu.Unlock()
		if w == nil {
			return true
		}
		select {
		case <-w:
		case <-done:
			return false
		}
	}
}
