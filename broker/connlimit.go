package broker

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/protocol"
)

// Connection limits. A connection is admitted on accept when the broker
// holds fewer than MaxConnections and its remote IP fewer than
// MaxConnectionsPerIP. Past either, and while the total is below
// MaxConnections + ReservedBrokerConnections and the host's below
// MaxConnectionsPerIP + ReservedBrokerConnections, it is admitted on
// probation: its first request decides. A request that only another
// broker of the cluster sends (interBroker) makes it an ordinary
// connection; anything else is answered THROTTLING_QUOTA_EXCEEDED (the
// uniform error response, which every client decodes whatever the API)
// and the connection is closed, so a client learns why instead of seeing
// a silent close. Past the reserve too, it is closed at once.
//
// The reserve rather than a second, inter-broker listener: one port to
// configure, advertise and firewall, and nothing for a client to get
// wrong. What it costs: a flood of connections that send nothing can fill
// the reserve for up to FirstRequestTimeout, after which they are closed;
// a broker refused meanwhile retries (fetchers back off and redial).
//
// Every connection must deliver its whole first request within
// FirstRequestTimeout (and IdleTimeout), so an idle one frees its slot.

// refusal is why a connection was refused.
type refusal int

const (
	refusedMaxConnections refusal = iota
	refusedMaxConnectionsPerIP
	refusedFirstRequestTimeout
	numRefusals
)

// refusalNames are the log fields counting each refusal, named after the
// settings that refused.
var refusalNames = [numRefusals]string{"max_connections", "max_connections_per_ip", "first_request_timeout"}

// refusalLogEvery is how often the refusal warning is logged while
// connections are refused.
const refusalLogEvery = 10 * time.Second

// refusals counts refused connections by reason and logs them at warn at
// most once per refusalLogEvery: the first refusal at once, later ones
// counted into the next line (which says how many of each since the line
// before). A flood of thousands of connections a second thus logs one
// line every 10 s.
//
// The zero value is ready to use.
type refusals struct {
	now func() time.Time // nil: time.Now

	// total counts every refusal since the start, for metrics.
	total [numRefusals]atomic.Int64

	mu     sync.Mutex
	counts [numRefusals]int64
	last   time.Time // of the last line; zero before the first
}

func (r *refusals) add(logger *zap.Logger, why refusal, remote string) {
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	r.total[why].Add(1)
	r.mu.Lock()
	r.counts[why]++
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogEvery {
		r.mu.Unlock()
		return
	}
	counts := r.counts
	r.counts = [numRefusals]int64{}
	since := now.Sub(r.last)
	first := r.last.IsZero()
	r.last = now
	r.mu.Unlock()
	fs := make([]zap.Field, 0, numRefusals+3)
	for i, n := range counts {
		fs = append(fs, zap.Int64(refusalNames[i], n))
	}
	fs = append(fs, zap.String("last_remote", remote), zap.String("last_reason", refusalNames[why]))
	if !first {
		fs = append(fs, zap.Duration("over", since))
	}
	logger.Warn("connections refused", fs...)
}

// remoteIP is the host part of a remote address: the key of the per-host
// count.
func remoteIP(addr net.Addr) string {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	s := addr.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// admit decides on a connection just accepted, with b.mu held: it returns
// the conn, registered in b.conns and the per-host count, or nil and why
// when it is refused outright (the caller closes nc and counts it).
// Without reserve (a front end's listener, where brokers never connect)
// a connection past a limit is refused rather than put on probation.
func (b *Broker) admit(nc net.Conn, reserve bool) (*conn, refusal) {
	if b.connsPerIP == nil {
		b.connsPerIP = map[string]int{}
	}
	ip := remoteIP(nc.RemoteAddr())
	total, perIP := len(b.conns), b.connsPerIP[ip]
	reserved, perLimit := max(b.cfg.ReservedBrokerConnections, 0), b.cfg.MaxConnectionsPerIP
	var probation refusal = -1
	switch {
	case total >= b.cfg.MaxConnections+reserved:
		return nil, refusedMaxConnections
	case perLimit > 0 && perIP >= perLimit+reserved:
		return nil, refusedMaxConnectionsPerIP
	case total >= b.cfg.MaxConnections:
		probation = refusedMaxConnections
	case perLimit > 0 && perIP >= perLimit:
		probation = refusedMaxConnectionsPerIP
	}
	if probation >= 0 && !reserve {
		return nil, probation
	}
	c := newConn(b, nc)
	c.ip, c.probation = ip, probation
	b.conns[c] = struct{}{}
	b.connsPerIP[ip]++
	return c, -1
}

// forget removes an ended connection, with b.mu held.
func (b *Broker) forget(c *conn) {
	delete(b.conns, c)
	if b.connsPerIP[c.ip]--; b.connsPerIP[c.ip] <= 0 {
		delete(b.connsPerIP, c.ip)
	}
}

// onProbation settles a connection on probation with its first request:
// it reports whether the request may be served. Refused, resp is the
// THROTTLING_QUOTA_EXCEEDED answer and the connection closes after it.
// Handler-owned, like c.probation.
func (c *conn) onProbation(h *protocol.RequestHeader, body []byte, resp *response) bool {
	if c.probation < 0 {
		return true
	}
	if c.interBroker(h, body) {
		c.probation = -1
		return true
	}
	c.b.refused.add(c.b.logger, c.probation, c.remote)
	c.errorResponse(resp, h, protocol.ErrThrottlingQuotaExceeded)
	resp.closeAfter = true
	return false
}

// interBroker reports whether a request is one that only another broker
// of the cluster sends: a replica's Fetch or OffsetForLeaderEpoch (a
// replica id that is a registered broker) or a forwarded controller
// write. Without authentication a client could claim a broker's id; the
// reserve bounds what that gains it.
func (c *conn) interBroker(h *protocol.RequestHeader, body []byte) bool {
	var replica int32 = -1
	c.dec.Reset(body)
	switch h.Key {
	case protocol.ControllerForward:
		return true
	case protocol.SaslHandshake:
		// A broker logs in first; the login itself proves it is one
		// (authz.go), and a connection that fails it is closed.
		var r protocol.SaslHandshakeRequest
		return r.Decode(&c.dec, h.Version) == nil && auth.Mechanism(r.Mechanism) == auth.BrokerMechanism
	case protocol.Fetch:
		var r protocol.FetchRequest
		if r.Decode(&c.dec, h.Version) != nil {
			return false
		}
		replica = r.ReplicaID
	case protocol.OffsetForLeaderEpoch:
		var r protocol.OffsetForLeaderEpochRequest
		if r.Decode(&c.dec, h.Version) != nil {
			return false
		}
		replica = r.ReplicaID
	}
	if replica < 0 || c.b.store == nil {
		return false
	}
	_, ok := c.b.store.Metadata().Brokers[replica]
	return ok
}
