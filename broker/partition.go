package broker

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/replica"
	"github.com/sluicemq/sluice/segment"
)

// This file is the per-partition half of the broker core: one partition
// this broker holds, and the operations a front end asks of it through
// core.go — append as leader, read, list offsets, the end of a leader
// epoch. Each operation owns the order of its steps (as Kafka's
// Partition.appendRecordsToLeader does), takes p.mu for reading and checks
// the partition's state first, so no front end repeats a step or its
// order. Errors are returned for ErrorCode to map; a bare
// protocol.ErrorCode is a refusal the core decided.

// partitionState says whether requests may use a partition's log.
type partitionState uint8

const (
	stateOpen      partitionState = iota
	stateReopening                // closing and reopening to apply a config
	stateClosed                   // deleted, failed, or the broker is stopping
)

// partition is one partition this broker holds, with its open log.
//
// mu guards the log pointer and the state: produce and fetch use the log
// under the read lock after checking the state. A log is never closed
// under the write lock: closing waits for the Views of fetches still being
// written, and a writer waiting behind a long-poll that needs the read
// lock would deadlock. So the state changes under the lock, and the log
// is closed after it is released.
type partition struct {
	topic string
	index int32
	dir   string

	mu    sync.RWMutex
	log   *log.Log
	cfg   partitionConfig
	epoch int32 // leader epoch from the metadata
	state partitionState

	// producers is the idempotent producers' state (replica.Producers:
	// its own locks); it outlives a reopen of the log for a config.
	producers *replica.Producers
	// traffic counts the topic's produced and consumed batches (observe.go).
	traffic *traffic

	// Replication state, under mu (replication.go). The metadata says
	// who leads (leaderID, epoch); role says what this broker does.
	role      role
	leader    *replica.Leader   // roleLeader: ISR, high watermark, acks=all waits
	follower  *replica.Follower // roleFollower: truncation and fetched appends
	leaderID  int32             // -1 when the partition has no leader
	partEpoch int32             // the partition epoch, for AlterPartition
	isr       []int32
	replicas  []int32
	adding    []int32       // the replicas a move adds (throttled)
	throttle  *moveThrottle // the broker's, for adding replicas (throttle.go)
	minInsync int
	// settled is what applyRole last applied in full (roleKey), with
	// isr, replicas and adding above: a reconcile passes over a
	// partition whose metadata did not change since (most of them, when
	// one metadata change touches a few of 10,000 partitions).
	settled   roleKey
	fetchFrom int32 // the broker whose fetcher copies this partition, -1 none
	hw        int64 // the high watermark while not leading
	cur       atomic.Pointer[log.Log]
	handover  atomic.Int64 // leader epoch + 1 of a handover in progress, 0 none (handover.go)
	// proposed is the last ISR change this leader proposed, until the
	// metadata shows its fate (countISRChange).
	proposed *controller.AlterPartition

	// waiters are the long-poll fetches watching this partition; notify
	// wakes them after an append became visible. The broker notifies
	// rather than relying on log.Changed alone because, with fsync=always,
	// what becomes visible is the synced offset, which moves after Append's
	// fsync and not at the append itself.
	wmu     sync.Mutex
	waiters map[chan<- struct{}]struct{}

	// The log cleaner's state of this partition (cleaner.go).
	cmu   sync.Mutex
	clean cleanState

	// view is what a metrics scrape and Ready read instead of taking mu
	// (observe.go): published by unlock at the end of each section that
	// holds mu for writing.
	view atomic.Pointer[partitionView]
}

// partitionView is the part of a partition's state that changes only
// under p.mu's write lock, as of the last unlock. A scrape reads it with
// one atomic load, and the rest (offsets, sizes, the leader's high
// watermark and ISR size) from atomics of the log and the leader state:
// no lock that an append, a fetch or a role change holds, so a scrape
// costs the same on a busy broker as on an idle one, and a writer
// holding p.mu (or queued for it behind an fsync=always append) does not
// make it wait.
type partitionView struct {
	open      bool
	log       *log.Log
	leader    *replica.Leader // when leading
	follower  *replica.Follower
	replicas  int
	isr       int // the metadata's ISR (a leader's own: leader.ISRSize)
	minInsync int
	hw        int64 // the high watermark while neither leading nor following
}

// unlock publishes p's view, if it changed, and releases p.mu's write
// lock: every write-locked section ends with it.
func (p *partition) unlock() {
	p.publish()
	p.mu.Unlock()
}

