package broker

import (
	"context"
	"errors"
	"sync"
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
			_, err := b.Append(nil, c.topic, 0, batch, AcksLeader)
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
			_, err := b.Append(nil, "nope", 0, batch, AcksLeader)
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

// barriers records catchUp's read barriers: when each began and ended,
// and how many were in flight at once at most.
type barriers struct {
	mu           sync.Mutex
	began, ended []time.Time
	inFlight     int
	maxInFlight  int
}

// recordBarriers makes readBarrier record into the returned barriers
// until the test ends.
func recordBarriers(t *testing.T) *barriers {
	r := &barriers{}
	prev := readBarrier
	t.Cleanup(func() { readBarrier = prev })
	readBarrier = func(ctx context.Context, b *Broker) error {
		r.mu.Lock()
		r.began = append(r.began, time.Now())
		r.inFlight++
		r.maxInFlight = max(r.maxInFlight, r.inFlight)
		r.mu.Unlock()
		err := prev(ctx, b)
		r.mu.Lock()
		r.inFlight--
		r.ended = append(r.ended, time.Now())
		r.mu.Unlock()
		return err
	}
	return r
}

func (r *barriers) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.began)
}

// TestCatchUpBarrierBegunAfterTheCall: a request's catch-up is answered
// from a read barrier begun after it was called, also one called within
// catchUpSpacing of the last barrier (it waits for the next, which the
// requests meanwhile share). Skipping the barrier there once answered a
// Kafka client UNKNOWN_TOPIC_OR_PARTITION for a topic created 8 ms
// before, which cost it 5 s.
func TestCatchUpBarrierBegunAfterTheCall(t *testing.T) {
	b := startBroker(t, "", nil)
	r := recordBarriers(t)
	v := b.Metadata().Version
	b.catchUp(nil, v) // a barrier just ended
	var wg sync.WaitGroup
	called := time.Now()
	for range 5 {
		wg.Go(func() { b.catchUp(nil, v) })
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.began) != 2 || !r.began[1].After(called) {
		t.Fatalf("barriers at %v for calls at %v: want the first, then one begun after the calls, shared by them", r.began, called)
	}
}

// TestCatchUpOncePerRequest: a request naming 10,000 partitions unknown
// here costs one read barrier, not one each (a fetch naming thousands
// once waited ~100 ms for each), whether its lookups are a Fetch's or
// a front end's calls sharing a CatchUp; a request naming only known
// partitions costs none.
func TestCatchUpOncePerRequest(t *testing.T) {
	b := startBroker(t, "", nil)
	if err := b.CreateTopics(context.Background(), []NewTopic{{Name: "known", Partitions: 2, ReplicationFactor: 1}}, false)[0]; err != nil {
		t.Fatal(err)
	}
	r := recordBarriers(t)
	const n = 10_000
	batch := makeBatch(t, record.None, "v", 1, 0)

	var cu CatchUp
	start := time.Now()
	for i := range int32(n) {
		if _, err := b.Append(&cu, "nope", i, batch, AcksLeader); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
			t.Fatalf("append to nope/%d: %v", i, err)
		}
		if got := r.count(); got > 1 {
			t.Fatalf("%d appends to unknown partitions in one request: %d barriers, want 1", i+1, got)
		}
	}
	if got := r.count(); got != 1 {
		t.Fatalf("%d appends to unknown partitions in one request: %d barriers, want 1", n, got)
	}
	t.Logf("%d appends to unknown partitions in one request: %v", n, time.Since(start))

	f := &Fetch{MaxBytes: 1 << 20}
	for i := range int32(n) {
		f.Parts = append(f.Parts, FetchPart{Topic: "known", Partition: 2 + i, MaxBytes: 1 << 10})
	}
	start = time.Now()
	b.StartFetch(f)
	for _, fp := range f.Parts {
		if !errors.Is(fp.Err, protocol.ErrUnknownTopicOrPartition) {
			t.Fatalf("fetch of %s/%d: %v", fp.Topic, fp.Partition, fp.Err)
		}
	}
	f.Release()
	if got := r.count(); got != 2 {
		t.Fatalf("a fetch of %d unknown partitions: %d barriers, want 1", n, got-1)
	}
	t.Logf("a fetch of %d unknown partitions: %v", n, time.Since(start))

	f.Reset()
	f.Parts = append(f.Parts, FetchPart{Topic: "known", Partition: 0, MaxBytes: 1 << 10}, FetchPart{Topic: "known", Partition: 1, MaxBytes: 1 << 10})
	b.StartFetch(f)
	f.Release()
	var known CatchUp
	if _, err := b.ListOffset(&known, "known", 1, LatestTimestamp); err != nil {
		t.Fatal(err)
	}
	if got := r.count(); got != 2 {
		t.Fatalf("requests naming only known partitions: %d barriers, want none", got-2)
	}
}

// TestCatchUpFlood: requests for a topic that does not exist, from many
// clients at once and again and again, keep at most one barrier in
// flight, catchUpSpacing apart, and each is answered within openWait.
func TestCatchUpFlood(t *testing.T) {
	b := startBroker(t, "", nil)
	r := recordBarriers(t)
	const clients, each = 16, 5
	batch := makeBatch(t, record.None, "v", 1, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for range each {
				began := time.Now()
				var cu CatchUp
				if _, err := b.Append(&cu, "nope", 0, batch, AcksLeader); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
					t.Errorf("append to a topic that does not exist: %v", err)
					return
				}
				mu.Lock()
				slowest = max(slowest, time.Since(began))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.maxInFlight != 1 {
		t.Fatalf("%d barriers in flight at once, want 1", r.maxInFlight)
	}
	for i := 1; i < len(r.began); i++ {
		if gap := r.began[i].Sub(r.ended[i-1]); gap < catchUpSpacing {
			t.Fatalf("barrier %d began %v after the last ended, want at least catchUpSpacing (%v)", i, gap, catchUpSpacing)
		}
	}
	if limit := int(took/catchUpSpacing) + 1; len(r.began) > limit {
		t.Fatalf("%d barriers in %v, want at most %d (one per catchUpSpacing)", len(r.began), took, limit)
	}
	if slowest >= openWait {
		t.Fatalf("slowest request %v, want under openWait (%v)", slowest, openWait)
	}
	t.Logf("%d requests from %d clients: %d barriers in %v, slowest request %v", clients*each, clients, len(r.began), took, slowest)
}
