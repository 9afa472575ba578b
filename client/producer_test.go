package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// offlineClient is a Client with no connections and no goroutines, for
// driving the producer's accumulator by hand with explicit times. It is
// not idempotent unless opts say so.
func offlineClient(t *testing.T, opts ...Opt) *Client {
	t.Helper()
	cfg := defaultConfig()
	cfg.seeds = []string{"127.0.0.1:1"}
	cfg.idempotence = idempotenceOff // tests of idempotence turn it on
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	c := &Client{cfg: cfg, brokers: map[int32]*broker{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.meta.init()
	c.prod.init(c)
	c.cons.init(c)
	t.Cleanup(c.cancel)
	return c
}

// setTopic publishes metadata for a topic whose partition i is led by
// leaders[i].
func (c *Client) setTopic(name string, leaders ...int32) {
	ti := &topicInfo{}
	for _, l := range leaders {
		ti.partitions = append(ti.partitions, partitionInfo{leader: l})
	}
	c.meta.mu.Lock()
	c.meta.topics[name] = ti
	c.meta.mu.Unlock()
}

func (p *producer) appendAt(rec *Record, part int32, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rec.Timestamp.IsZero() {
		rec.Timestamp = now
	}
	return p.append(rec, func(*Record, error) {}, part, int32(len(p.c.meta.topic(rec.Topic).partitions)), recordSize(rec), now)
}

// drainAt runs drain and returns the batches taken, by leader in request
// order, and the batches it failed (settled, not yet delivered).
func (p *producer) drainAt(now time.Time) (map[int32][]*batch, time.Time, []*batch) {
	next := p.drain(now)
	out := map[int32][]*batch{}
	for k, reqs := range p.reqs {
		for _, items := range reqs {
			for _, it := range items {
				out[k] = append(out[k], it.b)
			}
		}
		delete(p.reqs, k)
	}
	var failed []*batch
	p.mu.Lock()
	for _, pp := range p.deliverTo {
		for _, b := range pp.done {
			if b.err != nil {
				failed = append(failed, b)
			}
		}
	}
	p.mu.Unlock()
	p.deliverTo = p.deliverTo[:0]
	return out, next, failed
}

// answer settles batch b's send as a response (base offset, or err) would,
// and ends the send as its goroutine would.
func (p *producer) answer(b *batch, base int64, err error) {
	it := sendItem{b: b, gen: b.gen, epoch: p.pid.epoch}
	p.outcome(&it, base, err)
	p.release([]sendItem{it})
}

func TestLingerHoldsBatchUntilDeadline(t *testing.T) {
	c := offlineClient(t, Linger(5*time.Millisecond))
	c.setTopic("t", 1)
	p := &c.prod
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		// The first record starts a batch and must wake the sender so it
		// arms the linger timer; the others must not.
		if wake := p.appendAt(&Record{Topic: "t", Value: []byte{byte(i)}}, 0, t0); wake != (i == 0) {
			t.Fatalf("record %d: wake=%v", i, wake)
		}
	}
	reqs, next, _ := p.drainAt(t0.Add(4 * time.Millisecond))
	if len(reqs) != 0 {
		t.Fatalf("batch sent before linger: %v", reqs)
	}
	if want := t0.Add(5 * time.Millisecond); !next.Equal(want) {
		t.Fatalf("next wake %v, want %v", next, want)
	}
	reqs, _, _ = p.drainAt(t0.Add(5 * time.Millisecond))
	if len(reqs[1]) != 1 || len(reqs[1][0].recs) != 3 {
		t.Fatalf("at the linger deadline: %v, want one batch of 3 for broker 1", reqs)
	}
}

// A lingering batch is sent when its linger expires, with no Flush and
// no later record to wake the sender (a regression: the sender slept with
// no timer armed and the batch waited forever).
func TestLingerExpirySendsWithoutFlush(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, Linger(5*time.Millisecond))
	// The second record finds the sender idle, asleep with nothing armed.
	for i := range 3 {
		done := make(chan error, 1)
		c.Produce(context.Background(), &Record{Topic: "t", Value: []byte("v")}, func(_ *Record, err error) { done <- err })
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("record %d not acknowledged 10 s after a 5 ms linger", i)
		}
	}
}

