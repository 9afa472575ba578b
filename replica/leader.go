package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a waiting produce can end with. Both come after the batch was
// appended, so the produce is indeterminate (R14).
var (
	// ErrNotLeader: leadership moved while the produce waited.
	ErrNotLeader = errors.New("replica: no longer the leader")
	// ErrNotEnoughReplicas: the ISR fell below min.insync.replicas while
	// the produce waited.
	ErrNotEnoughReplicas = errors.New("replica: in-sync replicas below the minimum after append")
	// ErrStaleBrokerEpoch: a fetch from an earlier incarnation of a
	// restarted follower (R10).
	ErrStaleBrokerEpoch = errors.New("replica: stale broker epoch")
)

// DefaultMaxLag is how long a follower may go without catching up before
// it leaves the ISR.
const DefaultMaxLag = 10 * time.Second

// Log is what the leader state reads of the local log.
type Log interface {
	EndOffset() int64
	SyncedOffset() int64
}

// LeaderConfig configures a Leader.
type LeaderConfig struct {
	ID             int32         // this broker
	Epoch          int32         // the leader epoch this leadership is for
	Replicas       []int32       // every replica, this broker included
	ISR            []int32       // the ISR the controller committed
	HighWatermark  int64         // the last known high watermark (checkpoint)
	MinInsync      int           // min.insync.replicas (at least 1)
	SyncedPosition bool          // fsync=always: positions are synced offsets (R3)
	MaxLag         time.Duration // default DefaultMaxLag
	Now            func() time.Time
}

type follower struct {
	pos         int64     // last reported position (fetch offset or synced offset)
	epoch       int32     // leader epoch of that report; -1 before any
	caughtUp    time.Time // last time it held everything the leader had (see Fetched)
	brokerEpoch int64
	// The leader's end offset and the time at its previous fetch.
	lastFetchEnd  int64
	lastFetchTime time.Time
}

// followers are a leader's followers, a handful: a slice searched in
// place, read at every fetch of every partition (at 10,000 partitions a
// map's lookup was a tenth of a leader's CPU while a restarted broker
// rejoined the ISRs). A *follower from get is valid until the set
// changes (add, keepOnly), under the Leader's lock.
type followers []followerSlot

type followerSlot struct {
	id int32
	f  follower
}

func (s followers) get(id int32) *follower {
	for i := range s {
		if s[i].id == id {
			return &s[i].f
		}
	}
	return nil
}

// add adds id, starting its lag clock at now, unless it is there.
func (s *followers) add(id int32, now time.Time) {
	if s.get(id) == nil {
		*s = append(*s, followerSlot{id: id, f: follower{pos: -1, epoch: -1, caughtUp: now}})
	}
}

// keepOnly forgets the followers not in ids.
func (s *followers) keepOnly(ids []int32) {
	*s = slices.DeleteFunc(*s, func(f followerSlot) bool { return !slices.Contains(ids, f.id) })
}

type waiter struct {
	offset int64
	done   chan error
}

// Leader is the leader's replication state for one partition.
type Leader struct {
	cfg LeaderConfig
	log Log

	mu        sync.Mutex
	isr       []int32
	followers followers
	// expanding are the followers ExpandCandidates last returned, which
	// the caller proposes for the ISR: the high watermark counts them
	// from then on (Kafka's maximal ISR), so that when the controller
	// adds one it holds every committed offset (R11), even one committed
	// while the proposal was in flight.
	expanding []int32
	// hw is written under mu and read without it (HighWatermark), and
	// isrSize is len(isr), published for ISRSize: a metrics scrape reads
	// both for every partition and must not wait behind the produce
	// path's holders of mu.
	hw       atomic.Int64
	isrSize  atomic.Int32
	waiters  []waiter // by offset, ascending
	resigned error
}

