package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/sluicemq/sluice/internal/poll"
)

// testForwarder forwards writes by calling the target node directly, as
// the sluice protocol will between processes. A stopped node is
// unreachable.
type testForwarder struct {
	mu    sync.Mutex
	nodes map[int32]*Node
}

func (f *testForwarder) Forward(ctx context.Context, to Server, req []byte) ([]byte, error) {
	f.mu.Lock()
	n := f.nodes[to.ID]
	f.mu.Unlock()
	if n == nil || n.RaftAddr() != to.Addr {
		return nil, fmt.Errorf("dial %d at %s: %w", to.ID, to.Addr, ErrLeaderUnreachable)
	}
	return n.HandleForward(ctx, req), nil
}

// testCluster runs Raft nodes in this process over real TCP on loopback.
type testCluster struct {
	t      *testing.T
	fwd    *testForwarder
	voters []Server
	cfgs   map[int32]NodeConfig
	ids    []int32
}

// testRaftTimings are short so elections take well under a second, but
// not so short that a leader under -race on a loaded 2-core CI machine
// loses its lease while committing (150/100 ms did, now and then).
func testRaftTimings(c *NodeConfig) {
	c.HeartbeatTimeout = 400 * time.Millisecond
	c.ElectionTimeout = 400 * time.Millisecond
	c.LeaderLeaseTimeout = 300 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.TrailingLogs = 4
	c.ApplyTimeout = 5 * time.Second
}

// newTestCluster starts nVoters voters (ids 1..) bootstrapped together and
// nNonvoters non-voters that join, and registers every node as a broker.
func newTestCluster(t *testing.T, nVoters, nNonvoters int) *testCluster {
	t.Helper()
	c := startTestCluster(t, nVoters, nNonvoters)
	ctx := testContext(t)
	for _, id := range c.ids {
		n := c.node(id)
		if _, err := n.RegisterBroker(ctx, Broker{ID: id, Addr: fmt.Sprintf("127.0.0.1:%d", 9000+id), RaftAddr: n.RaftAddr()}, PreviousEpochEmpty); err != nil {
			t.Fatalf("register %d: %v", id, err)
		}
	}
	c.waitConverged()
	return c
}

// startTestCluster starts the nodes as newTestCluster does, without
// registering any broker.
func startTestCluster(t *testing.T, nVoters, nNonvoters int) *testCluster {
	t.Helper()
	return startTestClusterWith(t, nVoters, nNonvoters, func(*NodeConfig) {})
}

// startTestClusterWith is startTestCluster with each node's configuration
// changed by edit (after the test timings are set).
func startTestClusterWith(t *testing.T, nVoters, nNonvoters int, edit func(*NodeConfig)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, fwd: &testForwarder{nodes: map[int32]*Node{}}, cfgs: map[int32]NodeConfig{}}
	lns := map[int32]net.Listener{}
	for i := 1; i <= nVoters+nNonvoters; i++ {
		id := int32(i)
		lns[id] = poll.Listen(t, "127.0.0.1:0")
		c.ids = append(c.ids, id)
		if i <= nVoters {
			c.voters = append(c.voters, Server{ID: id, Addr: lns[id].Addr().String(), Voter: true})
		}
	}
	for _, id := range c.ids {
		cfg := NodeConfig{ID: id, Dir: t.TempDir(), RaftAddr: lns[id].Addr().String(), Voters: c.voters, Forwarder: c.fwd,
			Listener: lns[id]}
		testRaftTimings(&cfg)
		edit(&cfg) // may wrap the listener
		c.cfgs[id] = cfg
		c.startWith(cfg)
	}
	t.Cleanup(c.closeAll)
	ctx := testContext(t)
	for _, id := range c.ids[nVoters:] {
		if err := c.node(id).Join(ctx); err != nil {
			t.Fatalf("join %d: %v", id, err)
		}
	}
	return c
}

