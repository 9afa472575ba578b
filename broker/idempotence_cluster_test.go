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
//
// On a loaded machine the partition's leader can move mid-run (a broker
// fenced when its heartbeats come late): a copy answered with a
// retriable error (NOT_LEADER, NOT_ENOUGH_REPLICAS_AFTER_APPEND, a lost
// connection) is sent again, both copies at once, to the leader then, as
// an idempotent producer would; the answers that count are the definite
// ones, and the high watermark still says nothing was appended twice.
func TestIdempotentRetryRacesOriginal(t *testing.T) {
	c, cl, _ := startRF3(t, "race")
	// dial opens the two connections to the partition's leader, each
	// sending its first request at once (the broker closes a connection
	// that sends none within FirstRequestTimeout, 10 s, and on a loaded
	// machine waiting for the other to be answered can take that long),
	// and looks for the leader again while the one it found does not
	// answer as leader (it moved on).
	var conns [2]*testcluster.RawConn
	dial := func() {
		poll.Until(t, 60*time.Second, "two connections to the leader of race-0", func() error {
			leader := testcluster.WaitLeader(t, cl, "race", 0, -1, 30*time.Second)
			for i := range conns {
				conns[i] = testcluster.DialRaw(t, c.Broker(leader).Addr())
				if _, err := conns[i].HighWatermark("race", 0); err != nil {
					return fmt.Errorf("broker %d: %w", leader, err)
				}
			}
			return nil
		})
	}
	dial()
	const batches = 30
	moves := 0
	for seq := range int32(batches) {
		batch := testcluster.ProducerBatch(t, 7, 0, seq)
		var res [2]protocol.ProducePartitionResponse
		poll.Until(t, 90*time.Second, fmt.Sprintf("definite answers to both copies of seq %d", seq), func() error {
			var errs [2]error
			var wg sync.WaitGroup
			for i := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res[i], errs[i] = conns[i].Produce("race", 0, -1, batch)
				}()
			}
			wg.Wait()
			for i := range res {
				if errs[i] == nil && !res[i].ErrorCode.Retriable() {
					continue
				}
				// Both copies again, to the leader now.
				moves++
				dial()
				return fmt.Errorf("connection %d: %v %q, %v", i, res[i].ErrorCode, res[i].ErrorMessage, errs[i])
			}
			return nil
		})
		for i := range res {
			if res[i].ErrorCode != protocol.NoError || res[i].BaseOffset != int64(seq) {
				t.Fatalf("seq %d, connection %d: %+v; want success at %d", seq, i, res[i], seq)
			}
		}
	}
	if moves > 0 {
		t.Logf("%d rounds sent again after a retriable answer", moves)
	}
	var hw int64
	poll.Until(t, 60*time.Second, "the leader's high watermark", func() error {
		var err error
		if hw, err = conns[0].HighWatermark("race", 0); err != nil {
			dial()
		}
		return err
	})
	if hw != batches {
		t.Fatalf("high watermark %d, want %d: a retry was appended", hw, batches)
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
