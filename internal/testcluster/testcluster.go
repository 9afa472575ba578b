// Package testcluster runs a sluice cluster inside a test: n brokers in
// the test process, each a real broker.Broker with its Raft controller,
// on loopback TCP (port 0) with its data directory under t.TempDir(), and
// the controls a test needs to hurt it: stop a broker cleanly, kill it (no
// controlled shutdown, no graceful leave), restart it on the same data
// directory and Raft address, and cut the clients off from it. The model
// is hashicorp/raft's exported MakeCluster (testing.go).
//
//	c := testcluster.Start(t, 3, testcluster.Options{})
//	cl := c.Client()
//	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 3})
//	leader := testcluster.WaitLeader(t, cl, "t", 0, -1, 15*time.Second)
//	c.Kill(leader)
//	testcluster.WaitLeader(t, cl, "t", 0, leader, 15*time.Second)
//	c.Restart(leader)
//
// The package imports broker, controller and client, so the tests inside
// those packages (package broker, package controller, ...) cannot import
// it; external test packages (package broker_test) and the tests of every
// package above them can. The functions over a *client.Client
// (WaitPartition, WaitLeader, WaitFullISR, CreateTopic) work on any
// cluster, in process or not: cmd/sluice's tests use them on clusters of
// the built binary. It must not import bench, whose tests may use it.
//
// Timings are short so that a test sees a failover in about a second:
// serf notices a killed broker within about a second, Raft elections time
// out after 1 s (RaftTimeout), followers long-poll for 200 ms, and the controller
// does not move leadership back to preferred replicas unless a test's
// Options.Configure turns LeaderRebalanceInterval on.
//
// A Cluster's methods are safe for concurrent use, but those that fail
// the test (Start, Restart, Client) must be called from the goroutine
// running it. Every broker, proxy and client the Cluster made is closed
// by t.Cleanup.
package testcluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/faultproxy"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcerts"
	"github.com/sluicemq/sluice/log"
)

// Options shape a Cluster; the zero value is a cluster of up to 3 voters.
type Options struct {
	// Voters is how many brokers, the first ones (ids 1..Voters), are Raft
	// voters; they bootstrap together. The others join through broker 1
	// as non-voters. 0: min(n, 3).
	Voters int
	// Configure, when set, is applied last to the configuration of each
	// broker, at every start (for example to set ReplicaMaxLag or turn
	// LeaderRebalanceInterval on).
	Configure func(*broker.Config)
	// ClientProxies puts a faultproxy between the clients Client makes and
	// each broker, so that Proxy(id) can cut or slow the clients' links to
	// broker id. The brokers' links to each other do not go through it.
	ClientProxies bool
	// TLS runs the cluster with TLS everywhere: a CA and certificates
	// made for the test (internal/testcerts), TLS on every broker's client
	// listener and Raft transport, on the brokers' connections to each
	// other, an encrypted gossip (a random GossipKey), and clients from
	// Client that verify the brokers and offer the client certificate.
	TLS bool
	// TLSClientAuth is the brokers' client-certificate mode with TLS.
	TLSClientAuth auth.ClientAuth
	// AutoBalance, when set, is the cluster config auto.balance, set
	// before Start returns (before any topic exists). Empty: the cluster
	// default, on-join, under which a broker that joins or comes back
	// holding fewer replicas than the others gets moves within
	// broker.Config.AutoBalanceInterval. A test about something else
	// that joins brokers, creates topics while one is down or moves
	// partitions by hand sets controller.AutoBalanceOff here: this is
	// the one place a test cluster turns it off.
	AutoBalance string
}

// Gossip detects a failed broker within about a second; a restarted
// broker takes its name back on a new gossip port at once.
var Gossip = controller.GossipTimings{
	ProbeInterval:       100 * time.Millisecond,
	ProbeTimeout:        80 * time.Millisecond,
	GossipInterval:      20 * time.Millisecond,
	PushPullInterval:    time.Second,
	TCPTimeout:          time.Second,
	SuspicionMult:       3,
	DeadNodeReclaimTime: time.Millisecond,
	LeavePropagateDelay: 100 * time.Millisecond,
}