// publish stores p's view if it changed. Call with p.mu held for
// writing, or before p is visible to other goroutines.
func (p *partition) publish() {
	v := partitionView{open: p.state == stateOpen, log: p.log, follower: p.follower, replicas: len(p.replicas),
		isr: len(p.isr), minInsync: p.minInsync, hw: p.hw}
	if p.role == roleLeader {
		v.leader = p.leader
	}
	if old := p.view.Load(); old != nil && *old == v {
		return
	}
	p.view.Store(&v)
}

// highWatermark is partition.highWatermark from a view, without p.mu.
func (v *partitionView) highWatermark() int64 {
	return highWatermark(v.leader, v.follower, v.hw, v.log)
}

// highWatermark is the high watermark of a replica leading (ld not nil),
// following (f not nil), or neither (its last known one, hw, within the
// log).
func highWatermark(ld *replica.Leader, f *replica.Follower, hw int64, l *log.Log) int64 {
	switch {
	case ld != nil:
		return ld.HighWatermark()
	case f != nil:
		return f.HighWatermark()
	}
	return min(hw, l.EndOffset())
}

// highWatermark is the offset below which consumers may read (R12): the
// leader's, from the ISR's positions (for fsync=always topics, their
// synced offsets), or, on a follower, the leader's as last fetched. Call
// with p.mu held.
func (p *partition) highWatermark() int64 {
	var ld *replica.Leader
	if p.role == roleLeader {
		ld = p.leader
	}
	return highWatermark(ld, p.follower, p.hw, p.log)
}

func (p *partition) isClosed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.state == stateClosed
}

// unavailable is the error for a client request (produce, consume,
// offsets) that finds the partition not open or not led here, or nil.
// Without a leader, when this broker's replica is offline the error says
// so: a partition whose only in-sync replica's disk is full has no leader
// for that reason, and "election in progress" would hide it. Call with
// p.mu held.
func (p *partition) unavailable() error {
	switch p.state {
	case stateReopening:
		return protocol.ErrLeaderNotAvailable // retriable, and nothing was written
	case stateClosed:
		return protocol.ErrUnknownTopicOrPartition
	}
	switch {
	case p.role == roleLeader:
		return nil
	case p.leaderID < 0:
		// No leader: an election is due, or no replica may lead.
		if err := p.log.Err(); err != nil {
			return &protocol.Error{Code: protocol.ErrLeaderNotAvailable,
				Detail: "the partition has no leader, and its replica on this broker is offline: " + err.Error()}
		}
		return protocol.ErrLeaderNotAvailable
	}
	return protocol.ErrNotLeaderOrFollower // clients refresh their metadata
}

// watch registers ch to be signalled (non-blocking send) at every change.
func (p *partition) watch(ch chan<- struct{}) {
	p.wmu.Lock()
	if p.waiters == nil {
		p.waiters = make(map[chan<- struct{}]struct{})
	}
	p.waiters[ch] = struct{}{}
	p.wmu.Unlock()
}

func (p *partition) unwatch(ch chan<- struct{}) {
	p.wmu.Lock()
	delete(p.waiters, ch)
	p.wmu.Unlock()
}

// notify wakes every watcher.
func (p *partition) notify() {
	p.wmu.Lock()
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.wmu.Unlock()
}

// logger is the partition's logger (topic and partition fields set).
// Call with p.mu held.
func (p *partition) logger() *zap.Logger {
	if l := p.cfg.log.Logger; l != nil {
		return l
	}
	return nopLogger
}

// nopLogger serves partitions opened without a logger, so logger never
// builds one per call.
var nopLogger = zap.NewNop()

// Acks says what an append waits for before it is acknowledged.
type Acks int16

const (
	// AcksNone: the producer wants no answer.
	AcksNone Acks = 0
	// AcksLeader: the leader's log has the batches (synced first, for
	// fsync=always topics: R2).
	AcksLeader Acks = 1
	// AcksAll: the high watermark covers the batches: every member of
	// an ISR of at least min.insync.replicas has them (R3).
	AcksAll Acks = -1
)

// Valid reports whether a is one of the three settings.
func (a Acks) Valid() bool { return a == AcksNone || a == AcksLeader || a == AcksAll }

