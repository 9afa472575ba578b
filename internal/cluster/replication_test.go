package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// waitIdentical waits until every replica of every partition of topic
// holds the same batches, byte for byte, up to the same end offset, which
// is the leader's high watermark (bench.CompareReplicas).
func waitIdentical(t *testing.T, cl *client.Client, topic string) {
	t.Helper()
	poll.Until(t, 20*time.Second, "identical replicas", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		brs, err := cl.DescribeReplicaChecksums(ctx, 1<<62, topic)
		if err != nil {
			return err
		}
		return bench.CompareReplicas(brs, 3)
	})
}

// RF 3, acks=all, min.insync.replicas 2: producers write while the leader
// of a partition is killed (no controlled shutdown) and restarted, twice.
// Afterwards the checker finds every acknowledged record exactly where
// its acknowledgement said, in order, nothing vanished that a consumer
// saw, and the replicas are byte-identical.
func TestReplicationSurvivesLeaderKills(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	cl := c.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "repl", Partitions: 3, ReplicationFactor: 3})

	type verified struct {
		h   bench.History
		err error
	}
	done := make(chan verified, 1)
	vctx, vcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer vcancel()
	go func() {
		h, err := bench.Verify(vctx, bench.Config{
			Client:    []client.Opt{client.SeedBrokers(c.Addrs()...), client.RetryBackoff(10*time.Millisecond, 200*time.Millisecond)},
			Topic:     "repl",
			Duration:  10 * time.Second,
			Producers: 2, Consumers: 1, RecordSize: 64, Rate: 3000,
		})
		done <- verified{h, err}
	}()

	// Meanwhile the latest offset a consumer can ask for never goes back,
	// across leader changes too (a new leader answers OFFSET_NOT_AVAILABLE
	// until its followers have reported in its epoch).
	pollCtx, stopPoll := context.WithCancel(context.Background())
	polled := make(chan error, 1)
	go func() {
		last := int64(-1)
		for pollCtx.Err() == nil {
			offs, err := cl.ListOffsets(pollCtx, "repl", client.AtEnd())
			if err == nil && offs[0].Err == nil {
				if offs[0].Offset < last {
					polled <- fmt.Errorf("latest offset of repl-0 went back from %d to %d", last, offs[0].Offset)
					return
				}
				last = offs[0].Offset
			}
			time.Sleep(10 * time.Millisecond)
		}
		polled <- nil
	}()
	for round := range 2 {
		time.Sleep(time.Second)
		leader := testcluster.WaitLeader(t, cl, "repl", 0, -1, 15*time.Second)
		t.Logf("%s round %d: killing broker %d, the leader of repl-0", time.Now().Format("05.000"), round, leader)
		c.Kill(leader)
		next := testcluster.WaitLeader(t, cl, "repl", 0, leader, 15*time.Second)
		t.Logf("%s round %d: broker %d leads repl-0", time.Now().Format("05.000"), round, next)
		time.Sleep(500 * time.Millisecond)
		c.Restart(leader)
		t.Logf("%s restarted", time.Now().Format("05.000"))
		testcluster.WaitFullISR(t, cl, "repl", 20*time.Second)
		t.Logf("%s full ISR", time.Now().Format("05.000"))
	}

	stopPoll()
	if err := <-polled; err != nil {
		t.Error(err)
	}
	v := <-done
	t.Logf("%s verified", time.Now().Format("05.000"))
	if v.err != nil {
		t.Fatalf("verify: %v", v.err)
	}
	res := bench.Check(v.h)
	t.Logf("checked: sent %d, acked %d, failed %d, unknown %d, duplicates %d", res.Sent, res.Acked, res.Failed, res.Unknown, res.Duplicates)
	if !res.OK() || res.Acked == 0 {
		t.Fatalf("history fails the checks: %+v", res)
	}
	waitIdentical(t, cl, "repl")
}

