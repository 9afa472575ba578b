package log

import "time"

// segInfo is what the retention rules look at in a segment.
type segInfo struct {
	base, next   int64 // first offset, offset after the last batch
	size         int64 // bytes
	maxTimestamp int64 // ms, -1 if empty
}

// retentionCount returns how many of the oldest segments retention deletes.
// segs is the whole log, oldest first, the active segment last; the active
// segment is never counted. Each rule selects a prefix of the closed
// segments and the longest prefix wins:
//   - segments wholly below the log start offset (DeleteRecordsBefore);
//   - by bytes: the oldest segments while the log, without them, is still at
//     least retentionBytes big (-1 = unlimited);
//   - by age: the oldest segments whose newest batch is more than
//     retentionAge older than nowMs (-1 = unlimited). An empty segment stops
//     the scan, having no age.
func retentionCount(segs []segInfo, start, retentionBytes int64, retentionAge time.Duration, nowMs int64) int {
	if len(segs) < 2 {
		return 0
	}
	closed := segs[:len(segs)-1]
	n := 0
	for n < len(closed) && closed[n].next <= start {
		n++
	}
	if retentionBytes >= 0 {
		var total int64
		for _, s := range segs {
			total += s.size
		}
		excess := total - retentionBytes
		i := 0
		for i < len(closed) && excess-closed[i].size >= 0 {
			excess -= closed[i].size
			i++
		}
		n = max(n, i)
	}
	if retentionAge >= 0 {
		ageMs := retentionAge.Milliseconds()
		i := 0
		for i < len(closed) && closed[i].maxTimestamp >= 0 && nowMs-closed[i].maxTimestamp > ageMs {
			i++
		}
		n = max(n, i)
	}
	return n
}
