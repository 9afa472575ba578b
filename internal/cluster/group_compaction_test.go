package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// The offsets topic is compacted by the real cleaner: after many commits
// of the same keys, the cleaner rewrites its partition down to the latest
// commit per key, and a coordinator that loads the compacted partition (the
// first one's broker killed) serves exactly the latest commits.
func TestOffsetsTopicCompactionKeepsLatestCommits(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.OffsetsTopicPartitions = 1
		cfg.CleanerInterval = 100 * time.Millisecond
	}})
	cl := c.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "orders", Partitions: 4, ReplicationFactor: 3})
	coord, _ := coordinatorOf(t, c, "g") // creates the offsets topic
	testcluster.WaitFullISR(t, cl, broker.OffsetsTopic, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Small segments, so closed ones exist to clean, and any dirt is due.
	poll.Until(t, 20*time.Second, "the offsets topic's configs altered", func() error {
		return cl.AlterConfigs(ctx, broker.OffsetsTopic, client.SetConfig("segment.bytes", "4096"), client.SetConfig("max.message.bytes", "2048"),
			client.SetConfig("min.cleanable.dirty.ratio", "0.01"))
	})

	// An empty group's offsets, committed by a tool: 150 rounds over 4
	// partitions, so each key is written 150 times.
	const rounds = 150
	for r := range int64(rounds) {
		req := &protocol.OffsetCommitRequest{GroupID: "g", MemberEpoch: protocol.MemberEpochAdmin,
			Topics: []protocol.OffsetCommitTopic{{Name: "orders"}}}
		for p := range int32(4) {
			req.Topics[0].Partitions = append(req.Topics[0].Partitions, protocol.OffsetCommitPartition{Partition: p, Offset: r*10 + int64(p), LeaderEpoch: -1})
		}
		var resp protocol.OffsetCommitResponse
		callCoordinator(t, c, "g", req, &resp, func() (protocol.ErrorCode, string) { return resp.ErrorCode, resp.ErrorMessage })
		if resp.ErrorCode != protocol.NoError {
			t.Fatalf("commit round %d: %v: %s", r, resp.ErrorCode, resp.ErrorMessage)
		}
	}
	want := map[int32]int64{}
	for p := range int32(4) {
		want[p] = (rounds-1)*10 + int64(p)
	}

	// The cleaner has rewritten the partition on every replica: what it
	// cleaned is a small part of what was written.
	var cleaned string
	poll.Until(t, 60*time.Second, "the offsets partition compacted on every replica", func() error {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		brs, err := cl.DescribeReplicas(dctx, broker.OffsetsTopic)
		if err != nil {
			return err
		}
		n := 0
		for _, br := range brs {
			for _, r := range br.Replicas {
				if r.Err != nil || r.Cleaner == nil || r.Cleaner.LastClean.IsZero() {
					return fmt.Errorf("broker %d: not cleaned yet (%+v)", br.Broker, r.Cleaner)
				}
				n++
				cleaned = fmt.Sprintf("broker %d: clean %d bytes, dirty %d, log %d-%d", br.Broker, r.Cleaner.CleanBytes, r.Cleaner.DirtyBytes, r.StartOffset, r.EndOffset)
			}
		}
		if n != 3 {
			return fmt.Errorf("%d replicas described, want 3", n)
		}
		return nil
	})
	t.Log(cleaned)
	records := countRecords(t, c, broker.OffsetsTopic)
	if records >= rounds*4/2 {
		t.Fatalf("%d records left in the offsets partition after %d commits: not compacted", records, rounds*4)
	}

	// A new coordinator loads the compacted partition.
	c.Kill(coord)
	got := groupOffsets(t, c, "g")
	for p, w := range want {
		if got[p] != w {
			t.Fatalf("after compaction and a coordinator failover: partition %d committed at %d, want %d (all: %v)", p, got[p], w, got)
		}
	}
	t.Logf("%d commits written, %d records left; the new coordinator serves the latest: %v", rounds*4, records, got)
}

// countRecords reads partition 0 of topic from its start to its end with
// a client of its own and counts the records.
func countRecords(t *testing.T, c *testcluster.Cluster, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client()
	ends, err := cl.ListOffsets(ctx, topic, client.AtEnd())
	if err != nil {
		t.Fatal(err)
	}
	end := ends[0].Offset
	cons := c.Client()
	cons.Assign(map[client.TopicPartition]client.Offset{{Topic: topic, Partition: 0}: client.AtStart()})
	n := 0
	for ctx.Err() == nil {
		f, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("read %s: %v after %d records", topic, err, n)
		}
		for _, e := range f.Errors {
			t.Fatalf("read %s: %v", topic, e)
		}
		for _, r := range f.Records {
			n++
			if r.Offset >= end-1 {
				return n
			}
		}
	}
	t.Fatalf("read %d records of %s before the deadline, end %d", n, topic, end)
	return n
}
