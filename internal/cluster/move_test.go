package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// moveCluster starts 4 brokers (3 voters) with the reassignment throttle
// at throttle bytes/s (0: the default), and a topic of one partition, RF
// 3, on three of them. It returns the cluster, a client, the partition's
// replicas and the broker that holds none.
func moveCluster(t *testing.T, topic string, throttle int64) (*testcluster.Cluster, *client.Client, []int32, int32) {
	t.Helper()
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3})
	cl := c.Client()
	if throttle != 0 {
		err := cl.AlterClusterConfigs(testContext(t), client.SetConfig(controller.ConfigReassignmentThrottle, strconv.FormatInt(throttle, 10)))
		if err != nil {
			t.Fatal(err)
		}
	}
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 3})
	replicas := td.Partitions[0].Replicas
	free := int32(-1)
	for _, id := range c.IDs() {
		if !slices.Contains(replicas, id) {
			free = id
		}
	}
	return c, cl, replicas, free
}

// listMoves lists the moves in progress, within a bound of its own: a
// context for the whole test ran out in the middle of a wait when the
// steps before it had been slow (the copy "half way" was never seen, at
// load 38).
func listMoves(cl *client.Client) ([]client.Move, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.ListReassignments(ctx)
}

// reassign starts (or with no replicas cancels) the move of partition 0.
// A cancel whose outcome is unknown (the controller lost its leadership
// while committing it; a start is run again by the controller itself) is
// sent again, as an application would; a cancel sent again and refused
// as NO_REASSIGNMENT_IN_PROGRESS was applied (or the move ended): the
// caller checks the replicas it ends with.
func reassign(t *testing.T, cl *client.Client, topic string, replicas ...int32) {
	t.Helper()
	for try := 1; ; try++ {
		err := reassignOnce(t, cl, topic, replicas...)
		if err == nil || try > 1 && len(replicas) == 0 && errors.Is(err, protocol.ErrNoReassignmentInProgress) {
			return
		}
		if len(replicas) > 0 || !client.IsIndeterminate(err) || try == 5 {
			t.Fatalf("reassign %s-0 to %v (try %d): %v", topic, replicas, try, err)
		}
		t.Logf("cancel of %s-0's move: %v; sending it again", topic, err)
	}
}

// reassignOnce sends one AlterReassignments for partition 0 and returns
// the request's error or the partition's.
func reassignOnce(t *testing.T, cl *client.Client, topic string, replicas ...int32) error {
	t.Helper()
	rs, err := cl.AlterReassignments(testContext(t), []client.Reassignment{{Topic: topic, Partition: 0, Replicas: replicas}})
	switch {
	case err != nil:
		return err
	case len(rs) != 1:
		t.Fatalf("reassign %s-0 to %v: %d results: %+v", topic, replicas, len(rs), rs)
	}
	return rs[0].Err
}

// waitReplicas waits until partition 0 has exactly replicas (no move in
// progress), all in the ISR, and they hold identical logs, with no other
// broker holding a replica (its data deleted).
func waitReplicas(t *testing.T, cl *client.Client, topic string, timeout time.Duration, replicas ...int32) {
	t.Helper()
	testcluster.WaitPartition(t, cl, topic, 0, timeout, fmt.Sprintf("replicas %v in sync", replicas), func(p client.PartitionDescription) error {
		if !slices.Equal(p.Replicas, replicas) || len(p.ISR) != len(replicas) {
			return fmt.Errorf("replicas %v, ISR %v", p.Replicas, p.ISR)
		}
		return nil
	})
	poll.Until(t, 20*time.Second, "identical replicas on the target brokers only", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		brs, err := cl.DescribeReplicaChecksums(ctx, 1<<62, topic)
		if err != nil {
			return err
		}
		for _, br := range brs {
			if len(br.Replicas) > 0 && !slices.Contains(replicas, br.Broker) {
				return fmt.Errorf("broker %d still holds %+v", br.Broker, br.Replicas)
			}
		}
		return bench.CompareReplicas(brs, len(replicas))
	})
}

// waitEnd waits until partition 0's high watermark reaches end.
func waitEnd(t *testing.T, cl *client.Client, topic string, end int64) {
	t.Helper()
	poll.Until(t, 30*time.Second, fmt.Sprintf("%s-0 at offset %d", topic, end), func() error {
		brs, err := cl.DescribeReplicas(testContext(t), topic)
		if err != nil {
			return err
		}
		for _, br := range brs {
			for _, r := range br.Replicas {
				if r.Leader && r.HighWatermark >= end {
					return nil
				}
			}
		}
		return fmt.Errorf("not yet")
	})
}

