package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// voters returns the Raft voters' ids as the cluster reports them.
func voters(t *testing.T, cl *client.Client) ([]int32, error) {
	d, err := cl.DescribeCluster(testContext(t))
	if err != nil {
		return nil, err
	}
	var out []int32
	for _, s := range d.Servers {
		if s.Voter {
			out = append(out, s.ID)
		}
	}
	return out, nil
}

// createTopic is a metadata write that must succeed: the controller has
// a quorum.
func createTopic(t *testing.T, cl *client.Client, name string) {
	t.Helper()
	testcluster.RetryAdmin(t, "create topic "+name+" (a metadata write)", protocol.ErrTopicAlreadyExists, func(ctx context.Context) error {
		return cl.CreateTopics(ctx, client.TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 2})
	})
}

// Replacing a failed voter without downtime (issue 20): 3 voters and a
// non-voter; voter 3 dies; the non-voter is promoted, the dead voter
// demoted, then removed. Metadata writes succeed after every step, the
// refusals name their reason, the voter set ends {1, 2, 4}, and the dead
// broker's process restarted on its data directory is refused.
func TestReplaceFailedVoter(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx := testContext(t)
	if got, err := voters(t, cl); err != nil || !slices.Equal(got, []int32{1, 2, 3}) {
		t.Fatalf("voters %v, %v; want [1 2 3]", got, err)
	}
	createTopic(t, cl, "before")

	c.Kill(3)
	testcluster.WaitBrokerState(t, cl, 3, "offline", 15*time.Second)
	createTopic(t, cl, "voter-3-down")

	// Refused: 3 is down, so the voters left {1, 3} would have one live.
	if err := cl.RemoveVoter(ctx, 2); !errors.Is(err, protocol.ErrInvalidRequest) || !strings.Contains(err.Error(), "majority") {
		t.Fatalf("remove-voter 2 while 3 is down: %v, want a refusal naming the majority", err)
	}
	// Refused: 4 is not a voter; 3 is not alive; 9 is unknown; 4 is alive.
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"remove-voter of a non-voter", func() error { return cl.RemoveVoter(ctx, 4) }, "not a voter"},
		{"add-voter of a dead broker", func() error { return cl.AddVoter(ctx, 3) }, "not alive"},
		{"add-voter of an unknown broker", func() error { return cl.AddVoter(ctx, 9) }, "unknown broker"},
		{"remove of an alive broker", func() error { return cl.RemoveBroker(ctx, 4) }, "alive"},
	} {
		if err := tc.call(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want a refusal naming %q", tc.name, err, tc.want)
		}
	}

	if err := cl.AddVoter(ctx, 4); err != nil {
		t.Fatalf("add-voter 4: %v", err)
	}
	if err := cl.AddVoter(ctx, 4); err == nil || !strings.Contains(err.Error(), "already a voter") {
		t.Fatalf("add-voter 4 again: %v, want already a voter", err)
	}
	createTopic(t, cl, "voter-4-added")
	if err := cl.RemoveVoter(ctx, 3); err != nil {
		t.Fatalf("remove-voter 3: %v", err)
	}
	createTopic(t, cl, "voter-3-demoted")
	if got, err := voters(t, cl); err != nil || !slices.Equal(got, []int32{1, 2, 4}) {
		t.Fatalf("voters %v, %v; want [1 2 4]", got, err)
	}

	// 3 holds a replica of "before" (RF 2 over 1, 2, 3 of 4 brokers,
	// unless placement chose otherwise): drain it by hand if so.
	md := c.Broker(1).Metadata()
	if held := controller.HeldBy(md, 3); len(held) > 0 {
		if err := cl.RemoveBroker(ctx, 3); err == nil || !strings.Contains(err.Error(), held[0]) {
			t.Fatalf("remove 3 holding %v: %v, want a refusal naming %s", held, err, held[0])
		}
		drainBroker(t, c, cl, 3)
	}
	if err := cl.RemoveBroker(ctx, 3); err != nil {
		t.Fatalf("remove 3: %v", err)
	}
	if err := cl.RemoveBroker(ctx, 3); err != nil {
		t.Fatalf("remove 3 again (nothing left to do): %v", err)
	}
	createTopic(t, cl, "broker-3-removed")
	testcluster.WaitBrokerState(t, cl, 3, "", 15*time.Second)
	d, err := cl.DescribeCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range d.Servers {
		if s.ID == 3 {
			t.Fatalf("broker 3 still in the Raft group: %+v", d.Servers)
		}
	}

	// Its process, restarted on its data directory, is refused.
	cfg := c.Config(3)
	// A removed node hears nothing from the Raft leader: it learns the
	// leader's client address from gossip, which under load can take
	// seconds, and its registration first has the leader check its
	// command version, a second forwarded request. The refusal comes as
	// soon as the address is known; the bound only has to outlast that:
	// the production default, as 15 s was not enough at load 40.
	cfg.RegisterTimeout = broker.DefaultRegisterTimeout
	// Its Raft address, as the voters list names it.
	for _, v := range strings.Split(cfg.Voters, ",") {
		if addr, ok := strings.CutPrefix(v, "3@"); ok {
			cfg.RaftListener = poll.Listen(t, addr)
		}
	}
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Start(context.Background())
	b.Close()
	if !errors.Is(err, controller.ErrBrokerRemoved) {
		t.Fatalf("removed broker restarted on its data directory: %v, want ErrBrokerRemoved", err)
	}
	createTopic(t, cl, "after-refused-restart")
	if got, err := voters(t, cl); err != nil || !slices.Equal(got, []int32{1, 2, 4}) {
		t.Fatalf("voters %v, %v; want [1 2 4]", got, err)
	}
}

