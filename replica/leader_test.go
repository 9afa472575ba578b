package replica

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeLog struct{ end, synced atomic.Int64 }

func (f *fakeLog) EndOffset() int64    { return f.end.Load() }
func (f *fakeLog) SyncedOffset() int64 { return f.synced.Load() }

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newLeader(t *testing.T, lg *fakeLog, c *clock, mod func(*LeaderConfig)) *Leader {
	t.Helper()
	cfg := LeaderConfig{ID: 1, Epoch: 5, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, MinInsync: 2, Now: c.Now}
	if mod != nil {
		mod(&cfg)
	}
	l, err := NewLeader(cfg, lg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustFetch(t *testing.T, l *Leader, id int32, off int64, epoch int32) {
	t.Helper()
	if _, err := l.Fetched(id, off, off, epoch, 1); err != nil {
		t.Fatal(err)
	}
}

func TestHighWatermarkIsMinimumOverISRInThisEpoch(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(100)
	c := &clock{now: time.Unix(0, 0)}
	l := newLeader(t, lg, c, func(cfg *LeaderConfig) { cfg.HighWatermark = 500 })
	if got := l.HighWatermark(); got != 100 {
		t.Fatalf("initial HW %d, want the checkpoint clamped to the log end (100)", got)
	}
	lg.end.Store(150)
	if l.Appended() {
		t.Fatal("HW moved with no follower position in this epoch")
	}
	if _, err := l.Fetched(2, 150, 150, 4, 1); err == nil {
		t.Fatal("a fetch in an older leader epoch was accepted")
	}
	mustFetch(t, l, 2, 120, 5)
	if got := l.HighWatermark(); got != 100 {
		t.Fatalf("HW %d with follower 3 unknown, want 100", got)
	}
	mustFetch(t, l, 3, 110, 5)
	if got := l.HighWatermark(); got != 110 {
		t.Fatalf("HW %d, want min(150, 120, 110) = 110", got)
	}
	mustFetch(t, l, 3, 150, 5)
	mustFetch(t, l, 2, 150, 5)
	if got := l.HighWatermark(); got != 150 {
		t.Fatalf("HW %d, want 150", got)
	}
	// Positions never pull it back.
	mustFetch(t, l, 2, 130, 5)
	if got := l.HighWatermark(); got != 150 {
		t.Fatalf("HW went back to %d", got)
	}
}

func TestSyncedPositions(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(100)
	lg.synced.Store(80)
	l := newLeader(t, lg, &clock{}, func(cfg *LeaderConfig) { cfg.SyncedPosition = true; cfg.ISR = []int32{1, 2} })
	if _, err := l.Fetched(2, 100, 90, 5, 1); err != nil {
		t.Fatal(err)
	}
	if got := l.HighWatermark(); got != 80 {
		t.Fatalf("HW %d, want min(leader synced 80, follower synced 90) = 80", got)
	}
	lg.synced.Store(100)
	l.Appended()
	if got := l.HighWatermark(); got != 90 {
		t.Fatalf("HW %d, want 90 (the follower's synced offset)", got)
	}
}

func TestWaitFor(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(10)
	l := newLeader(t, lg, &clock{}, func(cfg *LeaderConfig) { cfg.ISR = []int32{1, 2} })
	done := make(chan error, 2)
	go func() { done <- l.WaitFor(context.Background(), 10) }()
	go func() { done <- l.WaitFor(context.Background(), 20) }()
	waitWaiters(t, l, 2)
	mustFetch(t, l, 2, 10, 5)
	if err := <-done; err != nil {
		t.Fatalf("first waiter: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("second waiter returned early: %v", err)
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- l.WaitFor(ctx, 30) }()
	waitWaiters(t, l, 2)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	// Leadership moves: the waiter still parked fails.
	l.Resign()
	if err := <-done; !errors.Is(err, ErrNotLeader) {
		t.Fatalf("waiter after Resign: %v, want ErrNotLeader", err)
	}
	if err := l.WaitFor(context.Background(), 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("WaitFor after Resign: %v", err)
	}
}

func TestISRBelowMinimumFailsWaiters(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(10)
	l := newLeader(t, lg, &clock{}, nil) // ISR {1,2,3}, min 2
	done := make(chan error, 1)
	go func() { done <- l.WaitFor(context.Background(), 10) }()
	waitWaiters(t, l, 1)
	l.SetISR([]int32{1, 2}) // still enough: 3 left, HW waits for 2
	select {
	case err := <-done:
		t.Fatalf("waiter ended at ISR {1,2}: %v", err)
	default:
	}
	l.SetISR([]int32{1})
	if err := <-done; !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("waiter: %v, want ErrNotEnoughReplicas", err)
	}
	if err := l.CanAppend(); err == nil {
		t.Fatal("CanAppend with 1 in-sync replica and min 2")
	}
}

// An acks=all append checked the ISR (CanAppend) before the ISR shrank
// below min.insync.replicas; its wait starts after the shrink. The high
// watermark, over the smaller ISR, passes the batch, but the batch is on
// fewer replicas than the minimum: the wait fails, it does not acknowledge.
func TestWaitAfterShrinkBelowMinimumFails(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(10)
	l := newLeader(t, lg, &clock{}, func(cfg *LeaderConfig) { cfg.MinInsync = 3 })
	if err := l.CanAppend(); err != nil {
		t.Fatal(err)
	}
	l.SetISR([]int32{1, 2}) // follower 3 fenced; nobody waits yet
	mustFetch(t, l, 2, 10, 5)
	if got := l.HighWatermark(); got != 10 {
		t.Fatalf("HW %d, want 10 (over the ISR {1,2})", got)
	}
	if err := l.WaitFor(context.Background(), 10); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("WaitFor with ISR {1,2} and min 3: %v, want ErrNotEnoughReplicas", err)
	}
}

func TestShrinkAndExpandCandidates(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(50)
	c := &clock{now: time.Unix(100, 0)}
	l := newLeader(t, lg, c, func(cfg *LeaderConfig) { cfg.MaxLag = 10 * time.Second })
	if got := l.ShrinkCandidates(); len(got) != 0 {
		t.Fatalf("shrink candidates at start: %v", got)
	}
	c.now = c.now.Add(5 * time.Second)
	mustFetch(t, l, 2, 50, 5) // caught up
	mustFetch(t, l, 3, 20, 5) // behind
	c.now = c.now.Add(6 * time.Second)
	if got := l.ShrinkCandidates(); !slices.Equal(got, []int32{3}) {
		t.Fatalf("shrink candidates %v, want [3]", got)
	}
	l.SetISR([]int32{1, 2})
	if got := l.HighWatermark(); got != 50 {
		t.Fatalf("HW %d after dropping the laggard, want 50", got)
	}
	if got := l.ExpandCandidates(nil); len(got) != 0 {
		t.Fatalf("expand candidates %v before 3 caught up", got)
	}
	mustFetch(t, l, 3, 50, 5)
	if got := l.ExpandCandidates(nil); !slices.Equal(got, []Member{{ID: 3, BrokerEpoch: 1}}) {
		t.Fatalf("expand candidates %v, want [3 at broker epoch 1]", got)
	}
}

func TestStaleBrokerEpochRefused(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(50)
	l := newLeader(t, lg, &clock{}, func(cfg *LeaderConfig) { cfg.ISR = []int32{1, 2} })
	if _, err := l.Fetched(2, 40, 40, 5, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Fetched(2, 50, 50, 5, 6); err == nil {
		t.Fatal("a fetch with an older broker epoch was accepted (R10)")
	}
	if got := l.HighWatermark(); got != 40 {
		t.Fatalf("HW %d, want 40", got)
	}
	if _, err := l.Fetched(2, 45, 45, 5, 8); err != nil {
		t.Fatal(err)
	}
	if got := l.HighWatermark(); got != 45 {
		t.Fatalf("HW %d after the restarted broker fetched, want 45", got)
	}
}

// waitWaiters waits until n produces are parked in WaitFor.
func waitWaiters(t *testing.T, l *Leader, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		got := len(l.waiters)
		l.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A new leader's high watermark is known once every ISR member reported
// a position in its epoch.
func TestHighWatermarkKnown(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(50)
	l := newLeader(t, lg, &clock{}, func(cfg *LeaderConfig) { cfg.ISR = []int32{1, 2, 3} })
	if l.HighWatermarkKnown() {
		t.Fatal("known before the followers reported")
	}
	mustFetch(t, l, 2, 50, 5)
	if l.HighWatermarkKnown() {
		t.Fatal("known with follower 3 silent")
	}
	mustFetch(t, l, 3, 40, 5)
	if !l.HighWatermarkKnown() {
		t.Fatal("unknown after every ISR member reported")
	}
	alone := newLeader(t, lg, &clock{}, func(cfg *LeaderConfig) { cfg.ISR = []int32{1} })
	if !alone.HighWatermarkKnown() {
		t.Fatal("a leader alone in its ISR knows its high watermark")
	}
}

// A follower one round trip behind a leader that keeps appending never
// fetches from the leader's end itself, yet it stays in sync: each fetch
// holds what the leader had at the one before. One that falls further
// behind than that becomes a shrink candidate after MaxLag.
func TestFollowerOneRoundTripBehindStaysCaughtUp(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(100)
	c := &clock{now: time.Unix(100, 0)}
	l := newLeader(t, lg, c, func(cfg *LeaderConfig) { cfg.MaxLag = 3 * time.Second })
	// Every 200 ms, 10 more records arrive while follower 2's fetch is on
	// its way: it asks for the end the leader had at its previous fetch.
	// Follower 3 asks for only half of what arrived each time.
	pos2, pos3 := int64(100), int64(100)
	for range 50 { // 10 s, well past MaxLag
		mustFetch(t, l, 2, pos2, 5)
		mustFetch(t, l, 3, pos3, 5)
		pos2 = lg.end.Load()
		pos3 += 5
		lg.end.Add(10)
		c.now = c.now.Add(200 * time.Millisecond)
	}
	if got := l.ShrinkCandidates(); !slices.Equal(got, []int32{3}) {
		t.Fatalf("shrink candidates %v, want [3]: 2 is one round trip behind, 3 falls further back", got)
	}
}

// A follower at the high watermark that stopped fetching is a shrink
// candidate and not an expand candidate: below min.insync.replicas the HW
// stays put, so "at the HW" alone would add it back at once and the ISR
// would flap between shrink and expand.
func TestStalledFollowerAtTheHWIsNotAddedBack(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(50)
	c := &clock{now: time.Unix(100, 0)}
	l := newLeader(t, lg, c, func(cfg *LeaderConfig) { cfg.MaxLag = 3 * time.Second; cfg.ISR = []int32{1, 2} })
	mustFetch(t, l, 2, 50, 5)
	lg.end.Store(60) // appended; follower 2 stops fetching
	c.now = c.now.Add(4 * time.Second)
	if got := l.ShrinkCandidates(); !slices.Equal(got, []int32{2}) {
		t.Fatalf("shrink candidates %v, want [2]", got)
	}
	l.SetISR([]int32{1}) // below min.insync.replicas 2: the HW stays at 50
	if got := l.ExpandCandidates(nil); len(got) != 0 {
		t.Fatalf("expand candidates %v: a follower that has not fetched for longer than MaxLag was added back", got)
	}
	mustFetch(t, l, 2, 60, 5) // it fetches again, caught up
	if got := l.ExpandCandidates(nil); !slices.Equal(got, []Member{{ID: 2, BrokerEpoch: 1}}) {
		t.Fatalf("expand candidates %v after it caught up, want [2]", got)
	}
}

// A move adds replica 4 and later removes 3 (SetReplicas): the new
// follower is accepted, starts without a position, joins the ISR only
// through the controller (ExpandCandidates once caught up) and never
// holds the high watermark before; the removed one is refused.
func TestSetReplicasAddsAndRemovesFollowers(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(100)
	c := &clock{now: time.Unix(0, 0)}
	l := newLeader(t, lg, c, nil)
	if _, err := l.Fetched(4, 0, 0, 5, 1); err == nil {
		t.Fatal("a fetch from a broker not yet a replica was accepted")
	}
	l.SetReplicas([]int32{1, 2, 3, 4})
	if l.Position(4) != -1 {
		t.Fatalf("new follower position %d, want -1", l.Position(4))
	}
	mustFetch(t, l, 2, 100, 5)
	mustFetch(t, l, 3, 100, 5)
	mustFetch(t, l, 4, 40, 5)
	if hw := l.HighWatermark(); hw != 100 {
		t.Fatalf("HW %d: the adding replica outside the ISR held it", hw)
	}
	if got := l.ExpandCandidates(nil); len(got) != 0 {
		t.Fatalf("expand candidates %v before the new follower caught up", got)
	}
	mustFetch(t, l, 4, 100, 5)
	if got := l.ExpandCandidates(nil); len(got) != 1 || got[0].ID != 4 || l.Position(4) != 100 {
		t.Fatalf("expand candidates %v, position %d", got, l.Position(4))
	}
	l.SetReplicas([]int32{1, 2, 4})
	l.SetISR([]int32{1, 2, 4})
	if _, err := l.Fetched(3, 100, 100, 5, 1); err == nil {
		t.Fatal("a fetch from a removed replica was accepted")
	}
	lg.end.Store(120)
	mustFetch(t, l, 2, 120, 5)
	mustFetch(t, l, 4, 120, 5)
	if hw := l.HighWatermark(); hw != 120 {
		t.Fatalf("HW %d after the move, want 120", hw)
	}
}

// A follower proposed for the ISR (returned by ExpandCandidates) holds the
// high watermark as an ISR member does, from the proposal on: an offset
// committed while the proposal is in flight is on it, so once the
// controller adds it (and perhaps makes it leader, as a move's completion
// does) it lacks nothing committed (R11; the elastic drain check lost
// acknowledged records without this). A proposed follower that falls
// behind for MaxLag holds it no longer.
func TestExpandingFollowerHoldsTheHighWatermark(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(100)
	c := &clock{now: time.Unix(100, 0)}
	l := newLeader(t, lg, c, func(cfg *LeaderConfig) { cfg.ISR = []int32{1, 2}; cfg.MaxLag = 10 * time.Second })
	mustFetch(t, l, 2, 100, 5)
	mustFetch(t, l, 3, 100, 5) // caught up, outside the ISR
	if got := l.ExpandCandidates(nil); !slices.Equal(got, []Member{{ID: 3, BrokerEpoch: 1}}) {
		t.Fatalf("expand candidates %v, want [3]", got)
	}
	lg.end.Store(120)
	if _, err := l.Fetched(2, 120, 120, 5, 1); err != nil {
		t.Fatal(err)
	}
	if got := l.HighWatermark(); got != 100 {
		t.Fatalf("HW %d while 3, proposed for the ISR, is at 100; want 100", got)
	}
	mustFetch(t, l, 3, 110, 5)
	if got := l.HighWatermark(); got != 110 {
		t.Fatalf("HW %d, want 110 (3's position)", got)
	}
	l.SetISR([]int32{1, 2, 3}) // the controller added it
	mustFetch(t, l, 3, 120, 5)
	if got := l.HighWatermark(); got != 120 {
		t.Fatalf("HW %d once 3 is in the ISR and caught up, want 120", got)
	}

	// Proposed, then silent for MaxLag: the next check drops it, and the
	// high watermark moves on without it.
	l.SetISR([]int32{1, 2})
	lg.end.Store(130)
	mustFetch(t, l, 2, 130, 5)
	mustFetch(t, l, 3, 130, 5)
	if got := l.ExpandCandidates(nil); !slices.Equal(got, []Member{{ID: 3, BrokerEpoch: 1}}) {
		t.Fatalf("expand candidates %v, want [3]", got)
	}
	lg.end.Store(140)
	mustFetch(t, l, 2, 140, 5)
	if got := l.HighWatermark(); got != 130 {
		t.Fatalf("HW %d, want 130: 3 is proposed and at 130", got)
	}
	c.now = c.now.Add(11 * time.Second)
	mustFetch(t, l, 2, 140, 5)
	if got := l.ExpandCandidates(nil); len(got) != 0 {
		t.Fatalf("expand candidates %v after 3 was silent past MaxLag", got)
	}
	if moved, err := l.Fetched(2, 140, 140, 5, 1); err != nil || !moved {
		t.Fatalf("the next fetch: moved %v, %v; want the high watermark moved", moved, err)
	}
	if got := l.HighWatermark(); got != 140 {
		t.Fatalf("HW %d once 3 is no longer proposed, want 140", got)
	}

	// A follower the controller would refuse (not eligible: a stopping
	// broker, say) is not proposed and holds nothing.
	mustFetch(t, l, 3, 140, 5)
	if got := l.ExpandCandidates(func(m Member) bool { return m.ID != 3 }); len(got) != 0 {
		t.Fatalf("expand candidates %v, want none eligible", got)
	}
	lg.end.Store(150)
	mustFetch(t, l, 2, 150, 5)
	if got := l.HighWatermark(); got != 150 {
		t.Fatalf("HW %d, want 150: 3 was not proposed", got)
	}
}

// SetISR says whether the high watermark moved: the broker wakes the
// fetches waiting on the partition only then, not for every ISR change.
func TestSetISRReportsHighWatermarkMove(t *testing.T) {
	lg := &fakeLog{}
	lg.end.Store(100)
	l := newLeader(t, lg, &clock{now: time.Unix(0, 0)}, nil) // ISR {1,2,3}, min 2
	mustFetch(t, l, 2, 100, 5)
	mustFetch(t, l, 3, 40, 5)
	if got := l.HighWatermark(); got != 40 {
		t.Fatalf("HW %d, want 40 (follower 3's position)", got)
	}
	if l.SetISR([]int32{1, 2, 3}) {
		t.Fatal("SetISR of the same ISR reported a move")
	}
	if !l.SetISR([]int32{1, 2}) {
		t.Fatal("SetISR dropping the slowest member: no move reported")
	}
	if got := l.HighWatermark(); got != 100 {
		t.Fatalf("HW %d after dropping 3, want 100", got)
	}
	if l.SetISR([]int32{1, 2, 3}) {
		t.Fatal("SetISR adding a member: the HW cannot rise, yet a move was reported")
	}
}
