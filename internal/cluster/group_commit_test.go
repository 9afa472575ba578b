package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// groupBroker is one broker serving consumer groups with a short
// heartbeat interval and session timeout, and topic of parts partitions
// holding perPart records each.
func groupBroker(t *testing.T, topic string, parts int32, perPart int) *testcluster.Cluster {
	t.Helper()
	c := testcluster.Start(t, 1, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.Group.HeartbeatInterval = groupHeartbeat
		cfg.Group.SessionTimeout = groupSession
	}})
	testcluster.CreateTopic(t, c.Client(), client.TopicSpec{Name: topic, Partitions: parts, ReplicationFactor: 1})
	prod := c.Client(client.RecordPartitioner(client.ManualPartitioner()))
	var recs []*client.Record
	for p := range parts {
		for i := range perPart {
			recs = append(recs, &client.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d", i)})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := prod.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	return c
}

// pollUntil polls cl until it returned n records, and returns them.
func pollUntil(t *testing.T, cl *client.Client, n int) []*client.Record {
	t.Helper()
	var got []*client.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(got) < n {
		fs, err := cl.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d records: %v", len(got), n, err)
		}
		got = append(got, fs.Records...)
	}
	return got
}

// A member's commit of a partition revoked from it, after its new owner
// committed further, must not move the committed offset back: the client
// leaves the partition out and says so with a *client.NotOwnedError
// naming it, and commits the rest. (The coordinator refuses such a
// commit too: broker's TestGroupLateCommitOfRevokedPartition.)
func TestGroupLateCommitOfRevokedPartition(t *testing.T) {
	c := groupBroker(t, "late", 2, 10)
	member := func() *client.Client {
		return c.Client(client.FetchMaxWait(20*time.Millisecond), client.ConsumerGroup("late", client.GroupTopics("late"),
			client.GroupResetOffset(client.AtStart()), client.AutoCommit(false, 0)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := member()
	poll.Until(t, 30*time.Second, "the first member owning both partitions", func() bool { return len(a.Assignment()) == 2 })
	pollUntil(t, a, 20)
	b := member()
	poll.Until(t, 30*time.Second, "one partition each", func() error {
		if len(a.Assignment()) != 1 || len(b.Assignment()) != 1 {
			return fmt.Errorf("first owns %v, second %v", a.Assignment(), b.Assignment())
		}
		return nil
	})
	moved, kept := b.Assignment()[0], a.Assignment()[0]
	for _, r := range pollUntil(t, b, 10) {
		if r.Partition != moved.Partition {
			t.Fatalf("the new owner of %v got a record of %s[%d]", moved, r.Topic, r.Partition)
		}
	}
	if err := b.CommitOffsets(ctx, map[client.TopicPartition]int64{moved: 10}); err != nil {
		t.Fatalf("the new owner's commit: %v", err)
	}
	err := a.CommitOffsets(ctx, map[client.TopicPartition]int64{moved: 3, kept: 10})
	var no *client.NotOwnedError
	if !errors.As(err, &no) || !slices.Equal(no.Partitions, []client.TopicPartition{moved}) || no.Group != "late" {
		t.Errorf("the old owner's late commit of %v (and of its own %v): %v; want a *client.NotOwnedError naming %v", moved, kept, err, moved)
	}
	got, err := a.CommittedOffsets(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	if got[moved] != 10 || got[kept] != 10 {
		t.Errorf("committed %v; want %v at the new owner's 10 and %v at 10", got, moved, kept)
	}
}
