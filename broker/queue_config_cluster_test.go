package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// TestQueueGroupOwnSettings: group "fast" gets a 1 s lease, 2 deliveries
// and its own dead-letter topic through the group configs; its silent
// member's records come back after 1 s and go to that topic at the
// second expiry. Group "slow", reading the same topic on the same
// coordinator, keeps the brokers' 30 s lease and the default dead-letter
// topic, untouched.
func TestQueueGroupOwnSettings(t *testing.T) {
	_, cl := queueJobs(t, group.QueueConfig{}, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Bad values are refused with the key and why; nothing is set.
	for _, tc := range []struct {
		ch   client.ConfigChange
		want string
	}{
		{client.SetConfig("queue.lease.ms", "999"), "queue.lease.ms=999: below the minimum 1000"},
		{client.SetConfig("share.delivery.count.limit", "0"), "queue.max.delivery.attempts=0: below the minimum 1"},
		{client.SetConfig("queue.backoff.ms", "10,x"), `queue.backoff.ms="10,x"`},
		{client.SetConfig("queue.dlq.topic", "no spaces"), `queue.dlq.topic="no spaces"`},
		{client.SetConfig("queue.nope", "1"), `unknown key "queue.nope"`},
	} {
		err := cl.AlterQueueGroupConfigs(ctx, "fast", tc.ch)
		if !errors.Is(err, protocol.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("set %s=%s: %v, want INVALID_CONFIG with %q", tc.ch.Key, tc.ch.Value, err, tc.want)
		}
	}
	if err := cl.AlterQueueGroupConfigs(ctx, "fast", client.SetConfig("queue.lease.ms", "1000"),
		client.SetConfig("share.delivery.count.limit", "2"), client.SetConfig("queue.dlq.topic", "fast-dead")); err != nil {
		t.Fatal(err)
	}
	entries, err := cl.DescribeQueueGroupConfigs(ctx, "fast")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Key] = fmt.Sprintf("%s default=%v", e.Value, e.IsDefault)
	}
	want := map[string]string{"queue.lease.ms": "1000 default=false", "queue.max.delivery.attempts": "2 default=false",
		"queue.dlq.topic": "fast-dead default=false", "queue.backoff.ms": " default=true", "queue.max.in.flight": "2000 default=true"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fast's configs %v, want %v", got, want)
	}

	fastSilent, fast := cl.QueueGroup("fast", "jobs"), cl.QueueGroup("fast", "jobs")
	slowSilent, slow := cl.QueueGroup("slow", "jobs"), cl.QueueGroup("slow", "jobs")
	if ds := receive(ctx, t, fastSilent, 2); len(ds) != 2 {
		t.Fatalf("fast: %d records", len(ds))
	}
	if ds := receive(ctx, t, slowSilent, 2); len(ds) != 2 {
		t.Fatalf("slow: %d records", len(ds))
	}
	start := time.Now()
	if ds := receive(ctx, t, fast, 10); len(ds) != 2 || ds[0].Offset != 2 || fast.AcceptAll(ds) != nil {
		t.Fatalf("fast's second member: %d records", len(ds))
	}
	again := receive(ctx, t, fast, 2)
	if len(again) != 2 || again[0].Offset != 0 || again[0].DeliveryCount != 2 {
		t.Fatalf("fast's redelivery: %d records, first %+v", len(again), again[0])
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("fast's records came back %v after the receive started, lease 1 s", waited)
	}
	// slow's members still hold 0 and 1 (30 s): the other member gets 2
	// and 3, then nothing.
	if ds := receive(ctx, t, slow, 10); len(ds) != 2 || ds[0].Offset != 2 {
		t.Fatalf("slow's second member: %d records", len(ds))
	}
	wctx, wcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	ds := receive(wctx, t, slow, 10)
	wcancel()
	if len(ds) != 0 {
		t.Fatalf("slow's records came back after %v: %+v", time.Since(start), ds[0])
	}

	// fast's second lease runs out: its limit of 2 sends 0 and 1 to
	// fast-dead, not jobs.dlq.
	poll.Until(t, 20*time.Second, "fast's records dead-lettered", func() error {
		d, err := cl.DescribeQueueGroup(ctx, "fast")
		if err != nil {
			return err
		}
		if len(d.Partitions) != 1 || d.Partitions[0].DeadLettered != 2 || d.Lease != time.Second {
			return fmt.Errorf("describe: %+v", d)
		}
		return nil
	})
	dead := consumeAll(t, cl, "fast-dead", 1)
	if len(dead) != 2 || string(dead[0].Value) != "0" || header(dead[0], protocol.DeadLetterDeliveries) != "2" ||
		header(dead[0], protocol.DeadLetterTopic) != "jobs" {
		t.Fatalf("fast-dead: %d records, first %+v", len(dead), dead)
	}
	d, err := cl.DescribeQueueGroup(ctx, "slow")
	if err != nil || d.Lease != 30*time.Second || d.Partitions[0].DeadLettered != 0 || d.Partitions[0].Acquired != 4 {
		t.Fatalf("slow: %+v, %v", d, err)
	}
	if _, err := cl.DescribeTopic(ctx, "jobs.dlq"); err == nil {
		t.Fatal("jobs.dlq exists: a dead letter went to the default topic")
	}
	// Redrive reads the group's own dead-letter topic and republishes to
	// jobs (the records' origin).
	res, err := cl.RedriveQueueGroup(ctx, "fast", "", 20*time.Second)
	if err != nil || len(res) != 1 || res[0].DeadLetterTopic != "fast-dead" || res[0].Republished != 2 {
		t.Fatalf("redrive: %+v, %v; want 2 republished from fast-dead", res, err)
	}
	if ends, err := cl.ListOffsets(ctx, "jobs", client.AtEnd()); err != nil || ends[0].Offset != 6 {
		t.Fatalf("jobs after the redrive: %+v, %v; want 4 + 2 records", ends, err)
	}

	// Back to the brokers' settings: the keys go, the next lease is 30 s.
	if err := cl.AlterQueueGroupConfigs(ctx, "fast", client.DeleteConfig("share.record.lock.duration.ms"),
		client.DeleteConfig("queue.max.delivery.attempts"), client.DeleteConfig("queue.dlq.topic")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "fast back at 30 s", func() error {
		d, err := cl.DescribeQueueGroup(ctx, "fast")
		if err == nil && d.Lease != 30*time.Second {
			err = fmt.Errorf("lease %v", d.Lease)
		}
		return err
	})
}