// With fsync=always an acks=all acknowledgement means "on disk on every
// in-sync replica" (R3): right after a produce is acknowledged, every
// replica's synced offset covers it.
func TestFsyncAlwaysAckMeansSyncedOnTheISR(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx := testContext(t)
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "synced", Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"fsync": "always"}})
	for i := range 20 {
		rec := &client.Record{Topic: "synced", Partition: 0, Value: []byte(fmt.Sprintf("r%d", i))}
		if err := cl.ProduceSync(ctx, rec); err != nil {
			t.Fatal(err)
		}
		brs, err := cl.DescribeReplicas(ctx, "synced")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, br := range brs {
			for _, r := range br.Replicas {
				n++
				if r.SyncedOffset <= rec.Offset {
					t.Fatalf("record %d acknowledged at offset %d, broker %d has synced only below %d", i, rec.Offset, br.Broker, r.SyncedOffset)
				}
			}
		}
		if n != 3 {
			t.Fatalf("%d replicas described, want 3", n)
		}
	}
}

// A broker fenced while it keeps running (a network cut that healed, or a
// gossip false alarm) registers again at once, with a new epoch, and
// rejoins the ISRs: it does not wait for serf to notice it (up to serf's
// reconnect interval, 30 s) or for the membership's reconcile (5 s).
func TestFencedRunningBrokerRegistersAgain(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx := testContext(t)
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "refence", Partitions: 1, ReplicationFactor: 3})
	leader := testcluster.WaitLeader(t, cl, "refence", 0, -1, 15*time.Second)
	victim := int32(1)
	if victim == leader {
		victim = 2
	}
	node := c.Broker(leader).Controller()
	old := node.Metadata().Brokers[victim].Epoch
	if _, err := node.Propose(ctx, controller.FenceBroker{ID: victim, Epoch: old}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	poll.Until(t, 2*time.Second, "the fenced broker registered again", func() error {
		b := node.Metadata().Brokers[victim]
		if b.State != controller.BrokerAlive || b.Epoch <= old {
			return fmt.Errorf("broker %d: %v at epoch %d", victim, b.State, b.Epoch)
		}
		return nil
	})
	t.Logf("broker %d registered again after %v", victim, time.Since(start))
	testcluster.WaitFullISR(t, cl, "refence", 10*time.Second)
}

// A second broker started with an id that is registered and alive from
// another data directory is refused (it waits RegisterTimeout for the
// first to be fenced, then gives up); the first keeps its registration.
func TestSecondBrokerWithTheSameIDIsRefused(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3}) // broker 4 is a non-voter
	node := c.Broker(1).Controller()
	var before controller.Broker
	poll.Until(t, 5*time.Second, "broker 4 registered in broker 1's metadata", func() error {
		b := node.Metadata().Brokers[4]
		if b == nil || b.State != controller.BrokerAlive {
			return fmt.Errorf("broker 4: %+v", b)
		}
		before = *b
		return nil
	})
	cfg := c.Config(4) // Raft on a new port
	cfg.DataDir = t.TempDir()
	cfg.Voters = ""
	cfg.Join = c.Broker(1).Addr()
	// Long enough for the join and a registration to get the
	// controller's answer on a loaded machine (at 2 s, the forward to
	// the controller was still dialling when it ended, at load 20), short
	// enough for a test that waits all of it.
	cfg.RegisterTimeout = 6 * time.Second
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Start(context.Background())
	if err == nil {
		b.Close()
		t.Fatal("a second broker with id 4 started")
	}
	if !errors.Is(err, controller.ErrBrokerIDInUse) {
		t.Fatalf("start: %v, want ErrBrokerIDInUse", err)
	}
	after := node.Metadata().Brokers[4]
	if after.Epoch != before.Epoch || after.Addr != before.Addr || after.State != controller.BrokerAlive {
		t.Fatalf("broker 4's registration changed: %+v, was %+v", after, before)
	}
}
