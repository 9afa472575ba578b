package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/record"
)

// EpochStart is one entry of the leader-epoch cache: the first offset
// written in a leader epoch.
type EpochStart struct {
	Epoch       int32
	StartOffset int64
}

// epochCache maps leader epochs to the first offset of each (R9): a
// follower of a new leader asks where its latest epoch ends on the leader
// (OffsetForLeaderEpoch) and truncates exactly there. Entries are strictly
// increasing in both epoch and start offset, and every start offset is
// below the log end offset. It is persisted in a checkpoint written on
// every change (changes are rare: one per leadership change), and checked
// against the log at Open: a cache that does not end with the epoch of the
// log's last batch is rebuilt from the batch headers. Guarded by Log.mu.
//
// An append that starts a new epoch (noteEpoch) does not write the
// checkpoint under the append lock: it leaves the new content pending, and
// the log's next sync (the interval flusher's, the group commit's,
// Close's) writes it, durably, outside the lock, as Kafka does since
// KAFKA-15046. The write with its two fsyncs under the lock held every
// append (and every acks=all acknowledgement waiting on the followers'
// appends) for as long as a busy disk took to sync: 70 to 140 ms at the
// first batch of every leader epoch on a loaded machine (BENCHMARKS.md,
// tail latency). A crash before that sync loses nothing the cache is
// needed for: the checkpoint on disk is then an older one, and Open
// rebuilds a cache that does not end with the last batch's epoch from the
// recovered log's batch headers. Truncations (cutEpochs) still write it
// durably at once.
type epochCache struct {
	entries []EpochStart
	file    *Checkpoint
	// pending is the payload of the entries as noteEpoch left them, not
	// yet written; nil when the file is up to date. Set under Log.mu,
	// taken by flush outside it.
	pending atomic.Pointer[[]byte]
}

const epochCheckpointFile = "leader-epoch.checkpoint"

// errEpochCacheStale says the checkpoint does not describe the log.
var errEpochCacheStale = errors.New("leader-epoch cache does not match the log")

// assign records that epoch starts at offset, if epoch is newer than the
// last entry. It returns whether the cache changed.
func (c *epochCache) assign(epoch int32, offset int64) bool {
	if n := len(c.entries); n > 0 && c.entries[n-1].Epoch >= epoch {
		return false
	}
	c.entries = append(c.entries, EpochStart{Epoch: epoch, StartOffset: offset})
	return true
}

// latest is the newest epoch in the cache, -1 when it is empty.
func (c *epochCache) latest() int32 {
	if n := len(c.entries); n > 0 {
		return c.entries[n-1].Epoch
	}
	return -1
}

// truncateFrom drops the entries of epochs starting at or after offset.
func (c *epochCache) truncateFrom(offset int64) bool {
	i := len(c.entries)
	for i > 0 && c.entries[i-1].StartOffset >= offset {
		i--
	}
	changed := i < len(c.entries)
	c.entries = c.entries[:i]
	return changed
}

// endOffsetFor answers OffsetForLeaderEpoch for epoch on a log ending at
// end: the largest epoch at or below it and the offset where that epoch
// ends — the start of the next epoch, or end for the latest one. (-1, -1)
// when the cache has no epoch at or below epoch.
func (c *epochCache) endOffsetFor(epoch int32, end int64) (int32, int64) {
	i, found := slices.BinarySearchFunc(c.entries, epoch, func(e EpochStart, t int32) int {
		return int(e.Epoch) - int(t)
	})
	if !found {
		i-- // the largest epoch below
	}
	if i < 0 {
		return -1, -1
	}
	if i == len(c.entries)-1 {
		return c.entries[i].Epoch, end
	}
	return c.entries[i].Epoch, c.entries[i+1].StartOffset
}

// save writes the checkpoint durably, and drops what was pending.
func (c *epochCache) save() error {
	c.pending.Store(nil)
	if err := c.file.Write(c.payload()); err != nil {
		return fmt.Errorf("leader-epoch checkpoint: %w", err)
	}
	return nil
}

// flush writes the pending checkpoint, if there is one. Called by the
// log's syncs, without Log.mu, never concurrently with save (a sync and a
// truncation exclude each other: groupCommit.lock).
func (c *epochCache) flush() error {
	p := c.pending.Swap(nil)
	if p == nil {
		return nil
	}
	if err := c.file.Write(*p); err != nil {
		return fmt.Errorf("leader-epoch checkpoint: %w", err)
	}
	return nil
}