// LeaderAppend is an append made on a partition's leader: where it went,
// and what remains to wait for before it is acknowledged.
type LeaderAppend struct {
	// BaseOffset is the offset of the first record appended, -1 if
	// nothing was.
	BaseOffset int64
	// LogStartOffset is the log's start offset after the append, -1 if
	// the partition could not be read.
	LogStartOffset int64

	p       *partition
	log     *log.Log
	leader  *replica.Leader
	last    log.Appended // the last batch appended, or the original of the last duplicate
	durable bool         // wait for the fsync covering last (fsync=always, R2)
	dup     bool         // last is a duplicate's original: sync the log instead (no group-commit ticket)
	all     bool         // then for the high watermark to cover it (acks=all)
}

// Pending reports whether Wait has anything to wait for. A pending
// append must be waited for even with AcksNone: on an fsync=always
// topic the wait is what moves the high watermark once the fsync is done.
func (a *LeaderAppend) Pending() bool { return a.durable || a.all }

// Wait blocks until the append is acknowledged as its acks asked: the
// fsync covering it returned (fsync=always), then, with AcksAll, the high
// watermark covers it. Every error is indeterminate (R14): the batches
// are in the leader's log and may yet be committed. Cancelling ctx ends
// the wait with REQUEST_TIMED_OUT. A duplicate of a batch still being
// replicated waits here for the original's acknowledgement and shares its
// outcome (R13).
func (a *LeaderAppend) Wait(ctx context.Context) error {
	if a.durable {
		var err error
		if a.dup {
			err = a.log.Sync() // covers the original, appended before
		} else {
			err = a.log.WaitDurable(a.last)
		}
		if err != nil {
			return afterAppend(err)
		}
		if a.leader.Appended() {
			a.p.notify() // the high watermark moved: wake consumers
		}
	}
	if a.all {
		if err := a.leader.WaitFor(ctx, a.last.Next); err != nil {
			return afterAppend(err)
		}
	}
	return nil
}

// appendAsLeader appends a producer's record set, the steps in this
// order: the partition must be open and led here; with AcksAll the ISR
// must be at least min.insync.replicas (checked before anything is
// appended, so the refusal is definite); every batch is validated whole
// before the first is appended (R1), so a bad batch leaves the partition
// untouched; then the batches are appended, the leader state learns of
// them (fsync=interval: the high watermark may move at once) and the
// partition's watchers (followers' and consumers' long-polls) are woken.
// A batch with a producer id goes through the producer state
// (replica.Producers.AppendLeader), batch by batch in order: a duplicate
// is not appended and answers with its original offsets (R13); a
// sequence or epoch refusal of the first batch is definite. A batch that
// rolled the log snapshots the producer state. The record bytes are
// copied into the segment; the caller may reuse them when this returns.
func (p *partition) appendAsLeader(records []byte, acks Acks) (LeaderAppend, error) {
	a := LeaderAppend{BaseOffset: -1, LogStartOffset: -1}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err := p.unavailable(); err != nil {
		return a, err
	}
	if err := p.handingOver(); err != nil {
		return a, err
	}
	if err := p.log.Err(); err != nil {
		// The log was offline before this append: an offline log refuses
		// every append before writing a byte, so nothing of this one was
		// written, and the answer is definite (R14). NOT_LEADER_OR_FOLLOWER
		// sends the client to the metadata, where the controller, told of
		// the offline log (offlineLoop), moves leadership to an in-sync
		// replica. An append the failure hits (below) stays STORAGE_ERROR,
		// indeterminate.
		return a, &protocol.Error{Code: protocol.ErrNotLeaderOrFollower, Detail: "the leader's log is offline, nothing was written: " + err.Error()}
	}
	ld := p.leader
	if acks == AcksAll {
		if err := ld.CanAppend(); err != nil {
			code := protocol.ErrNotEnoughReplicas // definite: nothing appended
			if errors.Is(err, replica.ErrNotLeader) {
				code = protocol.ErrNotLeaderOrFollower
			}
			return a, &protocol.Error{Code: code, Detail: err.Error()}
		}
	}
	if err := validateRecords(records, p.cfg.maxMessageBytes, p.cfg.log.CleanupPolicy.Compact()); err != nil {
		p.logger().Debug("produce refused", zap.Error(err))
		return a, err
	}
	var last log.Appended
	var failed error
	appended, dup, rolled := false, false, false
	for rest, k := records, 0; len(rest) > 0; k++ {
		b, next, err := record.NextBatch(rest, 0)
		var cur log.Appended
		isDup := false
		if err == nil {
			cur, isDup, err = p.appendBatch(b)
		}
		if err == nil && !isDup {
			p.traffic.in(b)
		}
		if err != nil {
			failed = fmt.Errorf("batch %d: %w", k, err)
			// The log itself logs going offline, once, at error level.
			p.logger().Debug("append failed", zap.Error(failed))
			if k > 0 {
				failed = afterAppend(failed)
			}
			break
		}
		if k == 0 {
			a.BaseOffset = cur.Base
		}
		if cur.Next > last.Next {
			last, dup = cur, isDup
		}
		appended = appended || !isDup
		rolled = rolled || cur.Rolled
		rest = next
	}
	if rolled {
		p.producers.Rolled(p.log)
	}
	a.LogStartOffset = p.log.StartOffset()
	if a.BaseOffset < 0 {
		return a, failed
	}
	durable := p.cfg.log.Fsync == log.FsyncAlways
	if appended {
		if !durable {
			ld.Appended() // a leader alone in its ISR moves its high watermark
		}
		p.notify() // followers' long-polls, and consumers if the high watermark moved
	}
	if failed != nil {
		return a, failed
	}
	a.p, a.log, a.leader, a.last = p, p.log, ld, last
	a.durable, a.dup, a.all = durable, dup, acks == AcksAll
	return a, nil
}

