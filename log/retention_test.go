package log

import (
	"testing"
	"time"
)

func TestRetentionCount(t *testing.T) {
	// Four segments of 100 bytes, offsets 0-10-20-30-40, newest batch
	// timestamps 1000, 2000, 3000, 4000 ms; the last one is active.
	segs := []segInfo{
		{base: 0, next: 10, size: 100, maxTimestamp: 1000},
		{base: 10, next: 20, size: 100, maxTimestamp: 2000},
		{base: 20, next: 30, size: 100, maxTimestamp: 3000},
		{base: 30, next: 40, size: 100, maxTimestamp: 4000},
	}
	const off = -1
	tests := []struct {
		name  string
		segs  []segInfo
		start int64
		bytes int64
		age   time.Duration
		now   int64
		want  int
	}{
		{"nothing configured", segs, 0, off, off, 5000, 0},
		{"only the active segment", segs[3:], 0, 0, 0, 1 << 40, 0},
		{"bytes: keep at least 250", segs, 0, 250, off, 0, 1},
		{"bytes: keep at least 200", segs, 0, 200, off, 0, 2},
		{"bytes: exact total", segs, 0, 400, off, 0, 0},
		{"bytes: zero never takes the active one", segs, 0, 0, off, 0, 3},
		{"age: one expired", segs, 0, off, 2500 * time.Millisecond, 4000, 1},
		{"age: boundary is not expired", segs, 0, off, 2000 * time.Millisecond, 4000, 1},
		{"age: all closed expired", segs, 0, off, time.Millisecond, 1 << 40, 3},
		{"age: stops at the first young one", []segInfo{
			{base: 0, next: 10, size: 1, maxTimestamp: 9000},
			{base: 10, next: 20, size: 1, maxTimestamp: 1000},
			{base: 20, next: 30, size: 1, maxTimestamp: 9000},
		}, 0, off, time.Second, 9500, 0},
		{"age: empty segment stops", []segInfo{
			{base: 5, next: 5, size: 0, maxTimestamp: -1},
			{base: 5, next: 20, size: 1, maxTimestamp: 9000},
		}, 0, off, time.Millisecond, 1 << 40, 0},
		{"start offset covers two", segs, 20, off, off, 0, 2},
		{"start offset inside a segment", segs, 15, off, off, 0, 1},
		{"start offset at the end keeps the active one", segs, 40, off, off, 0, 3},
		{"longest rule wins", segs, 10, 300, 500 * time.Millisecond, 3000, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retentionCount(tt.segs, tt.start, tt.bytes, tt.age, tt.now); got != tt.want {
				t.Fatalf("retentionCount = %d, want %d", got, tt.want)
			}
		})
	}
}
