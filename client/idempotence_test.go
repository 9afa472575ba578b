package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

// produceAll produces n records "0000".."n-1" to t[0] and waits for every
// callback; it returns the records' errors by index and checks that
// callbacks ran in offset order.
func produceAll(t *testing.T, c *Client, n int) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	last := int64(-1)
	wg.Add(n)
	for i := range n {
		c.Produce(context.Background(), &Record{Topic: "t", Value: []byte(fmt.Sprintf("%04d", i))}, func(r *Record, err error) {
			defer wg.Done()
			errs[i] = err
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if r.Offset <= last {
				t.Errorf("record %s: callback with offset %d after offset %d", r.Value, r.Offset, last)
			}
			last = r.Offset
		})
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return errs
}

// onProduce hooks fc's Produce requests: f gets each with its number,
// from 1, and says what to do with it.
func onProduce(fc *fakeCluster, f func(n int32, req *protocol.ProduceRequest) action) {
	var n atomic.Int32
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key != protocol.Produce {
			return action{}
		}
		return f(n.Add(1), req.(*protocol.ProduceRequest))
	})
}

// wantStoredOnceInOrder fails the test unless t[0] holds "0000".."n-1",
// each once, in order.
func wantStoredOnceInOrder(t *testing.T, fc *fakeCluster, n int) {
	t.Helper()
	got := fc.values("t", 0)
	for i, v := range got {
		if v != fmt.Sprintf("%04d", i) {
			t.Fatalf("offset %d holds %s (%d stored, want %d): duplicated or reordered", i, v, len(got), n)
		}
	}
	if len(got) != n {
		t.Fatalf("%d records stored, want %d", len(got), n)
	}
}

// With acks=all the producer is idempotent by default: every batch
// carries the producer id and epoch from InitProducerId and a sequence
// that continues where the previous batch ended.
func TestIdempotentSequencesStampedAndContinuous(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, Linger(time.Millisecond), BatchMaxBytes(300))
	for i, err := range produceAll(t, c, 100) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	wantStoredOnceInOrder(t, fc, 100)
	hdrs := fc.batchHeaders("t", 0)
	if len(hdrs) < 5 {
		t.Fatalf("%d batches: want several", len(hdrs))
	}
	next := int64(0)
	for i, h := range hdrs {
		if h[0] != 1 || h[1] != 0 || h[2] != next {
			t.Fatalf("batch %d: producer %d epoch %d sequence %d, want producer 1 epoch 0 sequence %d", i, h[0], h[1], h[2], next)
		}
		next += h[3]
	}
	if n := fc.count(protocol.InitProducerID); n != 1 {
		t.Errorf("%d InitProducerId requests, want 1", n)
	}
	if !c.Idempotent() {
		t.Error("Idempotent() false with acks=all by default")
	}
}

