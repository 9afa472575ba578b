package log

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAppendNewEpoch times the append that starts a leader epoch (the
// first batch of a new topic, of every leadership change, on the leader
// and on each follower), with fsync=interval, on a real file system: each
// op is one 1 KiB batch in a new epoch, so each op rewrites the
// leader-epoch checkpoint under the append lock. The log holds at most
// 64 epochs (a fresh log every 64 ops), as a real one does. max-ns is the
// slowest single append.
func BenchmarkAppendNewEpoch(b *testing.B) {
	batch := makeBatch(nil, 1, 1<<10, 1, nil)
	cfg := Config{Fsync: FsyncInterval, FlushInterval: time.Hour, SegmentAge: -1, RetentionAge: -1}
	dir := b.TempDir()
	var l *Log
	var slowest time.Duration
	b.ReportAllocs()
	for i := range b.N {
		if i%64 == 0 {
			b.StopTimer()
			if l != nil {
				l.Close()
			}
			var err error
			if l, err = Open(filepath.Join(dir, "log", string(rune('a'+i/64%26)), time.Now().Format("150405.000000000")), cfg); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		l.SetLeaderEpoch(int32(i % 64))
		t0 := time.Now()
		if _, err := l.AppendNoWait(batch); err != nil {
			b.Fatal(err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	b.StopTimer()
	l.Close()
	// The stall a produce behind this append saw at worst.
	b.ReportMetric(float64(slowest.Nanoseconds()), "max-ns")
}
