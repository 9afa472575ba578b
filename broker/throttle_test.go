package broker

import (
	"testing"
	"time"
)

// The throttle grants an adding replica at most what its bucket holds,
// takes what was read (going below zero by one batch), refills at the
// rate up to one second's worth, and grants everything when unlimited.
func TestMoveThrottle(t *testing.T) {
	now := time.Unix(0, 0)
	th := newMoveThrottle(1000, func() time.Time { return now })
	if got := th.grant(5000); got != 1000 {
		t.Fatalf("a full bucket granted %d of 5000, want 1000", got)
	}
	th.took(1500)
	if got := th.grant(5000); got != 0 {
		t.Fatalf("an empty bucket granted %d", got)
	}
	now = now.Add(400 * time.Millisecond) // +400: -100
	if got := th.grant(5000); got != 0 {
		t.Fatalf("granted %d before the debt was repaid", got)
	}
	now = now.Add(200 * time.Millisecond) // +200: 100
	if got := th.grant(5000); got != 100 {
		t.Fatalf("granted %d after the refill, want 100", got)
	}
	if got := th.grant(30); got != 30 {
		t.Fatalf("granted %d of 30", got)
	}
	now = now.Add(time.Hour) // the bucket holds one second's worth at most
	if got := th.grant(5000); got != 1000 {
		t.Fatalf("granted %d after an hour, want 1000", got)
	}
	th.setRate(100) // what the bucket holds drops to the new second's worth
	if got := th.grant(5000); got != 100 {
		t.Fatalf("granted %d after the rate fell to 100", got)
	}
	th.setRate(-1)
	if got := th.grant(5000); got != 5000 {
		t.Fatalf("granted %d once unlimited", got)
	}
	unlimited := newMoveThrottle(-1, func() time.Time { return now })
	unlimited.took(1 << 40)
	var none *moveThrottle
	if unlimited.grant(5000) != 5000 || none.grant(5000) != 5000 {
		t.Fatal("an unlimited throttle held a read back")
	}
}