// TestQueueGroupTopicDeleted: deleting a topic drops the queue groups'
// windows of it: a group that read only it is gone, another no longer
// describes it, and a topic created again under the name is read from
// its start with fresh delivery counts.
func TestQueueGroupTopicDeleted(t *testing.T) {
	_, cl := queueCluster(t, 1, group.QueueConfig{})
	for _, name := range []string{"jobs", "keep"} {
		testcluster.CreateTopic(t, cl, client.TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 1})
		produceValues(t, cl, name, 3)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g, h := cl.QueueGroup("g", "jobs", "keep"), cl.QueueGroup("h", "jobs")
	if ds := receive(ctx, t, g, 10); len(ds) != 6 || g.AcceptAll(ds[:5]) != nil {
		t.Fatalf("g: %d records", len(ds))
	}
	if ds := receive(ctx, t, h, 10); len(ds) != 3 || h.AcceptAll(ds) != nil {
		t.Fatalf("h: %d records", len(ds))
	}
	if err := cl.DeleteTopics(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the windows of jobs dropped", func() error {
		if _, err := cl.DescribeQueueGroup(ctx, "h"); !errors.Is(err, protocol.ErrGroupIDNotFound) {
			return fmt.Errorf("describe h: %v", err)
		}
		d, err := cl.DescribeQueueGroup(ctx, "g")
		if err != nil || len(d.Partitions) != 1 || d.Partitions[0].Topic != "keep" {
			return fmt.Errorf("describe g: %+v, %v", d, err)
		}
		return nil
	})
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "jobs", Partitions: 1, ReplicationFactor: 1})
	produceValues(t, cl, "jobs", 2)
	h = cl.QueueGroup("h", "jobs")
	ds := receive(ctx, t, h, 10)
	if len(ds) != 2 || ds[0].Offset != 0 || ds[0].DeliveryCount != 1 {
		t.Fatalf("the new jobs: %d records, first %+v", len(ds), ds[0])
	}
}

// TestQueueGroupLimitRefuses: past the coordinator's MaxQueueGroups a new
// queue group's receive is refused with GROUP_MAX_SIZE_REACHED, a
// definite error; the group held goes on.
func TestQueueGroupLimitRefuses(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{Configure: func(bc *broker.Config) {
		bc.Group.MaxQueueGroups = 1
		bc.OffsetsTopicPartitions = 1 // one coordinator for every group
	}})
	cl := c.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "jobs", Partitions: 1, ReplicationFactor: 1})
	produceValues(t, cl, "jobs", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ds := receive(ctx, t, cl.QueueGroup("first", "jobs"), 1); len(ds) != 1 {
		t.Fatalf("first: %d records", len(ds))
	}
	_, err := cl.QueueGroup("second", "jobs").Receive(ctx, 1)
	if !errors.Is(err, protocol.ErrGroupMaxSizeReached) || client.IsRetriable(err) {
		t.Fatalf("a second queue group: %v, want GROUP_MAX_SIZE_REACHED", err)
	}
	if ds := receive(ctx, t, cl.QueueGroup("first", "jobs"), 1); len(ds) != 1 {
		t.Fatalf("first again: %d records", len(ds))
	}
}
