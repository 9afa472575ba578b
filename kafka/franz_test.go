package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/poll"
)

// TestFranzProduceConsumeCodecs produces idempotently (kgo's default)
// with every codec and acks setting, and consumes every record back, in
// order, with keys, values and headers intact.
func TestFranzProduceConsumeCodecs(t *testing.T) {
	ctx := testContext(t)
	_, addr := single(t, nil)
	adm := kadm.NewClient(newClient(t, []string{addr}))
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()},
	}
	for _, c := range codecs {
		for _, acks := range []struct {
			name string
			acks kgo.Acks
		}{{"all", kgo.AllISRAcks()}, {"leader", kgo.LeaderAck()}} {
			t.Run(c.name+"/acks="+acks.name, func(t *testing.T) {
				topic := "codec-" + c.name + "-" + acks.name
				createTopic(t, ctx, adm, topic, 2, 1, nil)
				opts := []kgo.Opt{kgo.ProducerBatchCompression(c.codec), kgo.RequiredAcks(acks.acks), kgo.DefaultProduceTopic(topic)}
				if acks.name != "all" {
					opts = append(opts, kgo.DisableIdempotentWrite())
				}
				pr := newClient(t, []string{addr}, opts...)
				const n = 500
				var recs []*kgo.Record
				for i := range n {
					recs = append(recs, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%7)), Value: bytes.Repeat([]byte{byte('a' + i%26)}, 100),
						Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}}})
				}
				if err := pr.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					t.Fatal(err)
				}
				got := consumeN(t, addr, topic, n)
				seen := map[string]bool{}
				for _, r := range got {
					i := string(r.Headers[0].Value)
					if seen[i] {
						t.Fatalf("record %s consumed twice", i)
					}
					seen[i] = true
					k, _ := strconv.Atoi(i)
					if string(r.Key) != "k"+strconv.Itoa(k%7) || len(r.Value) != 100 || r.Value[0] != byte('a'+k%26) {
						t.Fatalf("record %s: key %q value %q", i, r.Key, r.Value[:min(8, len(r.Value))])
					}
				}
			})
		}
	}
}

// consumeN reads n records of topic from the start and fails the test if
// they do not come within 30 s.
func consumeN(t testing.TB, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	ctx := testContext(t.(*testing.T))
	cl := newClient(t, []string{addr}, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	deadline := time.Now().Add(30 * time.Second)
	var got []*kgo.Record
	for len(got) < n && time.Now().Before(deadline) {
		fs := cl.PollRecords(ctx, n-len(got))
		for _, e := range fs.Errors() {
			t.Fatalf("consume %s[%d]: %v", e.Topic, e.Partition, e.Err)
		}
		got = append(got, fs.Records()...)
	}
	if len(got) != n {
		t.Fatalf("consumed %d records of %s, want %d", len(got), topic, n)
	}
	return got
}

// TestFranzMessageTooLarge: a batch above the topic's max.message.bytes
// is refused with MESSAGE_TOO_LARGE; one below it goes through.
func TestFranzMessageTooLarge(t *testing.T) {
	ctx := testContext(t)
	_, addr := single(t, nil)
	adm := kadm.NewClient(newClient(t, []string{addr}))
	max := "20000"
	createTopic(t, ctx, adm, "big", 1, 1, map[string]*string{"max.message.bytes": &max})
	pr := newClient(t, []string{addr}, kgo.DefaultProduceTopic("big"), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.RecordRetries(2))
	err := pr.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 30000)}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("30000-byte record against max.message.bytes 20000: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := pr.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 15000)}).FirstErr(); err != nil {
		t.Fatalf("15000-byte record: %v", err)
	}
	got := consumeN(t, addr, "big", 1)
	if len(got[0].Value) != 15000 {
		t.Fatalf("consumed %d bytes", len(got[0].Value))
	}
}