// drainBroker moves every replica off broker id (which is down) to the
// alive brokers and waits for the moves to end.
func drainBroker(t *testing.T, c *testcluster.Cluster, cl *client.Client, id int32) {
	t.Helper()
	md := c.Broker(1).Metadata()
	alive := md.AliveBrokers()
	for _, name := range md.TopicNames() {
		for _, p := range md.Topics[name].Partitions {
			if !slices.Contains(p.Replicas, id) {
				continue
			}
			var target []int32
			for _, r := range p.Replicas {
				if r != id {
					target = append(target, r)
				}
			}
			for _, a := range alive {
				if len(target) < len(p.Replicas) && !slices.Contains(target, a) {
					target = append(target, a)
				}
			}
			res, err := cl.AlterReassignments(testContext(t), []client.Reassignment{{Topic: name, Partition: p.Index, Replicas: target}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("move %s-%d to %v: %v %+v", name, p.Index, target, err, res)
			}
		}
	}
	poll.Until(t, 20*time.Second, fmt.Sprintf("broker %d drained", id), func() error {
		if held := controller.HeldBy(c.Broker(1).Metadata(), id); len(held) > 0 {
			return fmt.Errorf("holds %v", held)
		}
		return nil
	})
}

// A voter demoted to non-voter and restarted with the same --voters list
// naming itself stays a non-voter: the flag only bootstraps a node
// without Raft state, and its address update keeps the role it finds.
// The voter demoted is the controller leader: it steps down and its
// node keeps running (Raft's ShutdownOnRemove is off), so its broker
// stops and restarts as any other.
func TestRestartedDemotedVoterStaysNonVoter(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx := testContext(t)
	d, err := cl.DescribeCluster(ctx)
	if err != nil || d.ControllerID < 0 {
		t.Fatalf("controller %d, %v", d.ControllerID, err)
	}
	v := d.ControllerID
	if err := cl.RemoveVoter(ctx, v); err != nil {
		t.Fatalf("remove-voter %d (the controller leader): %v", v, err)
	}
	var want []int32
	for _, id := range c.IDs() {
		if id != v {
			want = append(want, id)
		}
	}
	if got, err := voters(t, cl); err != nil || !slices.Equal(got, want) {
		t.Fatalf("voters %v, %v; want %v", got, err, want)
	}
	createTopic(t, cl, "after-demotion")
	if !strings.Contains(c.Config(v).Voters, fmt.Sprintf("%d@", v)) {
		t.Fatalf("setup: broker %d's --voters %q does not name it", v, c.Config(v).Voters)
	}
	for i, restart := range []func(int32){c.Stop, c.Kill} {
		restart(v)
		c.Restart(v)
		testcluster.WaitBrokerState(t, cl, v, "alive", 15*time.Second)
		createTopic(t, cl, fmt.Sprintf("after-restart-%d", i))
		if got, err := voters(t, cl); err != nil || !slices.Equal(got, want) {
			t.Fatalf("voters after broker %d restarted: %v, %v; want %v", v, got, err, want)
		}
	}
}
