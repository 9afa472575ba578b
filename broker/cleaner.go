package broker

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
)

// The log cleaner: one goroutine, owned by the broker, that compacts the
// partitions whose topic says cleanup.policy=compact — leaders and
// followers alike, each replica its own log (the cleaner never changes
// an offset, so replicas stay comparable offset by offset). Every
// CleanerInterval it cleans the due partition with the highest dirty
// ratio (log.CleanerStatus), then the next, until none is due. A
// partition whose cleaning fails is retried after a backoff (from
// CleanerInterval, doubling up to CleanerMaxBackoff); its error and
// failure count show in DescribeReplicas (sluice topic describe) and in
// a warning logged at most once a minute per partition. It never stops
// for good: Kafka's most reported compaction failure is a cleaner thread
// that died and left the offsets topic growing until a restart.

// cleanState is what the cleaner remembers of one partition (partition.cmu).
type cleanState struct {
	lastClean time.Time // end of the last successful Clean
	err       error     // the last Clean's error, nil after a success
	failures  int       // consecutive failures
	retryAt   time.Time // no attempt before this after a failure
	loggedAt  time.Time // the last warning logged
}

// CleanerState is a compacted replica's cleaner state, for operators.
type CleanerState struct {
	CleanBytes int64     // bytes of the cleaned part
	DirtyBytes int64     // cleanable bytes not yet cleaned
	LastClean  time.Time // zero: not cleaned since the broker started
	Failures   int       // consecutive failed attempts (0: healthy)
	Err        string    // the last attempt's error, "" when it worked
}

// cleanerLogEvery bounds the cleaner's warnings per partition.
const cleanerLogEvery = time.Minute

// cleanerLoop runs the cleaner until ctx ends.
func (b *Broker) cleanerLoop(ctx context.Context) {
	t := time.NewTicker(b.cfg.CleanerInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Each partition at most once a round: one that stays due after
		// a clean (a clean the log's truncation abandoned, say) waits for
		// the next tick rather than spin.
		done := make(map[*partition]bool)
		for ctx.Err() == nil && b.cleanDirtiest(ctx, done) {
		}
	}
}

// cleanDirtiest cleans the due partition with the highest dirty ratio,
// skipping those in done, adds it to done and reports whether it cleaned
// one successfully (the caller then looks for the next one).
func (b *Broker) cleanDirtiest(ctx context.Context, done map[*partition]bool) bool {
	now := time.Now()
	var (
		best      *partition
		bestLog   *log.Log
		bestRatio = -1.0
	)
	for _, p := range b.parts.all() {
		if done[p] {
			continue
		}
		p.mu.RLock()
		l := p.log
		open := p.state == stateOpen
		p.mu.RUnlock()
		if !open || l == nil || l.Err() != nil {
			continue // an offline log shows STORAGE_ERROR; cleaning it would change nothing
		}
		p.cmu.Lock()
		waiting := now.Before(p.clean.retryAt)
		p.cmu.Unlock()
		if waiting {
			continue
		}
		if st := l.CleanerStatus(); st.Compact && st.Due && st.DirtyRatio > bestRatio {
			best, bestLog, bestRatio = p, l, st.DirtyRatio
		}
	}
	if best == nil {
		return false
	}
	done[best] = true
	lg := b.logger.With(zap.String("topic", best.topic), zap.Int32("partition", best.index))
	start := time.Now()
	// Only producers the partition's state still holds keep their last
	// batch: an expired one (producer.id.expiration) is gone for good.
	active := make(map[int64]bool)
	for _, e := range best.producers.Entries() {
		active[e.ID] = true
	}
	b.cleaner.running.Store(true)
	res, err := bestLog.Clean(ctx, log.CleanOptions{KeyMapBytes: b.cfg.CleanerKeyMapBytes, ActiveProducer: func(id int64) bool { return active[id] }})
	b.cleaner.running.Store(false)
	if err != nil && (errors.Is(err, log.ErrClosed) || ctx.Err() != nil) {
		return false // closed under the cleaner (a reopen, a shutdown): not a failure
	}
	if err != nil {
		b.cleaner.failures.Add(1)
	} else {
		b.cleaner.cleans.Add(1)
		b.cleaner.reclaimed.Add(max(res.BytesBefore-res.BytesAfter, 0))
		b.cleaner.removed.Add(res.Removed)
	}
	best.cmu.Lock()
	defer best.cmu.Unlock()
	c := &best.clean
	if err != nil {
		c.err = err
		c.failures++
		backoff := b.cfg.CleanerInterval << min(c.failures-1, 30)
		if backoff <= 0 || backoff > b.cfg.CleanerMaxBackoff {
			backoff = b.cfg.CleanerMaxBackoff
		}
		c.retryAt = time.Now().Add(backoff)
		if time.Since(c.loggedAt) >= cleanerLogEvery {
			c.loggedAt = time.Now()
			lg.Warn("log cleaner failed; retrying", zap.Error(err), zap.Int("failures", c.failures), zap.Duration("backoff", backoff))
		}
		return false
	}
	if c.failures > 0 {
		lg.Info("log cleaner recovered", zap.Int("failures", c.failures))
	}
	c.err, c.failures, c.retryAt, c.lastClean = nil, 0, time.Time{}, time.Now()
	lg.Debug("log cleaned", zap.Int("segments", res.Segments), zap.Int64("bytes_before", res.BytesBefore),
		zap.Int64("bytes_after", res.BytesAfter), zap.Int64("removed", res.Removed), zap.Duration("took", time.Since(start)))
	return true
}

// cleanerState describes p's cleaner state, nil when its log is not
// compacted. Call with p.mu held (read).
func (p *partition) cleanerState() *CleanerState {
	st := p.log.CleanerStatus()
	if !st.Compact {
		return nil
	}
	p.cmu.Lock()
	defer p.cmu.Unlock()
	cs := &CleanerState{CleanBytes: st.CleanBytes, DirtyBytes: st.DirtyBytes, LastClean: p.clean.lastClean, Failures: p.clean.failures}
	if p.clean.err != nil {
		cs.Err = p.clean.err.Error()
	}
	return cs
}
