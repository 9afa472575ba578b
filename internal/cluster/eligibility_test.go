package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/segment"
)

// partitionMeta reads partition p of topic from broker from's copy of
// the controller metadata.
func partitionMeta(c *testcluster.Cluster, from int32, topic string, p int32) (controller.Partition, error) {
	b := c.Broker(from)
	if b == nil {
		return controller.Partition{}, fmt.Errorf("broker %d is not running", from)
	}
	t := b.Controller().Metadata().Topics[topic]
	if t == nil || int(p) >= len(t.Partitions) {
		return controller.Partition{}, fmt.Errorf("no partition %s-%d in broker %d's metadata", topic, p, from)
	}
	return t.Partitions[p], nil
}

// A broker that holds the only replica of two partitions crashes; one of
// its logs loses its tail on disk (as a machine crash loses what was not
// synced) below the high watermark its leader had reported to the
// controller. At the restart, recovery truncates that log and the broker
// says so when it registers: that partition stays without a leader (R11)
// under unclean.recovery.strategy=manual, while the intact one is led
// again. Neither a produce to the other partition nor a later check finds
// it elected. Switching the topic to the balanced strategy then elects the
// truncated replica at once, and describe says it may lack the one
// committed offset it lost.
func TestRestartedReplicaThatLostCommittedRecordsIsNotElected(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	cl := c.Client()
	const topic, perPartition = "lost", 5
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 6, ReplicationFactor: 1,
		Configs: map[string]string{controller.ConfigUncleanRecovery: controller.RecoveryManual}})

	// A broker that does not lead the controller group (no controller
	// failover to wait for) holding two of the partitions.
	byBroker := map[int32][]int32{}
	for _, pd := range td.Partitions {
		byBroker[pd.Replicas[0]] = append(byBroker[pd.Replicas[0]], pd.Partition)
	}
	victim := int32(-1)
	for _, id := range c.IDs() {
		if len(byBroker[id]) >= 2 && !c.Broker(id).Controller().IsLeader() {
			victim = id
			break
		}
	}
	if victim < 0 {
		t.Fatalf("no non-controller broker holds two partitions: %v", byBroker)
	}
	cut, intact := byBroker[victim][0], byBroker[victim][1]
	other := c.IDs()[0]
	if other == victim {
		other = c.IDs()[1]
	}

	prod := c.Client(client.RecordPartitioner(client.ManualPartitioner()))
	for _, p := range []int32{cut, intact} {
		produceEach(t, prod, topic, p, fmt.Sprintf("p%d", p), perPartition, 0)
		poll.Until(t, 15*time.Second, fmt.Sprintf("%s-%d: committed HW reported", topic, p), func() error {
			mp, err := partitionMeta(c, other, topic, p)
			if err != nil {
				return err
			}
			if mp.CommittedHW != perPartition {
				return fmt.Errorf("committed HW %d, want %d", mp.CommittedHW, perPartition)
			}
			return nil
		})
	}

	c.Kill(victim)
	poll.Until(t, 15*time.Second, fmt.Sprintf("broker %d fenced", victim), func() error {
		for _, p := range []int32{cut, intact} {
			if mp, err := partitionMeta(c, other, topic, p); err != nil || mp.Leader != -1 {
				return fmt.Errorf("%s-%d: leader %d, %v", topic, p, mp.Leader, err)
			}
		}
		return nil
	})
	// The last batch loses its last bytes: a torn tail below the
	// committed high watermark.
	seg := segment.LogPath(filepath.Join(c.Dir(victim), fmt.Sprintf("%s-%d", topic, cut)), 0)
	st, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(seg, st.Size()-5); err != nil {
		t.Fatal(err)
	}

	c.Restart(victim) // returns once its registration is applied here
	check := func() {
		t.Helper()
		mp, err := partitionMeta(c, victim, topic, cut)
		if err != nil {
			t.Fatal(err)
		}
		if mp.Leader != -1 || !mp.NoCleanLeader {
			t.Fatalf("%s-%d lost committed records on broker %d and has leader %d (no clean leader %v), want none",
				topic, cut, victim, mp.Leader, mp.NoCleanLeader)
		}
	}
	check()
	testcluster.WaitPartition(t, cl, topic, intact, 15*time.Second, "the intact replica leads again", testcluster.LeaderIs(victim))
	produceEach(t, prod, topic, intact, "after", 1, perPartition)
	// Other brokers' comings and goings do not elect it either.
	c.Stop(other)
	c.Restart(other)
	check()
	if pd := testcluster.WaitPartition(t, cl, topic, cut, 5*time.Second, "offline", testcluster.LeaderIs(-1)); !strings.Contains(pd.Note, "waiting for an operator") {
		t.Fatalf("%s-%d note %q, want it to say it waits for an operator", topic, cut, pd.Note)
	}

	if err := cl.AlterConfigs(testContext(t), topic, client.DeleteConfig(controller.ConfigUncleanRecovery)); err != nil {
		t.Fatal(err)
	}
	pd := testcluster.WaitPartition(t, cl, topic, cut, 10*time.Second, "the balanced recovery", testcluster.LeaderIs(victim))
	if want := "may lack 1 committed offsets"; !strings.Contains(pd.Note, want) {
		t.Fatalf("%s-%d note %q, want it to say %q", topic, cut, pd.Note, want)
	}
}
