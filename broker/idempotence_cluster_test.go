package broker_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// Cluster checks of the idempotent producer's state (R13, issue 14): RF 3
// in process (testcluster), raw produce requests with producer-stamped
// batches, since the client's idempotent producer is built separately.

// startRF3 starts 3 brokers with a topic of one partition on all three,
// its ISR full, and returns the cluster and the leader.
func startRF3(t *testing.T, topic string) (*testcluster.Cluster, *client.Client, int32) {
	t.Helper()
	c := testcluster.Start(t, 3, testcluster.Options{})
	cl := c.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 3})
	testcluster.WaitFullISR(t, cl, topic, 20*time.Second)
	return c, cl, testcluster.WaitLeader(t, cl, topic, 0, -1, 20*time.Second)
}

// TestIdempotentRetryRacesOriginal sends each batch twice at once, on two
// connections, acks=all on RF 3: one copy is appended, and both answers
// carry its offset (the second waits for the first's acknowledgement).
func TestIdempotentRetryRacesOriginal(t *testing.T) {
	c, _, leader := startRF3(t, "race")
	addr := c.Broker(leader).Addr()
	conns := [2]*testcluster.RawConn{testcluster.DialRaw(t, addr), testcluster.DialRaw(t, addr)}
	conns[0].WaitLeading("race", 0)
	const batches = 30
	for seq := range int32(batches) {
		batch := testcluster.ProducerBatch(t, 7, 0, seq)
		var wg sync.WaitGroup
		var res [2]protocol.ProducePartitionResponse
		var errs [2]error
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i], errs[i] = conns[i].Produce("race", 0, -1, batch)
			}()
		}
		wg.Wait()
		for i := range res {
			if errs[i] != nil || res[i].ErrorCode != protocol.NoError || res[i].BaseOffset != int64(seq) {
				t.Fatalf("seq %d, connection %d: %+v, %v; want success at %d", seq, i, res[i], errs[i], seq)
			}
		}
	}
	if hw, err := conns[0].HighWatermark("race", 0); err != nil || hw != batches {
		t.Fatalf("high watermark %d (%v), want %d: a retry was appended", hw, err, batches)
	}
}

// TestIdempotentRetryToNewLeader: batches acknowledged by a leader that is
// then killed are retried on the new leader, which rebuilt the producer
// state from what it replicated: the retries get the original offsets and
// nothing is appended twice.
func TestIdempotentRetryToNewLeader(t *testing.T) {
	c, cl, leader := startRF3(t, "failover")
	r := testcluster.DialRaw(t, c.Broker(leader).Addr())
	r.WaitLeading("failover", 0)
	for seq := range int32(5) {
		res, err := r.Produce("failover", 0, -1, testcluster.ProducerBatch(t, 9, 0, seq))
		if err != nil || res.ErrorCode != protocol.NoError || res.BaseOffset != int64(seq) {
			t.Fatalf("seq %d: %+v, %v", seq, res, err)
		}
	}
	c.Kill(leader)
	next := testcluster.WaitLeader(t, cl, "failover", 0, leader, 20*time.Second)
	r = testcluster.DialRaw(t, c.Broker(next).Addr())
	for _, seq := range []int32{4, 2} {
		var res protocol.ProducePartitionResponse
		poll.Until(t, 20*time.Second, fmt.Sprintf("the retry of seq %d is answered", seq), func() error {
			var err error
			res, err = r.Produce("failover", 0, -1, testcluster.ProducerBatch(t, 9, 0, seq))
			if err == nil && res.ErrorCode.Retriable() {
				err = res.ErrorCode // the new leader settling in
			}
			return err
		})
		if res.ErrorCode != protocol.NoError || res.BaseOffset != int64(seq) {
			t.Fatalf("retry of seq %d on the new leader %d: %v %q at %d, want success at %d",
				seq, next, res.ErrorCode, res.ErrorMessage, res.BaseOffset, seq)
		}
	}
	res, err := r.Produce("failover", 0, -1, testcluster.ProducerBatch(t, 9, 0, 5))
	if err != nil || res.ErrorCode != protocol.NoError || res.BaseOffset != 5 {
		t.Fatalf("next batch on the new leader: %+v, %v", res, err)
	}
	if hw, err := r.HighWatermark("failover", 0); err != nil || hw != 6 {
		t.Fatalf("high watermark %d (%v), want 6", hw, err)
	}
}
