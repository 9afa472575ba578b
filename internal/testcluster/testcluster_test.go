package testcluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/faultproxy"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Four brokers, three of them voters by default. A killed follower leaves
// the ISR (the others noticed the crash); restarted, it is the same broker
// on the same data directory and Raft address, with a new epoch, and
// back in sync. A stopped leader hands its leadership over.
func TestStartKillStopRestart(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{})
	cl := c.Client()
	ctx := testContext(t)
	// Start returns once every broker registered; the broker a request
	// goes to may apply the last registration a moment later.
	poll.Until(t, 5*time.Second, "brokers 1-3 voters, 4 a non-voter, all registered", func() error {
		d, err := cl.DescribeCluster(ctx)
		if err != nil {
			return err
		}
		voters := map[int32]bool{}
		for _, s := range d.Servers {
			voters[s.ID] = s.Voter
		}
		if len(d.Servers) != 4 || !voters[1] || !voters[2] || !voters[3] || voters[4] || len(d.Brokers) != 4 {
			return fmt.Errorf("cluster: %+v", d)
		}
		return nil
	})
	if c.Proxy(1) != nil {
		t.Fatal("a proxy without Options.ClientProxies")
	}

	const topic = "t"
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 4})
	if err := cl.ProduceSync(ctx, &client.Record{Topic: topic, Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	leader := td.Partitions[0].Leader
	follower := int32(1)
	for follower == leader {
		follower++
	}
	before := c.Broker(follower)
	epoch, raftAddr, dir := before.Epoch(), before.RaftAddr(), c.Dir(follower)

	c.Kill(follower)
	if c.Broker(follower) != nil || len(c.Addrs()) != 3 {
		t.Fatalf("killed broker %d still listed: %v", follower, c.Addrs())
	}
	var rest []int32
	for _, id := range c.IDs() {
		if id != follower {
			rest = append(rest, id)
		}
	}
	testcluster.WaitPartition(t, cl, topic, 0, 15*time.Second, "killed follower out of the ISR", testcluster.ISRIs(rest...))

	b := c.Restart(follower)
	if b.Epoch() != epoch+1 || b.RaftAddr() != raftAddr || c.Dir(follower) != dir {
		t.Fatalf("restarted broker %d: epoch %d, Raft address %s, dir %s; want %d, %s, %s",
			follower, b.Epoch(), b.RaftAddr(), c.Dir(follower), epoch+1, raftAddr, dir)
	}
	testcluster.WaitFullISR(t, cl, topic, 15*time.Second)

	c.Stop(leader)
	next := testcluster.WaitLeader(t, cl, topic, 0, leader, 15*time.Second)
	t.Logf("broker %d stopped; broker %d leads", leader, next)
	c.Restart(leader)
	testcluster.WaitFullISR(t, cl, topic, 15*time.Second)
	if err := cl.ProduceSync(ctx, &client.Record{Topic: topic, Value: []byte("after")}); err != nil {
		t.Fatal(err)
	}
}

// Options.AutoBalance sets the cluster config auto.balance before Start
// returns; without it the cluster reports the default, on-join.
func TestAutoBalanceOption(t *testing.T) {
	for _, tc := range []struct{ set, want string }{{"", controller.AutoBalanceOnJoin}, {controller.AutoBalanceOff, controller.AutoBalanceOff}} {
		c := testcluster.Start(t, 1, testcluster.Options{AutoBalance: tc.set})
		cs, err := c.Client().DescribeClusterConfigs(testContext(t), controller.ConfigAutoBalance)
		if err != nil || len(cs) != 1 || cs[0].Value != tc.want || cs[0].IsDefault != (tc.set == "") {
			t.Fatalf("AutoBalance %q: %+v, %v; want %s", tc.set, cs, err, tc.want)
		}
	}
}

// With ClientProxies, the clients Client makes reach the brokers through
// the proxies, so cutting a broker's proxy cuts them off from it, and
// healing it lets them back.
func TestClientProxiesCut(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{ClientProxies: true})
	cl := c.Client(client.RequestTimeout(time.Second), client.DeliveryTimeout(2*time.Second))
	const topic = "cut"
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1})
	ctx := testContext(t)
	produce := func() error {
		return cl.ProduceSync(ctx, &client.Record{Topic: topic, Value: []byte("x")})
	}
	if err := produce(); err != nil {
		t.Fatal(err)
	}
	p := c.Proxy(1)
	if p == nil || p.Conns() == 0 {
		t.Fatal("the client's connections do not go through the proxy")
	}
	if err := p.Cut(faultproxy.CutReset); err != nil {
		t.Fatal(err)
	}
	if err := produce(); err == nil {
		t.Fatal("a produce through a cut proxy succeeded")
	}
	p.Heal()
	if err := produce(); err != nil {
		t.Fatalf("produce after the heal: %v", err)
	}
}