// NewLeader starts the leader state of an epoch. The high watermark starts
// at cfg.HighWatermark clamped to the log's end: never higher than what
// this leader holds, and raised only by positions reported in this epoch
// (R12).
func NewLeader(cfg LeaderConfig, log Log) (*Leader, error) {
	if !slices.Contains(cfg.Replicas, cfg.ID) {
		return nil, fmt.Errorf("replica: leader %d is not among the replicas %v", cfg.ID, cfg.Replicas)
	}
	if cfg.MinInsync < 1 {
		cfg.MinInsync = 1
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = DefaultMaxLag
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Leader{cfg: cfg, log: log, isr: slices.Clone(cfg.ISR), followers: make(followers, 0, len(cfg.Replicas))}
	now := cfg.Now()
	for _, id := range cfg.Replicas {
		if id != cfg.ID {
			// A follower starts its lag clock with the leadership: it has
			// MaxLag to catch up before it is a shrink candidate.
			l.followers.add(id, now)
		}
	}
	l.isrSize.Store(int32(len(l.isr)))
	l.hw.Store(min(max(cfg.HighWatermark, 0), log.EndOffset()))
	l.advanceLocked()
	return l, nil
}

// HighWatermark is the offset below which consumers may read. It takes
// no lock.
func (l *Leader) HighWatermark() int64 { return l.hw.Load() }

// HighWatermarkKnown reports whether every ISR member has reported its
// position in this leader epoch. Until then the high watermark is a
// conservative start (it may be below what the previous leader had
// reached), so a client asking for the latest offset should retry rather
// than see the high watermark go back (Kafka's OFFSET_NOT_AVAILABLE).
func (l *Leader) HighWatermarkKnown() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range l.isr {
		if l.positionLocked(id) < 0 {
			return false
		}
	}
	return true
}

// ISR returns the in-sync replicas as the controller last committed them.
func (l *Leader) ISR() []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.isr)
}

// ISRSize is the number of ISR members, without a lock (ISR copies them
// under the lock).
func (l *Leader) ISRSize() int { return int(l.isrSize.Load()) }

// CanAppend reports whether an acks=all produce may be appended: the ISR
// has at least min.insync.replicas members.
func (l *Leader) CanAppend() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resigned != nil {
		return l.resigned
	}
	if len(l.isr) < l.cfg.MinInsync {
		return fmt.Errorf("replica: %d in-sync replicas, min.insync.replicas is %d", len(l.isr), l.cfg.MinInsync)
	}
	return nil
}

// Appended tells the leader its own log moved (an append or a sync); it
// returns whether the high watermark moved.
func (l *Leader) Appended() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.advanceLocked()
}

// Fetched records a follower's fetch: its position (the fetch offset, or
// with SyncedPosition its synced offset) in leader epoch epoch, from a
// broker with brokerEpoch. A fetch in another epoch does not count (R12);
// the caller answers it with FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH.
// It returns whether the high watermark moved.
func (l *Leader) Fetched(id int32, fetchOffset, synced int64, epoch int32, brokerEpoch int64) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.followers.get(id)
	if f == nil {
		return false, fmt.Errorf("replica: broker %d is not a follower of this partition", id)
	}
	if epoch != l.cfg.Epoch {
		return false, fmt.Errorf("replica: fetch from %d in leader epoch %d, leader is in %d", id, epoch, l.cfg.Epoch)
	}
	if brokerEpoch < f.brokerEpoch {
		return false, fmt.Errorf("%w: fetch from %d with broker epoch %d (have %d)", ErrStaleBrokerEpoch, id, brokerEpoch, f.brokerEpoch)
	}
	// A newer broker epoch is a restarted broker (R10): its report below
	// replaces the old position outright, which may be lower.
	sameBroker := f.brokerEpoch == brokerEpoch
	f.brokerEpoch = brokerEpoch
	pos := fetchOffset
	if l.cfg.SyncedPosition {
		pos = min(synced, fetchOffset)
	}
	f.pos, f.epoch = pos, epoch
	// Caught up now if the fetch asks for what follows the leader's end;
	// otherwise caught up as of its previous fetch if it now holds what
	// the leader had then. Under steady produce over a slow link a
	// follower never asks for the end itself (more arrived while its
	// fetch travelled), yet it is never more than one round trip behind:
	// it must not be dropped from the ISR for that (Kafka's rule too).
	now, end := l.cfg.Now(), l.log.EndOffset()
	switch {
	case fetchOffset >= end:
		f.caughtUp = now
	case sameBroker && !f.lastFetchTime.IsZero() && fetchOffset >= f.lastFetchEnd &&
		f.lastFetchTime.After(f.caughtUp):
		f.caughtUp = f.lastFetchTime
	}
	f.lastFetchEnd, f.lastFetchTime = end, now
	return l.advanceLocked(), nil
}