func TestNextSequenceWraps(t *testing.T) {
	const maxSeq = 1<<31 - 1
	// seq, records, want
	for _, c := range [][3]int64{{0, 5, 5}, {maxSeq - 5, 5, maxSeq}, {maxSeq - 4, 5, 0}, {maxSeq, 1, 0}, {maxSeq - 1, 10, 8}} {
		if got := nextSequence(int32(c[0]), int(c[1])); int64(got) != c[2] {
			t.Errorf("nextSequence(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}

// holdProduces holds the produce requests of a test until release is
// closed (or 2 s pass, so that a producer keeping fewer in flight than the
// test waits for still finishes). A fake broker serves a connection's
// requests one at a time, so the later ones wait unread behind the held
// one: how many batches are in flight is read from the producer, whenever
// a request arrives or the test polls. fail, if set, answers the request
// with that number (1-based) with NOT_ENOUGH_REPLICAS instead of handling
// it.
type holdProduces struct {
	c       *Client
	release chan struct{}
	maxSeen atomic.Int32
	n       atomic.Int32
	fail    int32
}

func newHoldProduces() *holdProduces { return &holdProduces{release: make(chan struct{})} }

// inflight is how many batches of t[0] the producer has in flight, noted
// in maxSeen.
func (h *holdProduces) inflight() int32 {
	p := &h.c.prod
	p.mu.Lock()
	n := int32(0)
	if tp := p.topics["t"]; tp != nil && len(tp.parts) > 0 {
		n = int32(tp.parts[0].inflight)
	}
	p.mu.Unlock()
	for {
		m := h.maxSeen.Load()
		if n <= m || h.maxSeen.CompareAndSwap(m, n) {
			return n
		}
	}
}

func (h *holdProduces) hook(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
	if key != protocol.Produce {
		return action{}
	}
	n := h.n.Add(1)
	h.inflight()
	select {
	case <-h.release:
	case <-time.After(2 * time.Second):
	}
	if n == h.fail {
		return action{resp: produceErrorResponse(req.(*protocol.ProduceRequest), protocol.ErrNotEnoughReplicas)}
	}
	return action{}
}

// An idempotent producer keeps up to five batches of a partition in
// flight; without idempotence, one (ordering needs it).
func TestInflightPerPartition(t *testing.T) {
	for _, c := range []struct {
		idempotent bool
		want       int32
	}{{true, 5}, {false, 1}} {
		t.Run(fmt.Sprint("idempotent=", c.idempotent), func(t *testing.T) {
			fc := newFakeCluster(t, 1)
			fc.addTopic("t", 1)
			h := newHoldProduces()
			cl := newTestClient(t, fc, Linger(0), BatchMaxBytes(200), Idempotent(c.idempotent))
			h.c = cl
			fc.setHook(h.hook)
			done := make(chan []error, 1)
			go func() { done <- produceAll(t, cl, 40) }()
			poll.Until(t, 10*time.Second, fmt.Sprint(c.want, " batches in flight"), func() bool { return h.inflight() == c.want })
			close(h.release)
			for i, err := range <-done {
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			if got := h.maxSeen.Load(); got != c.want {
				t.Errorf("at most %d batches in flight, want %d", got, c.want)
			}
			wantStoredOnceInOrder(t, fc, 40)
			if pid := fc.batchHeaders("t", 0)[0][0]; (pid >= 0) != c.idempotent {
				t.Errorf("producer id %d in the batches", pid)
			}
		})
	}
}

// A retriable error on the second of five batches in flight: the leader
// refuses the three after it (OUT_OF_ORDER_SEQUENCE_NUMBER, their
// predecessor is missing), and the producer resends all four in order
// with their sequences — nothing reordered, duplicated or failed.
func TestIdempotentRetryInFlightKeepsOrder(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	h := newHoldProduces()
	h.fail = 2
	c := newTestClient(t, fc, Linger(0), BatchMaxBytes(200))
	h.c = c
	fc.setHook(h.hook)
	done := make(chan []error, 1)
	go func() { done <- produceAll(t, c, 40) }()
	poll.Until(t, 10*time.Second, "five batches in flight", func() bool { return h.inflight() == 5 })
	close(h.release)
	for i, err := range <-done {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	wantStoredOnceInOrder(t, fc, 40)
	hdrs := fc.batchHeaders("t", 0)
	next := int64(0)
	for i, hd := range hdrs {
		if hd[1] != 0 || hd[2] != next {
			t.Fatalf("batch %d: epoch %d sequence %d, want epoch 0 sequence %d (no epoch bump needed)", i, hd[1], hd[2], next)
		}
		next += hd[3]
	}
	// The failed batch and the three refused behind it were each sent twice.
	if n := h.n.Load(); n < int32(len(hdrs))+4 {
		t.Errorf("%d produce requests for %d batches: the batches after the failed one were not refused and resent", n, len(hdrs))
	}
}

// A leader that forgot the producer (state evicted) answers
// UNKNOWN_PRODUCER_ID: the producer bumps its epoch and resends from
// sequence 0, losing and duplicating nothing.
func TestIdempotentUnknownProducerBumpsEpoch(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, Linger(time.Millisecond), BatchMaxBytes(300))
	if err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("0000")}); err != nil {
		t.Fatal(err)
	}
	fc.forgetProducers()
	for i := 1; i < 30; i++ {
		if err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte(fmt.Sprintf("%04d", i))}); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	wantStoredOnceInOrder(t, fc, 30)
	hdrs := fc.batchHeaders("t", 0)
	if h := hdrs[1]; h[0] != hdrs[0][0] || h[1] != 1 || h[2] != 0 {
		t.Fatalf("batch after the eviction: producer %d epoch %d sequence %d, want producer %d epoch 1 sequence 0",
			h[0], h[1], h[2], hdrs[0][0])
	}
	if n := fc.count(protocol.InitProducerID); n != 2 {
		t.Errorf("%d InitProducerId requests, want 2 (the first and the bump)", n)
	}
}

// A connection lost after the leader appended the batch: the producer
// resends it with the same sequence, the leader answers with the original
// offset, and the record is acknowledged once — not failed as
// indeterminate, not duplicated.
func TestIdempotentConnDropResendsSameSequence(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	var n atomic.Int32
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		return action{drop: key == protocol.Produce && n.Add(1) <= 2}
	})
	c := newTestClient(t, fc, Linger(0))
	if err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	rec := &Record{Topic: "t", Value: []byte("b")}
	if err := c.ProduceSync(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if got := fc.values("t", 0); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("stored %v, want [a b]", got)
	}
	if rec.Offset != 1 {
		t.Errorf("offset %d, want 1 (the original)", rec.Offset)
	}
	fc.mu.Lock()
	dups := fc.dups
	fc.mu.Unlock()
	if dups != 2 || n.Load() != 4 {
		t.Errorf("%d duplicates answered in %d produce requests, want 2 in 4", dups, n.Load())
	}
	if got := c.ResolvedUnknown(); got != 1 {
		t.Errorf("ResolvedUnknown %d, want 1: a's answers were lost, then it was acknowledged", got)
	}
}

