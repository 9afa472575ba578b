package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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
		// The first member gives a partition up inside its Poll.
		pctx, pcancel := context.WithTimeout(ctx, 20*time.Millisecond)
		if fs, _ := a.Poll(pctx); len(fs.Records) > 0 {
			t.Errorf("the first member polled %d records, all were read before", len(fs.Records))
		}
		pcancel()
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

// The group takes a partition from a member that is busy with the
// records of its last Poll: the member stops fetching it at once, but
// OnRevoked runs only inside the application's next Poll (as Kafka's
// poll runs onPartitionsRevoked), which returns no record of it, and
// only then does the partition move, starting at the commit made there
// (by OnRevoked, or by auto-commit of everything Poll returned): its new
// owner reads no record twice. With OnRevoked on the member's own
// goroutine, the partition moved while the application still processed
// its records, and with auto-commit the next owner read them again.
func TestGroupRevokesInsidePoll(t *testing.T) {
	for _, tc := range []struct {
		name       string
		autoCommit bool
	}{{"commit in OnRevoked", false}, {"auto-commit", true}} {
		t.Run(tc.name, func(t *testing.T) {
			testRevokeInsidePoll(t, tc.autoCommit)
		})
	}
}

func testRevokeInsidePoll(t *testing.T, autoCommit bool) {
	c := groupBroker(t, "ho", 2, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		a         *client.Client
		inPoll    atomic.Bool
		mu        sync.Mutex
		processed = map[client.TopicPartition]int64{} // next offset, per partition, of what a's Polls returned
		revoked   []client.TopicPartition
		outside   int // OnRevoked calls outside a Poll
	)
	a = c.Client(client.FetchMaxWait(20*time.Millisecond), client.ConsumerGroup("ho", client.GroupTopics("ho"),
		client.GroupResetOffset(client.AtStart()), client.AutoCommit(autoCommit, time.Hour),
		client.OnRevoked(func(tps []client.TopicPartition) {
			mu.Lock()
			revoked = append(revoked, tps...)
			if !inPoll.Load() {
				outside++
			}
			offs := map[client.TopicPartition]int64{}
			for _, tp := range tps {
				offs[tp] = processed[tp]
			}
			mu.Unlock()
			if !autoCommit {
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second) // also on Close, after ctx ended
				defer ccancel()
				if err := a.CommitOffsets(cctx, offs); err != nil {
					t.Errorf("commit in OnRevoked: %v", err)
				}
			}
		})))
	pollA := func(d time.Duration) []*client.Record {
		pctx, pcancel := context.WithTimeout(ctx, d)
		defer pcancel()
		inPoll.Store(true)
		fs, _ := a.Poll(pctx)
		inPoll.Store(false)
		mu.Lock()
		for _, r := range fs.Records {
			processed[client.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
		}
		mu.Unlock()
		return fs.Records
	}
	poll.Until(t, 30*time.Second, "the first member owning both partitions", func() bool { return len(a.Assignment()) == 2 })
	for n := 0; n < 20; {
		n += len(pollA(time.Second))
	}
	// The last Poll's records are being processed: a does not poll
	// meanwhile. Five more records per partition arrive.
	prod := c.Client(client.RecordPartitioner(client.ManualPartitioner()))
	for p := range int32(2) {
		for i := range 5 {
			if err := prod.ProduceSync(ctx, &client.Record{Topic: "ho", Partition: p, Value: fmt.Appendf(nil, "more %d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := c.Client(client.FetchMaxWait(20*time.Millisecond), client.ConsumerGroup("ho", client.GroupTopics("ho"),
		client.GroupResetOffset(client.AtStart()), client.AutoCommit(false, 0)))
	var moved client.TopicPartition
	poll.Until(t, 30*time.Second, "the coordinator telling the first member to give a partition up", func() error {
		d, err := a.DescribeGroup(ctx, "ho")
		if err != nil {
			return err
		}
		aID, _ := a.GroupMember()
		for _, m := range d.Members {
			if m.MemberID == aID && len(m.Assignment) == 1 && len(m.TargetAssignment) == 1 {
				moved = client.TopicPartition{Topic: "ho", Partition: 1 - m.Assignment[0].Partition}
				return nil
			}
		}
		return fmt.Errorf("members %+v", d.Members)
	})
	// Five heartbeat intervals without a Poll: the partition stays.
	for end := time.Now().Add(5 * groupHeartbeat); time.Now().Before(end); time.Sleep(groupHeartbeat / 5) {
		mu.Lock()
		n := len(revoked)
		mu.Unlock()
		if n > 0 || slices.Contains(b.Assignment(), moved) {
			t.Fatalf("%v revoked (OnRevoked ran %d times, %d of them outside Poll; the other member owns %v) while the first member did not poll", moved, n, outside, b.Assignment())
		}
	}
	for _, r := range pollA(5 * time.Second) {
		if r.Partition == moved.Partition {
			t.Errorf("the Poll that revoked %v returned its record %d", moved, r.Offset)
		}
	}
	mu.Lock()
	if !slices.Equal(revoked, []client.TopicPartition{moved}) || outside > 0 {
		t.Errorf("OnRevoked got %v, %d times outside a Poll; want %v, inside", revoked, outside, moved)
	}
	mu.Unlock()
	poll.Until(t, 30*time.Second, fmt.Sprintf("%v at the second member", moved), func() bool { return slices.Contains(b.Assignment(), moved) })
	var got []int64
	for _, r := range pollUntil(t, b, 5) {
		got = append(got, r.Offset)
	}
	if fmt.Sprint(got) != "[10 11 12 13 14]" {
		t.Errorf("the new owner of %v read offsets %v; want [10 11 12 13 14] (after the first member's 10, none twice)", moved, got)
	}
	for range 3 {
		for _, r := range pollA(50 * time.Millisecond) {
			if r.Partition == moved.Partition {
				t.Errorf("a Poll after OnRevoked(%v) returned its record %d", moved, r.Offset)
			}
		}
	}
}
