package group

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func seq(from, n int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = from + int64(i)
	}
	return out
}

func TestQueueTransitions(t *testing.T) {
	q := NewQueuePartition(QueueConfig{Lease: 30 * time.Second, MaxDeliveries: 3}, 100)
	got := q.Acquire(t0, "a", 3, seq(100, 10))
	if len(got) != 3 || got[0] != (Delivery{Offset: 100, Deliveries: 1}) || got[2].Offset != 102 {
		t.Fatalf("first acquire: %+v", got)
	}
	// Another member gets the next records, not the held ones.
	if got := q.Acquire(t0, "b", 2, seq(103, 7)); len(got) != 2 || got[0].Offset != 103 {
		t.Fatalf("second member: %+v", got)
	}
	// Accept moves the start once the head is done.
	errs, dead := q.Ack(t0, "a", []int64{100, 101}, Accept, 0, "")
	if errs[0] != nil || errs[1] != nil || len(dead) != 0 || q.Start() != 102 {
		t.Fatalf("accept: %v %v start %d", errs, dead, q.Start())
	}
	// Reject moves the record to archiving at once: held by no one,
	// never delivered again, in the window until its copy is written.
	errs, dead = q.Ack(t0, "a", []int64{102}, Reject, 0, "bad json")
	if errs[0] != nil || len(dead) != 1 || dead[0].Offset != 102 || dead[0].Reason != "rejected: bad json" || q.Start() != 102 {
		t.Fatalf("reject: %v %+v start %d", errs, dead, q.Start())
	}
	if errs, _ := q.Ack(t0, "a", []int64{102}, Accept, 0, ""); !errors.Is(errs[0], ErrLeaseLost) {
		t.Fatalf("accept of an archiving record: %v, want ErrLeaseLost", errs[0])
	}
	if n := q.Archive([]int64{101, 102, 103}); n != 1 || q.Start() != 103 {
		t.Fatalf("archive: %d archived, start %d", n, q.Start())
	}
	// Release with a delay: not redelivered before it.
	q.Ack(t0, "b", []int64{103}, Release, 10*time.Second, "")
	if got := q.Acquire(t0.Add(5*time.Second), "c", 1, nil); len(got) != 0 {
		t.Fatalf("redelivered before its delay: %+v", got)
	}
	if got := q.Acquire(t0.Add(10*time.Second), "c", 1, nil); len(got) != 1 || got[0] != (Delivery{Offset: 103, Deliveries: 2}) {
		t.Fatalf("after the delay: %+v", got)
	}
	// Renew keeps the lease past its first end.
	q.Ack(t0.Add(25*time.Second), "b", []int64{104}, Renew, 0, "")
	if dead := q.Tick(t0.Add(40 * time.Second)); len(dead) != 0 {
		t.Fatalf("tick: %+v", dead)
	}
	if errs, _ := q.Ack(t0.Add(41*time.Second), "b", []int64{104}, Accept, 0, ""); errs[0] != nil {
		t.Fatalf("accept after renew: %v", errs[0])
	}
	// 103's lease (from t0+10 s, 30 s) ran out at the tick: available.
	c := q.Counts()
	if c[Available] != 1 || c[Accepted] != 1 || q.Start() != 103 {
		t.Fatalf("counts %v, start %d", c, q.Start())
	}
}

// A lease that runs out makes the record available again; the late
// acknowledgement of the first member is refused, and the second delivery
// wins.
func TestQueueExpiredLeaseLosesToTheSecondDelivery(t *testing.T) {
	q := NewQueuePartition(QueueConfig{Lease: time.Second}, 0)
	q.Acquire(t0, "slow", 1, []int64{0})
	if next := q.NextDeadline(); !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next deadline %v", next)
	}
	q.Tick(t0.Add(time.Second))
	got := q.Acquire(t0.Add(time.Second), "fast", 1, nil)
	if len(got) != 1 || got[0] != (Delivery{Offset: 0, Deliveries: 2}) {
		t.Fatalf("redelivery: %+v", got)
	}
	if errs, _ := q.Ack(t0.Add(2*time.Second), "slow", []int64{0}, Accept, 0, ""); !errors.Is(errs[0], ErrLeaseLost) {
		t.Fatalf("late ack: %v, want ErrLeaseLost", errs[0])
	}
	if errs, _ := q.Ack(t0.Add(2*time.Second), "fast", []int64{0}, Accept, 0, ""); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if errs, _ := q.Ack(t0, "fast", []int64{0, 7, -1}, Accept, 0, ""); !errors.Is(errs[0], ErrNotDelivered) ||
		!errors.Is(errs[1], ErrNotDelivered) || !errors.Is(errs[2], ErrNotDelivered) {
		t.Fatalf("acks for done and never-delivered offsets: %v", errs)
	}
}