// A partition moves 1,2,3 → 2,3,4 (its leader among those removed) under
// an acks=all verified load: no produce fails (retried requests are
// fine), nothing acknowledged is lost, leadership moves to a target
// replica, the replicas end identical, and the removed broker's data is
// deleted.
func TestMovePartitionUnderLoad(t *testing.T) {
	c, cl, replicas, free := moveCluster(t, "mv", 0)
	leader := testcluster.WaitLeader(t, cl, "mv", 0, -1, 15*time.Second)
	// The target drops the leader and adds the free broker.
	target := append(slices.DeleteFunc(slices.Clone(replicas), func(r int32) bool { return r == leader }), free)
	wait := verifyAsync(t, c, "mv", 8*time.Second)
	waitEnd(t, cl, "mv", 2000) // load before the move: the new replica has something to copy
	reassign(t, cl, "mv", target...)
	waitReplicas(t, cl, "mv", 30*time.Second, target...)
	if l := testcluster.WaitLeader(t, cl, "mv", 0, -1, 15*time.Second); !slices.Contains(target, l) {
		t.Fatalf("leader %d after the move, not in %v", l, target)
	}
	res := checkHistory(t, wait())
	if res.Failed != 0 {
		t.Fatalf("%d produces failed during the move", res.Failed)
	}
	waitReplicas(t, cl, "mv", 30*time.Second, target...)
	if moves, err := cl.ListReassignments(testContext(t)); err != nil || len(moves) != 0 {
		t.Fatalf("moves left: %+v, %v", moves, err)
	}
}

// A topic grows from 2 to 4 partitions under a keyed producer and a group
// of two members: the producer's keyed records reach the new partitions
// after its metadata refresh, the group shares all four, and the members
// read at least every record produced (none lost).
func TestGrowTopicUnderKeyedProducerAndGroup(t *testing.T) {
	c := groupCluster(t)
	admin := c.Client()
	testcluster.CreateTopic(t, admin, client.TopicSpec{Name: "grow", Partitions: 2, ReplicationFactor: 3})
	ms := []*member{startMember(t, c, "growers", "grow"), startMember(t, c, "growers", "grow")}
	waitShares(t, ms, 2, 30*time.Second)

	pr := c.Client(client.MetadataMaxAge(200 * time.Millisecond))
	ctx := testContext(t)
	produced := 0
	produce := func() *client.Record {
		r := &client.Record{Topic: "grow", Key: []byte(fmt.Sprint("key-", produced%64)), Value: []byte(fmt.Sprint(produced))}
		if err := pr.ProduceSync(ctx, r); err != nil {
			t.Fatalf("produce %d: %v", produced, err)
		}
		produced++
		return r
	}
	for range 100 {
		if r := produce(); r.Partition > 1 {
			t.Fatalf("record on partition %d before the topic grew", r.Partition)
		}
	}
	if err := admin.CreatePartitions(ctx, "grow", 4); err != nil {
		t.Fatal(err)
	}
	if err := admin.CreatePartitions(ctx, "grow", 3); !errors.Is(err, protocol.ErrInvalidPartitions) {
		t.Fatalf("shrinking: %v, want INVALID_PARTITIONS", err)
	}
	d, err := admin.DescribeTopic(ctx, "grow")
	if err != nil || len(d.Partitions) != 4 {
		t.Fatalf("describe after growing: %+v, %v", d, err)
	}
	poll.Until(t, 20*time.Second, "a keyed record on a new partition", func() error {
		if r := produce(); r.Partition < 2 {
			return fmt.Errorf("record on partition %d", r.Partition)
		}
		return nil
	})
	for range 100 {
		produce()
	}
	waitShares(t, ms, 4, 30*time.Second)
	poll.Until(t, 30*time.Second, fmt.Sprintf("the group read all %d records", produced), func() error {
		if n := ms[0].records.Load() + ms[1].records.Load(); n < int64(produced) {
			return fmt.Errorf("read %d", n)
		}
		return nil
	})
}

