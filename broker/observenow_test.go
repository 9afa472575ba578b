package broker

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/cost"
)

// TestObserveNowMeasuresDurations: Instants from observeNow are never
// zero (no reading), and two are as far apart as the time between them.
func TestObserveNowMeasuresDurations(t *testing.T) {
	before := time.Now()
	a := observeNow()
	time.Sleep(10 * time.Millisecond)
	b := observeNow()
	elapsed := time.Since(before)
	if a.IsZero() || a <= 0 {
		t.Fatalf("observeNow = %d, want a positive reading", a)
	}
	if d := time.Duration(b - a); d < 10*time.Millisecond || d > elapsed {
		t.Fatalf("observeNow instants %v apart, want between 10ms and %v", d, elapsed)
	}
	tm := RequestTiming{Read: a, Start: b, Local: b + 5, Done: b + 3, Sent: b + 10}
	if q, l, w, s := tm.Stages(); q != time.Duration(b-a) || l != 5 || w != 0 || s != 7 {
		t.Fatalf("Stages = %v %v %v %v, want %v 5ns 0 7ns", q, l, w, s, time.Duration(b-a))
	}
}

// BenchmarkObserveNow compares observeNow with time.Now and with the
// time.Time it returned before Instant (the monotonic reading added to
// observeEpoch), in wall-clock and CPU time (cpu-ns/op).
//
//	go test -run '^$' -bench ObserveNow -count 5 ./broker
func BenchmarkObserveNow(b *testing.B) {
	var now time.Time
	var instant Instant
	for _, c := range []struct {
		name string
		read func()
	}{
		{"time.Now", func() { now = time.Now() }},
		{"time.Time", func() { now = observeEpoch.Add(time.Since(observeEpoch)) }},
		{"observeNow", func() { instant = observeNow() }},
	} {
		b.Run(c.name, func(b *testing.B) {
			c0, err := cost.CPUTime()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				c.read()
			}
			c1, err := cost.CPUTime()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(c1-c0)/float64(b.N), "cpu-ns/op")
		})
	}
	_, _ = now, instant
}
