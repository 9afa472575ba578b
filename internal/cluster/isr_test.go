package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// endOffsets returns the end offset of partition p on each broker holding
// it.
func endOffsets(cl *client.Client, topic string, p int32) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, err := replicasOf(ctx, cl, topic, p, -1)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for id, r := range rs {
		out[id] = r.EndOffset
	}
	return out, nil
}

// settledEnds waits until the n replicas of partition p answering have
// the same end offset, and returns it.
func settledEnds(t *testing.T, cl *client.Client, topic string, p int32, n int) int64 {
	t.Helper()
	var end int64
	poll.Until(t, 5*time.Second, "replicas at the same end offset", func() error {
		ends, err := endOffsets(cl, topic, p)
		if err != nil {
			return err
		}
		if len(ends) != n {
			return fmt.Errorf("end offsets %v: want %d replicas", ends, n)
		}
		for _, e := range ends {
			end = e
			for _, o := range ends {
				if o != e {
					return fmt.Errorf("end offsets %v", ends)
				}
			}
		}
		return nil
	})
	return end
}

// RF 3, min.insync.replicas 3: once a crashed follower has left the ISR,
// an acks=all produce is refused with NOT_ENOUGH_REPLICAS, a definite
// error (R14), and nothing is appended on any replica; once it is back in
// sync, acks=all produces are acknowledged again, at the offset right
// after the last acknowledged one.
func TestISRBelowMinInsyncRefusesAcksAll(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx := testContext(t)
	const topic = "min-isr"
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"min.insync.replicas": "3"}})
	manual := client.RecordPartitioner(client.ManualPartitioner())
	produceEach(t, c.Client(manual), topic, 0, "before", 3, 0)

	pd := testcluster.WaitPartition(t, cl, topic, 0, 5*time.Second, "a leader", func(pd client.PartitionDescription) error {
		if pd.Leader < 0 {
			return errors.New("no leader")
		}
		return nil
	})
	var follower int32 = -1
	for _, r := range pd.Replicas {
		if r != pd.Leader {
			follower = r
			break
		}
	}
	c.Kill(follower)
	rest := slices.DeleteFunc(slices.Clone(pd.Replicas), func(r int32) bool { return r == follower })
	testcluster.WaitPartition(t, cl, topic, 0, testcluster.DetectTimeout, "follower fenced", testcluster.ISRIs(rest...))

	// The leader may append once more before it has applied the shrink:
	// that attempt's outcome is unknown (NOT_ENOUGH_REPLICAS_AFTER_APPEND),
	// and the idempotent client retries it, refused, until its delivery
	// timeout: the record fails as maybe written, whatever the last
	// refusal said. Once the leader knows, produces are refused before
	// the append, and a new record fails definitely.
	short := c.Client(manual, client.DeliveryTimeout(time.Second))
	var end int64
	poll.Until(t, 10*time.Second, "a definite NOT_ENOUGH_REPLICAS", func() error {
		before := settledEnds(t, cl, topic, 0, 2)
		err := short.ProduceSync(ctx, &client.Record{Topic: topic, Partition: 0, Value: []byte("refused")})
		var pe *client.ProduceError
		switch {
		case client.IsIndeterminate(err) && (errors.Is(err, protocol.ErrNotEnoughReplicasAfterAppend) || errors.Is(err, protocol.ErrNotEnoughReplicas)):
			return err
		case !errors.Is(err, protocol.ErrNotEnoughReplicas) || !errors.As(err, &pe) || client.IsIndeterminate(err):
			t.Fatalf("acks=all with ISR %v below 3: %v (indeterminate %v), want a definite NOT_ENOUGH_REPLICAS",
				rest, err, client.IsIndeterminate(err))
		}
		after, err := endOffsets(cl, topic, 0)
		if err != nil {
			return err
		}
		for id, e := range after {
			if e != before {
				t.Fatalf("broker %d ends at %d after a refused produce, at %d before", id, e, before)
			}
		}
		end = before
		return nil
	})

	c.Restart(follower)
	testcluster.WaitPartition(t, cl, topic, 0, 15*time.Second, "follower back in sync", testcluster.ISRIs(pd.Replicas...))
	produceEach(t, c.Client(manual), topic, 0, "after", 2, end)
	poll.Until(t, 10*time.Second, "identical replicas", func() error {
		rs, err := replicasOf(ctx, cl, topic, 0, 1<<62)
		if err != nil {
			return err
		}
		return sameLogs(rs, 3)
	})
}

