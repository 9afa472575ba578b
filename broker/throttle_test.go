package broker

import (
	"testing"
	"time"
)

// The throttle lets an adding replica read while its bucket holds bytes,
// takes what was read (going below zero by one response), refills at the
// rate up to one second's worth, and does nothing when unlimited.
func TestMoveThrottle(t *testing.T) {
	now := time.Unix(0, 0)
	th := newMoveThrottle(1000, func() time.Time { return now })
	if !th.allow() {
		t.Fatal("a full bucket refused")
	}
	th.took(1500)
	if th.allow() {
		t.Fatal("an empty bucket allowed a read")
	}
	now = now.Add(400 * time.Millisecond) // +400: -100
	if th.allow() {
		t.Fatal("allowed before the debt was repaid")
	}
	now = now.Add(200 * time.Millisecond) // +200: 100
	if !th.allow() {
		t.Fatal("refused after the refill")
	}
	now = now.Add(time.Hour)
	th.took(1001) // the bucket holds one second's worth at most
	if th.allow() {
		t.Fatal("the bucket held more than one second's worth")
	}
	unlimited := newMoveThrottle(-1, func() time.Time { return now })
	unlimited.took(1 << 40)
	var none *moveThrottle
	if !unlimited.allow() || !none.allow() {
		t.Fatal("an unlimited throttle refused")
	}
}
