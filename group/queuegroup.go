package group

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Queue groups on a Coordinator (issue 16, docs/queues.md). A queue group
// lives on the coordinator of its id, as a consumer group does, and keeps
// one QueuePartition per partition it has read. Its state is persisted in
// the same offsets partition as queue-partition records (records.go), one key per
// (group, topic, partition), so compaction keeps the latest window of
// each; Replay restores them with RestoreQueuePartition.
//
// The calls follow the Coordinator's contract (pure, time from the
// caller, not safe for concurrent use) with one more rule, for dead
// letters, in three steps. A call that archives records (rejected, or out
// of deliveries) leaves them archiving and returns them as QueueDead,
// with Records that hold their windows: the caller (1) commits those
// Records, (2) then writes the copies to the dead-letter topic, (3) then
// calls QueueDeadLettersWritten with the copies written, whose Records
// archive them, and QueueDeadLettersNotWritten with the others, which
// the next call on their partition after the time given returns again.
// A record archiving is never delivered or accepted again, so once its
// copy may exist it ends in the dead-letter topic only; a failure at any
// step leaves it archiving in memory or in the committed window, and a
// coordinator that restores it returns it again: a copy may be written
// twice (at least once), never lost. Every call first ends the expired
// leases of the partitions it touches (Tick): leases are enforced
// whenever the state is looked at, so no timer is needed for them.

// ErrQueueGroupNotFound: an acknowledgement or a describe names a queue
// group this coordinator does not hold.
var ErrQueueGroupNotFound = errors.New("queue group not found")

// QueueKey names a partition of a queue group.
type QueueKey struct {
	Topic     string
	Partition int32
}

// QueueDead is a record archiving, to copy to the dead-letter topic.
type QueueDead struct {
	QueueKey
	DeadLetter
}

// QueueSnapshot is a partition as a receive sees it before it reads the
// log: End (where new records start; 0 for a partition never read),
// whether the window is full, and the offsets available now.
type QueueSnapshot struct {
	QueueKey
	End       int64
	AtCap     bool
	Available []int64
}

// QueueRead is what the caller read of a partition for QueueAcquire: the
// offsets the log holds at and after the snapshot's End (ascending, from
// contiguous batches), nil when it read none.
type QueueRead struct {
	QueueKey
	Next []int64
}

// QueueDelivery is one record acquired by a member.
type QueueDelivery struct {
	QueueKey
	Delivery
}

// QueueAck is a member's outcome for offsets of one partition.
type QueueAck struct {
	QueueKey
	Offsets []int64
	Outcome Outcome
	Delay   time.Duration // Release
	Reason  string        // Reject
}

// QueuePartitionDescription is one partition of a queue group.
type QueuePartitionDescription struct {
	QueueKey
	Start, End int64
	Available  int
	Acquired   int
	Accepted   int // in the window (those before Start are done too)
	Archived   int // in the window, archiving ones included
	// Archiving is how many of Archived have their dead-letter copies
	// still to write (retried by the calls on the partition).
	Archiving int
	// DeadLettered counts the records archived since the partition was
	// first read, those archiving included.
	DeadLettered int64
	// OldestAcquired is when the oldest lease still held began (zero:
	// none held).
	OldestAcquired time.Time
	AtCap          bool
}

type queueGroup struct {
	id    string
	parts map[QueueKey]*queuePart
}

type queuePart struct {
	q            *QueuePartition
	deadLettered int64 // copies written (records archived)
	// pending are archiving records whose copies are not in a caller's
	// hands: restored archiving, archived by a lowered limit, or whose
	// copies were not written. The next call that touches the partition
	// at or after retryAt returns them as dead letters.
	pending []DeadLetter
	retryAt time.Time
}

func (c *Coordinator) queueGroup(id string, create bool) *queueGroup {
	g := c.queues[id]
	if g == nil && create {
		g = &queueGroup{id: id, parts: map[QueueKey]*queuePart{}}
		c.queues[id] = g
	}
	return g
}

// AdmitQueueGroup refuses a queue group this coordinator does not hold
// when it holds Config.MaxQueueGroups already (ErrGroupMaxSizeReached,
// definite). The calls that create a group (QueueSnapshot, ResetQueue)
// come after it; replay restores every group, whatever the bound.
func (c *Coordinator) AdmitQueueGroup(id string) error {
	if c.queues[id] == nil && len(c.queues) >= c.cfg.MaxQueueGroups {
		return refuse(ErrGroupMaxSizeReached, "queue group %q: this coordinator holds %d queue groups, the most allowed", id, len(c.queues))
	}
	return nil
}