// appendBatch appends one validated batch as leader: through the producer
// state when it has a producer id. A duplicate appends nothing and
// returns its original's offsets with dup set. Call with p.mu held.
func (p *partition) appendBatch(b record.Batch) (a log.Appended, dup bool, err error) {
	if b.ProducerID() < 0 {
		a, err = p.log.AppendNoWait(b)
		return a, false, err
	}
	r, err := p.producers.AppendLeader(p.log, b)
	if err != nil || !r.Duplicate {
		return r.Appended, false, err
	}
	return log.Appended{Base: r.Original.Base, Next: r.Original.Last + 1}, true, nil
}

// errEmptyRecords refuses a produce with no batch in it.
var errEmptyRecords = fmt.Errorf("%w: empty record set", protocol.ErrCorruptMessage)

// validateRecords checks every batch of a record set whole (R1): framing,
// size against max.message.bytes, CRC, record framing and offsets; and,
// for a compacted topic (requireKeys), that every record has a key, as
// Kafka does: compaction would remove a keyless record.
func validateRecords(records []byte, maxMessageBytes int, requireKeys bool) error {
	if len(records) == 0 {
		return errEmptyRecords
	}
	lim := record.Limits{MaxBatchBytes: maxMessageBytes, Contiguous: true, RequireKeys: requireKeys}
	for rest, k := records, 0; len(rest) > 0; k++ {
		b, next, err := record.NextBatch(rest, 0)
		if err != nil {
			return corruptBatch(k, err)
		}
		if b.Size() > maxMessageBytes {
			return &protocol.Error{Code: protocol.ErrMessageTooLarge,
				Detail: fmt.Sprintf("batch %d: %d bytes, max.message.bytes is %d", k, b.Size(), maxMessageBytes)}
		}
		if err := record.Validate(b, lim); err != nil {
			if errors.Is(err, record.ErrMissingKey) {
				return &protocol.Error{Code: protocol.ErrInvalidRecord,
					Detail: fmt.Sprintf("batch %d: %v: a compacted topic (cleanup.policy=compact) keeps records by key", k, err)}
			}
			return corruptBatch(k, err)
		}
		rest = next
	}
	return nil
}

// corruptBatch is the refusal of a record set whose batch k failed R1.
func corruptBatch(k int, err error) error {
	return &protocol.Error{Code: protocol.ErrCorruptMessage, Detail: fmt.Sprintf("batch %d: %v", k, err)}
}

// FollowerFetch identifies a follower's fetch: the follower's broker id
// and epoch (R10) and the leader epoch it follows.
type FollowerFetch struct {
	Replica     int32
	BrokerEpoch int64
	LeaderEpoch int32
}

// ReadResult is what a read returns: the record bytes as a View of the
// segment (zero-copy; the caller releases it) and the partition's offsets.
type ReadResult struct {
	Records          segment.View
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
}

