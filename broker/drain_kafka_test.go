package broker_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/kafka"
)

// kafkaFetches counts, through kgo's hooks, the requests of one API key
// (Fetch 1, ShareFetch 78) a client wrote and the answers it read.
type kafkaFetches struct {
	key               int16
	mu                sync.Mutex
	written, answered int
}

func (h *kafkaFetches) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == h.key && err == nil {
		h.mu.Lock()
		h.written++
		h.mu.Unlock()
	}
}

func (h *kafkaFetches) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key == h.key {
		h.mu.Lock()
		h.answered++
		h.mu.Unlock()
	}
}

// parked is the requests written and not answered yet.
func (h *kafkaFetches) parked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.written - h.answered
}

// answers is the answers read.
func (h *kafkaFetches) answers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.answered
}

// sent is the requests written.
func (h *kafkaFetches) sent() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.written
}

// drainingKafka starts a broker with a Kafka listener, both stopped at
// the end of the test, and returns the listener and the broker's Info
// logs.
func drainingKafka(t *testing.T) (*broker.Broker, net.Listener, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	ln := poll.Listen(t, "127.0.0.1:0")
	b, err := broker.New(broker.Config{ListenAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		KafkaAdvertisedAddr: ln.Addr().String(), Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	serveCtx, stopServe := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); kafka.New(b, zap.NewNop()).Serve(serveCtx, ln) }()
	t.Cleanup(func() { stopServe(); <-served })
	poll.Until(t, 10*time.Second, "the broker ready", b.Ready)
	return b, ln, logs
}

// parkedConsumer creates topic (one partition) holding one record and
// returns a consumer of it, with a max wait of 30 s, that has read the
// record and whose next fetch is parked.
func parkedConsumer(t *testing.T, ctx context.Context, b *broker.Broker, seed kgo.Opt, topic string, hook *kafkaFetches) *kgo.Client {
	t.Helper()
	pr, err := kgo.NewClient(seed, kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if res, err := kadm.NewClient(pr).CreateTopic(ctx, 1, 1, nil, topic); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v, %v", err, res.Err)
	}
	if err := pr.ProduceSync(ctx, &kgo.Record{Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons, err := kgo.NewClient(seed, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(30*time.Second), kgo.WithHooks(hook))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cons.Close)
	if fs := cons.PollRecords(ctx, 1); len(fs.Records()) != 1 || fs.Err0() != nil {
		t.Fatalf("the first record: %v, %v", fs.Records(), fs.Err0())
	}
	poll.Until(t, 10*time.Second, "a fetch parked", func() bool { return hook.parked() > 0 })
	return cons
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
	b, ln, logs := drainingKafka(t)
	seed := kgo.SeedBrokers(ln.Addr().String())
	hook := &kafkaFetches{key: 1}
	cons := parkedConsumer(t, ctx, b, seed, "parked", hook)

	answered := hook.answers()
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
			return hook.answers() > answered
		}
	})
	select {
	case <-drained:
		t.Fatalf("the drain reached its bound (%v) with the fetch still parked", time.Since(start))
	default:
	}
	took := time.Since(start)
	// The partition is still led here, so the consumer fetches again on
	// the draining connection (the drain does not refuse a front end's
	// requests), and that fetch parks until the connection reads no more
	// requests: closed, the consumer ends it at once.
	cons.Close()
	<-drained
	broker.DrainedBeforeBound(t, logs)
	hook.mu.Lock()
	t.Logf("parked fetch answered %v after the drain began; fetches answered in all: %d", took, hook.answered)
	hook.mu.Unlock()
}

// TestDrainKafkaFetchesDoNotSpin: a franz-go consumer whose partition is
// still led here when the drain begins (a controlled shutdown that failed,
// or whose move is not applied here yet; here the drain runs on its own,
// after the Kafka listener stopped accepting, as in Close) fetches a
// bounded number of times in the drain, and the drain ends before its
// bound with the consumer still open. Its parked fetch is answered as the
// drain begins; the next parks until the connection reads no more
// requests (no request for the drain's quiet wait), then the connection
// closes. Before the change every fetch of the drain was answered at
// once, empty, and the consumer fetched again at once: thousands of
// fetches until the drain's bound (2 s) cut the connection.
func TestDrainKafkaFetchesDoNotSpin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, ln, logs := drainingKafka(t)
	hook := &kafkaFetches{key: 1}
	parkedConsumer(t, ctx, b, kgo.SeedBrokers(ln.Addr().String()), "spin", hook)

	ln.Close() // as Close does first (Broker.Closing)
	sent := hook.sent()
	start := time.Now()
	b.DrainConns()
	took := time.Since(start)
	n := hook.sent() - sent
	t.Logf("the drain took %v; the consumer fetched %d times in it", took, n)
	if n > 4 {
		t.Errorf("the consumer fetched %d times in the drain (%v), want at most 4", n, took)
	}
	broker.DrainedBeforeBound(t, logs)
}

