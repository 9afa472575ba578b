package broker_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// Cluster checks of the idempotent producer's state (R13, issue 14): RF 3
// in process (testcluster), raw produce requests with producer-stamped
// batches, since the client's idempotent producer is built separately.

// rawConn is one protocol connection to a broker.
type rawConn struct {
	t *testing.T
	c *protocol.Conn
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c := protocol.NewConn(context.Background(), nc, "idempotence-test", 0)
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

// produce sends one batch to partition 0 of topic with acks=all and
// returns the partition's outcome (a transport failure is an error).
func (r *rawConn) produce(topic string, batch []byte) (protocol.ProducePartitionResponse, error) {
	req := &protocol.ProduceRequest{Acks: -1, TimeoutMs: 10000, Topics: []protocol.ProduceTopic{
		{Name: topic, Partitions: []protocol.ProducePartition{{Partition: 0, Records: batch}}}}}
	var resp protocol.ProduceResponse
	if err := r.c.RoundTrip(time.Now().Add(20*time.Second), req, &resp, 0); err != nil {
		return protocol.ProducePartitionResponse{}, err
	}
	if resp.ErrorCode != protocol.NoError || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return protocol.ProducePartitionResponse{}, fmt.Errorf("produce: %+v", resp)
	}
	return resp.Topics[0].Partitions[0], nil
}

// highWatermark is partition 0's high watermark as the broker answers.
func (r *rawConn) highWatermark(topic string) (int64, error) {
	var resp protocol.ListOffsetsResponse
	req := &protocol.ListOffsetsRequest{ReplicaID: -1, Topics: []protocol.ListOffsetsTopic{
		{Name: topic, Partitions: []protocol.ListOffsetsPartition{{Partition: 0, CurrentLeaderEpoch: -1, Timestamp: protocol.LatestTimestamp}}}}}
	if err := r.c.RoundTrip(time.Now().Add(20*time.Second), req, &resp, 0); err != nil {
		return -1, err
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != protocol.NoError {
		return -1, p.ErrorCode
	}
	return p.Offset, nil
}

// waitLeading waits until the broker answers for partition 0 of topic as
// its leader, its high watermark known.
func (r *rawConn) waitLeading(topic string) {
	r.t.Helper()
	poll.Until(r.t, 20*time.Second, "the broker leads "+topic, func() error {
		_, err := r.highWatermark(topic)
		return err
	})
}

func producerBatch(t *testing.T, id int64, seq int32) []byte {
	t.Helper()
	b := record.NewBuilder(record.None)
	b.SetProducer(id, 0, seq)
	b.Append(time.Now().UnixMilli(), nil, fmt.Appendf(nil, "p%d-s%d", id, seq), nil)
	out, err := b.AppendBatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

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
	conns := [2]*rawConn{dialRaw(t, addr), dialRaw(t, addr)}
	conns[0].waitLeading("race")
	const batches = 30
	for seq := range int32(batches) {
		batch := producerBatch(t, 7, seq)
		var wg sync.WaitGroup
		var res [2]protocol.ProducePartitionResponse
		var errs [2]error
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i], errs[i] = conns[i].produce("race", batch)
			}()
		}
		wg.Wait()
		for i := range res {
			if errs[i] != nil || res[i].ErrorCode != protocol.NoError || res[i].BaseOffset != int64(seq) {
				t.Fatalf("seq %d, connection %d: %+v, %v; want success at %d", seq, i, res[i], errs[i], seq)
			}
		}
	}
	if hw, err := conns[0].highWatermark("race"); err != nil || hw != batches {
		t.Fatalf("high watermark %d (%v), want %d: a retry was appended", hw, err, batches)
	}
}

// TestIdempotentRetryToNewLeader: batches acknowledged by a leader that is
// then killed are retried on the new leader, which rebuilt the producer
// state from what it replicated: the retries get the original offsets and
// nothing is appended twice.
func TestIdempotentRetryToNewLeader(t *testing.T) {
	c, cl, leader := startRF3(t, "failover")
	r := dialRaw(t, c.Broker(leader).Addr())
	r.waitLeading("failover")
	for seq := range int32(5) {
		res, err := r.produce("failover", producerBatch(t, 9, seq))
		if err != nil || res.ErrorCode != protocol.NoError || res.BaseOffset != int64(seq) {
			t.Fatalf("seq %d: %+v, %v", seq, res, err)
		}
	}
	c.Kill(leader)
	next := testcluster.WaitLeader(t, cl, "failover", 0, leader, 20*time.Second)
	r = dialRaw(t, c.Broker(next).Addr())
	for _, seq := range []int32{4, 2} {
		var res protocol.ProducePartitionResponse
		poll.Until(t, 20*time.Second, fmt.Sprintf("the retry of seq %d is answered", seq), func() error {
			var err error
			res, err = r.produce("failover", producerBatch(t, 9, seq))
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
	res, err := r.produce("failover", producerBatch(t, 9, 5))
	if err != nil || res.ErrorCode != protocol.NoError || res.BaseOffset != 5 {
		t.Fatalf("next batch on the new leader: %+v, %v", res, err)
	}
	if hw, err := r.highWatermark("failover"); err != nil || hw != 6 {
		t.Fatalf("high watermark %d (%v), want 6", hw, err)
	}
}
