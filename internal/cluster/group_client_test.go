package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// Consumer groups end to end: the client's group member against the
// brokers' coordinator, on a 3-broker in-process cluster with a short
// heartbeat interval and session timeout.

const (
	groupHeartbeat = 100 * time.Millisecond
	groupSession   = 2 * time.Second
)

func groupCluster(t *testing.T) *testcluster.Cluster {
	return testcluster.Start(t, 3, testcluster.Options{Configure: func(c *broker.Config) {
		c.Group.HeartbeatInterval = groupHeartbeat
		c.Group.SessionTimeout = groupSession
	}})
}

// cutDialer dials as usual and, once cut, closes every connection it made
// and refuses new ones: a client that vanished without a word.
type cutDialer struct {
	mu  sync.Mutex
	cut bool
	cns []net.Conn
}

func (d *cutDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil, fmt.Errorf("cut")
	}
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.cns = append(d.cns, nc)
	}
	return nc, err
}

func (d *cutDialer) cutAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = true
	for _, nc := range d.cns {
		nc.Close()
	}
}

// member is a group consumer polling in the background: it counts
// records and keeps the longest gap between two Polls that returned
// records while gapOn is set.
type member struct {
	cl      *client.Client
	dialer  *cutDialer
	records atomic.Int64
	mu      sync.Mutex
	last    time.Time
	maxGap  time.Duration
	gapOn   atomic.Bool
	revoked []client.TopicPartition // guarded by mu
	stop    context.CancelFunc
	done    chan struct{}
}

func startMember(t *testing.T, c *testcluster.Cluster, group, topic string) *member {
	t.Helper()
	m := &member{dialer: &cutDialer{}, done: make(chan struct{})}
	m.cl = c.Client(client.Dialer(m.dialer.dial), client.FetchMaxWait(50*time.Millisecond),
		client.ConsumerGroup(group, client.GroupTopics(topic), client.GroupResetOffset(client.AtStart()),
			client.AutoCommit(true, 200*time.Millisecond), client.OnRevoked(func(tps []client.TopicPartition) {
				m.mu.Lock()
				m.revoked = append(m.revoked, tps...)
				m.mu.Unlock()
			})))
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs, err := m.cl.Poll(ctx)
			if err != nil {
				continue
			}
			if len(fs.Records) == 0 {
				continue
			}
			now := time.Now()
			m.mu.Lock()
			if m.gapOn.Load() && !m.last.IsZero() {
				m.maxGap = max(m.maxGap, now.Sub(m.last))
			}
			m.last = now
			m.mu.Unlock()
			m.records.Add(int64(len(fs.Records)))
		}
	}()
	t.Cleanup(m.halt)
	return m
}

func (m *member) halt() {
	m.stop()
	<-m.done
}

func (m *member) gap() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maxGap
}