func TestQueueDeliveryLimitAndBackoff(t *testing.T) {
	q := NewQueuePartition(QueueConfig{Lease: time.Second, MaxDeliveries: 3, Backoff: []time.Duration{time.Second, 5 * time.Second}}, 0)
	now := t0
	q.Acquire(now, "m", 1, []int64{0})
	var dead []DeadLetter
	for want := 2; want <= 3; want++ {
		now = now.Add(time.Second)
		dead = append(dead, q.Tick(now)...)
		backoff := []time.Duration{0, 0, time.Second, 5 * time.Second}[want]
		if got := q.Acquire(now.Add(backoff-time.Millisecond), "m", 1, nil); len(got) != 0 {
			t.Fatalf("delivery %d before its backoff of %v", want, backoff)
		}
		now = now.Add(backoff)
		if got := q.Acquire(now, "m", 1, nil); len(got) != 1 || got[0].Deliveries != want {
			t.Fatalf("delivery %d: %+v", want, got)
		}
	}
	now = now.Add(time.Second)
	dead = append(dead, q.Tick(now)...)
	if len(dead) != 1 || dead[0].Offset != 0 || dead[0].Deliveries != 3 || q.Start() != 0 || q.Archive([]int64{0}) != 1 || q.Start() != 1 {
		t.Fatalf("after 3 deliveries: dead %+v, start %d", dead, q.Start())
	}
	// A release at the limit archives too.
	q.Acquire(now, "m", 1, []int64{1})
	q2 := NewQueuePartition(QueueConfig{MaxDeliveries: 1}, 0)
	q2.Acquire(now, "m", 1, []int64{0})
	if _, dead := q2.Ack(now, "m", []int64{0}, Release, 0, ""); len(dead) != 1 {
		t.Fatalf("release at the limit: %+v", dead)
	}
}

// The window never grows past the cap; the cap says so; a gap the log
// skips is done.
func TestQueueInFlightCapAndGaps(t *testing.T) {
	q := NewQueuePartition(QueueConfig{MaxInFlight: 4}, 0)
	got := q.Acquire(t0, "m", 10, []int64{0, 1, 5, 6, 7})
	if len(got) != 2 || !q.AtCap() && q.End() != 2 {
		t.Fatalf("acquire over a gap at the cap: %+v, end %d", got, q.End())
	}
	if q.AtCap() {
		t.Fatal("at cap with 2 of 4")
	}
	q.Ack(t0, "m", []int64{0, 1}, Accept, 0, "")
	// Window empty: it jumps the gap 2-4. The skipped 8 takes a slot of
	// the window, so 9 waits.
	got = q.Acquire(t0, "m", 10, []int64{5, 6, 7, 9, 10})
	if len(got) != 3 || got[2].Offset != 7 || q.Start() != 5 || q.AtCap() {
		t.Fatalf("after the gap: %+v, window %d-%d", got, q.Start(), q.End())
	}
	q.Ack(t0, "m", []int64{5}, Accept, 0, "")
	got = q.Acquire(t0, "m", 10, []int64{9, 10})
	if len(got) != 1 || got[0].Offset != 9 || !q.AtCap() || q.End() != 10 {
		t.Fatalf("past the skipped offset: %+v, window %d-%d", got, q.Start(), q.End())
	}
	if got := q.Acquire(t0, "m", 10, []int64{10}); len(got) != 0 {
		t.Fatalf("acquired past the cap: %+v", got)
	}
	if errs, _ := q.Ack(t0, "m", []int64{8}, Accept, 0, ""); !errors.Is(errs[0], ErrNotDelivered) {
		t.Fatalf("ack of a skipped offset: %v", errs[0])
	}
}

