package broker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/kafka"
)

// kafkaFetches counts, through kgo's hooks, the Fetch requests a client
// wrote and the answers it read.
type kafkaFetches struct {
	mu                sync.Mutex
	written, answered int
}

func (h *kafkaFetches) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h.mu.Lock()
		h.written++
		h.mu.Unlock()
	}
}

func (h *kafkaFetches) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key == 1 {
		h.mu.Lock()
		h.answered++
		h.mu.Unlock()
	}
}

// parked is the Fetch requests written and not answered yet.
func (h *kafkaFetches) parked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.written - h.answered
}

// TestDrainEndsParkedKafkaFetches is TestDrainEndsParkedFetches with a
// franz-go consumer on the Kafka listener: its fetch, parked for up to
// its max wait (30 s) on a partition still led here, is answered at the
// drain's start, through the same context as the sluice front end's
// (FrontConn.PollContext), not when the drain reaches its bound
// (drainMax) and cuts the connection. Before the change the Kafka
// listener's wait ended only with the connection.
func TestDrainEndsParkedKafkaFetches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	core, logs := observer.New(zap.InfoLevel)
	ln := poll.Listen(t, "127.0.0.1:0")
	b, err := broker.New(broker.Config{ListenAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		KafkaAdvertisedAddr: ln.Addr().String(), Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	serveCtx, stopServe := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); kafka.New(b, zap.NewNop()).Serve(serveCtx, ln) }()
	t.Cleanup(func() { stopServe(); <-served })

	seed := kgo.SeedBrokers(ln.Addr().String())
	pr, err := kgo.NewClient(seed, kgo.DefaultProduceTopic("parked"))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if res, err := kadm.NewClient(pr).CreateTopic(ctx, 1, 1, nil, "parked"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v, %v", err, res.Err)
	}
	poll.Until(t, 10*time.Second, "the broker ready", b.Ready)
	if err := pr.ProduceSync(ctx, &kgo.Record{Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	hook := &kafkaFetches{}
	cons, err := kgo.NewClient(seed, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"parked": {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(30*time.Second), kgo.WithHooks(hook))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if fs := cons.PollRecords(ctx, 1); len(fs.Records()) != 1 || fs.Err0() != nil {
		t.Fatalf("the first record: %v, %v", fs.Records(), fs.Err0())
	}
	poll.Until(t, 10*time.Second, "a fetch parked", func() bool { return hook.parked() > 0 })

	start := time.Now()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		b.DrainConns()
	}()
	poll.Until(t, 10*time.Second, "the parked fetch answered, or the drain at its bound", func() bool {
		select {
		case <-drained:
			return true
		default:
			return hook.parked() == 0
		}
	})
	select {
	case <-drained:
		t.Fatalf("the drain reached its bound (%v) with the fetch still parked", time.Since(start))
	default:
	}
	took := time.Since(start)
	// The partition is still led here, so the consumer fetches again on
	// the draining connection, and each fetch is answered at once (the
	// drain does not refuse a front end's requests): closed, it leaves
	// the connection quiet.
	cons.Close()
	<-drained
	if busy := logs.FilterMessage("connections still busy after the drain; closing them"); busy.Len() > 0 {
		t.Fatalf("the drain waited to its bound for %v connections", busy.All()[0].ContextMap()["connections"])
	}
	hook.mu.Lock()
	t.Logf("parked fetch answered %v after the drain began; fetches answered in all: %d", took, hook.answered)
	hook.mu.Unlock()
}
