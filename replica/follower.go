package replica

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/record"
)

// FollowerLog is what a follower needs of its local log; *log.Log has it.
type FollowerLog interface {
	StartOffset() int64
	EndOffset() int64
	LatestEpoch() int32
	EndOffsetForEpoch(epoch int32) (int32, int64)
	TruncateTo(offset int64) error
	ResetTo(offset int64) error
	DeleteRecordsBefore(offset int64) error
	AppendReplica(b record.Batch) (log.Appended, error)
}

// EpochSource answers OffsetForLeaderEpoch for the partition on its
// leader: the largest epoch at or below epoch that the leader holds and
// where it ends, (-1, -1) when it holds none.
type EpochSource interface {
	EndOffsetForEpoch(ctx context.Context, epoch int32) (int32, int64, error)
}

// Follower is a follower replica's state for one partition: where to
// fetch from and the high watermark it learned from the leader. The
// per-broker fetcher that batches many partitions into one Fetch drives
// it: Truncate once after each leadership change, then Apply each fetched
// record set. One fetcher owns it; only HighWatermark may be called
// concurrently with the others.
type Follower struct {
	log       FollowerLog
	producers *Producers   // nil: no producer state kept
	hw        atomic.Int64 // read by others (HighWatermark) while the fetcher writes
}

// NewFollower starts a follower over its local log with the high
// watermark it last checkpointed. ps, when not nil, is the partition's
// producer state: the follower records the batches it appends there,
// truncates it with the log, and snapshots it when the log rolls.
func NewFollower(l FollowerLog, hw int64, ps *Producers) *Follower {
	f := &Follower{log: l, producers: ps}
	f.hw.Store(min(max(hw, 0), l.EndOffset()))
	return f
}

// FetchOffset is the offset the next Fetch asks for: the local log end.
func (f *Follower) FetchOffset() int64 { return f.log.EndOffset() }

// HighWatermark is the follower's high watermark: the leader's, as of the
// last fetch, capped by what this replica holds.
func (f *Follower) HighWatermark() int64 { return f.hw.Load() }

// Truncate cuts the local log where it diverges from the new leader's
// (R9): it asks the leader where the local log's latest epoch ends and
// truncates there — never by high watermark alone. When the leader's
// answer is an older epoch (it never had ours), the local log is cut at
// the end of that epoch as both logs hold it. It returns the new end.
func (f *Follower) Truncate(ctx context.Context, leader EpochSource) (int64, error) {
	epoch := f.log.LatestEpoch()
	if epoch < 0 {
		return f.log.EndOffset(), nil // nothing written, nothing to cut
	}
	lEpoch, lEnd, err := leader.EndOffsetForEpoch(ctx, epoch)
	if err != nil {
		return -1, fmt.Errorf("replica: offset for leader epoch %d: %w", epoch, err)
	}
	target := f.log.EndOffset()
	switch {
	case lEpoch < 0:
		// The leader holds no epoch at or below ours: nothing here is
		// known to match it.
		target = 0
	case lEpoch == epoch:
		target = min(target, lEnd)
	default:
		// Our epochs after lEpoch never reached the leader.
		_, ourEnd := f.log.EndOffsetForEpoch(lEpoch)
		target = min(target, lEnd, ourEnd)
	}
	if target < f.log.EndOffset() {
		var err error
		if f.producers != nil {
			err = f.producers.Truncate(f.log, max(target, 0))
		} else {
			err = f.log.TruncateTo(max(target, 0))
		}
		if err != nil {
			return -1, err
		}
	}
	f.hw.Store(min(f.hw.Load(), f.log.EndOffset()))
	return f.log.EndOffset(), nil
}

// ResetTo restarts the local log at the leader's log start when all of it
// lies below (the leader's retention deleted what this replica would fetch
// next): nothing it holds can be fetched onto.
func (f *Follower) ResetTo(leaderStart int64) error {
	if leaderStart <= f.log.EndOffset() {
		return nil
	}
	var err error
	if f.producers != nil {
		err = f.producers.Reset(f.log, leaderStart)
	} else {
		err = f.log.ResetTo(leaderStart)
	}
	if err != nil {
		return err
	}
	f.hw.Store(leaderStart)
	return nil
}

// AdvanceStart moves the local log start offset up to the leader's (its
// DeleteRecords, or its retention), at most to this replica's high
// watermark: records the leader no longer serves are not served by this
// replica either should it lead. The new start is checkpointed by the
// log before it counts, and the producer state drops what lies below.
func (f *Follower) AdvanceStart(leaderStart int64) error {
	to := min(leaderStart, f.hw.Load())
	if to <= f.log.StartOffset() {
		return nil
	}
	if err := f.log.DeleteRecordsBefore(to); err != nil {
		return fmt.Errorf("replica: advance the log start to the leader's %d: %w", leaderStart, err)
	}
	if f.producers != nil {
		f.producers.CutBelow(f.log.StartOffset())
	}
	return nil
}

// ErrNotContiguous says a fetched record set does not start at the
// follower's fetch offset.
var ErrNotContiguous = errors.New("replica: fetched batches do not continue the log")

// Apply appends the whole batches of a fetched record set (a partial batch
// at the end, cut by the fetch size, is left for the next fetch), each
// checked for framing and CRC first (R1), and takes the leader's high
// watermark. A first batch that is a compaction gap starting before the
// log's end is appended from the end on (record.TrimGap). It returns the number of batches appended. A batch that
// rolled the log snapshots the producer state once the batches before it
// are applied (Producers.Rolled).
func (f *Follower) Apply(records []byte, leaderHW int64) (n int, err error) {
	rolled := false
	defer func() {
		if rolled {
			f.producers.Rolled(f.log)
		}
	}()
	for len(records) > 0 {
		b, rest, err := record.NextBatch(records, 0)
		if err != nil {
			var ce *record.CorruptError
			if errors.As(err, &ce) && ce.Check == record.CheckShort {
				break // the fetch cut the last batch
			}
			return n, fmt.Errorf("replica: fetched batch at %d: %w", f.log.EndOffset(), err)
		}
		if err := b.VerifyCRC(); err != nil {
			return n, fmt.Errorf("replica: fetched batch at %d: %w", b.BaseOffset(), err)
		}
		if end := f.log.EndOffset(); b.BaseOffset() != end {
			// The leader's cleaner may have merged removed batches into
			// one gap that starts before this log's end: take its rest.
			trimmed, ok := record.TrimGap(nil, b, end)
			if !ok {
				return n, fmt.Errorf("%w: batch at %d, log ends at %d", ErrNotContiguous, b.BaseOffset(), end)
			}
			b = trimmed
		}
		var a log.Appended
		if f.producers != nil {
			a, err = f.producers.AppendReplica(f.log, b)
		} else {
			a, err = f.log.AppendReplica(b)
		}
		if err != nil {
			return n, err
		}
		rolled = rolled || a.Rolled && f.producers != nil
		n++
		records = rest
	}
	if hw := min(leaderHW, f.log.EndOffset()); hw > f.hw.Load() {
		f.hw.Store(hw)
	}
	return n, nil
}