// payload: count u32, then (epoch i32, start offset i64) each.
func (c *epochCache) payload() []byte {
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+12*len(c.entries)), uint32(len(c.entries)))
	for _, e := range c.entries {
		buf = binary.BigEndian.AppendUint32(buf, uint32(e.Epoch))
		buf = binary.BigEndian.AppendUint64(buf, uint64(e.StartOffset))
	}
	return buf
}

func (c *epochCache) load() error {
	b, err := c.file.Read(nil)
	if err != nil {
		return err
	}
	if len(b) < 4 {
		return fmt.Errorf("%w: %d bytes", ErrCorruptCheckpoint, len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(len(b)-4) != uint64(n)*12 {
		return fmt.Errorf("%w: %d entries in %d bytes", ErrCorruptCheckpoint, n, len(b)-4)
	}
	entries := make([]EpochStart, n)
	for i := range entries {
		p := b[4+12*i:]
		entries[i] = EpochStart{Epoch: int32(binary.BigEndian.Uint32(p)), StartOffset: int64(binary.BigEndian.Uint64(p[4:]))}
		if i > 0 && (entries[i].Epoch <= entries[i-1].Epoch || entries[i].StartOffset <= entries[i-1].StartOffset) {
			return fmt.Errorf("%w: leader epochs not increasing at entry %d", ErrCorruptCheckpoint, i)
		}
	}
	c.entries = entries
	return nil
}

// loadEpochs reads the leader-epoch checkpoint and makes it agree with the
// recovered log: entries at or past the end are dropped (recovery may have
// truncated), and a cache that is missing, corrupt or does not end with the
// last batch's epoch is rebuilt from the batch headers. Called by load.
func (l *Log) loadEpochs() error {
	c := &l.epochs
	c.file = NewCheckpoint(l.fs, filepath.Join(l.dir, epochCheckpointFile))
	end := l.end.Load()
	err := c.load()
	if err == nil {
		changed := c.truncateFrom(end)
		if c.latest() == l.lastEpoch {
			if changed {
				return c.save()
			}
			return nil
		}
		err = errEpochCacheStale
	}
	missing := errors.Is(err, os.ErrNotExist)
	if !missing {
		l.logger.Warn("rebuilding the leader-epoch cache from the log", zap.Error(err))
	}
	if err := l.rebuildEpochs(); err != nil {
		return err
	}
	if missing && len(c.entries) == 0 {
		// A log without batches (a new one): nothing to keep, and the
		// first batch appended writes the checkpoint (noteEpoch).
		return nil
	}
	return c.save()
}

// rebuildEpochs scans every batch header of the log.
func (l *Log) rebuildEpochs() error {
	c := &l.epochs
	c.entries = c.entries[:0]
	for _, s := range l.segs {
		for off := s.Base(); off < s.NextOffset(); {
			v, err := s.Read(off, s.NextOffset(), 1<<20)
			if err != nil {
				return fmt.Errorf("segment %d: rebuild leader epochs: %w", s.Base(), err)
			}
			b := v.Bytes()
			for len(b) > 0 {
				batch, err := record.ParseHeader(b, 0)
				if err != nil {
					v.Release()
					return fmt.Errorf("segment %d: rebuild leader epochs: %w", s.Base(), err)
				}
				c.assign(batch.LeaderEpoch(), batch.BaseOffset())
				off = batch.NextOffset()
				b = b[len(batch):]
			}
			v.Release()
			if v.Len() == 0 {
				break
			}
		}
	}
	return nil
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch (R9): the largest leader
// epoch at or below epoch that this log holds, and the offset where it
// ends (the first offset of the next epoch, or the end offset for the
// latest). (-1, -1) when the log holds no such epoch.
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epochs.endOffsetFor(epoch, l.end.Load())
}

// LatestEpoch is the leader epoch of the log's last batch as the cache
// holds it, -1 for an empty log.
func (l *Log) LatestEpoch() int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epochs.latest()
}

// Epochs returns a copy of the leader-epoch cache, oldest first.
func (l *Log) Epochs() []EpochStart {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.epochs.entries)
}

// noteEpoch records the epoch of a batch appended at base; mu is held.
// The checkpoint is left pending for the log's next sync (see epochCache),
// whose failure takes the log offline like any fsync error (R5).
func (l *Log) noteEpoch(epoch int32, base int64) error {
	if l.epochs.assign(epoch, base) {
		p := l.epochs.payload()
		l.epochs.pending.Store(&p)
	}
	return nil
}

// cutEpochs drops the epochs that start at or after the new end offset
// (TruncateTo); mu is held.
func (l *Log) cutEpochs(end int64) error {
	if l.epochs.truncateFrom(end) {
		return l.epochs.save()
	}
	return nil
}
