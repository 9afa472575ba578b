package broker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// startBroker runs a broker on a loopback port 0 with its data in dir
// (t.TempDir() when dir is ""), closed at the end of the test.
func startBroker(t testing.TB, dir string, mod func(*Config)) *Broker {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := Config{
		ListenAddr: "127.0.0.1:0",
		DataDir:    dir,
		Logger:     zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// testClient speaks the protocol over one TCP connection: requests are
// encoded with the protocol package and responses decoded with it.
type testClient struct {
	t    testing.TB
	nc   net.Conn
	fr   *protocol.FrameReader
	corr int32
	buf  []byte
}

func dial(t testing.TB, addr string) *testClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &testClient{t: t, nc: nc, fr: protocol.NewFrameReader(nc, 0)}
}

// send writes one request (version 0) and returns its correlation id.
func (c *testClient) send(req protocol.Message) int32 {
	c.t.Helper()
	c.corr++
	h := protocol.RequestHeader{Key: req.Key(), CorrelationID: c.corr, ClientID: "test"}
	var err error
	c.buf, err = protocol.AppendRequest(c.buf[:0], &h, req)
	if err != nil {
		c.t.Fatalf("encode %v: %v", req.Key(), err)
	}
	c.write(c.buf)
	return c.corr
}

func (c *testClient) write(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv reads the next response, checks its correlation id and decodes it
// into resp (version 0).
func (c *testClient) recv(corr int32, resp protocol.Message) {
	c.t.Helper()
	if err := c.tryRecv(corr, resp); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testClient) tryRecv(corr int32, resp protocol.Message) error {
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	frame, err := c.fr.Next()
	if err != nil {
		return fmt.Errorf("read %v response: %w", resp.Key(), err)
	}
	got, body, err := protocol.ParseResponse(frame)
	if err != nil {
		return err
	}
	if got != corr {
		return fmt.Errorf("correlation id %d, want %d", got, corr)
	}
	if err := protocol.Decode(resp, body, 0); err != nil {
		return fmt.Errorf("decode %v response: %w", resp.Key(), err)
	}
	return nil
}

// recvRaw reads the next response frame and returns its correlation id
// and body, undecoded.
func (c *testClient) recvRaw() (int32, []byte) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	frame, err := c.fr.Next()
	if err != nil {
		c.t.Fatal(err)
	}
	corr, body, err := protocol.ParseResponse(frame)
	if err != nil {
		c.t.Fatal(err)
	}
	return corr, body
}

// call sends req and decodes the answer into resp.
func (c *testClient) call(req, resp protocol.Message) {
	c.t.Helper()
	c.recv(c.send(req), resp)
}

// createTopic creates a topic and fails the test on any error.
func (c *testClient) createTopic(name string, partitions int32, configs ...protocol.Config) {
	c.t.Helper()
	var resp protocol.CreateTopicsResponse
	c.call(&protocol.CreateTopicsRequest{Topics: []protocol.CreatableTopic{
		{Name: name, Partitions: partitions, ReplicationFactor: 1, Configs: configs}}}, &resp)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != protocol.NoError {
		c.t.Fatalf("create topic %s: %+v", name, resp)
	}
}

// produce sends one partition's record set and returns the partition's
// response.
func (c *testClient) produce(topic string, partition int32, acks int16, records []byte) protocol.ProducePartitionResponse {
	c.t.Helper()
	var resp protocol.ProduceResponse
	c.call(produceRequest(topic, partition, acks, records), &resp)
	if resp.ErrorCode != protocol.NoError || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		c.t.Fatalf("produce: %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

func produceRequest(topic string, partition int32, acks int16, records []byte) *protocol.ProduceRequest {
	return &protocol.ProduceRequest{Acks: acks, TimeoutMs: 10000, Topics: []protocol.ProduceTopic{
		{Name: topic, Partitions: []protocol.ProducePartition{{Partition: partition, Records: records}}}}}
}

func fetchRequest(topic string, partition int32, offset int64, maxWaitMs, minBytes int32) *protocol.FetchRequest {
	return &protocol.FetchRequest{ReplicaID: -1, ReplicaEpoch: -1, MaxWaitMs: maxWaitMs, MinBytes: minBytes, MaxBytes: 50 << 20,
		Topics: []protocol.FetchTopic{{Name: topic, Partitions: []protocol.FetchPartition{
			{Partition: partition, CurrentLeaderEpoch: -1, FetchOffset: offset, LogStartOffset: -1, PartitionMaxBytes: 10 << 20}}}}}
}

// fetch reads one partition from offset without waiting and returns its
// result, with Records copied out of the frame buffer.
func (c *testClient) fetch(topic string, partition int32, offset int64) protocol.FetchPartitionResponse {
	c.t.Helper()
	var resp protocol.FetchResponse
	c.call(fetchRequest(topic, partition, offset, 0, 0), &resp)
	return onlyFetchPartition(c.t, &resp)
}

func onlyFetchPartition(t testing.TB, resp *protocol.FetchResponse) protocol.FetchPartitionResponse {
	t.Helper()
	if resp.ErrorCode != protocol.NoError || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch: %+v", resp)
	}
	p := resp.Topics[0].Partitions[0]
	p.Records = slices.Clone(p.Records)
	return p
}

// listOffset answers one ListOffsets query.
func (c *testClient) listOffset(topic string, partition int32, ts int64) protocol.ListOffsetsPartitionResponse {
	c.t.Helper()
	var resp protocol.ListOffsetsResponse
	c.call(&protocol.ListOffsetsRequest{ReplicaID: -1, Topics: []protocol.ListOffsetsTopic{
		{Name: topic, Partitions: []protocol.ListOffsetsPartition{{Partition: partition, CurrentLeaderEpoch: -1, Timestamp: ts}}}}}, &resp)
	if resp.ErrorCode != protocol.NoError || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t := c.t
		t.Fatalf("list offsets: %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

// baseTS is the timestamp tests count from: recent, since the log rolls a
// segment whose first batch is older than segment.ms.
var baseTS = time.Now().UnixMilli()

// makeBatch builds a batch of n records with values "<tag>-<i>" and
// timestamps baseTS+ts, baseTS+ts+1, ...; the bytes are the caller's.
func makeBatch(t testing.TB, codec record.Codec, tag string, n int, ts int64) []byte {
	t.Helper()
	b := record.NewBuilder(codec)
	for i := range n {
		b.Append(baseTS+ts+int64(i), []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprintf("%s-%d", tag, i)), nil)
	}
	out, err := b.AppendBatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stamped is what a batch sent by a producer looks like in the log: base
// offset and leader epoch stamped, every other byte the same.
func stamped(batch []byte, base int64, epoch int32) []byte {
	out := slices.Clone(batch)
	record.Batch(out).SetBaseOffset(base)
	record.Batch(out).SetLeaderEpoch(epoch)
	return out
}

// wantBytes fails unless got equals want.
func wantBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d bytes; differ (got %x… want %x…)", what, len(got), len(want), got[:min(len(got), 32)], want[:min(len(want), 32)])
	}
}
