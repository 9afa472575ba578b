package broker

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"defaults", func(*Config) {}, ""},
		{"listen", func(c *Config) { c.ListenAddr = "nope" }, "ListenAddr"},
		{"frame", func(c *Config) { c.MaxFrameBytes = 10 }, "MaxFrameBytes"},
		{"budget below frame", func(c *Config) { c.MemoryBudget = 1 << 20; c.MaxFrameBytes = 2 << 20 }, "MemoryBudget"},
		{"conn bytes", func(c *Config) { c.MaxInflightBytesPerConn = 1 << 10 }, "MaxInflightBytesPerConn"},
		{"connections", func(c *Config) { c.MaxConnections = -1 }, "MaxConnections"},
		{"inflight", func(c *Config) { c.MaxInflightPerConn = -3 }, "MaxInflightPerConn"},
		{"timeout", func(c *Config) { c.FrameReadTimeout = -time.Second }, "FrameReadTimeout"},
		{"raft addr", func(c *Config) { c.RaftAddr = "nope" }, "RaftAddr"},
		{"voters", func(c *Config) { c.Voters = "1@a:1,x" }, "Voters"},
		{"join", func(c *Config) { c.Join = "nope" }, "Join"},
		{"non-voter without join", func(c *Config) { c.Voters = "2@h:1"; c.BrokerID = 1 }, "Join"},
		{"raft timeout", func(c *Config) { c.RaftHeartbeatTimeout = -1 }, "RaftHeartbeatTimeout"},
		{"producer expiration", func(c *Config) { c.ProducerIDExpiration = -time.Second }, "ProducerIDExpiration"},
		{"producer max", func(c *Config) { c.ProducerIDMax = -1 }, "ProducerIDMax"},
		{"topic default key", func(c *Config) { c.TopicDefaults = map[string]string{"nope": "1"} }, "TopicDefaults"},
		{"topic default combo", func(c *Config) {
			c.TopicDefaults = map[string]string{"segment.bytes": "4096", "max.message.bytes": "8192"}
		}, "TopicDefaults"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			tt.mod(&c)
			err := c.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !contains(err.Error(), tt.field) {
				t.Fatalf("Validate = %v, want an ErrConfig naming %s", err, tt.field)
			}
		})
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

func TestProduceFetchRoundTrip(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("orders", 2)

	b1 := makeBatch(t, record.None, "a", 3, 1000)
	b2 := makeBatch(t, record.Zstd, "b", 5, 2000)
	b3 := makeBatch(t, record.None, "c", 1, 3000)
	if r := c.produce("orders", 1, protocol.AcksLeader, b1); r.ErrorCode != protocol.NoError || r.BaseOffset != 0 {
		t.Fatalf("produce 1: %+v", r)
	}
	// Two batches in one record set.
	if r := c.produce("orders", 1, protocol.AcksAll, append(slices.Clone(b2), b3...)); r.ErrorCode != protocol.NoError || r.BaseOffset != 3 {
		t.Fatalf("produce 2: %+v", r)
	}
	want := append(append(stamped(b1, 0, 0), stamped(b2, 3, 0)...), stamped(b3, 8, 0)...)
	got := c.fetch("orders", 1, 0)
	if got.ErrorCode != protocol.NoError || got.HighWatermark != 9 || got.LogStartOffset != 0 {
		t.Fatalf("fetch: %+v", got)
	}
	wantBytes(t, "fetched records", got.Records, want)

	// From the middle of the log: the batch holding the offset on.
	got = c.fetch("orders", 1, 4)
	wantBytes(t, "fetch at 4", got.Records, want[len(b1):])
	// At the end: nothing, no error.
	if got = c.fetch("orders", 1, 9); got.ErrorCode != protocol.NoError || len(got.Records) != 0 {
		t.Fatalf("fetch at end: %+v", got)
	}
	// The other partition is empty.
	if got = c.fetch("orders", 0, 0); got.ErrorCode != protocol.NoError || len(got.Records) != 0 || got.HighWatermark != 0 {
		t.Fatalf("fetch partition 0: %+v", got)
	}
	// Outside [start, end]: OFFSET_OUT_OF_RANGE.
	for _, off := range []int64{10, -1} {
		if got = c.fetch("orders", 1, off); got.ErrorCode != protocol.ErrOffsetOutOfRange {
			t.Fatalf("fetch at %d: %v, want OFFSET_OUT_OF_RANGE", off, got.ErrorCode)
		}
	}
	// Unknown topic and partition.
	if got = c.fetch("nope", 0, 0); got.ErrorCode != protocol.ErrUnknownTopicOrPartition {
		t.Fatalf("fetch unknown topic: %v", got.ErrorCode)
	}
	if r := c.produce("orders", 7, protocol.AcksLeader, b1); r.ErrorCode != protocol.ErrUnknownTopicOrPartition {
		t.Fatalf("produce unknown partition: %v", r.ErrorCode)
	}
}