// QueueConfig returns the settings of queue group id: its own
// (SetQueueConfigs), or the coordinator's Config.Queue.
func (c *Coordinator) QueueConfig(id string) QueueConfig {
	if cfg, ok := c.queueCfgs[id]; ok {
		return cfg.WithDefaults()
	}
	return c.cfg.Queue.WithDefaults()
}

// SetQueueConfigs gives the coordinator the settings of the queue groups
// that have their own (the group configs of the cluster metadata); the
// others have Config.Queue. The map is kept: the caller must not change
// it afterwards. Groups held whose settings changed apply them at once
// (QueuePartition.SetConfig); records a lowered delivery limit archives
// are dead-lettered by the next call on their partition. Call it before
// Replay too, so restored windows count deliveries against their group's
// limit.
func (c *Coordinator) SetQueueConfigs(cfgs map[string]QueueConfig) {
	old := c.queueCfgs
	c.queueCfgs = cfgs
	for _, id := range slices.Sorted(maps.Keys(c.queues)) {
		prev, ok := old[id]
		if !ok {
			prev = c.cfg.Queue
		}
		cfg := c.QueueConfig(id)
		if prev.Equal(cfg) {
			continue
		}
		g := c.queues[id]
		for _, k := range sortedQueueKeys(g.parts) {
			p := g.parts[k]
			p.pending = append(p.pending, p.q.SetConfig(cfg)...)
		}
	}
}

func (c *Coordinator) part(g *queueGroup, k QueueKey, create bool) *queuePart {
	p := g.parts[k]
	if p == nil && create {
		p = &queuePart{q: NewQueuePartition(c.QueueConfig(g.id), 0)}
		g.parts[k] = p
	}
	return p
}

// tick ends p's expired leases and collects its dead letters: those of
// the leases ended at their last delivery, and the pending ones once
// their retry time has come.
func (p *queuePart) tick(now time.Time, k QueueKey, dead []QueueDead) ([]QueueDead, bool) {
	var dls []DeadLetter
	if !now.Before(p.retryAt) {
		dls, p.pending = p.pending, nil
	}
	dls = append(dls, p.q.Tick(now)...)
	for _, dl := range dls {
		dead = append(dead, QueueDead{k, dl})
	}
	return dead, len(dls) > 0
}

func (c *Coordinator) queueRecord(g *queueGroup, k QueueKey, p *queuePart) {
	v := enc(nil).i16(valueVersion).i64(p.deadLettered)
	c.out = append(c.out, Record{Key: queueKey(g.id, k.Topic, k.Partition), Value: p.q.EncodeQueueState(v)})
}

func queueKey(group, topic string, part int32) []byte {
	return enc(nil).i16(keyQueue).str(group).str(topic).i32(part)
}

// replayQueue restores one partition's window from its record.
func (c *Coordinator) replayQueue(groupID, topic string, part int32, value []byte) error {
	k := QueueKey{topic, part}
	if value == nil {
		if g := c.queueGroup(groupID, false); g != nil {
			delete(g.parts, k)
			if len(g.parts) == 0 {
				delete(c.queues, groupID)
			}
		}
		return nil
	}
	v := dec{b: value}
	v.version("queue version")
	n := v.i64("dead lettered")
	if v.err == nil && n < 0 {
		v.fail("dead lettered", fmt.Sprintf("%d", n))
	}
	if v.err != nil {
		return v.err
	}
	q, dead, err := RestoreQueuePartition(c.QueueConfig(groupID), v.b)
	if err != nil {
		return fmt.Errorf("%w: queue %q %s/%d: %w", ErrCorrupt, groupID, topic, part, err)
	}
	c.queueGroup(groupID, true).parts[k] = &queuePart{q: q, deadLettered: n, pending: dead}
	return nil
}