// slowMove starts a cluster whose moves copy at 256 KiB/s, fills a
// partition with about 3 MiB, and starts its move off its leader onto
// the free broker; it returns once the new replica has copied something
// but not all (the move is half way). It returns the cluster, a client,
// the original replicas, the leader and the target.
func slowMove(t *testing.T, topic string) (*testcluster.Cluster, *client.Client, []int32, int32, []int32) {
	t.Helper()
	c, cl, replicas, free := moveCluster(t, topic, 256<<10)
	leader := testcluster.WaitLeader(t, cl, topic, 0, -1, 15*time.Second)
	ctx := testContext(t)
	v := make([]byte, 10<<10)
	for range 300 {
		if err := cl.ProduceSync(ctx, &client.Record{Topic: topic, Partition: 0, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	target := append(slices.DeleteFunc(slices.Clone(replicas), func(r int32) bool { return r == leader }), free)
	reassign(t, cl, topic, target...)
	poll.Until(t, 20*time.Second, "the new replica half way", func() error {
		moves, err := listMoves(cl)
		if err != nil {
			return err
		}
		if len(moves) != 1 || !moves[0].Progress || len(moves[0].Positions) != 1 {
			return fmt.Errorf("moves %+v", moves)
		}
		m := moves[0]
		if pos := m.Positions[0]; pos <= 0 || pos >= m.LeaderEnd || m.BytesRemaining <= 0 {
			return fmt.Errorf("position %d of %d, %d bytes remaining", pos, m.LeaderEnd, m.BytesRemaining)
		}
		return nil
	})
	return c, cl, replicas, leader, target
}

// A move cancelled half way goes back to the original replicas (the
// kept ones first, then the one that was leaving), and the copy made so
// far is deleted.
func TestMoveCancelledHalfWay(t *testing.T) {
	_, cl, _, leader, target := slowMove(t, "cx")
	reassign(t, cl, "cx")
	back := append(slices.Clone(target[:len(target)-1]), leader)
	waitReplicas(t, cl, "cx", 30*time.Second, back...)
	// A second cancel is refused; one whose outcome is unknown (the
	// controller lost its leadership while committing it) is sent again.
	poll.Until(t, 20*time.Second, "a definite answer to a second cancel", func() error {
		err := reassignOnce(t, cl, "cx")
		if client.IsIndeterminate(err) {
			return err
		}
		if !errors.Is(err, protocol.ErrNoReassignmentInProgress) {
			t.Fatalf("a second cancel: %v, want NO_REASSIGNMENT_IN_PROGRESS", err)
		}
		return nil
	})
}

// The controller leader killed half way through a move: the move is in
// the Raft log, so the new controller completes it.
func TestMoveSurvivesControllerKill(t *testing.T) {
	c, cl, _, _, target := slowMove(t, "ck")
	d, err := cl.DescribeCluster(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(d.ControllerID)
	c.Restart(d.ControllerID)
	waitReplicas(t, cl, "ck", 60*time.Second, target...)
}

// The new replica's broker killed half way and restarted: it resumes
// fetching and the move completes.
func TestMoveSurvivesAddingBrokerKill(t *testing.T) {
	c, cl, _, _, target := slowMove(t, "ak")
	added := target[len(target)-1]
	c.Kill(added)
	c.Restart(added)
	waitReplicas(t, cl, "ak", 60*time.Second, target...)
}

// With reassignment.max.moves at 1, a second move waits in the queue
// (listed as queued) and starts once the first ends; both end with
// identical replicas.
func TestMoveQueuedBeyondLimit(t *testing.T) {
	c, cl, replicas, free := moveCluster(t, "q1", 256<<10)
	ctx := testContext(t)
	if err := cl.AlterClusterConfigs(ctx, client.SetConfig(controller.ConfigMaxMoves, "1")); err != nil {
		t.Fatal(err)
	}
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "q2", Partitions: 1, ReplicationFactor: 3})
	replicas2 := td.Partitions[0].Replicas
	free2 := slices.DeleteFunc(slices.Clone(c.IDs()), func(id int32) bool { return slices.Contains(replicas2, id) })[0]
	v := make([]byte, 10<<10)
	for range 200 {
		if err := cl.ProduceSync(ctx, &client.Record{Topic: "q1", Partition: 0, Value: v}, &client.Record{Topic: "q2", Partition: 0, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	target1 := append(slices.Clone(replicas[1:]), free)
	target2 := append(slices.Clone(replicas2[1:]), free2)
	reassign(t, cl, "q1", target1...)
	reassign(t, cl, "q2", target2...)
	poll.Until(t, 10*time.Second, "q1 moving and q2 queued", func() error {
		moves, err := listMoves(cl)
		if err != nil || len(moves) != 2 || len(moves[0].Queued) != 0 || !slices.Equal(moves[1].Queued, target2) {
			return fmt.Errorf("moves %+v, %v", moves, err)
		}
		return nil
	})
	waitReplicas(t, cl, "q1", 60*time.Second, target1...)
	waitReplicas(t, cl, "q2", 60*time.Second, target2...)
}

// TestMoveSpeed measures how fast a move copies a partition against the
// throttle: SLUICE_MOVE_SPEED=1 go test -run TestMoveSpeed
// ./internal/cluster (a measurement, not a check; BENCHMARKS.md).
func TestMoveSpeed(t *testing.T) {
	if os.Getenv("SLUICE_MOVE_SPEED") == "" {
		t.Skip("a measurement: set SLUICE_MOVE_SPEED=1")
	}
	const throttle, size = 4 << 20, 40 << 20
	_, cl, replicas, free := moveCluster(t, "speed", throttle)
	leader := testcluster.WaitLeader(t, cl, "speed", 0, -1, 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v := make([]byte, 16<<10)
	for written := 0; written < size; written += 64 * len(v) {
		recs := make([]*client.Record, 64)
		for i := range recs {
			recs[i] = &client.Record{Topic: "speed", Partition: 0, Value: v}
		}
		if err := cl.ProduceSync(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	target := append(slices.DeleteFunc(slices.Clone(replicas), func(r int32) bool { return r == leader }), free)
	start := time.Now()
	reassign(t, cl, "speed", target...)
	waitReplicas(t, cl, "speed", 4*time.Minute, target...)
	d := time.Since(start)
	rate := float64(size) / d.Seconds()
	t.Logf("moved %d MiB in %v: %.2f MiB/s, %.0f%% of the %d MiB/s throttle", size>>20, d.Round(time.Millisecond),
		rate/(1<<20), 100*rate/throttle, throttle>>20)
}

// The removed replica's broker killed half way: the move completes
// without it (a new leader in the target takes over), and when it
// restarts it deletes the data of the replica it no longer holds.
func TestMoveRemovedBrokerDownDeletesAtRestart(t *testing.T) {
	c, cl, _, leader, target := slowMove(t, "rk")
	dir := filepath.Join(c.Dir(leader), "rk-0")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("setup: %v", err)
	}
	c.Kill(leader)
	testcluster.WaitPartition(t, cl, "rk", 0, 60*time.Second, "the move done", func(p client.PartitionDescription) error {
		if !slices.Equal(p.Replicas, target) {
			return fmt.Errorf("replicas %v, ISR %v", p.Replicas, p.ISR)
		}
		return nil
	})
	c.Restart(leader)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s after the restart: %v, want it gone", dir, err)
	}
	waitReplicas(t, cl, "rk", 30*time.Second, target...)
}

// With auto.balance at its default, on-join (no config set), a broker
// that was down while a topic was created gets its share of replicas by
// itself once it is back, through the move primitive, every replica
// ending in sync.
func TestAutoBalanceOnJoin(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx := testContext(t)
	c.Stop(4)
	testcluster.WaitBrokerState(t, cl, 4, "offline", 15*time.Second)
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "ab", Partitions: 6, ReplicationFactor: 2})
	c.Restart(4)
	poll.Until(t, 60*time.Second, "broker 4 holds its share, every replica in sync", func() error {
		d, err := cl.DescribeTopic(ctx, "ab")
		if err != nil {
			return err
		}
		count := map[int32]int{}
		for _, p := range d.Partitions {
			if len(p.ISR) != 2 || len(p.Replicas) != 2 {
				return fmt.Errorf("partition %d: replicas %v, ISR %v", p.Partition, p.Replicas, p.ISR)
			}
			for _, r := range p.Replicas {
				count[r]++
			}
		}
		if count[4] != 3 { // 12 replicas over 4 brokers
			return fmt.Errorf("counts %v", count)
		}
		return nil
	})
}

// Under the default auto.balance, on-join, a balanced cluster never
// moves: 3 brokers, a topic of 6 partitions RF 3, the planner every
// 100 ms; through a clean stop and a kill of brokers, each restarted
// with its data (a rolling restart), no move is ever listed and every
// replica list stays as created. Then, as a check that the planner did
// run all along at that pace, a topic created while broker 3 is down
// (RF 2 on brokers 1 and 2) is evened out once it is back.
func TestAutoBalanceQuietWhenBalanced(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3, Configure: func(cfg *broker.Config) {
		cfg.AutoBalanceInterval = 100 * time.Millisecond
	}})
	cl := c.Client()
	ctx := testContext(t)
	created := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "bal", Partitions: 6, ReplicationFactor: 3})
	// quiet watches for 20 planner rounds that nothing moves: a window
	// for something not to happen, not a wait for a condition.
	quiet := func(what string) {
		t.Helper()
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			moves, err := cl.ListReassignments(ctx)
			if err != nil {
				continue // a broker restarting
			}
			d, err := cl.DescribeTopic(ctx, "bal")
			if err != nil {
				continue
			}
			if len(moves) > 0 {
				t.Fatalf("%s: moves %+v", what, moves)
			}
			for i, p := range d.Partitions {
				if !slices.Equal(p.Replicas, created.Partitions[i].Replicas) {
					t.Fatalf("%s: partition %d on %v, created on %v", what, p.Partition, p.Replicas, created.Partitions[i].Replicas)
				}
			}
		}
	}
	quiet("balanced")
	for _, down := range []struct {
		id   int32
		what string
		do   func(int32)
	}{{1, "stopped", c.Stop}, {2, "killed", c.Kill}} {
		down.do(down.id)
		quiet(fmt.Sprintf("broker %d %s", down.id, down.what))
		c.Restart(down.id)
		cl = c.Client() // the restarted broker listens on a new port
		testcluster.WaitFullISR(t, cl, "bal", 30*time.Second)
		quiet(fmt.Sprintf("broker %d back", down.id))
	}

	c.Stop(3)
	testcluster.WaitBrokerState(t, cl, 3, "offline", 15*time.Second)
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "late", Partitions: 6, ReplicationFactor: 2})
	c.Restart(3)
	cl = c.Client()
	poll.Until(t, 30*time.Second, "broker 3 given a share of late", func() error {
		d, err := cl.DescribeTopic(ctx, "late")
		if err != nil {
			return err
		}
		for _, p := range d.Partitions {
			if slices.Contains(p.Replicas, 3) {
				return nil
			}
		}
		return fmt.Errorf("no replica of late on broker 3")
	})
}