// After its preferred leader (the first replica) crashed and came back,
// a partition is led by another replica until ElectPreferredLeaders moves
// it back: refused while the preferred replica is down, done once it is
// in sync, and not needed for the partitions already led by theirs.
func TestPreferredLeaderReturnsAfterRestart(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx := testContext(t)
	const topic = "preferred"
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 3, ReplicationFactor: 3})
	for _, pd := range td.Partitions {
		if pd.Leader != pd.Replicas[0] {
			t.Fatalf("partition %d starts led by %d, not its preferred %d", pd.Partition, pd.Leader, pd.Replicas[0])
		}
	}
	pref := td.Partitions[0].Replicas[0]
	c.Kill(pref)
	other := testcluster.WaitLeader(t, cl, topic, 0, pref, 15*time.Second)
	t.Logf("broker %d, preferred leader of %s-0, crashed; broker %d leads", pref, topic, other)

	rs, err := cl.ElectPreferredLeaders(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Partition == 0 && r.Err == nil {
			t.Fatalf("partition 0 elected broker %d while its preferred replica %d is down", r.Leader, pref)
		}
	}

	c.Restart(pref)
	testcluster.WaitFullISR(t, cl, topic, 15*time.Second)
	if l := testcluster.WaitLeader(t, cl, topic, 0, -1, 15*time.Second); l != other {
		t.Fatalf("leader moved to %d before the election, want it still on %d", l, other)
	}
	// ELECTION_NOT_NEEDED with the preferred replica leading is the
	// answer of an election run again after the controller lost its
	// leadership while committing the first (controller.retrySafe).
	res := electPreferred(t, cl, topic, 0)
	if (res.Err != nil && !errors.Is(res.Err, protocol.ErrElectionNotNeeded)) || res.Leader != pref {
		t.Fatalf("partition 0: elected %d (%v), want %d", res.Leader, res.Err, pref)
	}
	// It leads for real: acks=all records go through it. Under load the
	// restarted broker's gossip can flap once (its old incarnation reported
	// failed after the new one joined), which fences it and moves the
	// leadership again; the produce then fails as maybe-written, and the
	// broker registers again at once. Elect again and retry, a few times.
	pc := c.Client(client.RecordPartitioner(client.ManualPartitioner()))
	for attempt := 0; ; attempt++ {
		testcluster.WaitPartition(t, cl, topic, 0, 10*time.Second, "preferred leader back", testcluster.LeaderIs(pref))
		err := pc.ProduceSync(ctx, &client.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprint("after-", attempt))})
		if err == nil {
			break
		}
		if attempt == 3 || !(client.IsIndeterminate(err) || client.IsRetriable(err)) {
			t.Fatalf("produce through the preferred leader: %v", err)
		}
		t.Logf("produce through broker %d failed (%v); electing it again", pref, err)
		testcluster.WaitFullISR(t, cl, topic, 15*time.Second)
		if r := electPreferred(t, cl, topic, 0); r.Err != nil && !errors.Is(r.Err, protocol.ErrElectionNotNeeded) {
			t.Fatalf("partition 0: election again: %v", r.Err)
		}
	}
	poll.Until(t, 5*time.Second, "broker "+fmt.Sprint(pref)+" leading", func() error {
		rs, err := replicasOf(ctx, cl, topic, 0, -1)
		if err != nil {
			return err
		}
		if r := rs[pref]; !r.Leader || r.HighWatermark != r.EndOffset || r.EndOffset == 0 {
			return fmt.Errorf("broker %d: %+v", pref, r)
		}
		return nil
	})
}

