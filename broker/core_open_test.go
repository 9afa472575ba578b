package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// TestAppendWaitsForOpen: an append that reaches the leader after the
// metadata named it the leader of a new partition but before it opened
// the log waits for the open instead of being refused
// LEADER_NOT_AVAILABLE, which cost franz-go producers 5 s (their next
// metadata refresh; issue 13). The test holds the partition manager's
// reconcile back while the topic is created and the append starts. Held
// past openWait, the append is refused as before.
func TestAppendWaitsForOpen(t *testing.T) {
	b := startBroker(t, "", nil)
	ctx := context.Background()
	batch := makeBatch(t, record.None, "v", 1, 0)
	defer func(w time.Duration) { openWait = w }(openWait)
	for _, c := range []struct {
		topic string
		wait  time.Duration // openWait
		want  error
	}{{"opens", time.Minute, nil}, {"stuck", 200 * time.Millisecond, protocol.ErrLeaderNotAvailable}} {
		openWait = c.wait
		b.parts.reconcileMu.Lock()
		held := true
		release := func() {
			if held {
				held = false
				b.parts.reconcileMu.Unlock()
			}
		}
		if _, err := b.store.CreateTopic(ctx, controller.TopicSpec{Name: c.topic, Partitions: 1, ReplicationFactor: 1}); err != nil {
			release()
			t.Fatal(err)
		}
		if b.Metadata().Topics[c.topic].Partitions[0].Leader != b.ID() || b.parts.get(c.topic, 0) != nil {
			release()
			t.Fatalf("%s: want the metadata naming this broker leader and the log not open", c.topic)
		}
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := b.Append(c.topic, 0, batch, AcksLeader)
			done <- err
		}()
		var err error
		select {
		case err = <-done: // refused while the reconcile is held back
		case <-time.After(500 * time.Millisecond): // waiting for the open
			release()
			err = <-done
		}
		release()
		if c.want == nil && err != nil {
			t.Fatalf("%s: append while the log opened: %v after %v", c.topic, err, time.Since(start))
		}
		if c.want != nil {
			if !errors.Is(err, c.want) {
				t.Fatalf("%s: append with the log not opened: %v, want %v", c.topic, err, c.want)
			}
			if elapsed := time.Since(start); elapsed < openWait {
				t.Fatalf("%s: refused after %v, before openWait (%v)", c.topic, elapsed, openWait)
			}
		}
	}
}

// TestUnknownTopicAfterCatchUp: requests for a topic that does not exist
// are still refused UNKNOWN_TOPIC_OR_PARTITION after partitionFor's
// catch-up with the controller (a read barrier), concurrent ones sharing
// it, each well within openWait.
func TestUnknownTopicAfterCatchUp(t *testing.T) {
	b := startBroker(t, "", nil)
	batch := makeBatch(t, record.None, "v", 1, 0)
	const n = 20
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		go func() {
			_, err := b.Append("nope", 0, batch, AcksLeader)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			t.Fatalf("append to a topic that does not exist: %v", err)
		}
	}
	if d := time.Since(start); d >= openWait {
		t.Fatalf("%d appends to a topic that does not exist took %v, want under openWait (%v)", n, d, openWait)
	}
}