// read reads whole batches from offset, up to limit bytes (at least one
// batch when limit > 0; none when limit is 0, for the offsets alone). A
// consumer (f nil) reads below the high watermark (R12); a follower reads
// up to the log end, and its fetch offset is its position for the ISR and
// the high watermark (a position that moves the high watermark wakes the
// partition's watchers). The offsets are set whenever the partition could
// be read, also with OFFSET_OUT_OF_RANGE. A consumer's epoch, when not
// -1, must be the leader's (Fetch.ConsumerEpochs).
func (p *partition) read(offset int64, limit int, f *FollowerFetch, consumerEpoch int32) (ReadResult, error) {
	r := ReadResult{HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err := p.unavailable(); err != nil {
		return r, err
	}
	if f == nil && consumerEpoch >= 0 {
		switch e := p.leader.Epoch(); {
		case consumerEpoch < e:
			return r, protocol.ErrFencedLeaderEpoch
		case consumerEpoch > e:
			return r, protocol.ErrUnknownLeaderEpoch
		}
	}
	maxOffset := int64(-1)
	if f != nil {
		if err := p.followerFetched(f, offset); err != nil {
			return r, err
		}
		maxOffset = p.log.EndOffset()
	}
	hw := p.highWatermark()
	if maxOffset < 0 {
		maxOffset = hw
	}
	start, end := p.log.StartOffset(), p.log.EndOffset()
	r.HighWatermark, r.LastStableOffset, r.LogStartOffset = hw, hw, start
	if offset < start || offset > end {
		return r, protocol.ErrOffsetOutOfRange
	}
	throttled := f != nil && slices.Contains(p.adding, f.Replica)
	if throttled && limit > 0 {
		limit = p.throttle.grant(limit)
	}
	if offset >= maxOffset || limit <= 0 {
		return r, nil
	}
	v, err := p.log.ReadUpTo(offset, maxOffset, limit)
	if throttled && err == nil {
		p.throttle.took(v.Len())
	}
	if err != nil {
		if !errors.Is(err, log.ErrOffsetOutOfRange) && !errors.Is(err, log.ErrClosed) {
			p.logger().Warn("fetch read", zap.Int64("offset", offset), zap.Error(err))
		}
		return r, err
	}
	r.Records = v
	return r, nil
}

// followerFetched records a follower's fetch with the leader state: the
// fetch must be in the current leader epoch and from the follower's
// current broker epoch (R10). Call with p.mu held and p leading.
func (p *partition) followerFetched(f *FollowerFetch, offset int64) error {
	ld := p.leader
	switch e := f.LeaderEpoch; {
	case e < ld.Epoch():
		return protocol.ErrFencedLeaderEpoch
	case e > ld.Epoch():
		return protocol.ErrUnknownLeaderEpoch
	}
	moved, err := ld.Fetched(f.Replica, offset, offset, f.LeaderEpoch, f.BrokerEpoch)
	if err != nil {
		p.logger().Debug("follower fetch refused", zap.Int32("replica", f.Replica), zap.Error(err))
		if errors.Is(err, replica.ErrStaleBrokerEpoch) {
			return err
		}
		return fmt.Errorf("%w: %w", protocol.ErrNotLeaderOrFollower, err)
	}
	if moved {
		p.notify()
	}
	return nil
}

// The timestamps ListOffsets takes besides a record timestamp.
const (
	// LatestTimestamp asks for the high watermark: the offset the next
	// record a consumer can read will have.
	LatestTimestamp = protocol.LatestTimestamp
	// EarliestTimestamp asks for the log start offset.
	EarliestTimestamp = protocol.EarliestTimestamp
)

// OffsetAt is an answer of ListOffsets: an offset, the timestamp of the
// record there (by-timestamp queries only, else -1), and the leader epoch
// of its batch (or the partition's current epoch).
type OffsetAt struct {
	Offset      int64
	Timestamp   int64
	LeaderEpoch int32
}

// listOffset answers earliest (the log start), latest (the high
// watermark: what a consumer can read) and by-timestamp queries.
func (p *partition) listOffset(ts int64) (OffsetAt, error) {
	r := OffsetAt{Offset: -1, Timestamp: -1, LeaderEpoch: -1}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err := p.unavailable(); err != nil {
		return r, err
	}
	r.LeaderEpoch = p.epoch
	if ts != EarliestTimestamp && !p.leader.HighWatermarkKnown() {
		// A new leader whose followers have not reported in its epoch
		// yet: its high watermark may be below the previous leader's.
		return r, protocol.ErrOffsetNotAvailable
	}
	switch {
	case ts == LatestTimestamp:
		r.Offset = p.highWatermark()
	case ts == EarliestTimestamp:
		r.Offset = p.log.StartOffset()
	case ts >= 0:
		return p.offsetForTimestamp(ts)
	default:
		return r, protocol.ErrInvalidRequest
	}
	return r, nil
}

// offsetForTimestamp finds the first record at or after ts below the high
// watermark: the log finds the batch, and its records give the exact
// offset and timestamp. No such record gives offset and timestamp -1, as
// Kafka answers. Call with p.mu held.
func (p *partition) offsetForTimestamp(ts int64) (OffsetAt, error) {
	none := OffsetAt{Offset: -1, Timestamp: -1, LeaderEpoch: -1}
	hw := p.highWatermark()
	off, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		return none, err
	}
	if off >= hw {
		return none, nil
	}
	v, err := p.log.ReadUpTo(off, hw, 1)
	if err != nil {
		return none, err
	}
	defer v.Release()
	b, _, err := record.NextBatch(v.Bytes(), 0)
	if err != nil {
		return none, err
	}
	var rd record.Reader
	if err := rd.Reset(b); err != nil {
		return none, err
	}
	for rd.Next() {
		if rec := rd.Record(); rec.Timestamp >= ts {
			return OffsetAt{rec.Offset, rec.Timestamp, b.LeaderEpoch()}, nil
		}
	}
	if err := rd.Err(); err != nil {
		return none, err
	}
	// The batch's max timestamp said a record qualifies, its records say
	// none does (a producer-set maxTimestamp): the next batch starts there.
	return OffsetAt{b.NextOffset(), b.MaxTimestamp(), b.LeaderEpoch()}, nil
}