// electPreferred runs ElectPreferredLeaders for topic and returns the
// result for partition p.
func electPreferred(t *testing.T, cl *client.Client, topic string, p int32) client.ElectionResult {
	t.Helper()
	rs, err := cl.ElectPreferredLeaders(testContext(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Partition == p {
			return r
		}
	}
	t.Fatalf("no election result for partition %d: %+v", p, rs)
	return client.ElectionResult{}
}

// ElectPreferredLeaders answers for every partition of the topics asked
// about (client.ElectionResult's contract, and Kafka's): the one whose
// preferred replica is down with PREFERRED_LEADER_NOT_AVAILABLE, the ones
// already led by theirs with ELECTION_NOT_NEEDED.
func TestElectPreferredLeadersAnswersEveryPartition(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx := testContext(t)
	const topic = "preferred-answers"
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 3, ReplicationFactor: 3})
	pref := td.Partitions[0].Replicas[0]
	c.Kill(pref)
	testcluster.WaitLeader(t, cl, topic, 0, pref, 15*time.Second)
	rs, err := cl.ElectPreferredLeaders(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(td.Partitions) {
		t.Fatalf("%d results for %d partitions: %+v", len(rs), len(td.Partitions), rs)
	}
	for _, r := range rs {
		want := protocol.ErrElectionNotNeeded
		if td.Partitions[r.Partition].Replicas[0] == pref {
			want = protocol.ErrPreferredLeaderNotAvailable
		}
		if !errors.Is(r.Err, want) {
			t.Fatalf("partition %d: %+v, want %v", r.Partition, r, want)
		}
	}
}

// Without anyone asking, the controller leader's broker gives leadership
// back to a preferred replica once it is in sync again
// (LeaderRebalanceInterval).
func TestPreferredLeaderReturnsByItself(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3,
		Configure: func(cfg *broker.Config) { cfg.LeaderRebalanceInterval = 300 * time.Millisecond }})
	cl := c.Client()
	const topic = "preferred-auto"
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 3, ReplicationFactor: 3})
	pref := td.Partitions[0].Replicas[0]
	c.Kill(pref)
	other := testcluster.WaitLeader(t, cl, topic, 0, pref, 15*time.Second)
	t.Logf("broker %d, preferred leader of %s-0, crashed; broker %d leads", pref, topic, other)
	c.Restart(pref)
	testcluster.WaitPartition(t, cl, topic, 0, 15*time.Second, "leadership back on the preferred replica", testcluster.LeaderIs(pref))
}

// A broker restarted while it follows many partitions rejoins their ISRs
// through a few controller writes carrying many changes each
// (controller.AlterPartitions), not one write per partition: with 60
// partitions led by the two other brokers, the ISRs are full again after
// far fewer than 60 ISR writes.
func TestRestartedFollowerRejoinsManyISRsInFewWrites(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	cl := c.Client()
	const topic, parts = "many", 60
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: parts, ReplicationFactor: 3})
	c.Kill(3) // its partitions get other leaders, which take it back
	poll.Until(t, 20*time.Second, "broker 3 out of every ISR", func() error {
		return everyISR(cl, topic, func(isr []int32) bool { return !slices.Contains(isr, 3) })
	})
	before := c.Broker(1).ISRWrites() + c.Broker(2).ISRWrites()
	c.Restart(3)
	testcluster.WaitFullISR(t, cl, topic, 30*time.Second)
	writes := c.Broker(1).ISRWrites() + c.Broker(2).ISRWrites() - before
	t.Logf("%d partitions back in the ISR after %d ISR writes", parts, writes)
	if writes >= parts/3 {
		t.Fatalf("%d ISR writes to put broker 3 back in %d ISRs: the changes were not batched", writes, parts)
	}
}

// everyISR reports an error naming the first partition of topic whose ISR
// does not satisfy ok.
func everyISR(cl *client.Client, topic string, ok func([]int32) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	td, err := cl.DescribeTopic(ctx, topic)
	if err != nil {
		return err
	}
	for _, p := range td.Partitions {
		if !ok(p.ISR) {
			return fmt.Errorf("partition %d: ISR %v", p.Partition, p.ISR)
		}
	}
	return nil
}
