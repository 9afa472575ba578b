package broker

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

// fakeController allocates blocks as the controller does (consecutive,
// never twice), counting the allocations and failing when told to.
type fakeController struct {
	mu       sync.Mutex
	next     int64
	calls    int
	inflight atomic.Int32
	overlap  atomic.Bool // two allocations ran at once
	fail     error
	block    chan struct{} // when set, allocations wait for it
	latency  time.Duration // how long an allocation takes, as a Raft write does
}

func (f *fakeController) allocate(ctx context.Context, count int32) (controller.ProducerIDBlock, error) {
	if f.inflight.Add(1) > 1 {
		f.overlap.Store(true)
	}
	defer f.inflight.Add(-1)
	if f.latency > 0 {
		time.Sleep(f.latency)
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return controller.ProducerIDBlock{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		return controller.ProducerIDBlock{}, f.fail
	}
	blk := controller.ProducerIDBlock{First: f.next, Count: count}
	f.next += int64(count)
	return blk, nil
}

func TestProducerIDsTakeBlocks(t *testing.T) {
	fc := &fakeController{}
	p := newProducerIDs(3, fc.allocate)
	ctx := context.Background()
	for want := range int64(9) {
		id, err := p.take(ctx)
		if err != nil || id != want {
			t.Fatalf("take %d: %d, %v", want, id, err)
		}
	}
	// 9 ids from blocks of 3: three allocations, each when the block
	// before was used up.
	if fc.calls != 3 {
		t.Fatalf("%d allocations for 9 ids in blocks of 3, want 3", fc.calls)
	}
	// A failed allocation is reported, and the next take asks again.
	fc.fail = errors.New("no controller leader")
	for range 2 {
		id, err := p.take(ctx)
		if id != -1 || !errors.Is(err, fc.fail) {
			t.Fatalf("take with the controller failing: %d, %v", id, err)
		}
	}
	fc.fail = nil
	if id, err := p.take(ctx); err != nil || id != 9 {
		t.Fatalf("take after the controller is back: %d, %v; want 9 (a new block)", id, err)
	}
}

// Concurrent takers share the blocks: every id once, one allocation per
// block, never two at once.
func TestProducerIDsConcurrent(t *testing.T) {
	fc := &fakeController{latency: 2 * time.Millisecond}
	p := newProducerIDs(7, fc.allocate)
	const n = 200
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := p.take(context.Background())
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, id := range ids {
		if seen[id] || id < 0 || id >= n+7 {
			t.Fatalf("id %d given twice or out of the blocks", id)
		}
		seen[id] = true
	}
	if want := (n + 6) / 7; fc.calls != want {
		t.Errorf("%d allocations for %d ids in blocks of 7, want %d", fc.calls, n, want)
	}
	if fc.overlap.Load() {
		t.Error("two allocations ran at once")
	}
}

// A taker waiting for another's allocation gives up with its context; the
// allocation goes on and its block serves the next taker.
func TestProducerIDsWaiterGivesUp(t *testing.T) {
	fc := &fakeController{block: make(chan struct{})}
	p := newProducerIDs(10, fc.allocate)
	first := make(chan int64, 1)
	go func() {
		id, _ := p.take(context.Background())
		first <- id
	}()
	poll.Until(t, 10*time.Second, "the first taker to ask the controller", func() bool { return fc.inflight.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if id, err := p.take(ctx); !errors.Is(err, context.DeadlineExceeded) || id != -1 {
		t.Fatalf("waiter: %d, %v; want a deadline", id, err)
	}
	close(fc.block)
	if id := <-first; id != 0 {
		t.Fatalf("first taker got %d, want 0", id)
	}
	if id, err := p.take(context.Background()); err != nil || id != 1 {
		t.Fatalf("next taker: %d, %v; want 1 from the same block", id, err)
	}
}

// Without a controller the answer is a retriable, definite refusal.
func TestInitProducerIDControllerUnavailable(t *testing.T) {
	fc := &fakeController{fail: controller.ErrNoLeader}
	b := &Broker{producerIDs: newProducerIDs(10, fc.allocate)}
	id, epoch, err := b.InitProducerID(context.Background(), -1, -1)
	code, detail := ErrorCode(err)
	if id != -1 || epoch != -1 || code != protocol.ErrCoordinatorNotAvailable || !code.Retriable() || code.Indeterminate() {
		t.Fatalf("InitProducerID without a controller: %d, %d, %v (%s); want COORDINATOR_NOT_AVAILABLE", id, epoch, code, detail)
	}
	fc.fail = controller.ErrProducerIDsExhausted
	if _, _, err := b.InitProducerID(context.Background(), -1, -1); errors.Is(err, protocol.ErrCoordinatorNotAvailable) {
		t.Fatalf("ids exhausted answered as retriable: %v", err)
	}
}

func initProducerID(t *testing.T, c *testClient, id int64, epoch int16) protocol.InitProducerIDResponse {
	t.Helper()
	var resp protocol.InitProducerIDResponse
	c.call(&protocol.InitProducerIDRequest{ProducerID: id, ProducerEpoch: epoch}, &resp)
	return resp
}

func TestInitProducerID(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.ProducerIDBlockSize = 3 })
	c := dial(t, b.Addr())
	next := func() int64 { return b.Metadata().NextProducerID }

	// New producers: consecutive ids at epoch 0, from blocks of 3.
	for want := range int64(4) {
		r := initProducerID(t, c, -1, -1)
		if r.ErrorCode != protocol.NoError || r.ProducerID != want || r.ProducerEpoch != 0 {
			t.Fatalf("new producer %d: %+v", want, r)
		}
	}
	if got := next(); got != 6 {
		t.Fatalf("next producer id %d after 4 ids in blocks of 3, want 6 (two allocations)", got)
	}

	// A known producer gets its epoch bumped; at the last epoch, a new id.
	if r := initProducerID(t, c, 2, 0); r.ErrorCode != protocol.NoError || r.ProducerID != 2 || r.ProducerEpoch != 1 {
		t.Fatalf("bump epoch 0: %+v", r)
	}
	if r := initProducerID(t, c, 1, 41); r.ErrorCode != protocol.NoError || r.ProducerID != 1 || r.ProducerEpoch != 42 {
		t.Fatalf("bump epoch 41: %+v", r)
	}
	if r := initProducerID(t, c, 0, math.MaxInt16-1); r.ProducerID != 0 || r.ProducerEpoch != math.MaxInt16 {
		t.Fatalf("bump to the last epoch: %+v", r)
	}
	if r := initProducerID(t, c, 0, math.MaxInt16); r.ErrorCode != protocol.NoError || r.ProducerID != 4 || r.ProducerEpoch != 0 {
		t.Fatalf("bump past the last epoch: %+v, want a new id (4) at epoch 0", r)
	}

	// Refusals are definite.
	for _, tc := range []struct {
		id    int64
		epoch int16
		want  protocol.ErrorCode
	}{
		{-1, 0, protocol.ErrInvalidRequest},
		{3, -1, protocol.ErrInvalidRequest},
		{-2, -1, protocol.ErrInvalidRequest},
		{-7, 3, protocol.ErrInvalidRequest},
		{5, -4, protocol.ErrInvalidRequest},
		{6, 0, protocol.ErrUnknownProducerID}, // past every block allocated
		{math.MaxInt64, 0, protocol.ErrUnknownProducerID},
	} {
		r := initProducerID(t, c, tc.id, tc.epoch)
		if r.ErrorCode != tc.want || tc.want.Indeterminate() {
			t.Errorf("InitProducerID(%d, %d) = %+v, want %v", tc.id, tc.epoch, r, tc.want)
		}
	}
	if got := next(); got != 6 {
		t.Fatalf("refusals allocated ids: next %d, want 6", got)
	}

	// A restarted broker abandons what is left of its block.
	dir := b.cfg.DataDir
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir, func(c *Config) { c.ProducerIDBlockSize = 3 })
	c = dial(t, b.Addr())
	if r := initProducerID(t, c, -1, -1); r.ErrorCode != protocol.NoError || r.ProducerID != 6 {
		t.Fatalf("after a restart: %+v, want id 6 from a new block", r)
	}
}
