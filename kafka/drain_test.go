package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/poll"
)

// fetchHook notes the Fetch requests a kgo client writes and the answers
// it reads, per broker.
type fetchHook struct {
	mu       sync.Mutex
	written  map[int32]int
	answered map[int32]int
}

func (h *fetchHook) OnBrokerWrite(m kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key != 1 || err != nil {
		return
	}
	h.mu.Lock()
	h.written[m.NodeID]++
	h.mu.Unlock()
}

func (h *fetchHook) OnBrokerRead(m kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key != 1 {
		return
	}
	h.mu.Lock()
	h.answered[m.NodeID]++
	h.mu.Unlock()
}

// parked is the Fetch requests written to node and not answered yet.
func (h *fetchHook) parked(node int32) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.written[node] - h.answered[node]
}

// TestFranzDrainEndsParkedFetch: a franz-go consumer whose fetch is parked
// on the leader (max wait 30 s) moves to the new leader promptly when the
// leader stops (controlled shutdown, then the drain of its connections):
// the parked fetch is answered within 2 s (seen: 10 ms), the next record
// comes from the new leader within 10 s (seen: 1 s). The controlled
// shutdown's move of the leadership wakes the fetch (it finds the
// partition no longer led here); the drain's end of parked fetches
// (FrontConn.PollContext) covers a move that failed, and its test is
// broker's TestDrainEndsParkedKafkaFetches.
func TestFranzDrainEndsParkedFetch(t *testing.T) {
	ctx := testContext(t)
	kc := startKafkaCluster(t, 3)
	adm := kadm.NewClient(newClient(t, kc.seeds()))
	kc.replicatedTopic(t, ctx, adm, "drained", 1)
	md, err := adm.ListTopics(ctx, "drained")
	if err != nil {
		t.Fatal(err)
	}
	leader := md["drained"].Partitions[0].Leader

	pr := newClient(t, kc.seeds(), kgo.DefaultProduceTopic("drained"), kgo.RequiredAcks(kgo.AllISRAcks()))
	produceSeq(t, ctx, pr, 0, 1)
	const maxWait = 30 * time.Second
	hook := &fetchHook{written: map[int32]int{}, answered: map[int32]int{}}
	cons := newClient(t, kc.seeds(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"drained": {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(maxWait), kgo.WithHooks(hook))
	if fs := cons.PollRecords(ctx, 1); len(fs.Records()) != 1 || fs.Err0() != nil {
		t.Fatalf("the first record: %v, %v", fs.Records(), fs.Err0())
	}
	poll.Until(t, 10*time.Second, "a fetch parked on the leader", func() bool { return hook.parked(leader) > 0 })

	start := time.Now()
	stopped := make(chan time.Duration, 1)
	go func() { kc.Stop(leader); stopped <- time.Since(start) }()
	poll.Until(t, maxWait, "the parked fetch answered", func() bool { return hook.parked(leader) == 0 })
	answered := time.Since(start)
	if answered > 2*time.Second {
		t.Errorf("the parked fetch answered %v after the stop began", answered)
	}
	produceSeq(t, ctx, pr, 1, 2)
	// The stopped broker's listener refuses the client's new connections
	// (kgo reports those as fetch errors) until its metadata names the
	// new leader.
	var got []*kgo.Record
	for len(got) == 0 && time.Since(start) < maxWait {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cons.PollRecords(pctx, 1)
		cancel()
		got = fs.Records()
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Logf("consume %s[%d] while the leader stops: %v", e.Topic, e.Partition, e.Err)
			}
		}
	}
	if len(got) != 1 || string(got[0].Value) != "1" {
		t.Fatalf("the second record: %v", got)
	}
	took := time.Since(start)
	if took > 10*time.Second {
		t.Errorf("the next record came from the new leader %v after the stop began (max wait %v)", took, maxWait)
	}
	t.Logf("leader %d stopped in %v; parked fetch answered after %v; next record from the new leader after %v", leader, <-stopped, answered, took)
}

// TestListenerStopsWithBroker: once the broker's Close began, its Kafka
// listener accepts no connection, so a client dialling is refused (a
// dial error, which franz-go retries on another broker), as at the
// broker's own listener. Before the change it accepted until its own
// context ended and closed each connection at once, which franz-go
// reports as a connection closed before its first answer (ErrFirstReadEOF)
// and does not retry: a produce or metadata request to a stopping broker
// failed.
func TestListenerStopsWithBroker(t *testing.T) {
	b, addr := single(t, nil)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the Kafka listener closed", func() error {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		nc.Close()
		return fmt.Errorf("dialled %s after the broker closed", addr)
	})
}