func TestZeroLingerAndFlushSendAtOnce(t *testing.T) {
	c := offlineClient(t, Linger(0))
	c.setTopic("t", 1)
	t0 := time.Unix(1000, 0)
	if !c.prod.appendAt(&Record{Topic: "t"}, 0, t0) {
		t.Fatal("first record with linger 0 did not wake the sender")
	}
	if reqs, _, _ := c.prod.drainAt(t0); len(reqs[1]) != 1 {
		t.Fatalf("linger 0: %v", reqs)
	}

	c2 := offlineClient(t, Linger(time.Hour))
	c2.setTopic("t", 1)
	c2.prod.appendAt(&Record{Topic: "t"}, 0, t0)
	c2.prod.flushing++
	if reqs, _, _ := c2.prod.drainAt(t0); len(reqs[1]) != 1 {
		t.Fatalf("flushing: %v", reqs)
	}
}

func TestBatchSizeLimitSealsBatch(t *testing.T) {
	const max = 2048
	c := offlineClient(t, Linger(time.Hour), BatchMaxBytes(max), MaxBufferedBytes(1<<20))
	c.setTopic("t", 1)
	p := &c.prod
	t0 := time.Unix(1000, 0)
	val := make([]byte, 100)
	woke := -1
	for i := range 40 {
		if p.appendAt(&Record{Topic: "t", Value: val}, 0, t0) && i > 0 {
			woke = i
			break
		}
	}
	if woke < 0 {
		t.Fatal("no record sealed a batch")
	}
	pp := p.topics["t"].parts[0]
	if len(pp.queued) != 1 {
		t.Fatalf("%d full batches queued, want 1", len(pp.queued))
	}
	full := pp.queued[0]
	if size := full.bld.EstimatedSize(); size > max || size+int(recordSize(&Record{Value: val})) <= max {
		t.Errorf("sealed at %d bytes: not the largest batch under %d", size, max)
	}
	reqs, _, _ := p.drainAt(t0) // before the linger: only the full batch goes
	if len(reqs[1]) != 1 || reqs[1][0] != full {
		t.Fatalf("drain: %v, want just the full batch", reqs)
	}
	if pp.open == nil || len(pp.open.recs) != 1 {
		t.Fatalf("the record that overflowed should open the next batch")
	}
	if _, err := c.prodTooLarge(max); !errors.Is(err, ErrRecordTooLarge) {
		t.Errorf("oversized record: %v, want ErrRecordTooLarge", err)
	}
}

// prodTooLarge produces a record bigger than a batch and returns its error.
func (c *Client) prodTooLarge(max int) (*Record, error) {
	var got error
	rec := &Record{Topic: "t", Value: make([]byte, max)}
	c.Produce(context.Background(), rec, func(_ *Record, err error) { got = err })
	return rec, got
}

// Without idempotence at most one batch per partition is in flight, and a
// retried batch goes before every later batch of its partition.
func TestInflightOrderingAndRetryAtHead(t *testing.T) {
	c := offlineClient(t, Linger(time.Hour), BatchMaxBytes(256), RetryBackoff(time.Millisecond, time.Millisecond), Idempotent(false))
	c.setTopic("t", 1)
	p := &c.prod
	t0 := time.Now()
	for i := range 20 {
		p.appendAt(&Record{Topic: "t", Value: []byte(fmt.Sprintf("%040d", i))}, 0, t0)
	}
	pp := p.topics["t"].parts[0]
	if len(pp.queued) < 3 {
		t.Fatalf("want at least 3 full batches, have %d", len(pp.queued))
	}
	second := pp.queued[1]
	reqs, _, _ := p.drainAt(t0)
	first := reqs[1][0]
	if len(reqs[1]) != 1 {
		t.Fatalf("took %d batches of one partition, want 1", len(reqs[1]))
	}
	if again, _, _ := p.drainAt(t0); len(again) != 0 {
		t.Fatalf("second batch taken while the first is in flight: %v", again)
	}
	p.answer(first, -1, protocol.ErrNotLeaderOrFollower.Err())
	if pp.sent[0] != first || first.state != batchPending || pp.queued[0] != second {
		t.Fatal("retried batch not put back at the head of its partition")
	}
	if early, _, _ := p.drainAt(time.Now().Add(-time.Second)); len(early) != 0 {
		t.Fatal("retry sent before its backoff")
	}
	reqs, _, _ = p.drainAt(time.Now().Add(time.Second))
	if reqs[1][0] != first {
		t.Fatal("a later batch overtook the retried one")
	}
	if first.attempts != 1 {
		t.Errorf("attempts %d, want 1", first.attempts)
	}
}