// QueueSnapshot ends the expired leases of the group's partitions named
// (creating the group and partitions it has not read yet) and returns
// what a receive of up to max records should read of each. The dead
// letters go to the dead-letter topic before the records are appended.
func (c *Coordinator) QueueSnapshot(now time.Time, groupID string, parts []QueueKey, max int) ([]QueueSnapshot, []QueueDead, []Record) {
	c.out = nil
	g := c.queueGroup(groupID, true)
	var dead []QueueDead
	out := make([]QueueSnapshot, 0, len(parts))
	for _, k := range parts {
		p := c.part(g, k, true)
		var changed bool
		if dead, changed = p.tick(now, k, dead); changed {
			c.queueRecord(g, k, p)
		}
		out = append(out, QueueSnapshot{QueueKey: k, End: p.q.End(), AtCap: p.q.AtCap(), Available: p.q.AvailableOffsets(now, max)})
	}
	return out, dead, c.take()
}

// QueueAcquire gives member up to max records of the partitions read, in
// their order: available records first in each, then new ones from
// Next. It returns the deliveries and the records of the partitions that
// changed (their delivery counts must survive a failover).
func (c *Coordinator) QueueAcquire(now time.Time, groupID, member string, max int, reads []QueueRead) ([]QueueDelivery, []QueueDead, []Record) {
	c.out = nil
	g := c.queueGroup(groupID, true)
	var out []QueueDelivery
	var dead []QueueDead
	for _, r := range reads {
		if len(out) >= max {
			break
		}
		p := c.part(g, r.QueueKey, true)
		var changed bool
		dead, changed = p.tick(now, r.QueueKey, dead)
		got := p.q.Acquire(now, member, max-len(out), r.Next)
		for _, d := range got {
			out = append(out, QueueDelivery{r.QueueKey, d})
		}
		if changed || len(got) > 0 {
			c.queueRecord(g, r.QueueKey, p)
		}
	}
	return out, dead, c.take()
}

// QueueAck applies a member's outcomes and returns, per QueueAck and
// offset, nil or a definite error (ErrLeaseLost, ErrNotDelivered), the
// records archived (rejected, or out of deliveries) and the records to
// append. An unknown group is ErrQueueGroupNotFound.
func (c *Coordinator) QueueAck(now time.Time, groupID, member string, acks []QueueAck) ([][]error, []QueueDead, []Record, error) {
	c.out = nil
	g := c.queueGroup(groupID, false)
	if g == nil {
		return nil, nil, nil, fmt.Errorf("%w: %q", ErrQueueGroupNotFound, groupID)
	}
	errs := make([][]error, len(acks))
	var dead []QueueDead
	changed := map[QueueKey]bool{}
	for i, a := range acks {
		p := c.part(g, a.QueueKey, false)
		if p == nil {
			errs[i] = make([]error, len(a.Offsets))
			for j, off := range a.Offsets {
				errs[i][j] = fmt.Errorf("%w: offset %d (%s/%d never read by the group)", ErrNotDelivered, off, a.Topic, a.Partition)
			}
			continue
		}
		var ticked bool
		if dead, ticked = p.tick(now, a.QueueKey, dead); ticked {
			changed[a.QueueKey] = true
		}
		var dls []DeadLetter
		errs[i], dls = p.q.Ack(now, member, a.Offsets, a.Outcome, a.Delay, a.Reason)
		for _, dl := range dls {
			dead = append(dead, QueueDead{a.QueueKey, dl})
		}
		if a.Outcome != Renew || ticked {
			for _, e := range errs[i] {
				if e == nil {
					changed[a.QueueKey] = true
					break
				}
			}
		}
	}
	for _, k := range sortedQueueKeys(changed) {
		c.queueRecord(g, k, g.parts[k])
	}
	return errs, dead, c.take(), nil
}

// DescribeQueue describes a queue group's partitions, after ending the
// expired leases (whose dead letters and records the caller writes, as
// for QueueSnapshot).
func (c *Coordinator) DescribeQueue(now time.Time, groupID string) ([]QueuePartitionDescription, []QueueDead, []Record, error) {
	c.out = nil
	g := c.queueGroup(groupID, false)
	if g == nil {
		return nil, nil, nil, fmt.Errorf("%w: %q", ErrQueueGroupNotFound, groupID)
	}
	var dead []QueueDead
	var out []QueuePartitionDescription
	for _, k := range sortedQueueKeys(g.parts) {
		p := g.parts[k]
		var changed bool
		if dead, changed = p.tick(now, k, dead); changed {
			c.queueRecord(g, k, p)
		}
		n := p.q.Counts()
		out = append(out, QueuePartitionDescription{QueueKey: k, Start: p.q.Start(), End: p.q.End(),
			Available: n[Available], Acquired: n[Acquired], Accepted: n[Accepted], Archived: n[Archived] + n[Archiving],
			Archiving: n[Archiving], DeadLettered: p.deadLettered + int64(n[Archiving]), OldestAcquired: p.q.OldestAcquired(), AtCap: p.q.AtCap()})
	}
	return out, dead, c.take(), nil
}