// After a failover: accepted records stay accepted, held ones become
// available with their delivery counts, and the start is kept.
func TestQueueStateSurvivesFailover(t *testing.T) {
	cfg := QueueConfig{Lease: time.Minute, MaxDeliveries: 5}
	q := NewQueuePartition(cfg, 10)
	q.Acquire(t0, "a", 6, seq(10, 6))
	q.Ack(t0, "a", []int64{10, 12, 13}, Accept, 0, "")
	q.Ack(t0, "a", []int64{14}, Release, 0, "")
	q.Acquire(t0, "b", 1, nil) // 14 again: its second delivery
	b := q.EncodeQueueState(nil)

	r, dead, err := RestoreQueuePartition(cfg, b)
	if err != nil || len(dead) != 0 {
		t.Fatal(err, dead)
	}
	if r.Start() != 11 || r.End() != 16 {
		t.Fatalf("restored window %d-%d, want 11-16", r.Start(), r.End())
	}
	got := r.Acquire(t0, "c", 10, nil)
	want := []Delivery{{11, 2}, {14, 3}, {15, 2}}
	if len(got) != len(want) {
		t.Fatalf("redelivered %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("redelivered %+v, want %+v", got, want)
		}
	}
	if errs, _ := r.Ack(t0, "a", []int64{12}, Accept, 0, ""); !errors.Is(errs[0], ErrLeaseLost) {
		t.Fatalf("accepted record after failover: %v", errs[0])
	}

	// A record held for its last delivery is dead-lettered by the restore.
	last := NewQueuePartition(QueueConfig{MaxDeliveries: 1}, 0)
	last.Acquire(t0, "a", 1, []int64{0})
	r, dead, err = RestoreQueuePartition(QueueConfig{MaxDeliveries: 1}, last.EncodeQueueState(nil))
	if err != nil || len(dead) != 1 || dead[0].Offset != 0 || r.Start() != 0 || r.Archive([]int64{0}) != 1 || r.Start() != 1 {
		t.Fatalf("held at its last delivery: %v, dead %+v, start %d", err, dead, r.Start())
	}
}

// A window holding archiving records (their dead-letter copies may
// exist, not known to be written) is persisted in version 2, with each
// dead letter's reason; restored, they are returned again as dead
// letters, never delivered, and their outcomes are refused until
// Archive. A window without one is written in version 1, as before
// archiving existed, and version 1 windows still restore.
func TestQueueArchivingSurvivesRestore(t *testing.T) {
	cfg := QueueConfig{MaxDeliveries: 3}
	q := NewQueuePartition(cfg, 0)
	q.Acquire(t0, "a", 5, seq(0, 5))
	q.Ack(t0, "a", []int64{0}, Accept, 0, "")
	q.Ack(t0, "a", []int64{1, 2}, Reject, 0, "bad")
	q.Ack(t0, "a", []int64{3}, Reject, 0, string(make([]byte, 2*maxDeadLetterReason)))
	b := q.EncodeQueueState(nil)
	if b[0] != queueStateVersion {
		t.Fatalf("a window with archiving records in version %d", b[0])
	}
	r, dead, err := RestoreQueuePartition(cfg, b)
	if err != nil || len(dead) != 3 || dead[0] != (DeadLetter{1, 1, "rejected: bad"}) || dead[1] != (DeadLetter{2, 1, "rejected: bad"}) ||
		dead[2].Offset != 3 || len(dead[2].Reason) != maxDeadLetterReason {
		t.Fatalf("restored: %v, dead %+v", err, dead)
	}
	if r.Start() != 1 || r.Counts()[Archiving] != 3 {
		t.Fatalf("restored window from %d: %v", r.Start(), r.Counts())
	}
	if got := r.Acquire(t0, "b", 10, nil); len(got) != 1 || got[0] != (Delivery{4, 2}) {
		t.Fatalf("acquired after restore: %+v, want only 4", got)
	}
	for _, o := range []Outcome{Accept, Release, Reject} {
		if errs, dead := r.Ack(t0, "a", []int64{1}, o, 0, ""); !errors.Is(errs[0], ErrLeaseLost) || len(dead) != 0 {
			t.Fatalf("outcome %d of an archiving record: %v %+v", o, errs[0], dead)
		}
	}
	if n := r.Archive([]int64{1, 2, 3}); n != 3 || r.Start() != 4 {
		t.Fatalf("archived %d, start %d", n, r.Start())
	}
	if b := r.EncodeQueueState(nil); b[0] != queueStateVersionNoPending {
		t.Fatalf("a window without archiving records in version %d", b[0])
	}
	// Version 1, as written before the archiving state: start 7, one
	// accepted record, two available after one delivery, one archived.
	v1 := []byte{queueStateVersionNoPending, 14, 3, 1, byte(Accepted), 0, 2, byte(Available), 1, 1, byte(Archived), 1}
	r, dead, err = RestoreQueuePartition(cfg, v1)
	if err != nil || len(dead) != 0 || r.Start() != 8 || r.End() != 11 || r.Counts()[Available] != 2 {
		t.Fatalf("version 1 window: %v, dead %+v, window %d-%d %v", err, dead, r.Start(), r.End(), r.Counts())
	}
}