// TestDrainEndsParkedShareFetch is TestDrainEndsParkedKafkaFetches for a
// Kafka share consumer: its ShareFetch, waiting for records (max wait
// 30 s), is answered empty as the drain begins, on the same context
// (FrontConn.PollContext), and the drain then ends before its bound with
// the client still open. A share fetch waits for records whoever leads
// the partitions, so the controlled shutdown does not end it as it ends
// a fetch. Before the change the wait ended only with its max wait, past
// the drain's bound.
func TestDrainEndsParkedShareFetch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, ln, logs := drainingKafka(t)
	hook := &kafkaFetches{key: 78}
	cl, err := kgo.NewClient(kgo.SeedBrokers(ln.Addr().String()), kgo.WithHooks(hook))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	if res, err := adm.CreateTopic(ctx, 1, 1, nil, "jobs"); err != nil || res.Err != nil {
		t.Fatalf("create topic: %v, %v", err, res.Err)
	}
	tds, err := adm.ListTopics(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	group, member := "workers", "member-one"
	poll.Until(t, 20*time.Second, "the member joined", func() error {
		hb := kmsg.NewPtrShareGroupHeartbeatRequest()
		hb.GroupID, hb.MemberID, hb.MemberEpoch, hb.SubscribedTopicNames = group, member, 0, []string{"jobs"}
		resp, err := hb.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode != 0 {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		return err
	})
	var session int32
	shareFetch := func(wait time.Duration) (*kmsg.ShareFetchResponse, error) {
		req := kmsg.NewPtrShareFetchRequest()
		req.GroupID, req.MemberID, req.ShareSessionEpoch = &group, &member, session
		req.MaxWaitMillis, req.MaxRecords, req.BatchSize = int32(wait.Milliseconds()), 10, 10
		rt := kmsg.NewShareFetchRequestTopic()
		rt.TopicID = tds["jobs"].ID
		rt.Partitions = append(rt.Partitions, kmsg.NewShareFetchRequestTopicPartition())
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode != 0 {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err == nil {
			session++
		}
		return resp, err
	}
	// Open the share session and wait for the coordinator to load (a
	// partition answers COORDINATOR_LOAD_IN_PROGRESS until then): nothing
	// to acquire.
	poll.Until(t, 20*time.Second, "the share coordinator loaded", func() error {
		resp, err := shareFetch(0)
		if err != nil {
			return err
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 {
					return kerr.ErrorForCode(rp.ErrorCode)
				}
			}
		}
		return nil
	})
	type answer struct {
		resp *kmsg.ShareFetchResponse
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := shareFetch(30 * time.Second)
		answered <- answer{resp, err}
	}()
	poll.Until(t, 10*time.Second, "the share fetch sent", func() bool { return hook.parked() > 0 })

	start := time.Now()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		b.DrainConns()
	}()
	var got answer
	select {
	case got = <-answered:
	case <-drained:
		t.Fatalf("the drain reached its bound (%v) with the share fetch still parked", time.Since(start))
	}
	took := time.Since(start)
	if got.err != nil {
		t.Fatalf("the parked share fetch: %v", got.err)
	}
	if ts := got.resp.Topics; len(ts) != 1 || len(ts[0].Partitions) != 1 || ts[0].Partitions[0].ErrorCode != 0 || len(ts[0].Partitions[0].AcquiredRecords) != 0 {
		t.Fatalf("the parked share fetch's answer: %+v", got.resp)
	}
	if took > time.Second {
		t.Fatalf("the parked share fetch answered %v after the drain began", took)
	}
	<-drained
	broker.DrainedBeforeBound(t, logs)
	t.Logf("parked share fetch answered %v after the drain began", took)
}