// A batch whose requests keep being lost reaches its callback only when
// DeliveryTimeout runs out, indeterminate, after several resends.
func TestIdempotentUnknownOutcomeWaitsForDeliveryTimeout(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		return action{close: key == protocol.Produce}
	})
	const timeout = 300 * time.Millisecond
	c := newTestClient(t, fc, Linger(0), DeliveryTimeout(timeout))
	start := time.Now()
	err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("v")})
	took := time.Since(start)
	if !IsIndeterminate(err) || !errors.Is(err, protocol.ErrNetwork) {
		t.Fatalf("got %v, want an indeterminate NETWORK_EXCEPTION", err)
	}
	if took < timeout {
		t.Errorf("failed after %v, before the %v delivery timeout", took, timeout)
	}
	if n := fc.count(protocol.Produce); n < 2 {
		t.Errorf("%d produce requests: the batch was not resent", n)
	}
}

// acks=all makes the producer idempotent unless turned off; asking for
// idempotence with other acks is an error at New.
func TestIdempotenceDefaults(t *testing.T) {
	for _, c := range []struct {
		opts []Opt
		want bool
	}{
		{nil, true},
		{[]Opt{Idempotent(false)}, false},
		{[]Opt{Acks(AcksLeader)}, false},
		{[]Opt{Acks(AcksNone)}, false},
	} {
		cfg := defaultConfig()
		for _, o := range c.opts {
			o(&cfg)
		}
		if got := cfg.idempotent(); got != c.want {
			t.Errorf("%d options: idempotent %v, want %v", len(c.opts), got, c.want)
		}
	}
	_, err := New(context.Background(), SeedBrokers("x:1"), Acks(AcksLeader), Idempotent(true))
	if err == nil || !containsStr(err.Error(), "Idempotent") {
		t.Fatalf("acks=1 with idempotence: %v, want an error naming Idempotent", err)
	}
}

