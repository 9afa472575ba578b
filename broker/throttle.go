package broker

import (
	"sync"
	"time"
)

// moveThrottle limits the bytes this broker, as a leader, serves to the
// replicas a move adds (controller/move.go; Partition.Adding), as Kafka's
// leader.replication.throttled.rate: a token bucket of rate bytes per
// second (the cluster config reassignment.throttle.bytes.per.sec, set at
// every reconcile) holding at most one second's worth. A follower fetch of an
// adding replica reads at most what the bucket holds, and what it read
// is taken out after (so the bucket may go below zero by one batch);
// while it is empty the fetch is answered with the offsets alone and the
// follower fetches again after its long poll. Other replicas and consumers are never
// throttled, and nothing is left once a move ends: the partition has no
// adding replicas then.
type moveThrottle struct {
	now func() time.Time

	mu     sync.Mutex
	rate   float64 // bytes per second; <= 0: unlimited
	tokens float64
	last   time.Time
}

func newMoveThrottle(rate int64, now func() time.Time) *moveThrottle {
	if now == nil {
		now = time.Now
	}
	return &moveThrottle{rate: float64(rate), now: now, tokens: float64(rate), last: now()}
}

// setRate changes the rate; the bucket keeps what it holds, up to one
// second's worth of the new rate.
func (t *moveThrottle) setRate(rate int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if float64(rate) == t.rate {
		return
	}
	t.refillLocked()
	t.rate = float64(rate)
	t.tokens = min(t.tokens, t.rate)
}

// grant returns how many of limit bytes a fetch of an adding replica may
// read now: 0 while the bucket is empty, else at most what it holds (a
// read of a positive limit returns at least one batch, which may be
// more: took counts what was read).
func (t *moveThrottle) grant(limit int) int {
	if t == nil {
		return limit
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rate <= 0 {
		return limit
	}
	t.refillLocked()
	if t.tokens < 1 {
		return 0
	}
	return int(min(float64(limit), t.tokens))
}

// took counts n bytes served to an adding replica.
func (t *moveThrottle) took(n int) {
	if t == nil || n <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rate <= 0 {
		return
	}
	t.refillLocked()
	t.tokens -= float64(n)
}

func (t *moveThrottle) refillLocked() {
	now := t.now()
	if d := now.Sub(t.last); d > 0 {
		t.tokens = min(t.tokens+d.Seconds()*t.rate, t.rate)
	}
	t.last = now
}
