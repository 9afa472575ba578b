package chaos

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// Flood sizes: the conn-flood fault opens FloodConns idle connections (the
// suite's brokers run with --max-connections 1000, so half of them are
// past the limit), at most floodParallel dials at once, each bounded by
// floodDialTimeout, and stops dialing after floodOpenTime.
const (
	FloodConns       = 2000
	floodParallel    = 64
	floodDialTimeout = 2 * time.Second
	floodOpenTime    = 10 * time.Second
)

// Flood is idle TCP connections to one address, held open until Close:
// a client host that connects and never sends a byte.
type Flood struct {
	mu    sync.Mutex
	conns []net.Conn
	// Failed counts the dials that failed; FirstErr is the first error.
	Failed   int
	FirstErr error
}

// DialFunc dials like net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// OpenFlood dials addr over TCP n times with dial, at most parallel at
// once, and returns once every dial has ended or d has passed (the dials
// in flight are then cancelled): bounded in count and in time. The
// connections it opened stay open, sending nothing, until Close; the
// caller must Close it on every path.
func OpenFlood(ctx context.Context, dial DialFunc, addr string, n, parallel int, d time.Duration) *Flood {
	f := &Flood{}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i := 0; i < n && ctx.Err() == nil; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue // the loop ends on ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dial(ctx, "tcp", addr)
			f.mu.Lock()
			defer f.mu.Unlock()
			if err != nil {
				f.Failed++
				if f.FirstErr == nil {
					f.FirstErr = err
				}
				return
			}
			f.conns = append(f.conns, c)
		}()
	}
	wg.Wait()
	return f
}

// FloodDialer dials with floodDialTimeout per connection.
func FloodDialer() DialFunc {
	d := net.Dialer{Timeout: floodDialTimeout}
	return d.DialContext
}

// Opened is how many connections the flood opened.
func (f *Flood) Opened() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Close closes every connection, first counting those the other end has
// closed already (a read that ends at once, not by its deadline): a broker
// past its connection limit accepts and closes. Idempotent.
func (f *Flood) Close() (peerClosed int) {
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	b := make([]byte, 1)
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(b); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			peerClosed++
		}
		_ = c.Close()
	}
	return peerClosed
}