// The leader of a partition hangs with a batch in flight and the cluster
// elects another (issue 13): the producer sees the new leader in metadata
// it refreshes because the batch stalled, stops waiting on the hung
// connection (moveGrace after seeing the move: the connection answered
// its handshake less than moveGrace before) and resends there —
// acknowledged in well under the request timeout, once. Without idempotence the batch fails at once,
// indeterminate, rather than after the request timeout, and is never
// resent.
func TestLeaderChangeResendsStalledBatch(t *testing.T) {
	for _, idem := range []bool{true, false} {
		t.Run(fmt.Sprint("idempotent=", idem), func(t *testing.T) {
			fc := newFakeCluster(t, 2)
			fc.addTopic("t", 1)
			hung := make(chan struct{})
			t.Cleanup(func() { close(hung) })
			var held, toNew atomic.Int32
			fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
				switch {
				case key == protocol.Produce && b.id == 1:
					held.Add(1)
					return action{wait: hung}
				case key == protocol.Produce:
					toNew.Add(1)
				}
				return action{}
			})
			c := newTestClient(t, fc, Linger(0), Idempotent(idem), RequestTimeout(time.Minute))
			done := make(chan error, 1)
			start := time.Now()
			c.Produce(context.Background(), &Record{Topic: "t", Value: []byte("v")}, func(_ *Record, err error) { done <- err })
			poll.Until(t, 10*time.Second, "the batch in flight to broker 1", func() bool { return held.Load() == 1 })
			fc.setLeader("t", 0, 2)
			elected := time.Now()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("no callback 10 s after the leader changed")
			}
			t.Logf("callback %v after the election (%v after Produce)", time.Since(elected), time.Since(start))
			if gap := time.Since(elected); gap > 3*time.Second {
				t.Errorf("callback %v after the election", gap)
			}
			if idem {
				if err != nil {
					t.Fatal(err)
				}
				if got := fc.values("t", 0); len(got) != 1 {
					t.Fatalf("stored %v, want one record", got)
				}
				return
			}
			if !IsIndeterminate(err) {
				t.Fatalf("got %v, want an indeterminate failure", err)
			}
			if n := toNew.Load(); n != 0 {
				t.Fatalf("%d produce requests to the new leader: a plain producer resent a batch the old leader may have written", n)
			}
		})
	}
}

// A cluster that does not serve InitProducerId: default idempotence is
// dropped (records go out without a producer id, one batch in flight),
// while idempotence asked for explicitly fails the records, definitely.
func TestIdempotenceUnsupportedByCluster(t *testing.T) {
	for _, explicit := range []bool{false, true} {
		t.Run(fmt.Sprint("explicit=", explicit), func(t *testing.T) {
			fc := newFakeCluster(t, 1)
			fc.addTopic("t", 1)
			fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
				if key == protocol.InitProducerID {
					return action{resp: &protocol.InitProducerIDResponse{ErrorCode: protocol.ErrUnsupportedVersion}}
				}
				return action{}
			})
			var opts []Opt
			if explicit {
				opts = append(opts, Idempotent(true))
			}
			c := newTestClient(t, fc, opts...)
			err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("v")})
			if explicit {
				if !errors.Is(err, protocol.ErrUnsupportedVersion) || IsIndeterminate(err) {
					t.Fatalf("got %v, want a definite UNSUPPORTED_VERSION", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Idempotent() {
				t.Error("Idempotent() true after the cluster refused InitProducerId")
			}
			if h := fc.batchHeaders("t", 0); len(h) != 1 || h[0][0] != -1 {
				t.Fatalf("batches %v, want one without a producer id", h)
			}
		})
	}
}

