package cluster

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// A rolling restart under acks=all load, with the automatic
// preferred-leader rebalance on: each broker in turn stops (controlled
// shutdown), starts again, catches up, and gets its leaderships back from
// the rebalance before the next one stops. Every move of leadership —
// away by the controlled shutdown, back by the rebalance's handover — is
// seen by the producers as retried requests only: no send fails or ends
// unknown (issue 13 item 4), and every acknowledged record is there once.
func TestRollingRestartWithRebalanceLosesNoAck(t *testing.T) {
	// Each broker keeps its client port across restarts, so the
	// producers' and consumers' seeds stay valid to the end.
	addrs := map[int32]string{}
	for id := int32(1); id <= 3; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[id] = ln.Addr().String()
		ln.Close()
	}
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3, Configure: func(cfg *broker.Config) {
		cfg.ListenAddr = addrs[cfg.BrokerID]
		cfg.LeaderRebalanceInterval = 300 * time.Millisecond
	}})
	cl := c.Client()
	const topic = "rolling"
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 3, ReplicationFactor: 3})
	preferred := func(pd client.PartitionDescription) error {
		if pd.Leader != pd.Replicas[0] {
			return fmt.Errorf("leader %d, preferred %d", pd.Leader, pd.Replicas[0])
		}
		return nil
	}
	wait := verifyAsync(t, c, topic, 12*time.Second)
	time.Sleep(500 * time.Millisecond) // let records flow before the first restart

	start := time.Now()
	for _, id := range c.IDs() {
		c.Stop(id)
		c.Restart(id)
		testcluster.WaitFullISR(t, cl, topic, 20*time.Second)
		for _, pd := range td.Partitions {
			testcluster.WaitPartition(t, cl, topic, pd.Partition, 20*time.Second, "leadership back on the preferred replica", preferred)
		}
		t.Logf("broker %d restarted and its leaderships back after %v", id, time.Since(start))
	}

	res := checkHistory(t, wait())
	if res.Failed+res.Unknown+res.Duplicates > 0 {
		t.Errorf("a rolling restart with the leader rebalance failed %d sends, left %d unknown and stored %d twice, want none",
			res.Failed, res.Unknown, res.Duplicates)
	}
	waitIdentical(t, cl, topic)
}