// position of an ISR member in this epoch, or -1 when unknown.
func (l *Leader) positionLocked(id int32) int64 {
	if id == l.cfg.ID {
		if l.cfg.SyncedPosition {
			return min(l.log.SyncedOffset(), l.log.EndOffset())
		}
		return l.log.EndOffset()
	}
	f := l.followers.get(id)
	if f == nil || f.epoch != l.cfg.Epoch {
		return -1
	}
	return f.pos
}

// advanceLocked raises the high watermark to the minimum ISR position and
// releases the waiters it covers.
func (l *Leader) advanceLocked() bool {
	if len(l.isr) == 0 || l.resigned != nil {
		return false
	}
	hw := int64(-1)
	for _, ids := range [2][]int32{l.isr, l.expanding} { // no allocation: this runs per fetch and append
		for _, id := range ids {
			p := l.positionLocked(id)
			if p < 0 {
				return false // a member with no position in this epoch holds it
			}
			if hw < 0 || p < hw {
				hw = p
			}
		}
	}
	if hw <= l.hw.Load() {
		return false
	}
	l.hw.Store(hw)
	i := 0
	for ; i < len(l.waiters) && l.waiters[i].offset <= hw; i++ {
		l.waiters[i].done <- nil
	}
	l.waiters = slices.Delete(l.waiters, 0, i)
	return true
}

// WaitFor returns once the high watermark reaches offset (the end of an
// acks=all batch), or with ErrNotLeader / ErrNotEnoughReplicas (also when
// the ISR is below min.insync.replicas as it is called), or ctx's error
// (the produce timed out: indeterminate).
func (l *Leader) WaitFor(ctx context.Context, offset int64) error {
	l.mu.Lock()
	if l.resigned != nil {
		l.mu.Unlock()
		return l.resigned
	}
	if len(l.isr) < l.cfg.MinInsync {
		// The ISR shrank below the minimum between the append's check
		// (CanAppend) and this wait: the high watermark, computed over the
		// smaller ISR, may pass the batch, but it is not on
		// min.insync.replicas replicas, so it is not acknowledged (as
		// Kafka: NOT_ENOUGH_REPLICAS_AFTER_APPEND).
		l.mu.Unlock()
		return ErrNotEnoughReplicas
	}
	if l.hw.Load() >= offset {
		l.mu.Unlock()
		return nil
	}
	w := waiter{offset: offset, done: make(chan error, 1)}
	i, _ := slices.BinarySearchFunc(l.waiters, offset, func(w waiter, o int64) int {
		switch {
		case w.offset < o:
			return -1
		case w.offset > o:
			return 1
		}
		return 0
	})
	l.waiters = slices.Insert(l.waiters, i, w)
	l.mu.Unlock()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		l.mu.Lock()
		for j := range l.waiters {
			if l.waiters[j].done == w.done {
				l.waiters = slices.Delete(l.waiters, j, j+1)
				break
			}
		}
		l.mu.Unlock()
		select {
		case err := <-w.done: // answered meanwhile
			return err
		default:
		}
		return ctx.Err()
	}
}

// ShrinkCandidates returns the ISR followers not caught up for MaxLag.
func (l *Leader) ShrinkCandidates() []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	var out []int32
	for _, id := range l.isr {
		if f := l.followers.get(id); f != nil && now.Sub(f.caughtUp) > l.cfg.MaxLag {
			out = append(out, id)
		}
	}
	return out
}

