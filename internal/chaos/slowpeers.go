package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/faultproxy"
	"github.com/sluicemq/sluice/internal/netns"
)

// PeerPorts are the ports whose links between brokers the slow-peers fault
// slows: the client port (replication fetches, requests forwarded between
// brokers) and the Raft port. Gossip (UDP, and memberlist's TCP push-pull
// on the same port) is left at full speed.
var PeerPorts = []int{ClientPort, RaftPort}

// SlowLinks is the TCP links between one host and every other host, on
// some ports, going through a faultproxy each. There is no tc netem here,
// so the links are bent instead: in the namespace of the host that opens
// a connection, a nat OUTPUT rule (netns.Hosts.Redirect) sends it to a
// proxy listening on 127.0.0.1 there, which forwards it to the real peer
// from the root namespace (so the peer sees it come from the bridge
// address, and the rule does not catch the proxy's own dial). Both ends
// are bent, so connections opened by either side are slowed; connections
// open before are reset, and come back through the proxies.
type SlowLinks struct {
	hosts *netns.Hosts
	id    int

	mu      sync.Mutex
	proxies []*faultproxy.Proxy
}

// SlowHostLinks slows host id's TCP links to and from every other host on
// ports with link, both directions, until Heal. On error what was set up
// is undone.
func SlowHostLinks(ctx context.Context, hosts *netns.Hosts, id int, ports []int, link faultproxy.Link) (*SlowLinks, error) {
	if err := link.Validate(); err != nil {
		return nil, err
	}
	s := &SlowLinks{hosts: hosts, id: id}
	for peer := 1; peer <= hosts.N; peer++ {
		if peer == id {
			continue
		}
		for _, port := range ports {
			for _, fromTo := range [][2]int{{id, peer}, {peer, id}} {
				if err := s.bend(ctx, fromTo[0], fromTo[1], port, link); err != nil {
					return nil, errors.Join(err, s.Heal(ctx))
				}
			}
		}
	}
	return s, nil
}

// bend sends host from's connections to host to's port through a new
// proxy with link.
func (s *SlowLinks) bend(ctx context.Context, from, to, port int, link faultproxy.Link) error {
	var ln *net.TCPListener
	err := s.hosts.In(from, func() error {
		var err error
		ln, err = net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	})
	if err != nil {
		return fmt.Errorf("chaos: slow link %d->%d:%d: proxy listener: %w", from, to, port, err)
	}
	p := faultproxy.Serve(ln, fmt.Sprintf("%s:%d", s.hosts.Addr(to), port))
	s.mu.Lock()
	s.proxies = append(s.proxies, p)
	s.mu.Unlock()
	if err := p.SetLink(faultproxy.Both, link); err != nil {
		return err
	}
	if err := s.hosts.Redirect(ctx, from, to, port, ln.Addr().(*net.TCPAddr).Port); err != nil {
		return fmt.Errorf("chaos: slow link %d->%d:%d: %w", from, to, port, err)
	}
	return nil
}

// Conns is how many connections the proxies hold open.
func (s *SlowLinks) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.proxies {
		n += p.Conns()
	}
	return n
}

// Heal resets every connection through the proxies, then removes the
// redirects from every host and closes the proxies: the brokers reconnect
// directly. The order matters: once a redirect is gone, the connections it
// caught are no longer translated (iptables-nft here), so a proxy's FIN or
// RST arrives from 127.0.0.1 and matches no socket; a broker waiting for an
// answer on one would hear nothing until its own request timeout (5.5 s
// for a replica fetch: no acknowledgement for that long after every heal).
// Reset while the redirects still translate, both ends see it at once;
// a connection redirected meanwhile is accepted and reset too. It is
// idempotent, and safe to call again after an error.
func (s *SlowLinks) Heal(ctx context.Context) error {
	s.mu.Lock()
	ps := slices.Clone(s.proxies)
	s.mu.Unlock()
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Cut(faultproxy.CutReset))
	}
	for i := 1; i <= s.hosts.N; i++ {
		errs = append(errs, s.hosts.Unredirect(ctx, i))
	}
	errs = append(errs, s.close())
	return errors.Join(errs...)
}

// close closes every proxy, leaving the rules: for Cluster.Close, whose
// hosts are removed next anyway.
func (s *SlowLinks) close() error {
	s.mu.Lock()
	ps := s.proxies
	s.proxies = nil
	s.mu.Unlock()
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// CheckSlowed fails a slow-peers fault that did not slow the
// acknowledgements, given their median latency during it: with acks=all
// each waits for the followers' fetches, a round trip on the links between
// brokers, so the median is at least the added round trip (twice the
// delay each way). Below it the brokers still talked directly.
func CheckSlowed(ev Event, p50 time.Duration) error {
	want := 2 * PeerDelay(ev.Pick).Latency
	if p50 < want {
		return fmt.Errorf("chaos: %s on %s: p50 ack latency during it %v, want at least %v (the added round trip): peer links not slowed",
			ev.Kind, ev.Target, p50.Round(100*time.Microsecond), want)
	}
	return nil
}
