package testcluster

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// RawConn is one protocol connection to one broker, for the requests a
// test builds itself rather than through the client: record sets with
// producer-stamped batches (the broker's idempotence checks), or a
// request sent to a chosen broker whatever the metadata says. It is not
// safe for concurrent use; use one per goroutine.
type RawConn struct {
	t testing.TB
	c *protocol.Conn
}

// DialRaw connects to the broker at addr (a Broker's Addr); the
// connection is closed by t.Cleanup.
func DialRaw(t testing.TB, addr string) *RawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("testcluster: dial %s: %v", addr, err)
	}
	c := protocol.NewConn(context.Background(), nc, "testcluster-raw", 0)
	t.Cleanup(func() { c.Close() })
	return &RawConn{t: t, c: c}
}

// Produce sends one partition's record set with acks and returns the
// partition's outcome; a transport failure or a request-level error is
// the error.
func (r *RawConn) Produce(topic string, partition int32, acks int16, records []byte) (protocol.ProducePartitionResponse, error) {
	req := &protocol.ProduceRequest{Acks: acks, TimeoutMs: 10000, Topics: []protocol.ProduceTopic{
		{Name: topic, Partitions: []protocol.ProducePartition{{Partition: partition, Records: records}}}}}
	var resp protocol.ProduceResponse
	if err := r.c.RoundTrip(time.Now().Add(20*time.Second), req, &resp, 0); err != nil {
		return protocol.ProducePartitionResponse{}, err
	}
	if resp.ErrorCode != protocol.NoError || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return protocol.ProducePartitionResponse{}, fmt.Errorf("produce: %+v", resp)
	}
	return resp.Topics[0].Partitions[0], nil
}

// HighWatermark is the partition's high watermark as the broker answers
// ListOffsets (latest); an error code is the error.
func (r *RawConn) HighWatermark(topic string, partition int32) (int64, error) {
	var resp protocol.ListOffsetsResponse
	req := &protocol.ListOffsetsRequest{ReplicaID: -1, Topics: []protocol.ListOffsetsTopic{
		{Name: topic, Partitions: []protocol.ListOffsetsPartition{{Partition: partition, CurrentLeaderEpoch: -1, Timestamp: protocol.LatestTimestamp}}}}}
	if err := r.c.RoundTrip(time.Now().Add(20*time.Second), req, &resp, 0); err != nil {
		return -1, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return -1, fmt.Errorf("list offsets: %+v", resp)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != protocol.NoError {
		return -1, p.ErrorCode
	}
	return p.Offset, nil
}

// WaitLeading waits until the broker answers for the partition as its
// leader with its high watermark known (a new leader's is known once its
// followers reported in its epoch).
func (r *RawConn) WaitLeading(topic string, partition int32) {
	r.t.Helper()
	poll.Until(r.t, 20*time.Second, fmt.Sprintf("the broker leads %s-%d", topic, partition), func() error {
		_, err := r.HighWatermark(topic, partition)
		return err
	})
}

// ProducerBatch is a one-record batch as an idempotent producer stamps
// it: producer id, epoch and sequence seq, value "p<id>-e<epoch>-s<seq>".
func ProducerBatch(t testing.TB, id int64, epoch int16, seq int32) []byte {
	t.Helper()
	b := record.NewBuilder(record.None)
	b.SetProducer(id, epoch, seq)
	b.Append(time.Now().UnixMilli(), nil, fmt.Appendf(nil, "p%d-e%d-s%d", id, epoch, seq), nil)
	out, err := b.AppendBatch(nil)
	if err != nil {
		t.Fatalf("testcluster: build batch: %v", err)
	}
	return out
}