// TestFranzAdmin round-trips topic admin through kadm: create with
// configs, describe, alter (incremental and not), list offsets, delete.
func TestFranzAdmin(t *testing.T) {
	ctx := testContext(t)
	_, addr := single(t, nil)
	cl := newClient(t, []string{addr})
	adm := kadm.NewClient(cl)
	ret := "3600000"
	createTopic(t, ctx, adm, "adm", 3, 1, map[string]*string{"retention.ms": &ret})
	if res, err := adm.CreateTopic(ctx, 1, 1, nil, "adm"); err == nil && !errors.Is(res.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("second create: %v", res.Err)
	}
	details, err := adm.ListTopics(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	if d := details["adm"]; d.Err != nil || len(d.Partitions) != 3 || d.Partitions[0].Leader != 1 {
		t.Fatalf("metadata: %+v", d)
	}
	value := func(key string) (string, kmsg.ConfigSource) {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, "adm")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On("adm", nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("describe configs: %v %v", err, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == key {
				return c.MaybeValue(), c.Source
			}
		}
		t.Fatalf("describe configs: no %s in %+v", key, rc.Configs)
		return "", 0
	}
	if v, src := value("retention.ms"); v != ret || src != 1 { // DYNAMIC_TOPIC_CONFIG
		t.Fatalf("retention.ms = %s (source %v)", v, src)
	}
	seg := "10485760"
	if res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: &seg}}, "adm"); err != nil || res[0].Err != nil {
		t.Fatalf("incremental alter: %v %+v", err, res)
	}
	if v, _ := value("segment.bytes"); v != seg {
		t.Fatalf("segment.bytes = %s after incremental alter", v)
	}
	if v, _ := value("retention.ms"); v != ret {
		t.Fatalf("retention.ms = %s after an incremental alter of another key", v)
	}
	// Non-incremental: what is not named goes back to its default.
	if res, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: &seg}}, "adm"); err != nil || res[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, res)
	}
	if _, src := value("retention.ms"); src == 1 {
		t.Fatal("retention.ms still set on the topic after a non-incremental alter without it")
	}
	bad := "-5"
	if res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: &bad}}, "adm"); err != nil || !errors.Is(res[0].Err, kerr.InvalidConfig) {
		t.Fatalf("bad value: %v %+v", err, res)
	}

	pr := newClient(t, []string{addr}, kgo.DefaultProduceTopic("adm"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	before := time.Now().Add(-time.Second)
	for i := range 10 {
		if err := pr.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("adm", 1); o.Offset != 10 || o.Err != nil {
		t.Fatalf("end offset of partition 1: %+v", o)
	}
	starts, err := adm.ListStartOffsets(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("adm", 1); o.Offset != 0 || o.Err != nil {
		t.Fatalf("start offset of partition 1: %+v", o)
	}
	byTime, err := adm.ListOffsetsAfterMilli(ctx, before.UnixMilli(), "adm")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := byTime.Lookup("adm", 1); o.Offset != 0 || o.Err != nil {
		t.Fatalf("offset after %v of partition 1: %+v", before, o)
	}

	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Cluster != "sluice" || len(meta.Brokers) != 1 || meta.Brokers[0].NodeID != 1 || meta.Brokers[0].Port == 0 {
		t.Fatalf("broker metadata: %+v", meta)
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	cluster, err := dc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if cluster.ErrorCode != 0 || cluster.ClusterID != "sluice" || len(cluster.Brokers) != 1 || cluster.Brokers[0].Port == 0 {
		t.Fatalf("describe cluster: %+v", cluster)
	}

	if res, err := adm.DeleteTopics(ctx, "adm"); err != nil || res["adm"].Err != nil {
		t.Fatalf("delete: %v %+v", err, res)
	}
	// kgo caches metadata answers for MetadataMinAge: ask until fresh.
	poll.Until(t, 10*time.Second, "topic gone from metadata", func() error {
		details, err := adm.ListTopics(ctx, "adm")
		if err != nil {
			return err
		}
		if d, ok := details["adm"]; ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("after delete: %+v", d)
		}
		return nil
	})
}

// TestFetchLeaderEpochs: a consumer's current leader epoch (Fetch v9+) is
// checked, and OffsetForLeaderEpoch answers where an epoch ends: what
// Kafka clients use to detect a truncation after a leader change.
func TestFetchLeaderEpochs(t *testing.T) {
	ctx := testContext(t)
	_, addr := single(t, nil)
	cl := newClient(t, []string{addr}, kgo.DefaultProduceTopic("ep"))
	createTopic(t, ctx, kadm.NewClient(cl), "ep", 1, 1, nil)
	for range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(epoch int32) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		req.MaxBytes, req.MinBytes, req.MaxWaitMillis = 1<<20, 1, 0
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition, p.FetchOffset, p.PartitionMaxBytes, p.CurrentLeaderEpoch = 0, 0, 1<<20, epoch
		req.Topics = []kmsg.FetchRequestTopic{{Topic: "ep", Partitions: []kmsg.FetchRequestTopicPartition{p}}}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0]
	}
	if p := fetch(0); p.ErrorCode != 0 || p.HighWatermark != 3 || len(p.RecordBatches) == 0 {
		t.Fatalf("fetch in epoch 0: error %d, high watermark %d, %d bytes", p.ErrorCode, p.HighWatermark, len(p.RecordBatches))
	}
	if p := fetch(-1); p.ErrorCode != 0 {
		t.Fatalf("fetch without an epoch: error %d", p.ErrorCode)
	}
	if p := fetch(4); p.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Fatalf("fetch in epoch 4 (ahead of the leader's 0): error %d, want UNKNOWN_LEADER_EPOCH", p.ErrorCode)
	}

	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(3)
	p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	p.Partition, p.CurrentLeaderEpoch, p.LeaderEpoch = 0, 0, 0
	req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "ep", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{p}}}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if rp := resp.Topics[0].Partitions[0]; rp.ErrorCode != 0 || rp.LeaderEpoch != 0 || rp.EndOffset != 3 {
		t.Fatalf("OffsetForLeaderEpoch: %+v", rp)
	}
}

