package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// replicasOf returns each broker's view of partition p of topic, by
// broker id, with checksums up to upTo (none when upTo is negative). A
// broker that does not answer is an error.
func replicasOf(ctx context.Context, cl *client.Client, topic string, p int32, upTo int64) (map[int32]client.ReplicaInfo, error) {
	var brs []client.BrokerReplicas
	var err error
	if upTo < 0 {
		brs, err = cl.DescribeReplicas(ctx, topic)
	} else {
		brs, err = cl.DescribeReplicaChecksums(ctx, upTo, topic)
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]client.ReplicaInfo{}
	for _, br := range brs {
		if br.Err != nil {
			return nil, fmt.Errorf("broker %d: %w", br.Broker, br.Err)
		}
		for _, r := range br.Replicas {
			if r.Partition != p {
				continue
			}
			if r.Err != nil {
				return nil, fmt.Errorf("broker %d: %w", br.Broker, r.Err)
			}
			out[br.Broker] = r
		}
	}
	return out, nil
}

// sameLogs checks that the replicas of a partition, as replicasOf gives
// them, are want in number and hold the same bytes up to the same end,
// which is also each one's high watermark.
func sameLogs(rs map[int32]client.ReplicaInfo, want int) error {
	if len(rs) != want {
		return fmt.Errorf("%d replicas answered, want %d", len(rs), want)
	}
	var first *client.ReplicaInfo
	for _, r := range rs {
		if first == nil {
			first = &r
		}
		if r.EndOffset != first.EndOffset || r.StartOffset != first.StartOffset || r.Checksum != first.Checksum ||
			r.ChecksumEnd != first.ChecksumEnd || r.HighWatermark != r.EndOffset {
			return fmt.Errorf("replicas differ: %+v", rs)
		}
	}
	return nil
}

// checkOffsetByOffset compares the replicas of partition p at every
// offset up to end: the checksums of their logs' prefixes agree at each.
func checkOffsetByOffset(t *testing.T, cl *client.Client, topic string, p int32, rf int, end int64) {
	t.Helper()
	ctx := testContext(t)
	for upTo := int64(1); upTo <= end; upTo++ {
		rs, err := replicasOf(ctx, cl, topic, p, upTo)
		if err != nil {
			t.Fatalf("checksums up to %d: %v", upTo, err)
		}
		if err := sameLogs(rs, rf); err != nil {
			t.Fatalf("up to offset %d: %v", upTo, err)
		}
		for id, r := range rs {
			if r.ChecksumEnd < 0 || r.ChecksumEnd > upTo {
				t.Fatalf("broker %d: checksum up to %d covers %d", id, upTo, r.ChecksumEnd)
			}
		}
	}
}

// readPartition reads partition p of topic from its start up to end and
// returns the values by offset.
func readPartition(t *testing.T, cl *client.Client, topic string, p int32, end int64) []string {
	t.Helper()
	ctx := testContext(t)
	cl.Assign(map[client.TopicPartition]client.Offset{{Topic: topic, Partition: p}: client.AtStart()})
	defer cl.Unassign(client.TopicPartition{Topic: topic, Partition: p})
	var out []string
	for int64(len(out)) < end {
		fs, err := cl.Poll(ctx)
		if err != nil {
			t.Fatalf("read %s-%d: %v after %d records", topic, p, err, len(out))
		}
		if len(fs.Errors) > 0 {
			t.Fatalf("read %s-%d: %v", topic, p, fs.Errors[0])
		}
		for _, r := range fs.Records {
			if r.Offset != int64(len(out)) {
				t.Fatalf("read %s-%d: offset %d after %d records", topic, p, r.Offset, len(out))
			}
			out = append(out, string(r.Value))
		}
	}
	return out
}

// produceEach sends n records to partition p, one batch each, and checks
// they were acknowledged at consecutive offsets from first.
func produceEach(t *testing.T, cl *client.Client, topic string, p int32, prefix string, n int, first int64) []string {
	t.Helper()
	ctx := testContext(t)
	var vals []string
	for i := range n {
		v := fmt.Sprintf("%s-%d", prefix, i)
		r := &client.Record{Topic: topic, Partition: p, Value: []byte(v)}
		if err := cl.ProduceSync(ctx, r); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
		if r.Partition != p || r.Offset != first+int64(i) {
			t.Fatalf("produce %s: acknowledged at %d@%d, want %d@%d", v, r.Partition, r.Offset, p, first+int64(i))
		}
		vals = append(vals, v)
	}
	return vals
}