// With auto.balance=continuous and a short auto.balance.broker.down.ms,
// a killed broker's replicas are re-created on the alive brokers by
// themselves, through the move primitive: every partition ends at its
// full replication factor, in sync, without the dead broker, while an
// acks=all verified load runs from before the kill to after the moves
// (nothing acknowledged lost, duplicated or reordered) and the replicas
// end identical.
func TestAutoBalanceContinuousRecreatesDeadBrokersReplicas(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3, Configure: func(cfg *broker.Config) {
		cfg.AutoBalanceInterval = 200 * time.Millisecond
	}})
	cl := c.Client()
	ctx := testContext(t)
	const topic = "cont"
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 4, ReplicationFactor: 3})
	testcluster.WaitFullISR(t, cl, topic, 15*time.Second)
	// Setting configs again is harmless: retried while the controller
	// leadership flaps under a loaded machine.
	poll.Until(t, 15*time.Second, "auto.balance=continuous set", func() error {
		return cl.AlterClusterConfigs(ctx, client.SetConfig(controller.ConfigAutoBalance, controller.AutoBalanceContinuous),
			client.SetConfig(controller.ConfigAutoBalanceBrokerDown, "1000"))
	})
	const victim = 4
	held := controller.HeldBy(c.Broker(1).Metadata(), victim)
	if len(held) == 0 {
		t.Fatalf("setup: broker %d holds no replica", victim)
	}
	wait := verifyAsync(t, c, topic, 6*time.Second)
	waitEnd(t, cl, topic, 500) // records before the kill
	c.Kill(victim)
	start := time.Now()
	poll.Until(t, 40*time.Second, "every partition back to 3 in-sync replicas, none on the dead broker", func() error {
		d, err := cl.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range d.Partitions {
			if len(p.Replicas) != 3 || len(p.ISR) != 3 || slices.Contains(p.Replicas, victim) {
				return fmt.Errorf("partition %d: replicas %v, ISR %v", p.Partition, p.Replicas, p.ISR)
			}
		}
		if moves, err := listMoves(cl); err != nil || len(moves) != 0 {
			return fmt.Errorf("moves left: %+v, %v", moves, err)
		}
		return nil
	})
	t.Logf("%d partitions re-created off broker %d %v after the kill", len(held), victim, time.Since(start))
	res := checkHistory(t, wait())
	if res.Failed != 0 {
		t.Errorf("%d produces failed", res.Failed)
	}
	waitIdentical(t, cl, topic)
}