// OUT_OF_ORDER_SEQUENCE_NUMBER that no earlier batch explains, and
// INVALID_PRODUCER_EPOCH, mean the leader's view of the producer is not
// the client's: the producer bumps its epoch and resends from sequence 0.
func TestIdempotentUnexplainedErrorBumpsEpoch(t *testing.T) {
	for _, code := range []protocol.ErrorCode{protocol.ErrOutOfOrderSequenceNumber, protocol.ErrInvalidProducerEpoch} {
		t.Run(code.String(), func(t *testing.T) {
			fc := newFakeCluster(t, 1)
			fc.addTopic("t", 1)
			var n atomic.Int32
			fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
				if key == protocol.Produce && n.Add(1) == 2 {
					return action{resp: produceErrorResponse(req.(*protocol.ProduceRequest), code)}
				}
				return action{}
			})
			c := newTestClient(t, fc, Linger(0))
			for i := range 3 {
				if err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte(fmt.Sprintf("%04d", i))}); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			wantStoredOnceInOrder(t, fc, 3)
			got := fmt.Sprint(fc.batchHeaders("t", 0))
			if want := "[[1 0 0 1] [1 1 0 1] [1 1 1 1]]"; got != want {
				t.Fatalf("batches (producer, epoch, sequence, records) %s, want %s", got, want)
			}
		})
	}
}

// A record whose first attempt's outcome was unknown, and whose resends
// are refused (definite) until the delivery timeout, fails as maybe
// written — the first attempt may be in the log — and the error says
// why, while still matching the last refusal.
func TestIdempotentRefusedAfterUnknownIsIndeterminate(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	onProduce(fc, func(n int32, req *protocol.ProduceRequest) action {
		if n == 1 {
			return action{close: true}
		}
		return action{resp: produceErrorResponse(req, protocol.ErrNotEnoughReplicas)}
	})
	c := newTestClient(t, fc, Linger(0), DeliveryTimeout(300*time.Millisecond))
	err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("v")})
	if !IsIndeterminate(err) || !errors.Is(err, protocol.ErrNotEnoughReplicas) ||
		!strings.Contains(err.Error(), "earlier attempt's outcome is unknown") {
		t.Fatalf("got %v (indeterminate %v), want an indeterminate NOT_ENOUGH_REPLICAS naming the unknown attempt", err, IsIndeterminate(err))
	}
}

// After an epoch bump, a batch whose first attempt's outcome was unknown
// is resent under the new epoch when the leader's answer to its resend
// proved it unwritten (OUT_OF_ORDER_SEQUENCE_NUMBER with nothing before it
// unsettled: a leader that lost the producer's earlier batch, as after an
// unclean election), and fails as maybe written when it did not
// (UNKNOWN_PRODUCER_ID: the state may have been evicted after the write).
func TestIdempotentBumpResendsOnlyKnownUnwritten(t *testing.T) {
	for _, tt := range []struct {
		code     protocol.ErrorCode
		resent   bool
		wantVals string
	}{
		{protocol.ErrOutOfOrderSequenceNumber, true, "[0000 0001]"},
		{protocol.ErrUnknownProducerID, false, "[0000]"},
	} {
		t.Run(tt.code.String(), func(t *testing.T) {
			fc := newFakeCluster(t, 1)
			fc.addTopic("t", 1)
			onProduce(fc, func(n int32, req *protocol.ProduceRequest) action {
				switch n {
				case 2: // the first attempt of 0001: its outcome is unknown
					return action{close: true}
				case 3: // its resend, same sequence: refused
					return action{resp: produceErrorResponse(req, tt.code)}
				}
				return action{}
			})
			c := newTestClient(t, fc, Linger(0), DeliveryTimeout(5*time.Second))
			if err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("0000")}); err != nil {
				t.Fatal(err)
			}
			err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("0001")})
			switch {
			case tt.resent && err != nil:
				t.Fatalf("known unwritten batch: %v, want it resent and acknowledged", err)
			case !tt.resent && !IsIndeterminate(err):
				t.Fatalf("maybe written batch: %v, want an indeterminate failure", err)
			}
			if got := fmt.Sprint(fc.values("t", 0)); got != tt.wantVals {
				t.Fatalf("stored %s, want %s", got, tt.wantVals)
			}
			if tt.resent {
				hdrs := fc.batchHeaders("t", 0)
				if h := hdrs[1]; h[1] != 1 || h[2] != 0 {
					t.Fatalf("resent batch: epoch %d sequence %d, want epoch 1 sequence 0", h[1], h[2])
				}
			}
		})
	}
}

