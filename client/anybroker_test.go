package client

import (
	"context"
	"sync"
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

// An ElectLeaders answered after anyFirstTry (a broker handing several
// partitions over on a loaded machine) is not sent again to another
// broker, whose answer would say ELECTION_NOT_NEEDED for the partitions
// the first one moved: it gets the whole request timeout.
func TestElectLeadersWaitsPastFirstTry(t *testing.T) {
	fc := newFakeCluster(t, 2)
	defer fc.stop()
	fc.addTopic("t", 2)
	var mu sync.Mutex
	sent := 0
	fc.setHook(func(_ *fakeBroker, key protocol.APIKey, _ protocol.Message) action {
		if key != protocol.ElectLeaders {
			return action{}
		}
		mu.Lock()
		sent++
		mu.Unlock()
		slow := make(chan struct{})
		time.AfterFunc(anyFirstTry+500*time.Millisecond, func() { close(slow) })
		return action{wait: slow, resp: &protocol.ElectLeadersResponse{Results: []protocol.ElectionResult{{Topic: "t", Partition: 0, Leader: 1}}}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := New(ctx, SeedBrokers(fc.addrs()...), RequestTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.ElectPreferredLeaders(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sent != 1 || len(got) != 1 || got[0].Err != nil {
		t.Fatalf("ElectLeaders sent %d times, results %+v; want once, the first answer", sent, got)
	}
}
