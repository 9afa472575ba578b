package cluster

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// A broker cut off from the Raft group (here: its controller node
// stopped, the broker still serving clients) knows no controller leader.
// DescribeCluster through it still names the leader, as the leader
// itself answers (issue 13 item 4: cluster status alternated between
// controller 1 and none).
func TestDescribeClusterThroughABrokerCutFromRaft(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	ctx := testContext(t)
	d, err := c.Client().DescribeCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := d.ControllerID
	if leader < 0 {
		t.Fatal("no controller leader")
	}
	cut := int32(1)
	if cut == leader {
		cut = 2
	}
	if err := c.Broker(cut).Controller().Close(); err != nil {
		t.Fatalf("stop broker %d's controller node: %v", cut, err)
	}
	poll.Until(t, 5*time.Second, "the cut broker's node knowing no leader", func() bool {
		_, ok := c.Broker(cut).Controller().Leader()
		return !ok
	})
	cl := c.Client(client.SeedBrokers(c.Broker(cut).Addr()))
	for i := range 6 {
		d, err := cl.DescribeCluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d.ControllerID != leader {
			t.Fatalf("call %d through broker %d: controller %d, want %d", i, cut, d.ControllerID, leader)
		}
	}
}