func TestFetchSeveralPartitionsAndLimits(t *testing.T) {
	for _, mode := range []fetchWriteMode{writeMapped, writeSendfile} {
		t.Run(map[fetchWriteMode]string{writeMapped: "mapped", writeSendfile: "sendfile"}[mode], func(t *testing.T) {
			b := startBroker(t, "", nil)
			b.fetchWrite = mode
			c := dial(t, b.Addr())
			c.createTopic("multi", 3)
			var want [3][]byte
			for p := range int32(3) {
				for i := range 3 {
					batch := makeBatch(t, record.None, "p", 10+int(p), int64(i))
					r := c.produce("multi", p, protocol.AcksLeader, batch)
					want[p] = append(want[p], stamped(batch, r.BaseOffset, 0)...)
				}
			}
			req := &protocol.FetchRequest{ReplicaID: -1, ReplicaEpoch: -1, MaxBytes: 1 << 20,
				Topics: []protocol.FetchTopic{{Name: "multi", Partitions: []protocol.FetchPartition{
					{Partition: 2, PartitionMaxBytes: 1 << 20},
					{Partition: 0, PartitionMaxBytes: 1 << 20},
					{Partition: 1, PartitionMaxBytes: 1}, // at least one batch
					{Partition: 9, PartitionMaxBytes: 1 << 20},
				}}}}
			var resp protocol.FetchResponse
			c.call(req, &resp)
			ps := resp.Topics[0].Partitions
			if len(ps) != 4 {
				t.Fatalf("%d partitions", len(ps))
			}
			wantBytes(t, "partition 2", ps[0].Records, want[2])
			wantBytes(t, "partition 0", ps[1].Records, want[0])
			first, _, err := record.NextBatch(want[1], 0)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, "partition 1 (one batch)", ps[2].Records, first)
			if ps[3].ErrorCode != protocol.ErrUnknownTopicOrPartition {
				t.Fatalf("partition 9: %v", ps[3].ErrorCode)
			}
		})
	}
}

func TestListOffsets(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("lo", 1)
	c.produce("lo", 0, protocol.AcksLeader, makeBatch(t, record.None, "x", 4, 100)) // offsets 0-3, ts 100-103
	c.produce("lo", 0, protocol.AcksLeader, makeBatch(t, record.Gzip, "y", 4, 200)) // offsets 4-7, ts 200-203
	tests := []struct {
		ts         int64
		off, recTS int64
	}{
		{protocol.EarliestTimestamp, 0, -1},
		{protocol.LatestTimestamp, 8, -1},
		{0, 0, 100},
		{102, 2, 102},
		{150, 4, 200},
		{203, 7, 203},
		{204, -1, -1},
	}
	for _, tt := range tests {
		ts, recTS := tt.ts, tt.recTS
		if ts >= 0 {
			ts += baseTS
		}
		if recTS >= 0 {
			recTS += baseTS
		}
		r := c.listOffset("lo", 0, ts)
		if r.ErrorCode != protocol.NoError || r.Offset != tt.off || r.Timestamp != recTS {
			t.Errorf("timestamp %d: %+v, want offset %d timestamp %d", tt.ts, r, tt.off, tt.recTS)
		}
	}
	if r := c.listOffset("lo", 0, -7); r.ErrorCode != protocol.ErrInvalidRequest {
		t.Errorf("timestamp -7: %v", r.ErrorCode)
	}
	if r := c.listOffset("none", 0, -1); r.ErrorCode != protocol.ErrUnknownTopicOrPartition {
		t.Errorf("unknown topic: %v", r.ErrorCode)
	}
}