// Member is a replica named with the broker epoch it fetched in, as an ISR
// expansion must carry it (R10: the controller refuses to add back an
// earlier incarnation of a restarted broker).
type Member struct {
	ID          int32
	BrokerEpoch int64
}

// ExpandCandidates returns the followers outside the ISR whose position in
// this epoch reached the high watermark and that caught up within MaxLag,
// with the broker epoch of their fetches, that eligible accepts (nil: all;
// the broker passes the controller's rule: alive, at that broker epoch).
// The caller proposes them for the ISR: from now on the high watermark
// does not pass their positions, as if they were in the ISR already, until a later call no longer returns
// them (in the ISR by then, or fallen behind for MaxLag). Without that a
// proposal in flight lets offsets commit that the new member lacks, and
// once the controller adds it, it could lead without them (a move's
// completion elects the first target replica in the ISR at once).
func (l *Leader) ExpandCandidates(eligible func(Member) bool) []Member {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Member
	now := l.cfg.Now()
	for i := range l.followers {
		id, f := l.followers[i].id, &l.followers[i].f
		// At the HW is not enough: below min.insync.replicas the HW does
		// not move, so a follower that stopped fetching stays "at" it. It
		// must also have caught up within MaxLag, or the next shrink
		// removes it again (an ISR flapping every check, seen in chaos).
		if !slices.Contains(l.isr, id) && f.epoch == l.cfg.Epoch && f.pos >= l.hw.Load() && now.Sub(f.caughtUp) <= l.cfg.MaxLag {
			if m := (Member{ID: id, BrokerEpoch: f.brokerEpoch}); eligible == nil || eligible(m) {
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return int(a.ID) - int(b.ID) })
	l.expanding = l.expanding[:0]
	for _, m := range out {
		l.expanding = append(l.expanding, m.ID)
	}
	// A member no longer expanding may have held the high watermark: the
	// next fetch or append moves it (and says so to the caller, which
	// wakes what waits on it), not this call.
	return out
}

// Epoch is the leader epoch of this leadership.
func (l *Leader) Epoch() int32 { return l.cfg.Epoch }

// SetISR applies the ISR the controller committed. Waiters fail with
// ErrNotEnoughReplicas if it is below min.insync.replicas; otherwise a
// smaller ISR may raise the high watermark.
func (l *Leader) SetISR(isr []int32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.isr = slices.Clone(isr)
	l.isrSize.Store(int32(len(l.isr)))
	l.expanding = slices.DeleteFunc(l.expanding, func(id int32) bool { return slices.Contains(isr, id) })
	if len(l.isr) < l.cfg.MinInsync {
		l.failWaitersLocked(ErrNotEnoughReplicas)
		return false
	}
	return l.advanceLocked()
}

// Position returns follower id's last reported position in this leader
// epoch, -1 when it has reported none (or is not a follower).
func (l *Leader) Position(id int32) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.followers.get(id)
	if f == nil || f.epoch != l.cfg.Epoch {
		return -1
	}
	return f.pos
}

// SetReplicas applies a new replica list within the same leadership (a
// move adds replicas, then removes others; see controller/move.go): a new
// follower starts as one does with the leadership (no position, MaxLag
// to catch up); a replica gone is forgotten. Call SetISR after it, with
// an ISR within the new list.
func (l *Leader) SetReplicas(replicas []int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	for _, id := range replicas {
		if id != l.cfg.ID {
			l.followers.add(id, now)
		}
	}
	l.followers.keepOnly(replicas)
	l.expanding = slices.DeleteFunc(l.expanding, func(id int32) bool { return !slices.Contains(replicas, id) })
	l.cfg.Replicas = slices.Clone(replicas)
}

// Resign ends the leadership: every waiter and every later WaitFor gets
// ErrNotLeader.
func (l *Leader) Resign() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resigned == nil {
		l.resigned = ErrNotLeader
	}
	l.failWaitersLocked(ErrNotLeader)
}

func (l *Leader) failWaitersLocked(err error) {
	for _, w := range l.waiters {
		w.done <- err
	}
	l.waiters = l.waiters[:0]
}
