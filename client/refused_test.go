package client

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

// A plain (not idempotent) producer with two produce requests in flight on
// one connection to a broker that drains it for shutdown: the first is
// refused whole (BROKER_NOT_AVAILABLE), the second is read and dropped,
// never answered, and the connection closes. Neither was handled: the
// refusal proves it for the second too (conn.refusedWhole), so both are
// sent again and acknowledged, each stored once; without that proof the
// second would end as an unknown outcome (R14), which a plain producer
// cannot resend.
func TestPlainProducerResendsAfterWholeRefusal(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1, 1)
	release := make(chan struct{})
	var produces atomic.Int32
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key == protocol.Produce && produces.Add(1) == 1 {
			return action{wait: release, refuseWhole: true}
		}
		return action{}
	})
	c := newTestClient(t, fc, Linger(0), Idempotent(false), RequestTimeout(10*time.Second), RecordPartitioner(ManualPartitioner()))
	done := make(chan error, 2)
	for p := range int32(2) {
		c.Produce(context.Background(), &Record{Topic: "t", Partition: p, Value: []byte(fmt.Sprint("v", p))},
			func(_ *Record, err error) { done <- err })
	}
	poll.Until(t, 10*time.Second, "two produce requests in flight", func() bool {
		c.prod.mu.Lock()
		defer c.prod.mu.Unlock()
		return c.prod.inflight == 2
	})
	close(release)
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("produce: %v (indeterminate %v)", err, IsIndeterminate(err))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no outcome 10 s after the refusal")
		}
	}
	for p := range int32(2) {
		if got, want := fc.values("t", p), []string{fmt.Sprint("v", p)}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("partition %d holds %q, want %q", p, got, want)
		}
	}
}
