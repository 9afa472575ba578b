package broker

import (
	"testing"
	"time"
)

// TestObserveNowMeasuresDurations: instants from observeNow are as far
// apart as the time between them, by their monotonic readings, and they
// follow time.Now's.
func TestObserveNowMeasuresDurations(t *testing.T) {
	before := time.Now()
	a := observeNow()
	time.Sleep(10 * time.Millisecond)
	b := observeNow()
	after := time.Now()
	if d := b.Sub(a); d < 10*time.Millisecond || d > after.Sub(before) {
		t.Fatalf("observeNow instants %v apart, want between 10ms and %v", d, after.Sub(before))
	}
	if a.Before(before) || after.Before(b) {
		t.Fatalf("observeNow %v, %v not within time.Now %v .. %v", a, b, before, after)
	}
}

// BenchmarkObserveNow compares observeNow with time.Now, which it
// replaces for RequestTiming's five instants per request.
//
//	go test -run '^$' -bench ObserveNow -count 5 ./broker
func BenchmarkObserveNow(b *testing.B) {
	var sink time.Time
	b.Run("time.Now", func(b *testing.B) {
		for b.Loop() {
			sink = time.Now()
		}
	})
	b.Run("observeNow", func(b *testing.B) {
		for b.Loop() {
			sink = observeNow()
		}
	})
	_ = sink
}
