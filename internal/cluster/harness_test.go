package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
)

// testCluster runs brokers 1..n in this process; the first nVoters are the
// Raft voters. Each keeps its data directory and Raft address across a
// stop and restart; its client port is new each start.
type testCluster struct {
	t        *testing.T
	voters   string
	dirs     map[int32]string
	raft     map[int32]string
	ids      []int32
	mu       sync.Mutex
	brokers  map[int32]*broker.Broker
	nVoters  int
	joinAddr string
	maxLag   time.Duration // brokers' ReplicaMaxLag; 0: the default
	// rebalance is the brokers' LeaderRebalanceInterval; 0: disabled, so
	// tests decide when leadership goes back to preferred replicas.
	rebalance time.Duration
}

// testGossip detects a failed broker within about a second; a restarted
// broker takes its name back on a new gossip port at once.
var testGossip = controller.GossipTimings{
	ProbeInterval:       100 * time.Millisecond,
	ProbeTimeout:        80 * time.Millisecond,
	GossipInterval:      20 * time.Millisecond,
	PushPullInterval:    time.Second,
	TCPTimeout:          time.Second,
	SuspicionMult:       3,
	DeadNodeReclaimTime: time.Millisecond,
	LeavePropagateDelay: 100 * time.Millisecond,
}

// raftTimeout is short so elections take well under a second, not so short
// that a leader under -race on a loaded machine loses its lease (lease =
// half of it) in the middle of a write.
const raftTimeout = 400 * time.Millisecond

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newCluster starts n brokers, the first nVoters of them voters that
// bootstrap together; the others join through broker 1 as non-voters.
func newCluster(t *testing.T, n, nVoters int, opts ...func(*testCluster)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, dirs: map[int32]string{}, raft: map[int32]string{}, brokers: map[int32]*broker.Broker{}, nVoters: nVoters}
	for _, o := range opts {
		o(c)
	}
	lns := map[int32]net.Listener{}
	var voters []string
	for i := 1; i <= n; i++ {
		id := int32(i)
		c.ids = append(c.ids, id)
		c.dirs[id] = t.TempDir()
		lns[id] = listen(t, "127.0.0.1:0")
		c.raft[id] = lns[id].Addr().String()
		if i <= nVoters {
			voters = append(voters, fmt.Sprintf("%d@%s", id, c.raft[id]))
		}
	}
	c.voters = strings.Join(voters, ",")
	t.Cleanup(c.stopAll)
	// Voters start together: each one's Start waits for a quorum.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, id := range c.ids[:nVoters] {
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
	c.joinAddr = c.broker(1).Addr()
	for _, id := range c.ids[nVoters:] {
		if err := c.startWith(id, lns[id]); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *testCluster) config(id int32, ln net.Listener) broker.Config {
	cfg := broker.Config{
		ListenAddr:                "127.0.0.1:0",
		DataDir:                   c.dirs[id],
		BrokerID:                  id,
		RaftListener:              ln,
		RaftHeartbeatTimeout:      raftTimeout,
		RaftElectionTimeout:       raftTimeout,
		RegisterTimeout:           20 * time.Second,
		Gossip:                    testGossip,
		ReplicaFetchWait:          200 * time.Millisecond,
		ReplicaMaxLag:             c.maxLag,
		ControlledShutdownTimeout: 2 * time.Second,
		LeaderRebalanceInterval:   -1,
		Logger:                    zaptest.NewLogger(c.t, zaptest.Level(zap.ErrorLevel)).With(zap.Int32("test_broker", id)),
	}
	if c.rebalance > 0 {
		cfg.LeaderRebalanceInterval = c.rebalance
	}
	if int(id) <= c.nVoters {
		cfg.Voters = c.voters
	} else {
		cfg.Join = c.joinAddr
	}
	return cfg
}

func (c *testCluster) startWith(id int32, ln net.Listener) error {
	b, err := broker.New(c.config(id, ln))
	if err != nil {
		ln.Close()
		return err
	}
	if err := b.Start(context.Background()); err != nil {
		return fmt.Errorf("start broker %d: %w", id, err)
	}
	c.mu.Lock()
	c.brokers[id] = b
	c.mu.Unlock()
	return nil
}

// kill stops broker id the way a crash would: no controlled shutdown, no
// graceful leave; the others notice through serf.
func (c *testCluster) kill(id int32) {
	c.t.Helper()
	b := c.take(id)
	if b == nil {
		return
	}
	if err := b.Abandon(); err != nil {
		c.t.Errorf("abandon broker %d: %v", id, err)
	}
}

// broker returns broker id, or nil while it is stopped.
func (c *testCluster) broker(id int32) *broker.Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.brokers[id]
}

// take removes broker id from the running ones and returns it, or nil.
func (c *testCluster) take(id int32) *broker.Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.brokers[id]
	delete(c.brokers, id)
	return b
}

// stop closes broker id.
func (c *testCluster) stop(id int32) {
	c.t.Helper()
	b := c.take(id)
	if b == nil {
		return
	}
	if err := b.Close(); err != nil {
		c.t.Errorf("close broker %d: %v", id, err)
	}
}

// restart starts broker id again on its data directory and Raft address.
func (c *testCluster) restart(id int32) *broker.Broker {
	c.t.Helper()
	if err := c.startWith(id, listen(c.t, c.raft[id])); err != nil {
		c.t.Fatal(err)
	}
	return c.broker(id)
}

func (c *testCluster) stopAll() {
	for _, id := range c.ids {
		c.stop(id)
	}
}

// addrs returns the client addresses of the running brokers.
func (c *testCluster) addrs() []string {
	var out []string
	for _, id := range c.ids {
		if b := c.broker(id); b != nil {
			out = append(out, b.Addr())
		}
	}
	return out
}

// client returns a client bootstrapped from the given addresses (every
// running broker when none), closed at the end of the test.
func (c *testCluster) client(addrs ...string) *client.Client {
	c.t.Helper()
	if len(addrs) == 0 {
		addrs = c.addrs()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.SeedBrokers(addrs...), client.RetryBackoff(10*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