func TestQueueRestoreRefusesCorruption(t *testing.T) {
	q := NewQueuePartition(QueueConfig{}, 5)
	q.Acquire(t0, "m", 3, seq(5, 3))
	good := q.EncodeQueueState(nil)
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version":        append([]byte{9}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"huge run":       {queueStateVersion, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0},
		"huge count":     {queueStateVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"acquired":       {queueStateVersion, 0, 1, 1, byte(Acquired), 1},
		"bad state":      {queueStateVersion, 0, 1, 1, 9, 1},
		"v1 archiving":   {queueStateVersionNoPending, 0, 1, 1, byte(Archiving), 1, 0},
		"no reason":      {queueStateVersion, 0, 1, 1, byte(Archiving), 1},
		"long reason":    {queueStateVersion, 0, 1, 1, byte(Archiving), 1, 5, 'a'},
		"huge reason":    {queueStateVersion, 0, 1, 1, byte(Archiving), 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"over max":       append([]byte{queueStateVersion, 0, 1, 1, byte(Archiving), 1, 0x81, 0x04}, make([]byte, maxDeadLetterReason+1)...),
		"undelivered":    {queueStateVersion, 0, 1, 1, byte(Archiving), 0, 0},
		"zero run":       {queueStateVersion, 0, 1, 0, 0, 1},
		"negative start": {queueStateVersion, 1, 0},
	} {
		if _, _, err := RestoreQueuePartition(QueueConfig{}, b); !errors.Is(err, ErrCorruptQueueState) {
			t.Errorf("%s: %v, want ErrCorruptQueueState", name, err)
		}
	}
}

func FuzzRestoreQueueState(f *testing.F) {
	q := NewQueuePartition(QueueConfig{}, 5)
	q.Acquire(t0, "m", 3, seq(5, 3))
	q.Ack(t0, "m", []int64{6}, Accept, 0, "")
	f.Add(q.EncodeQueueState(nil))
	f.Add([]byte{queueStateVersionNoPending, 0, 0})
	f.Add([]byte{queueStateVersion, 0, 0})
	q.Ack(t0, "m", []int64{5}, Reject, 0, "bad")
	q.Ack(t0, "m", []int64{7}, Reject, 0, "worse")
	f.Add(q.EncodeQueueState(nil)) // version 2: archiving runs with reasons
	f.Fuzz(func(t *testing.T, b []byte) {
		r, dead, err := RestoreQueuePartition(QueueConfig{}, b)
		if err != nil {
			if !errors.Is(err, ErrCorruptQueueState) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, deadAgain, err := RestoreQueuePartition(QueueConfig{}, r.EncodeQueueState(nil))
		if err != nil || again.Start() != r.Start() || again.End() != r.End() || !maps.Equal(again.Counts(), r.Counts()) || !slices.Equal(deadAgain, dead) {
			t.Fatalf("re-encoded state differs: %v", err)
		}
	})
}

// A random workload of members that accept, release, reject, renew, go
// silent, dead-letter copies that fail and are retried, and coordinators
// that fail over: every record ends accepted exactly once or
// dead-lettered (at least once: a copy may be written again after a
// failover), never both; no record is held by two members; no record is
// delivered more than the limit.
func TestQueueRandomWorkload(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 7))
		cfg := QueueConfig{Lease: 3 * time.Second, MaxDeliveries: 3, MaxInFlight: 50, Backoff: []time.Duration{time.Second}}
		q := NewQueuePartition(cfg, 0)
		const total = 300
		accepted := map[int64]int{}
		deadLettered := map[int64]int{}
		type lease struct {
			member string
			until  time.Time
		}
		holder := map[int64]lease{}
		var pending []int64 // archiving: copies not known to be written
		now := t0
		logEnd := int64(0)
		for step := 0; step < 5000 && q.Start() < total; step++ {
			now = now.Add(time.Duration(rng.IntN(800)) * time.Millisecond)
			if logEnd < total {
				logEnd = min(total, logEnd+int64(rng.IntN(5)))
			}
			for _, dl := range q.Tick(now) {
				deadLettered[dl.Offset]++
				delete(holder, dl.Offset)
				pending = append(pending, dl.Offset)
			}
			if rng.IntN(200) == 0 { // coordinator failover
				r, dead, err := RestoreQueuePartition(cfg, q.EncodeQueueState(nil))
				if err != nil {
					t.Fatal(err)
				}
				pending = pending[:0]
				for _, dl := range dead {
					deadLettered[dl.Offset]++ // written again
					pending = append(pending, dl.Offset)
				}
				q = r
				clear(holder)
			}
			if rng.IntN(3) != 0 { // the copies are written (else retried later)
				q.Archive(pending)
				pending = pending[:0]
			}
			member := []string{"a", "b", "c"}[rng.IntN(3)]
			var next []int64
			for o := q.End(); o < logEnd; o++ {
				next = append(next, o)
			}
			for _, d := range q.Acquire(now, member, 1+rng.IntN(4), next) {
				if h, held := holder[d.Offset]; held && now.Before(h.until) {
					t.Fatalf("seed %d: offset %d given to %s while %s holds it until %v", seed, d.Offset, member, h.member, h.until)
				}
				if d.Deliveries > cfg.MaxDeliveries {
					t.Fatalf("seed %d: offset %d delivered %d times", seed, d.Offset, d.Deliveries)
				}
				holder[d.Offset] = lease{member, now.Add(cfg.Lease)}
			}
			var mine []int64
			for o, h := range holder {
				if h.member == member {
					mine = append(mine, o)
				}
			}
			slices.Sort(mine) // map order would make the run depend on more than the seed
			if len(mine) == 0 {
				continue
			}
			o := mine[rng.IntN(len(mine))]
			outcome := []Outcome{Accept, Accept, Accept, Release, Reject, Renew}[rng.IntN(6)]
			if rng.IntN(5) == 0 {
				continue // silent: the lease will run out
			}
			errs, dead := q.Ack(now, member, []int64{o}, outcome, time.Duration(rng.IntN(2))*time.Second, "r")
			for _, dl := range dead {
				deadLettered[dl.Offset]++
				delete(holder, dl.Offset)
				pending = append(pending, dl.Offset)
			}
			if errs[0] != nil {
				if !errors.Is(errs[0], ErrLeaseLost) {
					t.Fatalf("seed %d: ack %d: %v", seed, o, errs[0])
				}
				delete(holder, o) // our view was stale: its lease ran out
				continue
			}
			switch outcome {
			case Accept:
				if deadLettered[o] > 0 {
					t.Fatalf("seed %d: offset %d accepted after it was dead-lettered", seed, o)
				}
				accepted[o]++
				delete(holder, o)
			case Release:
				delete(holder, o)
			case Renew:
				holder[o] = lease{member, now.Add(cfg.Lease)}
			}
		}
		for o := range int64(total) {
			if o >= q.Start() {
				break
			}
			if accepted[o] > 1 || (accepted[o] == 1) == (deadLettered[o] > 0) {
				t.Fatalf("seed %d: offset %d accepted %d times, dead-lettered %d times", seed, o, accepted[o], deadLettered[o])
			}
		}
		if q.Start() < total/2 {
			t.Fatalf("seed %d: only %d of %d records done; the workload exercises too little", seed, q.Start(), total)
		}
	}
}

// SetConfig applies new settings: a lowered delivery limit archives the
// available records that reached it (not the held ones, until they come
// back), a new cap applies to new deliveries.
func TestQueueSetConfig(t *testing.T) {
	q := NewQueuePartition(QueueConfig{}, 0)
	q.Acquire(t0, "m", 3, []int64{0, 1, 2})
	q.Ack(t0, "m", []int64{0}, Release, 0, "")
	dead := q.SetConfig(QueueConfig{MaxDeliveries: 1, MaxInFlight: 3})
	if len(dead) != 1 || dead[0].Offset != 0 || dead[0].Deliveries != 1 || q.Start() != 0 || q.Archive([]int64{0}) != 1 || q.Start() != 1 {
		t.Fatalf("dead %+v, start %d", dead, q.Start())
	}
	if got := q.Acquire(t0, "m", 5, []int64{3, 4, 5}); len(got) != 1 || !q.AtCap() { // 1 and 2 held
		t.Fatalf("with a cap of 3: %+v, at cap %v", got, q.AtCap())
	}
	if _, dead := q.Ack(t0, "m", []int64{1}, Release, 0, ""); len(dead) != 1 {
		t.Fatalf("a held record released at the new limit: %+v", dead)
	}
}