// epochEndOffset answers a follower after a leadership change (R9): the
// largest epoch at or below epoch in this leader's log and where it ends.
// current is the leader epoch the follower knows (-1: not checked).
func (p *partition) epochEndOffset(current, epoch int32) (int32, int64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err := p.unavailable(); err != nil {
		return -1, -1, err
	}
	switch {
	case current >= 0 && current < p.leader.Epoch():
		return -1, -1, protocol.ErrFencedLeaderEpoch
	case current > p.leader.Epoch():
		return -1, -1, protocol.ErrUnknownLeaderEpoch
	}
	e, end := p.log.EndOffsetForEpoch(epoch)
	return e, end, nil
}

// errReplicaNotOpen reports a replica whose log is not open: being
// reopened to apply a config, or closed.
var errReplicaNotOpen = &protocol.Error{Code: protocol.ErrReplicaNotAvailable, Detail: "the replica's log is not open"}

// describe reports the replica's state, with a checksum of its batches
// below checksumUpTo when that is >= 0.
func (p *partition) describe(checksumUpTo int64) ReplicaState {
	r := ReplicaState{Topic: p.topic, Partition: p.index, StartOffset: -1, EndOffset: -1, HighWatermark: -1,
		SyncedOffset: -1, ChecksumEnd: -1, LeaderEpoch: -1}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state != stateOpen {
		r.Err = errReplicaNotOpen
		return r
	}
	if err := p.log.Err(); err != nil {
		r.Err = err // STORAGE_ERROR, with the cause
		return r
	}
	r.Leader = p.role == roleLeader
	r.LeaderEpoch = p.epoch
	r.StartOffset, r.EndOffset, r.SyncedOffset = p.log.StartOffset(), p.log.EndOffset(), p.log.SyncedOffset()
	r.HighWatermark = p.highWatermark()
	r.LogBytes = p.log.Stats().Bytes
	r.Cleaner = p.cleanerState()
	if checksumUpTo >= 0 {
		sum, end, err := p.checksum(min(checksumUpTo, r.EndOffset))
		if err != nil {
			r.Err = &protocol.Error{Code: protocol.ErrCorruptMessage, Detail: err.Error()}
		}
		r.Checksum, r.ChecksumEnd = sum, end
	}
	return r
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum hashes the bytes of every whole batch from the log start whose
// offsets are all below upTo; it returns the offset after the last batch
// hashed. Call with p.mu held.
func (p *partition) checksum(upTo int64) (uint32, int64, error) {
	var sum uint32
	off := p.log.StartOffset()
	for off < upTo {
		v, err := p.log.ReadUpTo(off, upTo, 1<<20)
		if err != nil {
			return sum, off, err
		}
		b := v.Bytes()
		if len(b) == 0 {
			v.Release()
			break
		}
		for len(b) > 0 {
			batch, rest, err := record.NextBatch(b, 0)
			if err != nil || batch.LastOffset() >= upTo {
				break
			}
			sum = crc32.Update(sum, castagnoli, batch)
			off = batch.LastOffset() + 1
			b = rest
		}
		v.Release()
		if len(b) > 0 && off < upTo {
			// A batch crossing upTo (or a torn one): stop there.
			break
		}
	}
	return sum, off, nil
}