// A long-poll Fetch answers as soon as a produce lands, and does not hold
// up the connection's handler: the produce pipelined behind it on the
// same connection is appended while the fetch waits, and the responses
// still come back in request order.
func TestLongPollFetchPipelined(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("lp", 1)
	batch := makeBatch(t, record.None, "v", 2, 1)
	fetchCorr := c.send(fetchRequest("lp", 0, 0, 10000, 1))
	produceCorr := c.send(produceRequest("lp", 0, protocol.AcksLeader, batch))
	var fr protocol.FetchResponse
	c.recv(fetchCorr, &fr)
	got := onlyFetchPartition(t, &fr)
	wantBytes(t, "long-poll records", got.Records, stamped(batch, 0, 0))
	var pr protocol.ProduceResponse
	c.recv(produceCorr, &pr)
	if pr.Topics[0].Partitions[0].ErrorCode != protocol.NoError {
		t.Fatalf("produce: %+v", pr)
	}
}

// A long-poll on one connection answers when another connection produces.
func TestLongPollFetchAcrossConnections(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.TopicDefaults = map[string]string{"fsync": "always"} })
	consumer, producer := dial(t, b.Addr()), dial(t, b.Addr())
	producer.createTopic("lp2", 1)
	corr := consumer.send(fetchRequest("lp2", 0, 0, 10000, 1))
	polled := make(chan protocol.FetchPartitionResponse, 1)
	errs := make(chan error, 1)
	go func() {
		var fr protocol.FetchResponse
		if err := consumer.tryRecv(corr, &fr); err != nil {
			errs <- err
			return
		}
		p := fr.Topics[0].Partitions[0]
		p.Records = slices.Clone(p.Records)
		polled <- p
	}()
	// Wait until the fetch is parked as a long-poll, then produce.
	poll.Until(t, 10*time.Second, "the fetch to wait", func() bool {
		p := b.parts.get("lp2", 0)
		p.wmu.Lock()
		defer p.wmu.Unlock()
		return len(p.waiters) == 1
	})
	select {
	case p := <-polled:
		t.Fatalf("fetch answered before the produce: %+v", p)
	default:
	}
	batch := makeBatch(t, record.None, "w", 3, 5)
	produced := time.Now()
	producer.produce("lp2", 0, protocol.AcksAll, batch)
	select {
	case p := <-polled:
		wantBytes(t, "long-poll records", p.Records, stamped(batch, 0, 0))
		if waited := time.Since(produced); waited > 5*time.Second {
			t.Fatalf("fetch answered %v after the produce", waited)
		}
	case err := <-errs:
		t.Fatal(err)
	}
}

// A long-poll that gets no data answers at its max wait, empty.
func TestLongPollFetchExpires(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("idle", 1)
	start := time.Now()
	var fr protocol.FetchResponse
	c.call(fetchRequest("idle", 0, 0, 50, 1), &fr)
	if p := onlyFetchPartition(t, &fr); p.ErrorCode != protocol.NoError || len(p.Records) != 0 {
		t.Fatalf("expired fetch: %+v", p)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatalf("answered after %v, before the max wait", time.Since(start))
	}
}

