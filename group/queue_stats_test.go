package group

import (
	"testing"
	"time"
)

// QueueStats counts a window as of now without changing it: a lease that
// ran out counts as available (or dead-lettered when it was the last
// delivery), and the state the next call sees is the same.
func TestQueueStats(t *testing.T) {
	c, _ := New(Config{Queue: QueueConfig{Lease: time.Second, MaxDeliveries: 2, MaxInFlight: 5}})
	k := QueueKey{"jobs", 1}
	c.QueueAcquire(t0, "g", "a", 5, []QueueRead{{k, []int64{0, 1, 2, 3, 4}}})
	c.QueueAck(t0, "g", "a", []QueueAck{
		{QueueKey: k, Offsets: []int64{4}, Outcome: Accept},
		{QueueKey: k, Offsets: []int64{1}, Outcome: Reject},
		{QueueKey: k, Offsets: []int64{2}, Outcome: Release}})
	// 0 and 3 held since t0 (the window stays 0 to 4: at its cap); 2 taken again at t0+500ms (its 2nd and last delivery).
	c.QueueAcquire(t0.Add(500*time.Millisecond), "g", "b", 1, []QueueRead{{k, nil}})

	type want struct {
		avail, acq int
		dead       int64
		oldest     time.Time
	}
	for _, tc := range []struct {
		at   time.Duration
		want want
	}{
		{600 * time.Millisecond, want{0, 3, 1, t0}},
		{900 * time.Millisecond, want{0, 3, 1, t0}},
		{time.Second, want{2, 1, 1, t0.Add(500 * time.Millisecond)}},
		{1500 * time.Millisecond, want{2, 0, 2, time.Time{}}},
	} {
		now := t0.Add(tc.at)
		st := c.QueueStats(now)
		if len(st) != 1 || st[0].Group != "g" || len(st[0].Partitions) != 1 {
			t.Fatalf("at %v: %+v", tc.at, st)
		}
		p := st[0].Partitions[0]
		got := want{p.Available, p.Acquired, p.DeadLettered, p.OldestAcquired}
		if p.QueueKey != k || got != tc.want || !p.AtCap {
			t.Errorf("at %v: %+v, want %+v and at cap", tc.at, p, tc.want)
		}
	}
	// Looking changed nothing: describing at the end agrees.
	now := t0.Add(1500 * time.Millisecond)
	d, _, _, err := c.DescribeQueue(now, "g")
	if err != nil || d[0].Available != 2 || d[0].Acquired != 0 || d[0].DeadLettered != 2 {
		t.Fatalf("describe after stats: %+v %v", d, err)
	}
	if st := c.QueueStats(now); st[0].Partitions[0].DeadLettered != 2 || st[0].Partitions[0].Available != 2 {
		t.Fatalf("stats after describe: %+v", st)
	}
}
