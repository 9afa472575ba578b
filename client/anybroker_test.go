package client

import (
	"context"
	"testing"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// A broker that holds an InitProducerId without answering (paused, its
// host gone, its connection still open) costs the producer anyFirstTry,
// not RequestTimeout: the request goes to another broker, and the hung
// one is tried last for a while.
func TestInitProducerIDLeavesAHungBroker(t *testing.T) {
	fc := newFakeCluster(t, 2)
	defer fc.stop()
	fc.addTopic("t", 2)
	hang := make(chan struct{})
	defer close(hang)
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, _ protocol.Message) action {
		if key == protocol.InitProducerID && b.id == 1 {
			return action{wait: hang}
		}
		return action{}
	})
	for range 4 { // the first broker tried is not always broker 1
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := New(ctx, SeedBrokers(fc.addrs()...), RequestTimeout(20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, _, err = c.InitProducerID(ctx, -1, -1)
		took := time.Since(start)
		c.Close()
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if took > 10*time.Second {
			t.Fatalf("InitProducerID took %v with broker 1 hung (RequestTimeout 20 s)", took)
		}
	}
}
