package cluster

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
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
	testcluster.WaitPartition(t, cl, topic, p, testcluster.DetectTimeout, "follower fenced", testcluster.ISRIs(a))
	produceAt(t, ra, topic, p, 1, testcluster.ProducerBatch(t, 9, 0, 2), protocol.NoError, 2)
	produceAt(t, ra, topic, p, 1, testcluster.ProducerBatch(t, 10, 0, 0), protocol.NoError, 3)

	// A crashes too; B comes back first and leads: producer 9 starts a
	// new epoch, producer 11 writes where producer 10's batch was on A.
	c.Kill(a)
	testcluster.WaitPartition(t, cl, topic, p, testcluster.DetectTimeout, "offline", testcluster.LeaderIs(-1))
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

// An idempotent producer evicted past the broker's cap (ProducerIDMax,
// counted over all its partitions) gets UNKNOWN_PRODUCER_ID when it comes
// back, initialises again and resends: its partition holds every record
// once, in order.
func TestEvictedProducerReinitialises(t *testing.T) {
	const max, others, perRound = 20, 30, 10
	c := testcluster.Start(t, 1, testcluster.Options{Configure: func(cfg *broker.Config) { cfg.ProducerIDMax = max }})
	ctx := testContext(t)
	admin := c.Client()
	const topic = "idem-evicted"
	testcluster.CreateTopic(t, admin, client.TopicSpec{Name: topic, Partitions: 2, ReplicationFactor: 1})
	prod := c.Client(client.RecordPartitioner(client.ManualPartitioner()))
	round := func(r int) {
		t.Helper()
		var recs []*client.Record
		for i := range perRound {
			recs = append(recs, &client.Record{Topic: topic, Partition: 0, Value: []byte(strconv.Itoa(r*perRound + i))})
		}
		if err := prod.ProduceSync(ctx, recs...); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
	}
	round(0)
	// Other producers fill the broker's cap on partition 1, evicting the
	// client's producer from partition 0.
	raw := testcluster.DialRaw(t, c.Broker(1).Addr())
	raw.WaitLeading(topic, 1)
	for id := range int64(others) {
		produceAt(t, raw, topic, 1, -1, testcluster.ProducerBatch(t, 1_000_000+id, 0, 0), protocol.NoError, id)
	}
	if n := c.Broker(1).ProducerIDsEvicted(); n < 1 {
		t.Fatalf("%d producer ids evicted, want the client's", n)
	}
	round(1)
	round(2)
	cons := c.Client()
	cons.Assign(map[client.TopicPartition]client.Offset{{Topic: topic, Partition: 0}: client.AtStart()})
	var got []string
	for len(got) < 3*perRound {
		fs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d records: %v", len(got), err)
		}
		for _, fe := range fs.Errors {
			t.Fatalf("fetch: %v", fe)
		}
		for _, r := range fs.Records {
			got = append(got, string(r.Value))
		}
	}
	want := make([]string, 3*perRound)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("partition 0 holds %v, want %v", got, want)
	}
	if hw, err := raw.HighWatermark(topic, 0); err != nil || hw != 3*perRound {
		t.Fatalf("partition 0 ends at %d (%v), want %d: a record written twice", hw, err, 3*perRound)
	}
}