func TestAcksZero(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("fire", 1)
	batch := makeBatch(t, record.None, "z", 2, 1)
	c.send(produceRequest("fire", 0, protocol.AcksNone, batch))
	// The next frame on the connection answers the Metadata request: the
	// produce got no response at all.
	var md protocol.MetadataResponse
	c.call(&protocol.MetadataRequest{Topics: []string{"fire"}}, &md)
	got := c.fetch("fire", 0, 0)
	wantBytes(t, "acks=0 records", got.Records, stamped(batch, 0, 0))
}

func TestProduceRefusals(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("strict", 1, protocol.Config{Name: "max.message.bytes", Value: "1024"})
	good := makeBatch(t, record.None, "g", 2, 1)
	corrupt := slices.Clone(good)
	corrupt[len(corrupt)-1] ^= 0xff // CRC no longer matches
	big := makeBatch(t, record.None, string(make([]byte, 2000)), 1, 1)
	tests := []struct {
		name    string
		acks    int16
		records []byte
		code    protocol.ErrorCode
	}{
		{"corrupt after a good batch", protocol.AcksLeader, append(slices.Clone(good), corrupt...), protocol.ErrCorruptMessage},
		{"truncated batch", protocol.AcksLeader, good[:len(good)-3], protocol.ErrCorruptMessage},
		{"garbage", protocol.AcksLeader, []byte("not a batch at all, not even close to one......................"), protocol.ErrCorruptMessage},
		{"empty", protocol.AcksLeader, []byte{}, protocol.ErrCorruptMessage},
		{"too large", protocol.AcksLeader, big, protocol.ErrMessageTooLarge},
		{"bad acks", 2, good, protocol.ErrInvalidRequiredAcks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.produce("strict", 0, tt.acks, tt.records)
			if r.ErrorCode != tt.code {
				t.Fatalf("code %v, want %v (%s)", r.ErrorCode, tt.code, r.ErrorMessage)
			}
			if end := c.listOffset("strict", 0, protocol.LatestTimestamp).Offset; end != 0 {
				t.Fatalf("end offset %d after a refused produce: something was appended", end)
			}
		})
	}
}

func TestRestartKeepsTopicsAndData(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, nil)
	c := dial(t, b.Addr())
	c.createTopic("durable", 2, protocol.Config{Name: "retention.ms", Value: "-1"})
	batch := makeBatch(t, record.Snappy, "d", 4, 7)
	c.produce("durable", 1, protocol.AcksAll, batch)
	c.nc.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "durable-1", ".clean-shutdown")); err != nil {
		t.Fatalf("no clean-shutdown marker: %v", err)
	}

	b2 := startBroker(t, dir, nil)
	c2 := dial(t, b2.Addr())
	var md protocol.MetadataResponse
	c2.call(&protocol.MetadataRequest{AllTopics: true}, &md)
	if len(md.Topics) != 1 || md.Topics[0].Name != "durable" || len(md.Topics[0].Partitions) != 2 {
		t.Fatalf("metadata after restart: %+v", md.Topics)
	}
	wantBytes(t, "records after restart", c2.fetch("durable", 1, 0).Records, stamped(batch, 0, 0))
	if r := c2.produce("durable", 1, protocol.AcksLeader, batch); r.BaseOffset != 4 {
		t.Fatalf("produce after restart at %d, want 4", r.BaseOffset)
	}
}

func TestFsyncAlwaysTopic(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("synced", 1, protocol.Config{Name: "fsync", Value: "always"})
	batch := makeBatch(t, record.None, "s", 2, 1)
	r := c.produce("synced", 0, protocol.AcksAll, batch)
	p := b.parts.get("synced", 0)
	if synced := p.log.SyncedOffset(); synced < r.BaseOffset+2 {
		t.Fatalf("acknowledged at %d but synced only below %d", r.BaseOffset, synced)
	}
	got := c.fetch("synced", 0, 0)
	if got.HighWatermark != 2 {
		t.Fatalf("high watermark %d, want 2", got.HighWatermark)
	}
	wantBytes(t, "records", got.Records, stamped(batch, 0, 0))
}

