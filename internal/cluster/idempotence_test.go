package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// produceAt sends one producer-stamped batch and fails unless the answer
// is code (and, for success, the offset want).
func produceAt(t *testing.T, r *testcluster.RawConn, topic string, p int32, acks int16, batch []byte, code protocol.ErrorCode, want int64) {
	t.Helper()
	res, err := r.Produce(topic, p, acks, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorCode != code || code == protocol.NoError && res.BaseOffset != want {
		t.Fatalf("produce: %v %q at %d, want %v at %d", res.ErrorCode, res.ErrorMessage, res.BaseOffset, code, want)
	}
}

// The producer state follows a truncation (R9, R13): the leader A takes
// batches its follower B never sees, both crash, B is elected and takes
// other batches at the same offsets, and A comes back, truncates and
// copies B's. When A leads again, a retry of a batch A lost in the
// truncation must be appended anew, not answered with the offset it had
// (another producer's record now), and B's batches are known to A.
//
// The shape of TestDoubleFailoverDivergentLogsTruncateByEpoch: 4 brokers
// (3 voters), RF 2 with broker 4 a replica so that killing both replicas
// leaves the Raft quorum up.
func TestIdempotentStateFollowsTruncation(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3})
	cl := c.Client()
	const topic = "idem-truncation"
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 4, ReplicationFactor: 2,
		Configs: map[string]string{"unclean.leader.election": "true", "min.insync.replicas": "1"}})
	p, a, b := pickPair(t, td, 4)
	t.Logf("partition %d: leader %d, follower %d", p, a, b)
	testcluster.WaitPartition(t, cl, topic, p, 15*time.Second, "both in sync", testcluster.ISRIs(a, b))
	ra := testcluster.DialRaw(t, c.Broker(a).Addr())
	ra.WaitLeading(topic, p)

	// Committed on both.
	produceAt(t, ra, topic, p, -1, testcluster.ProducerBatch(t, 9, 0, 0), protocol.NoError, 0)
	produceAt(t, ra, topic, p, -1, testcluster.ProducerBatch(t, 9, 0, 1), protocol.NoError, 1)

	// B crashes; A alone takes batches B never sees.
	c.Kill(b)
	testcluster.WaitPartition(t, cl, topic, p, 10*time.Second, "follower fenced", testcluster.ISRIs(a))
	produceAt(t, ra, topic, p, 1, testcluster.ProducerBatch(t, 9, 0, 2), protocol.NoError, 2)
	produceAt(t, ra, topic, p, 1, testcluster.ProducerBatch(t, 10, 0, 0), protocol.NoError, 3)

	// A crashes too; B comes back first and leads: producer 9 starts a
	// new epoch, producer 11 writes where producer 10's batch was on A.
	c.Kill(a)
	testcluster.WaitPartition(t, cl, topic, p, 10*time.Second, "offline", testcluster.LeaderIs(-1))
	c.Restart(b)
	testcluster.WaitPartition(t, cl, topic, p, 15*time.Second, "B elected", testcluster.LeaderIs(b))
	rb := testcluster.DialRaw(t, c.Broker(b).Addr())
	rb.WaitLeading(topic, p)
	produceAt(t, rb, topic, p, 1, testcluster.ProducerBatch(t, 9, 1, 0), protocol.NoError, 2)
	produceAt(t, rb, topic, p, 1, testcluster.ProducerBatch(t, 11, 0, 0), protocol.NoError, 3)

	// A returns, truncates to 2 and copies B's batches.
	c.Restart(a)
	testcluster.WaitPartition(t, cl, topic, p, 20*time.Second, "A back in sync", testcluster.ISRIs(a, b))
	ctx := testContext(t)
	poll.Until(t, 15*time.Second, "identical replicas", func() error {
		rs, err := replicasOf(ctx, cl, topic, p, 1<<62)
		if err != nil {
			return err
		}
		if rs[a].EndOffset != 4 {
			return fmt.Errorf("broker %d ends at %d, want 4", a, rs[a].EndOffset)
		}
		return sameLogs(rs, 2)
	})

	// A leads again.
	c.Kill(b)
	testcluster.WaitPartition(t, cl, topic, p, 15*time.Second, "A elected", testcluster.LeaderIs(a))
	ra = testcluster.DialRaw(t, c.Broker(a).Addr())
	ra.WaitLeading(topic, p)
	// Producer 10's batch went with the truncation: its retry is new.
	produceAt(t, ra, topic, p, 1, testcluster.ProducerBatch(t, 10, 0, 0), protocol.NoError, 4)
	// Producer 9's batch of the old epoch went too: that epoch is stale.
	produceAt(t, ra, topic, p, 1, testcluster.ProducerBatch(t, 9, 0, 2), protocol.ErrInvalidProducerEpoch, 0)
	// B's batches, which A copied, are duplicates at B's offsets.
	produceAt(t, ra, topic, p, 1, testcluster.ProducerBatch(t, 9, 1, 0), protocol.NoError, 2)
	produceAt(t, ra, topic, p, 1, testcluster.ProducerBatch(t, 11, 0, 0), protocol.NoError, 3)
	if hw, err := ra.HighWatermark(topic, p); err != nil || hw != 5 {
		t.Fatalf("high watermark %d (%v), want 5", hw, err)
	}
}