func (c *testCluster) startWith(cfg NodeConfig) *Node {
	c.t.Helper()
	n, err := StartNode(cfg)
	if err != nil {
		c.t.Fatalf("start node %d: %v", cfg.ID, err)
	}
	c.fwd.mu.Lock()
	c.fwd.nodes[cfg.ID] = n
	c.fwd.mu.Unlock()
	return n
}

// node returns a running node.
func (c *testCluster) node(id int32) *Node {
	c.fwd.mu.Lock()
	defer c.fwd.mu.Unlock()
	n := c.fwd.nodes[id]
	if n == nil {
		c.t.Fatalf("node %d is not running", id)
	}
	return n
}

func (c *testCluster) running() []*Node {
	c.fwd.mu.Lock()
	defer c.fwd.mu.Unlock()
	var out []*Node
	for _, id := range c.ids {
		if n := c.fwd.nodes[id]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// stop shuts a node down, as a kill would stop it answering.
func (c *testCluster) stop(id int32) {
	c.t.Helper()
	n := c.node(id)
	c.fwd.mu.Lock()
	delete(c.fwd.nodes, id)
	c.fwd.mu.Unlock()
	if err := n.Close(); err != nil {
		c.t.Fatalf("close node %d: %v", id, err)
	}
}

// restart starts a stopped node again on its directory and address.
func (c *testCluster) restart(id int32) *Node {
	c.t.Helper()
	cfg := c.cfgs[id]
	cfg.Listener = poll.Listen(c.t, cfg.RaftAddr)
	return c.startWith(cfg)
}

func (c *testCluster) closeAll() {
	for _, n := range c.running() {
		c.fwd.mu.Lock()
		delete(c.fwd.nodes, n.ID())
		c.fwd.mu.Unlock()
		n.Close()
	}
}

// leader waits until the running nodes agree on one leader and returns it.
func (c *testCluster) leader() *Node {
	c.t.Helper()
	var leader *Node
	poll.Until(c.t, 10*time.Second, "one leader known to every node", func() bool {
		leader = nil
		for _, n := range c.running() {
			if n.IsLeader() {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range c.running() {
			if s, ok := n.Leader(); !ok || s.ID != leader.ID() || n.Metadata().ControllerID != leader.ID() {
				return false
			}
		}
		return true
	})
	return leader
}

// follower returns a running node that does not lead.
func (c *testCluster) follower() *Node {
	c.t.Helper()
	leader := c.leader()
	for _, n := range c.running() {
		if n != leader {
			return n
		}
	}
	c.t.Fatal("no running follower")
	return nil
}

// waitConverged waits until every running node holds byte-identical
// metadata.
func (c *testCluster) waitConverged() {
	c.t.Helper()
	poll.Until(c.t, 10*time.Second, "metadata to converge", func() error {
		nodes := c.running()
		want := appendMetadata(nil, nodes[0].Metadata())
		for _, n := range nodes[1:] {
			if got := appendMetadata(nil, n.Metadata()); !bytes.Equal(got, want) {
				return fmt.Errorf("node %d at version %d, node %d at version %d", nodes[0].ID(), nodes[0].Metadata().Version, n.ID(), n.Metadata().Version)
			}
		}
		return nil
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClusterCreateThroughAnyNode(t *testing.T) {
	c := newTestCluster(t, 3, 2)
	ctx := testContext(t)
	servers, err := c.leader().Servers()
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, s := range servers {
		if s.Voter {
			voters++
		}
	}
	if len(servers) != 5 || voters != 3 {
		t.Fatalf("configuration %+v, want 3 voters and 2 non-voters", servers)
	}
	for _, n := range c.running() {
		name := fmt.Sprintf("via-%d", n.ID())
		top, err := n.CreateTopic(ctx, TopicSpec{Name: name, Partitions: 4, ReplicationFactor: 3})
		if err != nil {
			t.Fatalf("create through %d: %v", n.ID(), err)
		}
		if len(top.Partitions) != 4 || len(top.Partitions[0].Replicas) != 3 {
			t.Fatalf("created %+v", top)
		}
		// Read your writes on the node that asked.
		if _, ok := n.Metadata().Topics[name]; !ok {
			t.Fatalf("node %d does not see the topic it created", n.ID())
		}
	}
	c.waitConverged()
	for _, n := range c.running() {
		if got := len(n.Metadata().Topics); got != 5 {
			t.Errorf("node %d has %d topics, want 5", n.ID(), got)
		}
	}

	// Concurrent creates of one name through every node: one wins.
	nodes := c.running()
	errs := make([]error, 2*len(nodes))
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = nodes[i%len(nodes)].CreateTopic(ctx, TopicSpec{Name: "same", Partitions: 1, ReplicationFactor: 2})
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrTopicExists):
			t.Errorf("create %d through node %d: %v, want ErrTopicExists", i, nodes[i%len(nodes)].ID(), err)
		}
	}
	if won != 1 {
		t.Errorf("%d concurrent creates succeeded, want 1", won)
	}

	// Bad input is refused the same way through a follower.
	follower := nodes[len(nodes)-1]
	for _, tc := range []struct {
		spec TopicSpec
		want error
	}{
		{TopicSpec{Name: "bad/name", Partitions: 1, ReplicationFactor: 1}, ErrInvalidTopic},
		{TopicSpec{Name: "zero", Partitions: 0, ReplicationFactor: 1}, ErrInvalidPartitions},
		{TopicSpec{Name: "rf", Partitions: 1, ReplicationFactor: 6}, ErrInvalidReplicationFactor},
		{TopicSpec{Name: "cfg", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"nope": "1"}}, ErrInvalidConfig},
	} {
		if _, err := follower.CreateTopic(ctx, tc.spec); !errors.Is(err, tc.want) {
			t.Errorf("CreateTopic(%+v) = %v, want %v", tc.spec, err, tc.want)
		}
	}
	if err := follower.AlterConfigs(ctx, "via-1", map[string]string{ConfigRetentionMs: "1000"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := follower.DeleteTopic(ctx, "via-2"); err != nil {
		t.Fatal(err)
	}
	if err := follower.DeleteTopic(ctx, "via-2"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("second delete: %v, want ErrUnknownTopic", err)
	}
	c.waitConverged()
	for _, n := range c.running() {
		m := n.Metadata()
		if m.Topics["via-1"].Config(ConfigRetentionMs) != "1000" || m.Topics["via-2"] != nil {
			t.Errorf("node %d: alter or delete missing", n.ID())
		}
	}
}

func TestClusterLeaderFailover(t *testing.T) {
	c := newTestCluster(t, 3, 2)
	ctx := testContext(t)
	old := c.leader()
	oldID := old.ID()
	start := time.Now()
	c.stop(oldID)
	leader := c.leader()
	t.Logf("new leader %d after %v", leader.ID(), time.Since(start))
	if leader.ID() == oldID {
		t.Fatal("stopped node still leads")
	}
	// Writes continue, through a non-voter too.
	if _, err := c.node(5).CreateTopic(ctx, TopicSpec{Name: "after-failover", Partitions: 2, ReplicationFactor: 2}); err != nil {
		t.Fatalf("create after failover: %v", err)
	}
	c.restart(oldID)
	c.waitConverged()
	back := c.node(oldID)
	if _, ok := back.Metadata().Topics["after-failover"]; !ok {
		t.Fatal("restarted old leader did not catch up")
	}
	if l := c.leader(); l.ID() != leader.ID() || back.IsLeader() {
		t.Errorf("leader %d after the old leader rejoined, want %d unchanged", l.ID(), leader.ID())
	}
}

func TestClusterRestartedBrokerGetsNewEpoch(t *testing.T) {
	c := newTestCluster(t, 3, 1)
	ctx := testContext(t)
	first := c.node(4).Metadata().Brokers[4].Epoch
	c.stop(4)
	n := c.restart(4)
	epoch, err := n.RegisterBroker(ctx, Broker{ID: 4, Addr: "127.0.0.1:9104", RaftAddr: n.RaftAddr()}, PreviousEpochEmpty)
	if err != nil {
		t.Fatal(err)
	}
	if epoch != first+1 {
		t.Fatalf("epoch after restart %d, want %d", epoch, first+1)
	}
	c.waitConverged()
	for _, n := range c.running() {
		if b := n.Metadata().Brokers[4]; b.Epoch != epoch || b.Addr != "127.0.0.1:9104" {
			t.Errorf("node %d sees broker 4 as %+v", n.ID(), b)
		}
	}
	// News about the earlier incarnation is fenced.
	if _, err := n.Propose(ctx, FenceBroker{ID: 4, Epoch: first}); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Errorf("fence with the old epoch: %v, want ErrStaleBrokerEpoch", err)
	}
}

func TestClusterNonvoterCatchesUpFromSnapshot(t *testing.T) {
	c := newTestCluster(t, 3, 2)
	ctx := testContext(t)
	c.stop(5)
	leader := c.leader()
	for i := range 20 {
		if _, err := c.node(4).CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("while-down-%d", i), Partitions: 1, ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
	}
	// Compact the leader's log past what node 5 has, so only a snapshot
	// can bring it up to date.
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, err := leader.store.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= 1 {
		t.Fatalf("leader log not compacted: first index %d", first)
	}
	n := c.restart(5)
	c.waitConverged()
	if got := len(n.Metadata().Topics); got != 20 {
		t.Fatalf("restarted non-voter has %d topics, want 20", got)
	}
	if n.fsm.restores.Load() == 0 {
		t.Error("restarted non-voter caught up without installing a snapshot")
	}
}

func TestSingleNode(t *testing.T) {
	dir := t.TempDir()
	ln := poll.Listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	cfg := NodeConfig{ID: 7, Dir: dir, RaftAddr: addr, Listener: ln}
	testRaftTimings(&cfg)
	ctx := testContext(t)
	n, err := StartNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	changed := n.Changed()
	if _, err := n.RegisterBroker(ctx, Broker{ID: 7, Addr: "127.0.0.1:9092", RaftAddr: addr}, PreviousEpochEmpty); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by a registration")
	}
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if m := n.Metadata(); m.ControllerID != 7 {
		t.Errorf("controller %d, want 7", m.ControllerID)
	}
	before := appendMetadata(nil, n.Metadata())
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "u", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	after := appendMetadata(nil, n.Metadata())
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "x", Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v, want ErrClosed", err)
	}

	// Restart: the snapshot is restored, then the log after it replayed.
	cfg.Listener = poll.Listen(t, addr)
	n2, err := StartNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if n2.fsm.restores.Load() != 1 {
		t.Errorf("%d snapshots restored at start, want 1", n2.fsm.restores.Load())
	}
	if got := appendMetadata(nil, n2.Metadata()); !bytes.Equal(got, before) && !bytes.Equal(got, after) {
		t.Error("metadata right after restart is neither the snapshot nor the latest")
	}
	poll.Until(t, 5*time.Second, "log replay after restart", func() bool { return bytes.Equal(appendMetadata(nil, n2.Metadata()), after) })
}

func TestNodeWithoutForwarderRefusesWrites(t *testing.T) {
	c := newTestCluster(t, 3, 0)
	leader := c.leader()
	var follower *Node
	for _, n := range c.running() {
		if n != leader {
			follower = n
		}
	}
	follower.cfg.Forwarder = nil
	if _, err := follower.CreateTopic(testContext(t), TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("write on a follower without a forwarder: %v, want ErrNotLeader", err)
	}
}

// metadataStore is broker.MetadataStore, restated here (the broker imports
// this package): Node is what the broker uses.
type metadataStore interface {
	Metadata() *Metadata
	Changed() <-chan struct{}
	CreateTopic(ctx context.Context, spec TopicSpec) (*Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	AlterConfigs(ctx context.Context, name string, set map[string]string, remove []string) error
}

var _ metadataStore = (*Node)(nil)

func TestClusterMinorityCannotCommit(t *testing.T) {
	c := newTestCluster(t, 3, 1)
	c.stop(1)
	c.stop(2)
	before := appendMetadata(nil, c.node(3).Metadata())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.node(4).CreateTopic(ctx, TopicSpec{Name: "lost", Partitions: 1, ReplicationFactor: 1})
	// Either no leader is reachable (the deadline passes), or the last
	// leader took the write and lost leadership before committing it: the
	// outcome is then unknown, and Raft may still commit it after healing.
	if err == nil {
		t.Fatal("a write committed with one voter of three")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, raft.ErrLeadershipLost) {
		t.Fatalf("write without a quorum: %v, want a deadline or leadership-lost error", err)
	}
	for _, id := range []int32{3, 4} {
		if !bytes.Equal(appendMetadata(nil, c.node(id).Metadata()), before) {
			t.Fatalf("node %d changed without a quorum", id)
		}
	}
	c.restart(2)
	if _, err := c.node(4).CreateTopic(testContext(t), TopicSpec{Name: "healed", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatalf("write after the quorum is back: %v", err)
	}
	c.waitConverged()
}

func TestClusterElectPreferredLeadersThroughFollower(t *testing.T) {
	c := newTestCluster(t, 3, 0)
	ctx := testContext(t)
	follower := c.follower()
	if _, err := follower.CreateTopic(ctx, TopicSpec{Name: "p", Partitions: 6, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	// Broker 1 fails and comes back: it leads nothing and is in no ISR.
	epoch := follower.Metadata().Brokers[1].Epoch
	if _, err := follower.Propose(ctx, FenceBroker{ID: 1, Epoch: epoch}); err != nil {
		t.Fatal(err)
	}
	newEpoch, err := follower.RegisterBroker(ctx, Broker{ID: 1, Addr: "127.0.0.1:9001"}, epoch)
	if err != nil {
		t.Fatal(err)
	}
	var preferred []int32 // partitions whose preferred replica is 1
	for _, p := range follower.Metadata().Topics["p"].Partitions {
		if p.Leader == 1 || contains(p.ISR, 1) {
			t.Fatalf("restarted broker still leads or is in sync: %+v", p)
		}
		if p.Replicas[0] == 1 {
			preferred = append(preferred, p.Index)
		}
	}
	if len(preferred) == 0 {
		t.Fatal("placement made broker 1 preferred nowhere; the test checks nothing")
	}
	if got, err := follower.ElectPreferredLeaders(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("broker 1 out of every ISR: elections %+v, %v; want none", got, err)
	}
	// It catches up in its new epoch and rejoins every ISR.
	for _, p := range follower.Metadata().Topics["p"].Partitions {
		isr := append(append([]int32(nil), p.ISR...), 1)
		epochs := make([]int64, len(isr))
		epochs[len(isr)-1] = newEpoch
		if _, err := follower.Propose(ctx, AlterPartition{Topic: "p", Partition: p.Index, PartitionEpoch: p.PartitionEpoch, Leader: p.Leader, ISR: isr, BrokerEpochs: epochs}); err != nil {
			t.Fatalf("partition %d: rejoin ISR: %v", p.Index, err)
		}
	}
	got, err := follower.ElectPreferredLeaders(ctx, []string{"p", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(preferred) {
		t.Fatalf("elections %+v, want one for each of partitions %v", got, preferred)
	}
	for i, e := range got {
		if e.Err != nil || e.Topic != "p" || e.Partition != preferred[i] || e.Leader != 1 {
			t.Errorf("election %+v, want partition %d led by 1", e, preferred[i])
		}
		// Read your writes: the follower that asked sees the change.
		if p := follower.Metadata().Topics["p"].Partitions[e.Partition]; p.Leader != 1 {
			t.Errorf("follower sees partition %d led by %d", e.Partition, p.Leader)
		}
	}
	if again, err := follower.ElectPreferredLeaders(ctx, nil); err != nil || len(again) != 0 {
		t.Fatalf("second run: %+v, %v; want nothing to do", again, err)
	}
	c.waitConverged()
}
