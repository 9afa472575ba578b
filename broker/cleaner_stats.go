package broker

import (
	"sync/atomic"

	"github.com/sluicemq/sluice/log"
)

// The log cleaner as the metrics see it (sluice_cleaner_*): counters the
// cleaner adds to once per clean (never per record), and at scrape time a
// pass over the compacted replicas' CleanerStatus, which reads segment
// sizes under the log's segment lock and touches no file.

// cleanerCounters count the cleaner's work since the broker started.
type cleanerCounters struct {
	running  atomic.Bool  // a Clean is in progress
	cleans   atomic.Int64 // successful cleans (one partition each)
	failures atomic.Int64 // failed cleans
	// reclaimed is the bytes the cleans removed (segment sizes before
	// minus after); removed the records they removed.
	reclaimed, removed atomic.Int64
}

// CleanerStats is the log cleaner of this broker.
type CleanerStats struct {
	// Running: a partition is being cleaned now.
	Running bool
	// Compacted counts this broker's replicas of compacted topics; Due
	// those due for a clean (dirty ratio, max compaction lag or
	// tombstones; log.CleanerStatus) and Failing those whose last clean
	// failed (retried after a backoff).
	Compacted, Due, Failing int
	// DirtyBytes is the cleanable bytes not cleaned yet, summed over the
	// compacted replicas: the cleaner's backlog.
	DirtyBytes int64
	// CleansTotal, FailuresTotal, BytesReclaimedTotal and
	// RecordsRemovedTotal count from the broker's start.
	CleansTotal, FailuresTotal, BytesReclaimedTotal, RecordsRemovedTotal int64
}

// addCleanerStats adds p's cleaner state, with l its log, to cs. It takes
// no lock of p's but cmu, which nothing holds across I/O, and only for a
// compacted log.
func (p *partition) addCleanerStats(l *log.Log, cs *CleanerStats) {
	st := l.CleanerStatus()
	if !st.Compact {
		return
	}
	cs.Compacted++
	cs.DirtyBytes += st.DirtyBytes
	if st.Due {
		cs.Due++
	}
	p.cmu.Lock()
	if p.clean.failures > 0 {
		cs.Failing++
	}
	p.cmu.Unlock()
}

// stats copies the totals into cs.
func (c *cleanerCounters) stats(cs *CleanerStats) {
	cs.Running = c.running.Load()
	cs.CleansTotal, cs.FailuresTotal = c.cleans.Load(), c.failures.Load()
	cs.BytesReclaimedTotal, cs.RecordsRemovedTotal = c.reclaimed.Load(), c.removed.Load()
}