func TestNoLeaderFailsAtDeliveryTimeout(t *testing.T) {
	c := offlineClient(t, Linger(0), DeliveryTimeout(time.Second))
	c.setTopic("t", -1)
	p := &c.prod
	t0 := time.Now()
	var got error
	p.mu.Lock()
	p.append(&Record{Topic: "t"}, func(_ *Record, err error) { got = err }, 0, 1, 50, t0)
	p.mu.Unlock()
	if _, _, failed := p.drainAt(t0); len(failed) != 0 {
		t.Fatal("failed before the delivery timeout")
	}
	_, _, failed := p.drainAt(t0.Add(time.Second))
	if len(failed) != 1 {
		t.Fatal("not failed at the delivery timeout")
	}
	p.deliver(failed[0].part)
	var pe *ProduceError
	if !errors.As(got, &pe) || pe.Indeterminate || !errors.Is(got, protocol.ErrLeaderNotAvailable) {
		t.Fatalf("got %v, want a definite LEADER_NOT_AVAILABLE ProduceError", got)
	}
	if p.outstanding != 0 {
		t.Errorf("outstanding %d after the callback", p.outstanding)
	}
}

func TestStickyPartitionSwitchesOnNewBatch(t *testing.T) {
	c := offlineClient(t, Linger(time.Hour), BatchMaxBytes(512))
	c.setTopic("t", 1, 1, 1, 1)
	p := &c.prod
	t0 := time.Now()
	var parts []int32
	for range 60 {
		rec := &Record{Topic: "t", Value: make([]byte, 60)}
		p.appendAt(rec, StickyPartition, t0)
		parts = append(parts, rec.Partition)
	}
	switches := 0
	for i := 1; i < len(parts); i++ {
		if parts[i] != parts[i-1] {
			switches++
			// A switch happens only when the previous partition's batch
			// was sealed.
			if q := p.topics["t"].parts[parts[i-1]].queued; len(q) == 0 {
				t.Fatalf("switched away from %d at record %d with no sealed batch", parts[i-1], i)
			}
		}
	}
	if switches == 0 {
		t.Fatalf("never switched partitions: %v", parts)
	}
	// Each batch holds records of one sticky run: count batches == runs.
	batches := 0
	for _, pp := range p.topics["t"].parts {
		batches += len(pp.queued)
		if pp.open != nil {
			batches++
		}
	}
	if batches != switches+1 {
		t.Errorf("%d batches for %d sticky runs", batches, switches+1)
	}
}

// Keyless records leave a partition whose open batch waited past linger
// and stickyPatience without being sent (its leader failing over, acks
// slow), and avoid such partitions when they pick the next one; a batch
// within its time keeps them.
func TestStickyPartitionLeavesAStalledPartition(t *testing.T) {
	const linger = 5 * time.Millisecond
	c := offlineClient(t, Linger(linger))
	c.setTopic("t", 1, 1, 1)
	p := &c.prod
	t0 := time.Now()
	first := &Record{Topic: "t", Value: []byte("a")}
	p.appendAt(first, StickyPartition, t0)
	stuck := first.Partition

	soon := t0.Add(linger + stickyPatience/2)
	rec := &Record{Topic: "t", Value: []byte("b")}
	p.appendAt(rec, StickyPartition, soon)
	if rec.Partition != stuck {
		t.Fatalf("left partition %d for %d before its batch stalled", stuck, rec.Partition)
	}

	// Another partition stalls too: the next pick must be the third.
	other := (stuck + 1) % 3
	p.appendAt(&Record{Topic: "t", Value: []byte("c"), Partition: other}, other, t0)
	late := t0.Add(linger + 2*stickyPatience)
	for i := range 20 { // the pick is random: try it many times
		rec := &Record{Topic: "t", Value: []byte("d")}
		p.appendAt(rec, StickyPartition, late)
		if rec.Partition == stuck || rec.Partition == other {
			t.Fatalf("record %d went to stalled partition %d (stalled: %d and %d)", i, rec.Partition, stuck, other)
		}
		// Forget the choice so each round picks again.
		p.topics["t"].stickyBatch = nil
	}
}

