package kafka

import (
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

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// produceN produces n records (values "0".."n-1") to partition 0 of
// topic with acks=all.
func produceN(t *testing.T, ctx context.Context, seeds []string, topic string, n int) {
	t.Helper()
	cl := newClient(t, seeds, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: []byte(strconv.Itoa(i))}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// deleteBefore runs kadm's DeleteRecords on partition 0 of topic and
// returns the low watermark and error of the partition.
func deleteBefore(t *testing.T, ctx context.Context, adm *kadm.Client, topic string, offset int64) (int64, error) {
	t.Helper()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: offset})
	res, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	r, ok := res.Lookup(topic, 0)
	if !ok {
		t.Fatalf("delete records: no answer for %s[0]: %+v", topic, res)
	}
	return r.LowWatermark, r.Err
}

// fetchAt fetches partition 0 of topic at offset over a raw connection to
// addr and returns the partition's error code and first record offset.
func fetchAt(t *testing.T, addr, topic string, offset int64) (int16, int64) {
	t.Helper()
	c := dialRaw(t, addr)
	defer c.nc.Close()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxBytes = -1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = offset, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(11)
	if err := resp.ReadFrom(c.request(req, 1)); err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	first := int64(-1)
	var batch kmsg.RecordBatch
	if len(p.RecordBatches) > 0 && batch.ReadFrom(p.RecordBatches) == nil {
		first = batch.FirstOffset
	}
	return p.ErrorCode, first
}

// DeleteRecords through kadm on one broker: the low watermark is the new
// log start; ListOffsets earliest moves; a fetch below it is
// OFFSET_OUT_OF_RANGE while the records from it on are still served; an
// offset above the high watermark is OFFSET_OUT_OF_RANGE; -1 deletes up
// to the high watermark; an offset below the start changes nothing; the
// offsets topic is refused.
func TestKafkaDeleteRecords(t *testing.T) {
	ctx := testContext(t)
	b, addr := single(t, nil)
	adm := kadm.NewClient(newClient(t, []string{addr}))
	createTopic(t, ctx, adm, "dr", 1, 1, nil)
	produceN(t, ctx, []string{addr}, "dr", 10)

	if lw, err := deleteBefore(t, ctx, adm, "dr", 4); err != nil || lw != 4 {
		t.Fatalf("delete before 4: low watermark %d, %v", lw, err)
	}
	starts, err := adm.ListStartOffsets(ctx, "dr")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := starts.Lookup("dr", 0); s.Err != nil || s.Offset != 4 {
		t.Fatalf("earliest offset %+v, want 4", s)
	}
	if code, _ := fetchAt(t, addr, "dr", 2); code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch at 2 after deleting below 4: code %d, want OFFSET_OUT_OF_RANGE", code)
	}
	if code, first := fetchAt(t, addr, "dr", 4); code != 0 || first > 4 || first < 0 {
		t.Fatalf("fetch at 4: code %d, first batch at %d", code, first)
	}
	got := consumeN(t, addr, "dr", 6)
	if got[0].Offset != 4 || string(got[0].Value) != "4" {
		t.Fatalf("consumed from the start: first %d %q, want offset 4", got[0].Offset, got[0].Value)
	}
	if _, err := deleteBefore(t, ctx, adm, "dr", 11); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete before 11 (high watermark 10): %v, want OFFSET_OUT_OF_RANGE", err)
	}
	if lw, err := deleteBefore(t, ctx, adm, "dr", 2); err != nil || lw != 4 {
		t.Fatalf("delete before 2 (start 4): low watermark %d, %v, want 4", lw, err)
	}
	if lw, err := deleteBefore(t, ctx, adm, "dr", -1); err != nil || lw != 10 {
		t.Fatalf("delete before the high watermark: low watermark %d, %v, want 10", lw, err)
	}
	if _, err := b.DeleteRecords(nil, broker.OffsetsTopic, 0, 0); codeOf(err) != kerr.InvalidTopicException.Code {
		t.Fatalf("delete records of the offsets topic: %v, want INVALID_TOPIC_EXCEPTION", err)
	}
}