func TestUnsupportedAPI(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	tests := []struct {
		name         string
		key, version int16
	}{
		{"unknown key", 99, 0},
		{"negative key", -5, 0},
		{"unknown version", int16(protocol.Produce), 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.corr++
			h := protocol.RequestHeader{Key: protocol.APIKey(tt.key), Version: tt.version, CorrelationID: c.corr}
			frame := h.Append([]byte{0, 0, 0, 0})
			frame = append(frame, 1, 2, 3)
			be32(frame, len(frame)-4)
			c.write(frame)
			var resp protocol.ProduceResponse // any response type reads the uniform error
			c.recv(c.corr, &resp)
			if resp.ErrorCode != protocol.ErrUnsupportedVersion {
				t.Fatalf("code %v, want UNSUPPORTED_VERSION", resp.ErrorCode)
			}
		})
	}
	// ApiVersions of an unknown version still lists the versions.
	c.corr++
	h := protocol.RequestHeader{Key: protocol.APIVersions, Version: 3, CorrelationID: c.corr}
	frame := h.Append([]byte{0, 0, 0, 0})
	be32(frame, len(frame)-4)
	c.write(frame)
	var av protocol.APIVersionsResponse
	c.recv(c.corr, &av)
	if av.ErrorCode != protocol.ErrUnsupportedVersion || len(av.APIs) == 0 {
		t.Fatalf("ApiVersions v3: %+v", av)
	}
	// The connection still works.
	c.call(&protocol.APIVersionsRequest{}, &av)
	if av.ErrorCode != protocol.NoError || len(av.APIs) != len(protocol.SupportedAPIs()) {
		t.Fatalf("ApiVersions: %+v", av)
	}
}

func be32(b []byte, n int) {
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

func TestHandlerPanicIsAnswered(t *testing.T) {
	b := startBroker(t, "", nil)
	b.testHook = func(k protocol.APIKey) {
		if k == protocol.Metadata {
			panic("boom")
		}
	}
	c := dial(t, b.Addr())
	var md protocol.MetadataResponse
	c.call(&protocol.MetadataRequest{AllTopics: true}, &md)
	if md.ErrorCode != protocol.ErrUnknownServerError {
		t.Fatalf("code %v, want UNKNOWN_SERVER_ERROR", md.ErrorCode)
	}
	var av protocol.APIVersionsResponse
	c.call(&protocol.APIVersionsRequest{}, &av)
	if av.ErrorCode != protocol.NoError {
		t.Fatalf("after the panic: %+v", av)
	}
}

func TestMetadata(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("m", 3)
	var md protocol.MetadataResponse
	c.call(&protocol.MetadataRequest{Topics: []string{"m", "missing", "bad/name"}}, &md)
	if len(md.Brokers) != 1 || md.Brokers[0].ID != 1 || md.ControllerID != 1 || md.ClusterID != DefaultClusterID {
		t.Fatalf("brokers: %+v controller %d cluster %q", md.Brokers, md.ControllerID, md.ClusterID)
	}
	if got := md.Brokers[0]; got.Host != "127.0.0.1" || got.Port == 0 {
		t.Fatalf("broker address %+v, want %s", got, b.Addr())
	}
	if len(md.Topics) != 3 {
		t.Fatalf("topics: %+v", md.Topics)
	}
	m := md.Topics[0]
	if m.ErrorCode != protocol.NoError || len(m.Partitions) != 3 {
		t.Fatalf("topic m: %+v", m)
	}
	for i, p := range m.Partitions {
		if p.Partition != int32(i) || p.Leader != 1 || !slices.Equal(p.Replicas, []int32{1}) || !slices.Equal(p.ISR, []int32{1}) {
			t.Fatalf("partition %d: %+v", i, p)
		}
	}
	if md.Topics[1].ErrorCode != protocol.ErrUnknownTopicOrPartition || md.Topics[2].ErrorCode != protocol.ErrInvalidTopic {
		t.Fatalf("missing/bad: %v %v", md.Topics[1].ErrorCode, md.Topics[2].ErrorCode)
	}
}
