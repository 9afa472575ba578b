package group

import (
	"slices"
	"strings"
	"time"
)

// Queue-group state for metrics (httpapi's sluice_queue_* series). Unlike
// DescribeQueue it changes nothing and writes no record, so a scrape can
// take it: a lease that ran out at now, which the next call touching the
// partition will end, is counted as that call will leave it (available
// again, or gone to the dead letters when it had its last delivery).

// QueueGroupStats is one queue group held by the coordinator.
type QueueGroupStats struct {
	Group string
	// Partitions are its partitions, by topic then partition.
	Partitions []QueuePartitionStats
}

// QueuePartitionStats is one partition of a queue group, as of now.
type QueuePartitionStats struct {
	QueueKey
	// Available counts the records of the window a member may be given
	// (now, or once their release delay or backoff passes); Acquired
	// those held under a lease that has not run out.
	Available, Acquired int
	// DeadLettered counts the records archived for the dead-letter topic
	// since the partition was first read, copied or with their copies
	// still to write (it survives failovers: it is in the persisted
	// state).
	DeadLettered int64
	// OldestAcquired is when the oldest lease still held began (zero:
	// none held).
	OldestAcquired time.Time
	AtCap          bool
}

// QueueStats returns every queue group held, sorted by id.
func (c *Coordinator) QueueStats(now time.Time) []QueueGroupStats {
	out := make([]QueueGroupStats, 0, len(c.queues))
	for _, id := range c.ListQueueGroups() {
		g := c.queues[id]
		gs := QueueGroupStats{Group: id, Partitions: make([]QueuePartitionStats, 0, len(g.parts))}
		for _, k := range sortedQueueKeys(g.parts) {
			p := g.parts[k]
			ps := p.q.stats(now)
			ps.QueueKey = k
			ps.DeadLettered += p.deadLettered
			gs.Partitions = append(gs.Partitions, ps)
		}
		out = append(out, gs)
	}
	slices.SortFunc(out, func(a, b QueueGroupStats) int { return strings.Compare(a.Group, b.Group) })
	return out
}

// stats counts q's records as of now, without ending expired leases.
func (q *QueuePartition) stats(now time.Time) QueuePartitionStats {
	var ps QueuePartitionStats
	var oldest time.Time // the earliest lease end still ahead
	for i := range q.recs {
		r := &q.recs[i]
		switch {
		case r.state == Available:
			ps.Available++
		case r.state == Archiving:
			ps.DeadLettered++
		case r.state != Acquired:
		case now.Before(r.deadline):
			ps.Acquired++
			if oldest.IsZero() || r.deadline.Before(oldest) {
				oldest = r.deadline
			}
		case r.deliveries >= q.cfg.MaxDeliveries:
			ps.DeadLettered++ // the next look archives it
		default:
			ps.Available++
		}
	}
	if !oldest.IsZero() {
		ps.OldestAcquired = oldest.Add(-q.cfg.Lease)
	}
	ps.AtCap = q.AtCap()
	return ps
}