// RaftTimeout is the brokers' Raft heartbeat and election timeout:
// production's (broker.DefaultRaftTimeout). At 400 ms, with -race on the
// shared 2-core machine at load 26-35, the controller leader lost its
// lease (half the timeout) again and again: 2 and 9 leadership changes,
// 1.1 s and 10.7 s without a leader, in 15 s of a verify load, and admin
// calls failed with "leadership lost while committing" or got no answer
// for 30 s; at 1 s, 0 and 4 changes, 0 s and 4.2 s, in runs interleaved
// with those. A killed controller is replaced within about 2 s, and a
// 3-voter Start takes about 0.6 s more (medians 0.92 s and 1.56 s, 3
// interleaved starts each, at load 24-37).
const RaftTimeout = broker.DefaultRaftTimeout

// RegisterTimeout is the brokers' bound on a start (Raft, then the
// registration with the controller): production's
// (broker.DefaultRegisterTimeout). At 20 s, a 3-broker Start with -race
// failed at a load of about 50 on the shared 2-core machine, its broker
// still logging in to the controller leader to forward its registration
// when the time ran out (TestIdempotentRetryRacesOriginal and others).
// 68 Starts at load 35-40 took 4.2 s median, 8.1 s p90 and 13.6 s at
// most: 20 s was 1.5 times the worst. It only bounds a start that
// fails; a passing one takes no longer.
const RegisterTimeout = broker.DefaultRegisterTimeout

// DetectTimeout bounds a test's wait for the cluster to act on a killed
// broker: the controller fences it and shrinks its partitions' ISRs, or
// takes a partition offline. On a quiet machine that takes a second or two
// (gossip probes every 100 ms); with -race at a load of 30-40 on the
// shared 2-core machine, 10 s was once not enough
// (TestIdempotentStateFollowsTruncation: "timed out after 10s waiting for
// ... offline"). It only bounds a wait that fails; a passing one takes no
// longer.
const DetectTimeout = 30 * time.Second

// Cluster is n brokers, ids 1..n, running in the test process. Each keeps
// its data directory and Raft address across a stop and restart; its
// client port is new at each start.
type Cluster struct {
	t        testing.TB
	opts     Options
	ids      []int32
	dirs     map[int32]string
	raft     map[int32]string // Raft address
	voters   string           // the Voters setting of the voters
	joinAddr string           // broker 1's client address when the non-voters first started

	ca        *testcerts.CA
	tlsDir    string
	brokerTLS *auth.Transport // nil without Options.TLS
	clientTLS *auth.Reloader
	gossipKey []byte

	mu      sync.Mutex
	brokers map[int32]*broker.Broker
	proxies map[int32]*faultproxy.Proxy // with ClientProxies, of the running brokers
	secret  []byte                      // Secret
}

// Secret returns the cluster's secret: its brokers log in to each other
// with it (broker.Security.ClusterSecret). Every cluster has its own,
// random, so a broker of another test's cluster (one still stopping, its
// ports reused by this one) can never log in to this cluster's brokers,
// forward a registration to its controller or replicate from it.
func (c *Cluster) Secret() []byte { return c.secret }

// Start starts n brokers and returns once every one is registered with
// the controller; t.Cleanup stops them.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Voters == 0 {
		opts.Voters = min(n, 3)
	}
	if n < 1 || opts.Voters < 1 || opts.Voters > n {
		t.Fatalf("testcluster: %d brokers, %d voters", n, opts.Voters)
	}
	c := &Cluster{t: t, opts: opts, dirs: map[int32]string{}, raft: map[int32]string{},
		brokers: map[int32]*broker.Broker{}, proxies: map[int32]*faultproxy.Proxy{},
		secret: []byte("testcluster secret " + rand.Text())}
	if opts.TLS {
		c.setupTLS()
	}
	lns := map[int32]net.Listener{}
	var voters []string
	for i := 1; i <= n; i++ {
		id := int32(i)
		c.ids = append(c.ids, id)
		c.dirs[id] = t.TempDir()
		lns[id] = poll.Listen(t, "127.0.0.1:0")
		c.raft[id] = lns[id].Addr().String()
		if i <= opts.Voters {
			voters = append(voters, fmt.Sprintf("%d@%s", id, c.raft[id]))
		}
	}
	c.voters = strings.Join(voters, ",")
	t.Cleanup(c.stopAll)
	// Voters start together: each one's Start waits for a quorum.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, id := range c.ids[:opts.Voters] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.startWith(id, lns[id])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c.joinAddr = c.Broker(1).Addr()
	for _, id := range c.ids[opts.Voters:] {
		if err := c.startWith(id, lns[id]); err != nil {
			t.Fatal(err)
		}
	}
	if opts.AutoBalance != "" {
		cl := c.Client()
		retryAdmin(t, "set "+controller.ConfigAutoBalance, nil, func(ctx context.Context) error {
			return cl.AlterClusterConfigs(ctx, client.SetConfig(controller.ConfigAutoBalance, opts.AutoBalance))
		})
	}
	return c
}

