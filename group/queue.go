package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The queue-group state of one partition (issue 16; KIP-932's share
// partition): a window [start, end) of record states. Records before
// start are done (accepted, or archived and dead-lettered); end is the
// first offset never delivered. Inside the window a record is available
// (never delivered, released, or its lease ran out), acquired by one
// member under a lease, accepted, archiving (rejected, or out of delivery
// attempts, its dead-letter copy not known to be written) or archived
// (its copy written). The coordinator persists the state
// (EncodeQueueState) with acks=all before it answers an outcome, so after
// a failover accepted records stay accepted, acquired ones become
// available again, delivery counts are kept, and archiving records are
// copied again (RestoreQueuePartition).
//
// Archiving is what keeps a record in one place only, accepted or in the
// dead-letter topic: a record leaves the available and acquired states
// for it, and leaves it only for archived (Archive, once its copy is
// written), so a record whose copy may exist is never delivered or
// accepted again. The coordinator commits the window with the record
// archiving before it writes the copy, and with it archived after; an
// archiving record stays in the window (its start does not pass it) until
// then, across failed copies and failovers.
//
// QueuePartition is pure: the caller passes the time and the offsets the
// log holds; it does no I/O and starts no goroutine.

// QueueConfig is a queue group's settings.
type QueueConfig struct {
	// Lease is how long a member holds a record before it becomes
	// available again (default 30 s).
	Lease time.Duration
	// MaxDeliveries is how many times a record is delivered before it is
	// archived and dead-lettered (default 5).
	MaxDeliveries int
	// MaxInFlight caps the window (end - start), so the state to persist
	// stays bounded; Acquire delivers no new record past it (default
	// 2,000). AtCap reports it.
	MaxInFlight int
	// Backoff delays redelivery: Backoff[i] before delivery i+2 (the
	// last entry repeats); none means at once.
	Backoff []time.Duration
}

// WithDefaults fills in the zero fields with their defaults.
func (c QueueConfig) WithDefaults() QueueConfig {
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.MaxDeliveries <= 0 {
		c.MaxDeliveries = 5
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 2000
	}
	return c
}

// Equal reports whether c and o are the same settings once defaulted.
func (c QueueConfig) Equal(o QueueConfig) bool {
	c, o = c.WithDefaults(), o.WithDefaults()
	return c.Lease == o.Lease && c.MaxDeliveries == o.MaxDeliveries && c.MaxInFlight == o.MaxInFlight && slices.Equal(c.Backoff, o.Backoff)
}

// backoff is the delay before delivery number n+1 of a record delivered n
// times.
func (c QueueConfig) backoff(n int) time.Duration {
	if len(c.Backoff) == 0 || n < 1 {
		return 0
	}
	return c.Backoff[min(n-1, len(c.Backoff)-1)]
}

// RecordState is a record's state in the window.
type RecordState uint8

// The record states.
const (
	Available RecordState = 0
	Acquired  RecordState = 1
	Accepted  RecordState = 2
	Archived  RecordState = 3
	// Archiving: archived, its dead-letter copy not known to be written
	// (it may be). Never delivered again; only Archive moves it on.
	Archiving RecordState = 4
)

func (s RecordState) String() string {
	switch s {
	case Available:
		return "available"
	case Acquired:
		return "acquired"
	case Accepted:
		return "accepted"
	case Archived:
		return "archived"
	case Archiving:
		return "archiving"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Outcome is what a member says of a record it holds.
type Outcome uint8

// The outcomes.
const (
	Accept  Outcome = 1 // processed: never delivered again
	Release Outcome = 2 // give it back: available again (after a delay)
	Reject  Outcome = 3 // unprocessable: archived and dead-lettered now
	Renew   Outcome = 4 // keep it: the lease starts again
)

// Errors of acknowledgements: each is definite (nothing changed for that
// record).
var (
	// ErrLeaseLost: the record is not held by this member (its lease ran
	// out and it went back, or to another member: the later delivery
	// wins).
	ErrLeaseLost = errors.New("the record's lease was lost: it is not held by this member")
	// ErrNotDelivered: the offset was never delivered (or is done).
	ErrNotDelivered = errors.New("the offset was not delivered to this group")
	// ErrCorruptQueueState matches every decoding error of a persisted
	// queue state.
	ErrCorruptQueueState = errors.New("corrupt queue state")
)

// Delivery is one record given to a member.
type Delivery struct {
	Offset     int64
	Deliveries int // this delivery's number, from 1
}

// DeadLetter is a record archiving: its copy is to be written to the
// dead-letter topic, then Archive archives it.
type DeadLetter struct {
	Offset     int64
	Deliveries int
	Reason     string
}

type queueRecord struct {
	state      RecordState
	deliveries int
	member     string
	deadline   time.Time // Acquired: the lease's end; Available: not before
	reason     string    // Archiving: the dead letter's reason
}

// maxDeadLetterReason bounds a dead letter's reason (bytes), which an
// archiving record keeps in the persisted window.
const maxDeadLetterReason = 512

// archiving moves r, at offset off, to Archiving and returns its dead
// letter.
func (q *QueuePartition) archiving(r *queueRecord, off int64, reason string) DeadLetter {
	if len(reason) > maxDeadLetterReason {
		reason = strings.ToValidUTF8(reason[:maxDeadLetterReason], "")
	}
	r.state, r.member, r.reason = Archiving, "", reason
	return DeadLetter{Offset: off, Deliveries: r.deliveries, Reason: reason}
}

// QueuePartition is one partition's window for one queue group.
type QueuePartition struct {
	cfg   QueueConfig
	start int64
	// recs[i] is offset start+i; len is end-start. An offset inside the
	// window that the log does not hold (compacted away, a control
	// record) is Accepted with no delivery: done, never delivered.
	recs     []queueRecord
	acquired int
}

// NewQueuePartition starts a window at offset start (the log start, the
// end, or a reset point).
func NewQueuePartition(cfg QueueConfig, start int64) *QueuePartition {
	return &QueuePartition{cfg: cfg.WithDefaults(), start: start}
}

// SetConfig changes the partition's settings (the group's config
// changed). A new lease applies to acquisitions and renewals from now
// on, a new cap to new deliveries, a new backoff to records given back
// from now on. A lowered delivery limit archives the available records
// that have had as many deliveries (Archiving), and returns them as dead
// letters (held records are archived when they come back, as always).
func (q *QueuePartition) SetConfig(cfg QueueConfig) []DeadLetter {
	q.cfg = cfg.WithDefaults()
	return q.archiveSpent("since the group's limit changed")
}

// archiveSpent moves the available records that have had all their
// deliveries to Archiving and returns them as dead letters, why saying
// how they got there without being archived at once.
func (q *QueuePartition) archiveSpent(why string) []DeadLetter {
	var dead []DeadLetter
	for i := range q.recs {
		if r := &q.recs[i]; r.state == Available && r.deliveries >= q.cfg.MaxDeliveries {
			dead = append(dead, q.archiving(r, q.start+int64(i),
				fmt.Sprintf("delivered %d times, the most allowed (%s)", r.deliveries, why)))
		}
	}
	return dead
}

// Archive archives the records at offsets that are archiving (their
// dead-letter copies are written), moves the start past the done
// records, and returns how many it archived; other offsets are left
// alone.
func (q *QueuePartition) Archive(offsets []int64) int {
	n := 0
	for _, off := range offsets {
		if i := off - q.start; i >= 0 && i < int64(len(q.recs)) && q.recs[i].state == Archiving {
			q.recs[i].state, q.recs[i].reason = Archived, ""
			n++
		}
	}
	q.advance()
	return n
}

// state is the state of the record at off, Accepted outside the window.
func (q *QueuePartition) state(off int64) RecordState {
	if i := off - q.start; i >= 0 && i < int64(len(q.recs)) {
		return q.recs[i].state
	}
	return Accepted
}

// Archiving returns the dead letters of the records archiving, lowest
// offset first: those whose copies are still to be written.
func (q *QueuePartition) Archiving() []DeadLetter {
	var dead []DeadLetter
	for i, r := range q.recs {
		if r.state == Archiving {
			dead = append(dead, DeadLetter{Offset: q.start + int64(i), Deliveries: r.deliveries, Reason: r.reason})
		}
	}
	return dead
}

// Config returns the partition's settings, defaults filled in.
func (q *QueuePartition) Config() QueueConfig { return q.cfg }

// Start is the window's start: every record before it is done.
func (q *QueuePartition) Start() int64 { return q.start }

// End is the first offset never delivered.
func (q *QueuePartition) End() int64 { return q.start + int64(len(q.recs)) }

// AtCap reports whether the window is full: no new record is delivered
// until its start moves.
func (q *QueuePartition) AtCap() bool { return len(q.recs) >= q.cfg.MaxInFlight }

// Counts returns how many records of the window are in each state.
func (q *QueuePartition) Counts() map[RecordState]int {
	out := map[RecordState]int{}
	for _, r := range q.recs {
		out[r.state]++
	}
	return out
}

// Acquire gives member up to max records: available ones in the window
// first (lowest offset first, those whose backoff has passed), then new
// ones from next, the offsets at and after End the log holds, ascending
// (the caller reads them; an offset the log skips is done). It stops at
// MaxInFlight.
func (q *QueuePartition) Acquire(now time.Time, member string, max int, next []int64) []Delivery {
	var out []Delivery
	take := func(i int) {
		r := &q.recs[i]
		r.state, r.member, r.deadline = Acquired, member, now.Add(q.cfg.Lease)
		r.deliveries++
		q.acquired++
		out = append(out, Delivery{Offset: q.start + int64(i), Deliveries: r.deliveries})
	}
	for i := range q.recs {
		if len(out) >= max {
			return out
		}
		if r := &q.recs[i]; r.state == Available && !now.Before(r.deadline) {
			take(i)
		}
	}
	for _, off := range next {
		if len(out) >= max || q.AtCap() {
			break
		}
		end := q.End()
		if off < end {
			continue
		}
		if len(q.recs) == 0 {
			q.start, end = off, off // nothing held: jump over the gap
		}
		if int(off-end) >= q.cfg.MaxInFlight-len(q.recs) {
			break // the gap would pass the cap: later, once the window drains
		}
		for range off - end {
			q.recs = append(q.recs, queueRecord{state: Accepted}) // not in the log: done
		}
		q.recs = append(q.recs, queueRecord{})
		take(len(q.recs) - 1)
	}
	q.advance()
	return out
}

// Ack applies outcome to each offset member holds and returns, per
// offset, nil or a definite error (ErrLeaseLost, ErrNotDelivered), and the
// records it moved to Archiving. delay applies to Release; reason to
// Reject. An archiving record is held by no one: its outcomes are
// ErrLeaseLost.
func (q *QueuePartition) Ack(now time.Time, member string, offsets []int64, outcome Outcome, delay time.Duration, reason string) ([]error, []DeadLetter) {
	errs := make([]error, len(offsets))
	var dead []DeadLetter
	for k, off := range offsets {
		i := off - q.start
		if i < 0 || i >= int64(len(q.recs)) || q.recs[i].deliveries == 0 {
			errs[k] = fmt.Errorf("%w: offset %d (window %d to %d)", ErrNotDelivered, off, q.start, q.End())
			continue
		}
		r := &q.recs[i]
		if r.state != Acquired || r.member != member {
			errs[k] = fmt.Errorf("%w: offset %d is %s", ErrLeaseLost, off, r.state)
			continue
		}
		switch outcome {
		case Accept:
			q.settle(r, Accepted)
		case Release:
			if dl, ok := q.giveBack(r, off, now.Add(delay), "released"); ok {
				dead = append(dead, dl)
			}
		case Reject:
			q.settle(r, Archiving)
			if reason == "" {
				reason = "rejected"
			}
			dead = append(dead, q.archiving(r, off, "rejected: "+reason))
		case Renew:
			r.deadline = now.Add(q.cfg.Lease)
		default:
			errs[k] = fmt.Errorf("unknown outcome %d", outcome)
		}
	}
	q.advance()
	return errs, dead
}

// settle ends an acquisition in a final state.
func (q *QueuePartition) settle(r *queueRecord, s RecordState) {
	r.state, r.member = s, ""
	q.acquired--
}

// giveBack makes an acquired record available again, not before notBefore
// and its backoff, or moves it to Archiving when it has had all its
// deliveries.
func (q *QueuePartition) giveBack(r *queueRecord, off int64, notBefore time.Time, why string) (DeadLetter, bool) {
	if r.deliveries >= q.cfg.MaxDeliveries {
		q.settle(r, Archiving)
		return q.archiving(r, off, fmt.Sprintf("%s after %d deliveries, the most allowed", why, r.deliveries)), true
	}
	q.acquired--
	r.state, r.member = Available, ""
	r.deadline = notBefore.Add(q.cfg.backoff(r.deliveries))
	return DeadLetter{}, false
}

// Tick makes records whose lease ran out available again (or moves them
// to Archiving) and returns the archiving ones; the caller runs it at
// least as often as NextDeadline says.
func (q *QueuePartition) Tick(now time.Time) []DeadLetter {
	var dead []DeadLetter
	for i := range q.recs {
		r := &q.recs[i]
		if r.state == Acquired && !now.Before(r.deadline) {
			if dl, ok := q.giveBack(r, q.start+int64(i), now, "lease expired"); ok {
				dead = append(dead, dl)
			}
		}
	}
	q.advance()
	return dead
}

// NextDeadline is the earliest lease end or backoff end in the window, or
// the zero time when there is none.
func (q *QueuePartition) NextDeadline() time.Time {
	var t time.Time
	for _, r := range q.recs {
		if (r.state == Acquired || r.state == Available) && !r.deadline.IsZero() && (t.IsZero() || r.deadline.Before(t)) {
			t = r.deadline
		}
	}
	return t
}

// advance moves the start past the done records at the window's head
// (accepted or archived: an archiving record is not done).
func (q *QueuePartition) advance() {
	n := 0
	for n < len(q.recs) && (q.recs[n].state == Accepted || q.recs[n].state == Archived) {
		n++
	}
	if n > 0 {
		q.recs = slices.Delete(q.recs, 0, n)
		q.start += int64(n)
	}
}

// Reset moves the window to offset start, dropping every state: what was
// acquired is no longer held (its acknowledgements get ErrNotDelivered or
// ErrLeaseLost). For `sluice queue reset`, with no members.
func (q *QueuePartition) Reset(start int64) {
	q.start, q.recs, q.acquired = start, nil, 0
}

// The persisted form: version byte, start, then runs of equal records
// (length, state, deliveries; version 2 adds, to a run of archiving
// records, their dead letter's reason: length and bytes). Version 1 has
// no archiving state; EncodeQueueState writes it when the window holds no
// archiving record, so the bytes of the common window do not change.
// Acquired records are stored as available: after a failover nobody holds
// them (their members' acknowledgements get ErrLeaseLost), and they keep
// their delivery counts. Leases and backoff deadlines are not persisted.
const (
	queueStateVersion          = 2
	queueStateVersionNoPending = 1
)

// maxQueueWindow bounds a decoded window, far above any MaxInFlight.
const maxQueueWindow = 1 << 20

// EncodeQueueState appends the partition's persisted state to b.
func (q *QueuePartition) EncodeQueueState(b []byte) []byte {
	type run struct {
		n      int
		state  RecordState
		deliv  int
		reason string
	}
	var runs []run
	version := byte(queueStateVersionNoPending)
	for _, r := range q.recs {
		s := r.state
		if s == Acquired {
			s = Available
		}
		if s == Archiving {
			version = queueStateVersion
		}
		if n := len(runs); n > 0 && runs[n-1].state == s && runs[n-1].deliv == r.deliveries && runs[n-1].reason == r.reason {
			runs[n-1].n++
			continue
		}
		runs = append(runs, run{1, s, r.deliveries, r.reason})
	}
	b = append(b, version)
	b = binary.AppendVarint(b, q.start)
	b = binary.AppendUvarint(b, uint64(len(runs)))
	for _, r := range runs {
		b = binary.AppendUvarint(b, uint64(r.n))
		b = append(b, byte(r.state))
		b = binary.AppendUvarint(b, uint64(r.deliv))
		if r.state == Archiving {
			b = binary.AppendUvarint(b, uint64(len(r.reason)))
			b = append(b, r.reason...)
		}
	}
	return b
}

// RestoreQueuePartition rebuilds a partition's state from what
// EncodeQueueState wrote (either version), checking every length and
// value before it allocates. A record that was held when the state was
// written comes back available with its delivery count; one that has had
// all its deliveries (it was held for the last time, or the limit was
// lowered) is moved to Archiving. It returns the dead letters of every
// archiving record, for the caller to write (again, for those archiving
// when the state was written: their copies may exist, so they are
// written at least once, never taken back) before it archives them.
func RestoreQueuePartition(cfg QueueConfig, b []byte) (*QueuePartition, []DeadLetter, error) {
	fail := func(format string, args ...any) (*QueuePartition, []DeadLetter, error) {
		return nil, nil, fmt.Errorf("%w: %s", ErrCorruptQueueState, fmt.Sprintf(format, args...))
	}
	if len(b) == 0 || b[0] != queueStateVersion && b[0] != queueStateVersionNoPending {
		return fail("version %v, want %d or %d", b[:min(len(b), 1)], queueStateVersionNoPending, queueStateVersion)
	}
	maxState := Archived
	if b[0] == queueStateVersion {
		maxState = Archiving
	}
	b = b[1:]
	start, n := binary.Varint(b)
	if n <= 0 || start < 0 {
		return fail("start offset")
	}
	b = b[n:]
	runs, n := binary.Uvarint(b)
	if n <= 0 || runs > uint64(len(b)) { // a run takes at least 3 bytes
		return fail("run count")
	}
	b = b[n:]
	q := NewQueuePartition(cfg, start)
	for range runs {
		length, n1 := binary.Uvarint(b)
		if n1 <= 0 || length == 0 || length > maxQueueWindow-uint64(len(q.recs)) || len(b) < n1+2 {
			return fail("run length")
		}
		state := RecordState(b[n1])
		deliv, n2 := binary.Uvarint(b[n1+1:])
		if n2 <= 0 || state == Acquired || state > maxState || deliv > 1<<15 || state == Archiving && deliv == 0 {
			return fail("run state %d, deliveries %d", state, deliv)
		}
		b = b[n1+1+n2:]
		var reason string
		if state == Archiving {
			size, n3 := binary.Uvarint(b)
			if n3 <= 0 || size > maxDeadLetterReason || size > uint64(len(b)-n3) {
				return fail("reason length")
			}
			reason = string(b[n3 : n3+int(size)])
			b = b[n3+int(size):]
		}
		for range length {
			q.recs = append(q.recs, queueRecord{state: state, deliveries: int(deliv), reason: reason})
		}
	}
	if len(b) != 0 {
		return fail("%d trailing bytes", len(b))
	}
	q.archiveSpent("held when its coordinator failed over, or the limit was lowered")
	q.advance()
	return q, q.Archiving(), nil
}

// AvailableOffsets returns up to max offsets of records a member could
// acquire at now (available, their backoff or delay passed), lowest
// first: what a receive reads before it acquires.
func (q *QueuePartition) AvailableOffsets(now time.Time, max int) []int64 {
	var out []int64
	for i := range q.recs {
		if len(out) >= max {
			break
		}
		if r := &q.recs[i]; r.state == Available && !now.Before(r.deadline) {
			out = append(out, q.start+int64(i))
		}
	}
	return out
}

// OldestAcquired returns when the oldest lease still held began (its
// end minus the lease; a renewal starts it again), or the zero time when
// no record is acquired.
func (q *QueuePartition) OldestAcquired() time.Time {
	var t time.Time
	for _, r := range q.recs {
		if r.state == Acquired && (t.IsZero() || r.deadline.Before(t)) {
			t = r.deadline
		}
	}
	if t.IsZero() {
		return t
	}
	return t.Add(-q.cfg.Lease)
}

// Lease is the lease of an acquisition.
func (q *QueuePartition) Lease() time.Duration { return q.cfg.Lease }