// produceLoop produces to every partition of topic until the test ends,
// one small batch every few milliseconds.
func produceLoop(t *testing.T, c *testcluster.Cluster, topic string, parts int32) {
	t.Helper()
	cl := c.Client(client.RecordPartitioner(client.ManualPartitioner()), client.Linger(time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			var recs []*client.Record
			for p := range parts {
				recs = append(recs, &client.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprint(i))})
			}
			_ = cl.ProduceSync(ctx, recs...)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func owners(ms []*member) map[client.TopicPartition]int {
	out := map[client.TopicPartition]int{}
	for i, m := range ms {
		for _, tp := range m.cl.Assignment() {
			out[tp] = i
		}
	}
	return out
}

// waitShares waits until the members own counts partitions each, and no
// partition twice.
func waitShares(t *testing.T, ms []*member, total int, timeout time.Duration) {
	t.Helper()
	poll.Until(t, timeout, fmt.Sprintf("%d partitions shared by %d members", total, len(ms)), func() error {
		n := 0
		var sizes []int
		for _, m := range ms {
			a := m.cl.Assignment()
			n += len(a)
			sizes = append(sizes, len(a))
		}
		lo, hi := slices.Min(sizes), slices.Max(sizes)
		if n != total || hi-lo > 1 || len(owners(ms)) != total {
			return fmt.Errorf("sizes %v", sizes)
		}
		return nil
	})
}

// 3 consumers of 12 partitions get 4 each; a 4th joins and gets 3, at
// most 3 partitions move, and the three others never stop consuming (the
// longest gap between their records is measured and logged).
func TestGroupSharesAndMovesFew(t *testing.T) {
	c := groupCluster(t)
	admin := c.Client()
	testcluster.CreateTopic(t, admin, client.TopicSpec{Name: "g12", Partitions: 12, ReplicationFactor: 3})
	produceLoop(t, c, "g12", 12)
	ms := []*member{startMember(t, c, "shares", "g12"), startMember(t, c, "shares", "g12"), startMember(t, c, "shares", "g12")}
	waitShares(t, ms, 12, 30*time.Second)
	for _, m := range ms {
		if n := len(m.cl.Assignment()); n != 4 {
			t.Fatalf("a member owns %d partitions, want 4", n)
		}
		m.gapOn.Store(true)
	}
	before := owners(ms)
	joined := time.Now()
	ms = append(ms, startMember(t, c, "shares", "g12"))
	waitShares(t, ms, 12, 30*time.Second)
	settled := time.Since(joined)
	after := owners(ms)
	moved := 0
	for tp, o := range before {
		if after[tp] != o {
			moved++
		}
	}
	if moved > 3 {
		t.Errorf("%d partitions moved when a 4th member joined, want at most 3", moved)
	}
	// Only the partitions that moved were revoked: the others were
	// fetched throughout.
	for i, m := range ms[:3] {
		m.mu.Lock()
		for _, tp := range m.revoked {
			if after[tp] == i {
				t.Errorf("member %d revoked %v, which it still owns: it stopped consuming a partition that did not move", i, tp)
			}
		}
		m.mu.Unlock()
	}
	// The three keep consuming: records keep coming to each.
	for i, m := range ms[:3] {
		n := m.records.Load()
		poll.Until(t, 10*time.Second, fmt.Sprintf("member %d consuming after the join", i), func() bool { return m.records.Load() > n })
	}
	var gaps []time.Duration
	for _, m := range ms[:3] {
		gaps = append(gaps, m.gap())
	}
	t.Logf("4th member: %d partitions moved, settled in %v; longest gap between records of the 3 others: %v", moved, settled.Round(time.Millisecond), gaps)
	for i, g := range gaps {
		if g > 2*time.Second {
			t.Errorf("member %d went %v without records during the join: the others must not stop", i, g)
		}
	}
}

// A member that vanishes without leaving (its connections cut, Close
// unable to say goodbye) keeps its partitions until the session timeout,
// then the others get them.
func TestGroupVanishedMemberReassignedAfterSessionTimeout(t *testing.T) {
	c := groupCluster(t)
	admin := c.Client()
	testcluster.CreateTopic(t, admin, client.TopicSpec{Name: "g6", Partitions: 6, ReplicationFactor: 3})
	produceLoop(t, c, "g6", 6)
	ms := []*member{startMember(t, c, "vanish", "g6"), startMember(t, c, "vanish", "g6"), startMember(t, c, "vanish", "g6")}
	waitShares(t, ms, 6, 30*time.Second)
	gone := ms[2]
	gone.dialer.cutAll()
	cut := time.Now()
	gone.halt()
	gone.cl.Close()
	waitShares(t, ms[:2], 6, 30*time.Second)
	took := time.Since(cut)
	t.Logf("partitions of a vanished member reassigned after %v (session timeout %v)", took.Round(time.Millisecond), groupSession)
	if took < groupSession/2 {
		t.Errorf("reassigned after %v: sooner than the session timeout %v allows", took, groupSession)
	}
}

// Killing the coordinator's broker: the group goes on at the new
// coordinator, and no commit is lost (the committed offsets after the
// failover are at least those before).
func TestGroupCoordinatorKilled(t *testing.T) {
	c := groupCluster(t)
	admin := c.Client()
	testcluster.CreateTopic(t, admin, client.TopicSpec{Name: "gk", Partitions: 4, ReplicationFactor: 3})
	produceLoop(t, c, "gk", 4)
	ms := []*member{startMember(t, c, "coordkill", "gk"), startMember(t, c, "coordkill", "gk")}
	waitShares(t, ms, 4, 30*time.Second)
	ctx := context.Background()
	var before map[client.TopicPartition]int64
	poll.Until(t, 10*time.Second, "commits of every partition", func() error {
		var err error
		before, err = admin.CommittedOffsets(ctx, "coordkill")
		if err == nil && len(before) < 4 {
			err = fmt.Errorf("committed %v", before)
		}
		return err
	})
	d, err := admin.DescribeGroup(ctx, "coordkill")
	if err != nil {
		t.Fatal(err)
	}
	// Commits made up to now must survive: take them once more right
	// before the kill.
	if before, err = admin.CommittedOffsets(ctx, "coordkill"); err != nil {
		t.Fatal(err)
	}
	t.Logf("killing broker %d, the coordinator", d.Coordinator)
	c.Kill(d.Coordinator)
	counts := []int64{ms[0].records.Load(), ms[1].records.Load()}
	poll.Until(t, 30*time.Second, "both members consuming and committing after the failover", func() error {
		after, err := admin.CommittedOffsets(ctx, "coordkill")
		if err != nil {
			return err
		}
		for tp, off := range before {
			if after[tp] <= off {
				return fmt.Errorf("%v committed %d, before the kill %d", tp, after[tp], off)
			}
		}
		for i, m := range ms {
			if m.records.Load() <= counts[i] {
				return fmt.Errorf("member %d not consuming", i)
			}
		}
		return nil
	})
	d2, err := admin.DescribeGroup(ctx, "coordkill")
	if err != nil {
		t.Fatal(err)
	}
	if d2.Coordinator == d.Coordinator || len(d2.Members) != 2 {
		t.Fatalf("after the kill: coordinator %d, %d members", d2.Coordinator, len(d2.Members))
	}
	var ps []string
	for _, o := range d2.Offsets {
		ps = append(ps, fmt.Sprintf("%d:%d/%d", o.Partition, o.Committed, o.End))
	}
	sort.Strings(ps)
	t.Logf("new coordinator %d; committed/end %v", d2.Coordinator, ps)
}

// A rolling restart of every broker under a group of clients, through
// bench's group verify: producers write while three members read and
// commit, each broker is stopped and started again in turn (coordinator
// and partition leaders move), and afterwards every acknowledged record
// was read, no commit went backwards and the group committed every end
// offset.
func TestGroupRollingRestartVerify(t *testing.T) {
	c := groupCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type result struct {
		h   bench.GroupHistory
		err error
	}
	done := make(chan result, 1)
	go func() {
		h, err := bench.VerifyGroup(ctx, bench.Config{
			Client:   []client.Opt{client.SeedBrokers(c.Addrs()...), client.RetryBackoff(10*time.Millisecond, 200*time.Millisecond)},
			Consumer: []client.Opt{client.FetchMaxWait(50 * time.Millisecond)},
			Topic:    "rr", Create: true, Partitions: 6, ReplicationFactor: 3, Records: 40000, RecordSize: 40,
			Producers: 2, Consumers: 3, Rate: 4000, ReadTimeout: 60 * time.Second,
		}, bench.GroupConfig{Group: "rolling", CommitInterval: 100 * time.Millisecond})
		done <- result{h, err}
	}()
	admin := c.Client()
	poll.Until(t, 30*time.Second, "the group committing", func() error {
		offs, err := admin.CommittedOffsets(ctx, "rolling")
		if err == nil && len(offs) == 0 {
			err = fmt.Errorf("no commits yet")
		}
		return err
	})
	for _, id := range c.IDs() {
		c.Stop(id)
		c.Restart(id)
		testcluster.WaitFullISR(t, c.Client(), "rr", 30*time.Second)
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("verify: %v", res.err)
	}
	r := bench.CheckGroup(res.h)
	t.Logf("after a rolling restart: acknowledged %d, %d reads, %d duplicates across hand-overs, %d commit samples",
		r.Acked, r.Reads, r.Duplicates, len(res.h.Commits))
	if r.Anomalies() != 0 || r.Acked != 40000 {
		t.Fatalf("group verify across a rolling restart: %+v", r)
	}
}

// Time from a member joining a group of 10 over 60 partitions to its
// first record, over 20 joins, with the coordinator's default heartbeat
// interval: a measurement (issue 15's "join to consuming"), run with
// SLUICE_GROUP_JOIN_TIMES=1, which logs p50, p99 and the longest.
func TestGroupJoinToConsumeTimes(t *testing.T) {
	if os.Getenv("SLUICE_GROUP_JOIN_TIMES") == "" {
		t.Skip("a measurement of about two minutes: set SLUICE_GROUP_JOIN_TIMES=1")
	}
	c := testcluster.Start(t, 3, testcluster.Options{})
	admin := c.Client()
	testcluster.CreateTopic(t, admin, client.TopicSpec{Name: "j60", Partitions: 60, ReplicationFactor: 1})
	produceLoop(t, c, "j60", 60)
	var ms []*member
	for range 10 {
		ms = append(ms, startMember(t, c, "joins", "j60"))
	}
	waitShares(t, ms, 60, 2*time.Minute)
	var took []time.Duration
	for i := range 20 {
		start := time.Now()
		m := startMember(t, c, "joins", "j60")
		poll.Until(t, time.Minute, fmt.Sprintf("join %d consuming", i), func() bool { return m.records.Load() > 0 })
		took = append(took, time.Since(start))
		m.halt()
		m.cl.Close()
		waitShares(t, ms, 60, 2*time.Minute)
	}
	slices.Sort(took)
	t.Logf("join to first record over %d joins (10 members, 60 partitions, heartbeat interval %v): p50 %v, p99 %v, max %v; all %v",
		len(took), group.DefaultHeartbeatInterval, took[len(took)/2].Round(time.Millisecond),
		took[len(took)*99/100].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), took)
}

// A member subscribed by regular expression gets the partitions of every
// matching topic, internal topics excepted, and of a matching topic
// created later.
func TestGroupRegexSubscription(t *testing.T) {
	c := groupCluster(t)
	admin := c.Client()
	for _, name := range []string{"rx-a", "rx-b", "other"} {
		testcluster.CreateTopic(t, admin, client.TopicSpec{Name: name, Partitions: 2, ReplicationFactor: 1})
	}
	m := c.Client(client.ConsumerGroup("rx", client.GroupTopicRegex("rx-.*")))
	want := func(w string) {
		t.Helper()
		poll.Until(t, 30*time.Second, "assignment "+w, func() error {
			if got := fmt.Sprint(m.Assignment()); got != w {
				return fmt.Errorf("assignment %s", got)
			}
			return nil
		})
	}
	want("[{rx-a 0} {rx-a 1} {rx-b 0} {rx-b 1}]")
	testcluster.CreateTopic(t, admin, client.TopicSpec{Name: "rx-c", Partitions: 1, ReplicationFactor: 1})
	want("[{rx-a 0} {rx-a 1} {rx-b 0} {rx-b 1} {rx-c 0}]")
}