// pickPair returns a partition of topic whose replicas include broker
// with, its leader and its other replica.
func pickPair(t *testing.T, td client.TopicDescription, with int32) (p, leader, follower int32) {
	t.Helper()
	for _, pd := range td.Partitions {
		if len(pd.Replicas) == 2 && slices.Contains(pd.Replicas, with) && pd.Leader >= 0 {
			f := pd.Replicas[0]
			if f == pd.Leader {
				f = pd.Replicas[1]
			}
			return pd.Partition, pd.Leader, f
		}
	}
	t.Fatalf("no partition of %s with 2 replicas including broker %d: %+v", td.Name, with, td.Partitions)
	return 0, 0, 0
}

// KIP-101's double failover: the leader A appends records its follower B
// does not have, both crash, B comes back first and is elected (unclean
// election: A was the last in-sync replica), takes new records at the
// same offsets, and A returns. A's high watermark covers its extra
// records, so truncating to it would keep them and the logs would
// diverge silently; A must truncate where its epoch ended on B (R9). The
// replicas end byte-identical offset by offset, and every record
// acknowledged with acks=all in a leadership that lasted is there.
//
// 4 brokers (3 voters): the partition picked has broker 4 as a replica so
// that killing both of its replicas leaves the Raft quorum up.
func TestDoubleFailoverDivergentLogsTruncateByEpoch(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx := testContext(t)
	const topic = "kip101"
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 4, ReplicationFactor: 2,
		Configs: map[string]string{"unclean.leader.election": "true", "min.insync.replicas": "1"}})
	p, a, b := pickPair(t, td, 4)
	t.Logf("partition %d: leader %d, follower %d", p, a, b)
	manual := client.RecordPartitioner(client.ManualPartitioner())

	// Committed on both replicas.
	base := produceEach(t, c.Client(manual), topic, p, "base", 10, 0)

	// B crashes; A, alone in the ISR, takes records B never sees.
	c.Kill(b)
	testcluster.WaitPartition(t, cl, topic, p, testcluster.DetectTimeout, "follower fenced", testcluster.ISRIs(a))
	produceEach(t, c.Client(manual, client.Acks(client.AcksLeader)), topic, p, "only-on-a", 5, int64(len(base)))
	// Once the leader has applied the shrink, they are committed in its
	// eyes: its high watermark covers them.
	poll.Until(t, 5*time.Second, "the leader's HW over its own records", func() error {
		rs, err := replicasOf(ctx, cl, topic, p, -1)
		if err != nil {
			return err
		}
		if r := rs[a]; r.EndOffset != 15 || r.HighWatermark != 15 {
			return fmt.Errorf("leader %d: end %d, HW %d, want 15 and 15", a, r.EndOffset, r.HighWatermark)
		}
		return nil
	})

	// A crashes too; B comes back first and leads in a new epoch.
	c.Kill(a)
	testcluster.WaitPartition(t, cl, topic, p, testcluster.DetectTimeout, "offline", testcluster.LeaderIs(-1))
	c.Restart(b)
	pd := testcluster.WaitPartition(t, cl, topic, p, 10*time.Second, "B elected", testcluster.LeaderIs(b))
	t.Logf("broker %d leads in epoch %d, ISR %v", b, pd.LeaderEpoch, pd.ISR)
	newer := produceEach(t, c.Client(manual), topic, p, "new-on-b", 8, int64(len(base)))

	// A returns: it must cut its own records 10..14 and copy B's.
	c.Restart(a)
	testcluster.WaitPartition(t, cl, topic, p, 15*time.Second, "A back in sync", testcluster.ISRIs(a, b))
	want := append(slices.Clone(base), newer...)
	end := int64(len(want))
	poll.Until(t, 15*time.Second, "identical replicas", func() error {
		rs, err := replicasOf(ctx, cl, topic, p, 1<<62)
		if err != nil {
			return err
		}
		if rs[a].EndOffset != end {
			return fmt.Errorf("broker %d ends at %d, want %d", a, rs[a].EndOffset, end)
		}
		return sameLogs(rs, 2)
	})
	checkOffsetByOffset(t, cl, topic, p, 2, end)
	got := readPartition(t, c.Client(), topic, p, end)
	if !slices.Equal(got, want) {
		t.Fatalf("partition %d holds %v, want %v", p, got, want)
	}
	for _, v := range got {
		if strings.HasPrefix(v, "only-on-a") {
			t.Fatalf("a record of the abandoned epoch survived: %q", v)
		}
	}
}