func TestMemLimitBlocksUntilReleaseOrCancel(t *testing.T) {
	m := memLimit{limit: 100}
	if err := m.acquire(context.Background(), 80); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.acquire(ctx, 30) }()
	select {
	case err := <-done:
		t.Fatalf("acquire over the limit returned %v without waiting", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled acquire: %v", err)
	}
	go func() { done <- m.acquire(context.Background(), 30) }()
	m.release(80)
	if err := <-done; err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if m.used != 30 {
		t.Errorf("used %d, want 30", m.used)
	}
	m.close()
	if err := m.acquire(context.Background(), 90); !errors.Is(err, ErrClosed) {
		t.Errorf("acquire after close: %v", err)
	}
}

func TestClassify(t *testing.T) {
	sentLoss := &connError{addr: "b", sent: true, err: errInjected}
	notSent := &connError{addr: "b", err: errInjected}
	timeout := &connError{addr: "b", sent: true, timeout: true}
	for _, c := range []struct {
		name       string
		err        error
		idempotent bool
		want       classification
	}{
		{"not leader", protocol.ErrNotLeaderOrFollower.Err(), false,
			classification{code: protocol.ErrNotLeaderOrFollower, retry: true, refresh: true}},
		{"unknown topic", fmt.Errorf("wrapped: %w", protocol.ErrUnknownTopicOrPartition.Err()), false,
			classification{code: protocol.ErrUnknownTopicOrPartition, retry: true, refresh: true}},
		{"leader not available", protocol.ErrLeaderNotAvailable, false,
			classification{code: protocol.ErrLeaderNotAvailable, retry: true, refresh: true}},
		{"not enough replicas", protocol.ErrNotEnoughReplicas.Err(), false,
			classification{code: protocol.ErrNotEnoughReplicas, retry: true}},
		{"after append: maybe written, no resend", protocol.ErrNotEnoughReplicasAfterAppend.Err(), false,
			classification{code: protocol.ErrNotEnoughReplicasAfterAppend, indeterminate: true}},
		{"broker timeout", protocol.ErrRequestTimedOut.Err(), false,
			classification{code: protocol.ErrRequestTimedOut, indeterminate: true}},
		{"message too large", protocol.ErrMessageTooLarge.Err(), false,
			classification{code: protocol.ErrMessageTooLarge}},
		{"conn lost after send", sentLoss, false,
			classification{code: protocol.ErrNetwork, indeterminate: true, refresh: true}},
		{"conn lost after send, read", sentLoss, true,
			classification{code: protocol.ErrNetwork, indeterminate: true, refresh: true, retry: true}},
		{"not sent", notSent, false,
			classification{code: protocol.ErrNetwork, retry: true, refresh: true}},
		{"client timeout", timeout, false,
			classification{code: protocol.ErrRequestTimedOut, indeterminate: true, refresh: true}},
		{"malformed response", &protocol.MalformedError{What: "x"}, false,
			classification{code: protocol.ErrUnknownServerError, indeterminate: true}},
		{"closed", ErrClosed, false, classification{}},
	} {
		if got := classify(c.err, c.idempotent); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if !errors.Is(timeout, protocol.ErrRequestTimedOut) || !errors.Is(sentLoss, protocol.ErrNetwork) {
		t.Error("connError does not match its protocol codes")
	}
	if !IsIndeterminate(sentLoss) || IsIndeterminate(notSent) || IsIndeterminate(nil) {
		t.Error("IsIndeterminate wrong for connection errors")
	}
	pe := &ProduceError{Code: protocol.ErrNotLeaderOrFollower, Err: protocol.ErrNotLeaderOrFollower.Err()}
	if !errors.Is(pe, protocol.ErrNotLeaderOrFollower) || errors.Is(pe, protocol.ErrNetwork) || IsIndeterminate(pe) {
		t.Error("ProduceError matching wrong")
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, time.Second
	for _, c := range []struct {
		attempt int
		jitter  float64
		want    time.Duration
	}{
		{1, 0, 100 * time.Millisecond},
		{2, 0, 200 * time.Millisecond},
		{4, 0, 800 * time.Millisecond},
		{5, 0, time.Second},
		{50, 0, time.Second},
		{1, 1, 80 * time.Millisecond},
		{50, 0.5, 900 * time.Millisecond},
	} {
		if got := backoff(lo, hi, c.attempt, c.jitter); got != c.want {
			t.Errorf("backoff(attempt %d, jitter %v) = %v, want %v", c.attempt, c.jitter, got, c.want)
		}
	}
}

func TestConfigValidateNamesOption(t *testing.T) {
	for _, c := range []struct {
		opts []Opt
		want string
	}{
		{nil, "SeedBrokers"},
		{[]Opt{SeedBrokers("x:1"), Acks(2)}, "Acks"},
		{[]Opt{SeedBrokers("x:1"), Linger(-1)}, "Linger"},
		{[]Opt{SeedBrokers("x:1"), BatchMaxBytes(10)}, "BatchMaxBytes"},
		{[]Opt{SeedBrokers("x:1"), MaxBufferedBytes(1000)}, "MaxBufferedBytes"},
		{[]Opt{SeedBrokers("x:1"), FetchMaxBytes(10, 20)}, "FetchMaxBytes"},
		{[]Opt{SeedBrokers("x:1"), RetryBackoff(time.Second, time.Millisecond)}, "RetryBackoff"},
	} {
		_, err := New(context.Background(), c.opts...)
		if err == nil || !containsStr(err.Error(), c.want) {
			t.Errorf("%s: got %v", c.want, err)
		}
	}
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// A batch the leader refuses as MESSAGE_TOO_LARGE is split in halves and
// resent, again while a half is still refused, so every record that fits
// the topic's limit is acknowledged, once and in order; the next batches
// are built small enough at once. A single record over the limit fails
// definitely, saying so. With and without idempotence, and with several
// batches of a partition in flight (the ones behind a split batch are
// refused out of order and resent after its halves).
func TestProduceSplitsTooLargeBatch(t *testing.T) {
	const limit, n = 400, 200
	for _, tt := range []struct {
		idem     bool
		batchMax int // several batches in flight, each refused or split
	}{{true, DefaultBatchMaxBytes}, {true, 1000}, {false, DefaultBatchMaxBytes}} {
		idem := tt.idem
		t.Run(fmt.Sprintf("idempotent=%v/batch=%d", idem, tt.batchMax), func(t *testing.T) {
			fc := newFakeCluster(t, 1)
			fc.addTopic("t", 1)
			var refused atomic.Int32
			onProduce(fc, func(_ int32, req *protocol.ProduceRequest) action {
				if len(req.Topics[0].Partitions[0].Records) > limit {
					refused.Add(1)
					return action{resp: produceErrorResponse(req, protocol.ErrMessageTooLarge)}
				}
				return action{}
			})
			opts := []Opt{Linger(time.Hour), Idempotent(idem), BatchMaxBytes(tt.batchMax)}
			if !idem {
				opts = append(opts, Acks(AcksLeader))
			}
			c := newTestClient(t, fc, opts...)
			for i, err := range produceAll(t, c, n) {
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			wantStoredOnceInOrder(t, fc, n)
			if refused.Load() == 0 {
				t.Fatal("no batch was refused: the test did not test splitting")
			}
			// The next batches fit: no more refusals.
			before := refused.Load()
			for i := range 50 {
				c.Produce(context.Background(), &Record{Topic: "t", Value: []byte(fmt.Sprintf("%04d", n+i))}, nil)
			}
			if err := c.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			wantStoredOnceInOrder(t, fc, n+50)
			if got := refused.Load(); got != before {
				t.Errorf("%d more refusals after the split, want none", got-before)
			}
			err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: make([]byte, 2*limit)})
			var pe *ProduceError
			if !errors.As(err, &pe) || pe.Indeterminate || !errors.Is(err, protocol.ErrMessageTooLarge) ||
				!strings.Contains(err.Error(), "max.message.bytes") {
				t.Fatalf("a record over the limit: %v, want a definite MESSAGE_TOO_LARGE naming max.message.bytes", err)
			}
		})
	}
}