// QueueDeadLettersWritten archives the records whose dead-letter copies
// dead are written (returned as QueueDead by a call of this coordinator,
// whose Records were committed before the copies) and returns the Records
// of their windows. Records no longer archiving (a reset came between)
// are left alone.
func (c *Coordinator) QueueDeadLettersWritten(groupID string, dead []QueueDead) []Record {
	c.out = nil
	g := c.queueGroup(groupID, false)
	if g == nil {
		return nil
	}
	byPart := map[QueueKey][]int64{}
	for _, d := range dead {
		byPart[d.QueueKey] = append(byPart[d.QueueKey], d.Offset)
	}
	for _, k := range sortedQueueKeys(byPart) {
		if p := g.parts[k]; p != nil {
			if n := p.q.Archive(byPart[k]); n > 0 {
				p.deadLettered += int64(n)
				c.queueRecord(g, k, p)
			}
		}
	}
	return c.take()
}

// QueueDeadLettersNotWritten takes back the dead letters dead whose
// copies were not written (or may not have been): their records stay
// archiving, and the first call on their partition at or after retryAt
// returns them again.
func (c *Coordinator) QueueDeadLettersNotWritten(groupID string, dead []QueueDead, retryAt time.Time) {
	g := c.queueGroup(groupID, false)
	if g == nil {
		return
	}
	for _, d := range dead {
		if p := g.parts[d.QueueKey]; p != nil && p.q.state(d.Offset) == Archiving {
			p.pending = append(p.pending, d.DeadLetter)
			p.retryAt = retryAt
		}
	}
}

// QueueDeadLettersDue returns the queue groups, sorted, with dead
// letters to write at now (restored archiving, or not written and their
// retry time come): a call on their partitions (DescribeQueue touches
// them all) returns them.
func (c *Coordinator) QueueDeadLettersDue(now time.Time) []string {
	var out []string
	for _, id := range c.ListQueueGroups() {
		for _, p := range c.queues[id].parts {
			if len(p.pending) > 0 && !now.Before(p.retryAt) {
				out = append(out, id)
				break
			}
		}
	}
	return out
}

// ResetQueue moves the windows of the partitions named to their offsets
// (creating the group and partitions), dropping every state in them:
// records acquired are no longer held.
func (c *Coordinator) ResetQueue(groupID string, to map[QueueKey]int64) []Record {
	c.out = nil
	g := c.queueGroup(groupID, true)
	for _, k := range sortedQueueKeys(to) {
		p := c.part(g, k, true)
		p.q.Reset(max(to[k], 0))
		p.pending = nil
		c.queueRecord(g, k, p)
	}
	return c.take()
}

// deleteQueueTopics forgets the queue groups' windows of the topics
// gone (deleted, or deleted and created again: a new topic starts
// fresh) with a tombstone each, and the groups left with none.
func (c *Coordinator) deleteQueueTopics(gone map[string]bool) {
	for _, id := range slices.Sorted(maps.Keys(c.queues)) {
		g := c.queues[id]
		for _, k := range sortedQueueKeys(g.parts) {
			if gone[k.Topic] {
				delete(g.parts, k)
				c.out = append(c.out, Record{Key: queueKey(id, k.Topic, k.Partition)})
			}
		}
		if len(g.parts) == 0 {
			delete(c.queues, id)
		}
	}
}

// ListQueueGroups returns the ids of the queue groups held, sorted.
func (c *Coordinator) ListQueueGroups() []string {
	return slices.Sorted(maps.Keys(c.queues))
}

func sortedQueueKeys[V any](m map[QueueKey]V) []QueueKey {
	out := slices.Collect(maps.Keys(m))
	slices.SortFunc(out, func(a, b QueueKey) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	return out
}