// A leader hands its partition over (a preferred-leader rebalance) with a
// batch in flight: it appended the batch while leading, but its answer
// reaches the producer only after metadata shows the new leader (issue 13
// item 4). The old leader's connection answered lately, so the producer
// waits for the answer instead of giving the batch up: acknowledged at
// its offset, written once, and — without idempotence — not an unknown
// outcome. Before moveGrace, the plain producer failed it as maybe
// written the moment it saw the new leader.
func TestLeaderHandoverAnswerIsAwaited(t *testing.T) {
	for _, idem := range []bool{true, false} {
		t.Run(fmt.Sprint("idempotent=", idem), func(t *testing.T) {
			fc := newFakeCluster(t, 2)
			fc.addTopic("t", 1)
			var armed atomic.Bool
			var toNew atomic.Int32
			held := make(chan struct{}, 1)
			release := make(chan struct{})
			fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
				switch {
				case key != protocol.Produce:
				case b.id == 2:
					toNew.Add(1)
				case armed.CompareAndSwap(true, false):
					resp := b.handle(key, req) // appended while it leads
					held <- struct{}{}
					return action{resp: resp, wait: release}
				}
				return action{}
			})
			// A grace the wait below cannot outlast at any load (two
			// metadata refreshes took more than moveGrace at load 50).
			grace := func(c *config) { c.moveGrace = time.Minute }
			c := newTestClient(t, fc, Linger(0), Idempotent(idem), RequestTimeout(time.Minute), grace)
			ctx := context.Background()
			if err := c.ProduceSync(ctx, &Record{Topic: "t", Value: []byte("a")}); err != nil {
				t.Fatal(err)
			}
			armed.Store(true)
			type result struct {
				off int64
				err error
			}
			done := make(chan result, 1)
			c.Produce(ctx, &Record{Topic: "t", Value: []byte("b")}, func(r *Record, err error) { done <- result{r.Offset, err} })
			select {
			case <-held:
			case <-time.After(10 * time.Second):
				t.Fatal("the batch never reached broker 1")
			}
			sent := time.Now()
			fc.setLeader("t", 0, 2)
			// The batch stalls (stallAfter), the producer refreshes
			// metadata and sees broker 2 lead; two refreshes after the
			// stall, leadersChanged has judged the batch at least once
			// (and, before moveGrace, given it up).
			base := -1
			poll.Until(t, 10*time.Second, "two metadata refreshes after the batch stalled", func() bool {
				if len(done) > 0 {
					return true // given up on already
				}
				if time.Since(sent) < stallAfter {
					return false
				}
				if base < 0 {
					base = fc.count(protocol.Metadata)
				}
				return fc.count(protocol.Metadata) >= base+2
			})
			close(release)
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("no callback 10 s after the old leader answered")
			}
			if r.err != nil {
				t.Fatalf("the batch the old leader appended and answered: %v, want acknowledged", r.err)
			}
			if r.off != 1 {
				t.Errorf("acknowledged at offset %d, want 1", r.off)
			}
			if got := fc.values("t", 0); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("stored %v, want [a b]", got)
			}
			if n := toNew.Load(); n != 0 {
				t.Errorf("%d produce requests went to the new leader, want none: the old leader's answer was due", n)
			}
		})
	}
}