// Config returns the configuration broker id starts with, but for its
// Raft listener: a broker made from it listens for Raft on a new loopback
// port. A test can change it to start a broker of its own.
func (c *Cluster) Config(id int32) broker.Config {
	cfg := broker.Config{
		ListenAddr:                "127.0.0.1:0",
		DataDir:                   c.dirs[id],
		BrokerID:                  id,
		RaftHeartbeatTimeout:      RaftTimeout,
		RaftElectionTimeout:       RaftTimeout,
		RegisterTimeout:           RegisterTimeout,
		Gossip:                    Gossip,
		ReplicaFetchWait:          200 * time.Millisecond,
		ControlledShutdownTimeout: 2 * time.Second,
		LeaderRebalanceInterval:   -1,
		Logger:                    zaptest.NewLogger(c.t, zaptest.Level(zap.ErrorLevel)),
		Security:                  broker.Security{ClusterSecret: c.secret},
	}
	if c.brokerTLS != nil {
		cfg.TLS, cfg.RaftTLS, cfg.GossipKey = c.brokerTLS, c.brokerTLS, c.gossipKey
	}
	if int(id) <= c.opts.Voters {
		cfg.Voters = c.voters
	} else {
		cfg.Join = c.joinAddr
	}
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	return cfg
}

func (c *Cluster) startWith(id int32, ln net.Listener) error {
	cfg := c.Config(id)
	cfg.RaftListener = ln
	b, err := broker.New(cfg)
	if err != nil {
		ln.Close()
		return fmt.Errorf("testcluster: new broker %d: %w", id, err)
	}
	if err := b.Start(context.Background()); err != nil {
		return fmt.Errorf("testcluster: start broker %d: %w", id, err)
	}
	var p *faultproxy.Proxy
	if c.opts.ClientProxies {
		if p, err = faultproxy.Listen("127.0.0.1:0", b.Addr()); err != nil {
			b.Close()
			return fmt.Errorf("testcluster: proxy for broker %d: %w", id, err)
		}
	}
	c.mu.Lock()
	c.brokers[id] = b
	if p != nil {
		c.proxies[id] = p
	}
	c.mu.Unlock()
	return nil
}

// IDs returns the ids of every broker, running or not, in order.
func (c *Cluster) IDs() []int32 { return c.ids }

// Dir returns broker id's data directory.
func (c *Cluster) Dir(id int32) string { return c.dirs[id] }

// Broker returns broker id, or nil while it is stopped.
func (c *Cluster) Broker(id int32) *broker.Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.brokers[id]
}

// take removes broker id and its proxy from the running ones, closes the
// proxy, and returns the broker, or nil.
func (c *Cluster) take(id int32) *broker.Broker {
	c.mu.Lock()
	b, p := c.brokers[id], c.proxies[id]
	delete(c.brokers, id)
	delete(c.proxies, id)
	c.mu.Unlock()
	if p != nil {
		p.Close()
	}
	return b
}

// Stop closes broker id as an operator's stop would: its leaderships move
// away first (controlled shutdown). Stopping a stopped broker does
// nothing.
func (c *Cluster) Stop(id int32) {
	c.t.Helper()
	if b := c.take(id); b != nil {
		if err := b.Close(); err != nil {
			c.t.Errorf("testcluster: close broker %d: %v", id, err)
		}
	}
}

// Kill stops broker id the way a crash would (broker.Abandon): no
// controlled shutdown, no graceful leave (the others notice the failure
// through serf), no clean-shutdown record, so the next start recovers its
// logs; what it wrote stays, as the kernel keeps a dead process's writes.
// A log offline after a storage error (log.ErrOffline) is no error here:
// a crash does not close it either. Killing a stopped broker does
// nothing.
func (c *Cluster) Kill(id int32) {
	c.t.Helper()
	if b := c.take(id); b != nil {
		if err := b.Abandon(); err != nil && !errors.Is(err, log.ErrOffline) {
			c.t.Errorf("testcluster: abandon broker %d: %v", id, err)
		}
	}
}