// TestTransactionsRefused: a transactional producer gets a clear,
// non-retriable error, not a hang.
func TestTransactionsRefused(t *testing.T) {
	ctx := testContext(t)
	_, addr := single(t, nil)
	// Raw: kgo would send these to the (missing) transaction coordinator.
	c := dialRaw(t, addr)
	req := kmsg.NewPtrInitProducerIDRequest()
	req.SetVersion(1)
	id := "tx"
	req.TransactionalID = &id
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.SetVersion(1)
	if err := resp.ReadFrom(c.request(req, 1)); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.InvalidRequest.Code || resp.ProducerID != -1 {
		t.Fatalf("InitProducerId with a transactional id: %+v", resp)
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(2)
	fc.CoordinatorKey, fc.CoordinatorType = "tx", 1
	fresp := kmsg.NewPtrFindCoordinatorResponse()
	fresp.SetVersion(2)
	if err := fresp.ReadFrom(c.request(fc, 2)); err != nil {
		t.Fatal(err)
	}
	if fresp.ErrorCode != kerr.InvalidRequest.Code || fresp.ErrorMessage == nil {
		t.Fatalf("FindCoordinator: %+v", fresp)
	}
	tx := newClient(t, []string{addr}, kgo.TransactionalID("tx"), kgo.DefaultProduceTopic("x"))
	err := tx.BeginTransaction()
	if err == nil {
		err = tx.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr()
	}
	if !errors.Is(err, kerr.InvalidRequest) {
		t.Fatalf("transactional kgo producer: %v, want INVALID_REQUEST", err)
	}
}

// TestAcksZeroAndLongPoll: an acks=0 produce gets no answer but is
// appended, and a waiting fetch returns as soon as it is.
func TestAcksZeroAndLongPoll(t *testing.T) {
	ctx := testContext(t)
	_, addr := single(t, nil)
	createTopic(t, ctx, kadm.NewClient(newClient(t, []string{addr})), "lp", 1, 1, nil)
	consumer := newClient(t, []string{addr}, kgo.ConsumeTopics("lp"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(10*time.Second))
	got := make(chan time.Time, 1)
	go func() {
		fs := consumer.PollFetches(ctx)
		if len(fs.Records()) > 0 {
			got <- time.Now()
		}
		close(got)
	}()
	// Let the consumer's fetch reach the broker and park.
	poll.Until(t, 10*time.Second, "consumer fetching", func() bool {
		return len(consumer.GetConsumeTopics()) == 1
	})
	pr := newClient(t, []string{addr}, kgo.DefaultProduceTopic("lp"), kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	sent := time.Now()
	if err := pr.ProduceSync(ctx, &kgo.Record{Value: []byte("zero")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case at, ok := <-got:
		if !ok {
			t.Fatal("the fetch returned no record")
		}
		if d := at.Sub(sent); d > 5*time.Second {
			t.Fatalf("long-poll answered %v after the produce", d)
		}
	case <-ctx.Done():
		t.Fatal(context.Cause(ctx))
	}
}

// TestFranzCreatePartitions grows a topic through kadm (CreatePartitions,
// the same core call as sluice topic alter): the new partitions show in
// the metadata; fewer than the topic has is INVALID_PARTITIONS.
func TestFranzCreatePartitions(t *testing.T) {
	ctx := testContext(t)
	_, addr := single(t, nil)
	adm := kadm.NewClient(newClient(t, []string{addr}))
	createTopic(t, ctx, adm, "grow", 2, 1, nil)
	res, err := adm.UpdatePartitions(ctx, 5, "grow")
	if err != nil || res["grow"].Err != nil {
		t.Fatalf("grow to 5: %v, %+v", err, res)
	}
	details, err := adm.ListTopics(ctx, "grow")
	if err != nil || len(details["grow"].Partitions) != 5 {
		t.Fatalf("metadata after growing: %+v, %v", details["grow"], err)
	}
	res, err = adm.UpdatePartitions(ctx, 3, "grow")
	if err != nil || !errors.Is(res["grow"].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrink to 3: %v, %+v", err, res)
	}
}