// replicaStart is the log start offset of broker b's replica of topic[0].
func replicaStart(b *broker.Broker, topic string) (int64, error) {
	for _, r := range b.Replicas([]string{topic}, -1) {
		if r.Partition == 0 {
			return r.StartOffset, r.Err
		}
	}
	return -1, fmt.Errorf("broker %d holds no replica of %s[0]", b.ID(), topic)
}

// DeleteRecords on three brokers: the followers' log starts follow the
// leader's; after the leader is killed, the new leader serves from the
// new start (ListOffsets earliest, a fetch below it OFFSET_OUT_OF_RANGE).
// A crash and restart keeps a partition's new start (replication factor
// 1: no leader to learn it from again).
func TestKafkaDeleteRecordsReplicated(t *testing.T) {
	ctx := testContext(t)
	kc := startKafkaCluster(t, 3)
	adm := kadm.NewClient(newClient(t, kc.seeds()))
	createTopic(t, ctx, adm, "drr", 1, 3, nil)
	testcluster.WaitFullISR(t, kc.Client(), "drr", 20*time.Second)
	produceN(t, ctx, kc.seeds(), "drr", 100)
	if lw, err := deleteBefore(t, ctx, adm, "drr", 40); err != nil || lw != 40 {
		t.Fatalf("delete before 40: low watermark %d, %v", lw, err)
	}
	poll.Until(t, 20*time.Second, "every replica's log start at 40", func() error {
		for _, id := range kc.IDs() {
			if s, err := replicaStart(kc.Broker(id), "drr"); err != nil || s != 40 {
				return fmt.Errorf("broker %d: start %d, %v", id, s, err)
			}
		}
		return nil
	})

	md, err := adm.ListTopics(ctx, "drr")
	if err != nil {
		t.Fatal(err)
	}
	leader := md["drr"].Partitions[0].Leader
	kc.stop[leader]()
	kc.Kill(leader)
	var alive string
	for id, a := range kc.addrs {
		if id != leader {
			alive = a
		}
	}
	survivor := kadm.NewClient(newClient(t, []string{alive}))
	poll.Until(t, 30*time.Second, "a new leader serving from 40", func() error {
		starts, err := survivor.ListStartOffsets(ctx, "drr")
		if err != nil {
			return err
		}
		s, _ := starts.Lookup("drr", 0)
		if s.Err != nil || s.Offset != 40 {
			return fmt.Errorf("earliest %+v", s)
		}
		return nil
	})
	md, err = survivor.ListTopics(ctx, "drr")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := fetchAt(t, kc.addrs[md["drr"].Partitions[0].Leader], "drr", 10); code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch at 10 from the new leader: code %d, want OFFSET_OUT_OF_RANGE", code)
	}

	// Replication factor 1 on a surviving broker: a crash, then a restart,
	// find the start where DeleteRecords left it.
	createTopic(t, ctx, survivor, "dr1", 1, 1, nil)
	produceN(t, ctx, []string{alive}, "dr1", 20)
	if lw, err := deleteBefore(t, ctx, survivor, "dr1", 15); err != nil || lw != 15 {
		t.Fatalf("dr1: delete before 15: low watermark %d, %v", lw, err)
	}
	md, err = survivor.ListTopics(ctx, "dr1")
	if err != nil {
		t.Fatal(err)
	}
	owner := md["dr1"].Partitions[0].Leader
	kc.stop[owner]()
	kc.Kill(owner)
	b := kc.Restart(owner)
	poll.Until(t, 30*time.Second, "dr1 led again after the restart", func() error {
		at, err := b.ListOffset(nil, "dr1", 0, broker.EarliestTimestamp)
		if err != nil {
			return err
		}
		if at.Offset != 15 {
			t.Fatalf("earliest offset of dr1 after a crash and restart: %d, want 15", at.Offset)
		}
		return nil
	})
}