// Restart starts stopped broker id again on its data directory and Raft
// address, and returns it once it is registered (with a new epoch). Its
// client address, and its proxy, are new.
func (c *Cluster) Restart(id int32) *broker.Broker {
	c.t.Helper()
	if c.Broker(id) != nil {
		c.t.Fatalf("testcluster: restart broker %d: it is running", id)
	}
	if err := c.startWith(id, poll.Listen(c.t, c.raft[id])); err != nil {
		c.t.Fatal(err)
	}
	return c.Broker(id)
}

// RestartTogether starts stopped brokers ids again at once, each as
// Restart does, and returns once every one is registered: a restart of a
// whole cluster, where each voter's start waits for a quorum of the
// others.
func (c *Cluster) RestartTogether(ids ...int32) {
	c.t.Helper()
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		if c.Broker(id) != nil {
			c.t.Fatalf("testcluster: restart broker %d: it is running", id)
		}
		ln := poll.Listen(c.t, c.raft[id])
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.startWith(id, ln)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *Cluster) stopAll() {
	for _, id := range c.ids {
		c.Stop(id)
	}
}

// Addrs returns the client addresses of the running brokers.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, id := range c.ids {
		if b := c.Broker(id); b != nil {
			out = append(out, b.Addr())
		}
	}
	return out
}

// Proxy returns the faultproxy between the clients and running broker id
// (Options.ClientProxies), or nil. Its Cut, Pause and SetLink act on the
// connections of every client Client made to that broker; the brokers
// keep each other. A restarted broker has a new, healed proxy.
func (c *Cluster) Proxy(id int32) *faultproxy.Proxy {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proxies[id]
}

// Client returns a client bootstrapped from every running broker, with a
// short retry backoff and, with Options.ClientProxies, connections through
// the proxies; opts come last, so client.SeedBrokers(addr) bootstraps it
// from one broker only. It is closed at the end of the test.
func (c *Cluster) Client(opts ...client.Opt) *client.Client {
	c.t.Helper()
	all := []client.Opt{client.SeedBrokers(c.Addrs()...), client.RetryBackoff(10*time.Millisecond, 200*time.Millisecond)}
	if c.opts.ClientProxies {
		all = append(all, client.Dialer(c.dial))
	}
	if c.clientTLS != nil {
		all = append(all, client.TLS(c.clientTLS.ClientConfig("")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.New(ctx, append(all, opts...)...)
	if err != nil {
		c.t.Fatalf("testcluster: client: %v", err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// dial connects to a broker's proxy instead of the broker.
func (c *Cluster) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	for id, b := range c.brokers {
		if p := c.proxies[id]; p != nil && b.Addr() == addr {
			addr = p.Addr()
			break
		}
	}
	c.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// setupTLS makes the cluster's CA, the brokers' certificate ("broker")
// and a client's ("client"), the brokers' transport and the gossip key.
func (c *Cluster) setupTLS() {
	c.t.Helper()
	c.ca = testcerts.NewCA(c.t, "testcluster CA")
	c.tlsDir = c.t.TempDir()
	bf := c.ca.Issue(c.t, c.tlsDir, "broker", testcerts.Valid)
	cf := c.ca.Issue(c.t, c.tlsDir, "client", testcerts.Valid)
	r, err := auth.NewReloader(auth.TLSFiles{CertFile: bf.CertFile, KeyFile: bf.KeyFile, CAFile: bf.CAFile})
	if err != nil {
		c.t.Fatal(err)
	}
	if c.brokerTLS, err = auth.NewTransport(r, c.opts.TLSClientAuth); err != nil {
		c.t.Fatal(err)
	}
	if c.clientTLS, err = auth.NewReloader(auth.TLSFiles{CertFile: cf.CertFile, KeyFile: cf.KeyFile, CAFile: cf.CAFile}); err != nil {
		c.t.Fatal(err)
	}
	c.gossipKey = make([]byte, 32)
	if _, err := rand.Read(c.gossipKey); err != nil {
		c.t.Fatal(err)
	}
}

// CA returns the certificate authority of a cluster started with
// Options.TLS (nil without), so a test can issue certificates of its own.
func (c *Cluster) CA() *testcerts.CA { return c.ca }

// ClientTLS returns the client files of a cluster started with
// Options.TLS: the CA file that verifies the brokers and a client
// certificate it signed.
func (c *Cluster) ClientTLS() testcerts.Files {
	return testcerts.Files{CertFile: filepath.Join(c.tlsDir, "client.crt"), KeyFile: filepath.Join(c.tlsDir, "client.key"), CAFile: c.ca.CAFile}
}
