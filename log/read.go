package log

import (
	"fmt"
	"math"
	"sort"

	"github.com/sluicemq/sluice/segment"
)

// The read path: readers take no append lock. They find the segment under
// segMu's read lock and get a segment.View holding a reference on it, so
// retention, truncation or Close cannot unmap bytes they still hold (R8).
// Changed lets a long-poll wait for the next change without polling.

// Read returns whole batches from the one holding offset on, up to the end
// offset and about maxBytes (at least one batch if any). The View must be
// released; its bytes can go to a socket unchanged.
func (l *Log) Read(offset int64, maxBytes int) (segment.View, error) {
	return l.ReadUpTo(offset, math.MaxInt64, maxBytes)
}

// ReadUpTo is Read that never returns a batch whose base offset is at or
// after maxOffset (the high watermark). It reads from one segment per
// call, so a View may end at a segment boundary before maxBytes; the next
// Read continues in the next segment. An empty View means nothing below
// min(maxOffset, EndOffset) from offset on. An offset below StartOffset or
// above EndOffset is ErrOffsetOutOfRange.
func (l *Log) ReadUpTo(offset, maxOffset int64, maxBytes int) (segment.View, error) {
	if l.closedFlag.Load() {
		return segment.View{}, ErrClosed
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	start, end := l.start.Load(), l.end.Load()
	if offset < start || offset > end {
		return segment.View{}, fmt.Errorf("log %s: read at %d (log %d-%d): %w", l.dir, offset, start, end, ErrOffsetOutOfRange)
	}
	maxOffset = min(maxOffset, end)
	segs := l.segs
	i := sort.Search(len(segs), func(i int) bool { return segs[i].Base() > offset }) - 1
	if i < 0 {
		return segment.View{}, fmt.Errorf("log %s: read at %d: %w", l.dir, offset, ErrOffsetOutOfRange)
	}
	v, err := segs[i].Read(offset, maxOffset, maxBytes)
	if err != nil {
		return segment.View{}, fmt.Errorf("log %s: read at %d: %w", l.dir, offset, err)
	}
	return v, nil
}

// OffsetForTimestamp returns the first offset of the first batch whose max
// timestamp is at least ts (never below StartOffset), or EndOffset if none.
func (l *Log) OffsetForTimestamp(ts int64) (int64, error) {
	if l.closedFlag.Load() {
		return -1, ErrClosed
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	start := l.start.Load()
	for _, s := range l.segs {
		if s.MaxTimestamp() < ts {
			continue
		}
		if off, ok := s.FindTimestamp(ts); ok {
			return max(off, start), nil
		}
	}
	return l.end.Load(), nil
}

// Changed returns a channel closed at the next Append, truncation, Close or
// advance of SyncedOffset.
// Take it before checking the condition you wait for, so a change between
// the check and the wait is not missed.
func (l *Log) Changed() <-chan struct{} {
	for {
		if p := l.changed.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if l.changed.CompareAndSwap(nil, &ch) {
			if l.closedFlag.Load() {
				l.notify()
			}
			return ch
		}
	}
}

// notify closes the channel handed out by Changed, if any.
func (l *Log) notify() {
	if p := l.changed.Swap(nil); p != nil {
		close(*p)
	}
}
