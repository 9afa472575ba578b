package replica

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
)

// Producer state (idempotence, R13). Per partition replica, per producer
// id, Producers keeps the producer epoch and the last ProducerBatches
// batches appended for it (first and last sequence, base and last offset,
// max timestamp). The leader checks each batch with a producer id (>= 0)
// against it before appending (AppendLeader):
//
//   - a batch whose sequence range equals a retained one is a duplicate:
//     nothing is appended and it is answered with the original offsets
//     (the caller waits for the original's acknowledgement, so a retry of
//     a batch still being replicated shares its outcome);
//   - an older epoch is INVALID_PRODUCER_EPOCH; a newer epoch must start
//     at sequence 0, and within an epoch a batch must start at the last
//     sequence + 1, else OUT_OF_ORDER_SEQUENCE_NUMBER; an id with no state
//     whose batch does not start at 0 is UNKNOWN_PRODUCER_ID. All three
//     are definite (R14): nothing was appended.
//
// Followers rebuild the same state from the batches they replicate
// (AppendReplica), without the checks: the leader made them. So a new
// leader deduplicates a retry first sent to the old one.
//
// Truncation (Truncate, Reset) drops the batches at and above the cut,
// and the producers left with none; retention (CutBelow) drops the
// batches wholly below the log start, and the producers left with none.
// The state is then what the retained batches of the log say, as on a
// replica that fetched them.
//
// Snapshots (producersnap.go) are written at segment roll, in the
// background, and at clean shutdown; Load reads the newest valid one at
// or below the log end and replays the log after it.
//
// Limits: a producer whose last batch's max timestamp is older than
// Expiration is forgotten (Expire). The partitions of a broker share one
// ProducerLimit: past its cap on (producer id, partition) entries the
// least recently written idle ones, across all those partitions, are
// evicted (counted, and logged at most every evictLogEvery). A forgotten
// producer coming back with a sequence other than 0 gets
// UNKNOWN_PRODUCER_ID.
//
// Concurrency: a leader append holds the producer's own lock across the
// check, the log append and the update, so two batches of one producer
// never interleave, while batches of different producers (and batches
// with no producer id, which never come here) append concurrently. Every
// append and replay also holds snap for reading; a snapshot, a truncation,
// retention and expiry hold it for writing, so they see the state of a
// whole log prefix. The table (m, the partition's recency list and each
// producer's state) changes only with snap held: for reading together
// with the limit's mu, or for writing; so under snap held for writing it
// can be read without mu. The limit's mu also guards its broker-wide
// recency list. Lock order: snap, then a producer's mu, then the limit's
// mu (then the log's own locks). Eviction, under the limit's mu, only
// tries (TryRLock, TryLock) another partition's snap and producer: a
// producer whose partition is in a snapshot, truncation or retention, or
// which is in an append, is not idle and is passed over.

// ProducerBatches is how many batches per producer the state retains:
// the in-flight limit of an idempotent producer.
const ProducerBatches = 5

// Defaults of ProducersConfig.
const (
	DefaultProducerExpiration = 24 * time.Hour
	// DefaultMaxProducers is the default cap of a ProducerLimit: about
	// 30 MB of state at most (docs/idempotence.md).
	DefaultMaxProducers = 100000
	evictLogEvery       = 10 * time.Second
)

// ProducersConfig configures a partition's producer state.
type ProducersConfig struct {
	// Dir is the partition's log directory: snapshots are written there.
	Dir string
	// FS is the file system of the snapshots. Default vfs.Default.
	FS vfs.FS
	// Limit is the cap on producer ids this partition shares with the
	// broker's other partitions (producer.id.max). When nil the
	// partition has a limit of its own of MaxProducers.
	Limit *ProducerLimit
	// MaxProducers caps the producer ids kept for this partition when
	// Limit is nil. Default DefaultMaxProducers.
	MaxProducers int
	// Expiration forgets a producer whose last batch's max timestamp is
	// older than this (producer.id.expiration.ms). Default 1 day.
	Expiration time.Duration
	// Now is the clock of expiry (and of the eviction log's rate limit
	// when Limit is nil).
	Now func() time.Time
	// Logger gets warnings (a corrupt snapshot; evictions when Limit is
	// nil).
	Logger *zap.Logger
}

// ProducerBatch is what the state retains of one batch.
type ProducerBatch struct {
	FirstSeq, LastSeq int32
	Base, Last        int64 // the batch's first and last offsets
	MaxTimestamp      int64
}

// ProducerEntry is one producer's state as Producers.Entries reports it.
type ProducerEntry struct {
	ID        int64
	Epoch     int16
	LastWrite int64 // max timestamp of its last batch, ms
	Batches   []ProducerBatch
}

type producer struct {
	mu        sync.Mutex // held across a leader's check, append and update
	id        int64
	epoch     int16
	n, head   int // batches retained; index of the oldest in batches
	batches   [ProducerBatches]ProducerBatch
	lastWrite int64
	// gone: removed from the table (evicted, expired or cut). Set under
	// the limit's mu with mu held, so an appender that locked mu and
	// finds it set looks the id up again.
	gone       bool
	owner      *Producers
	prev, next *producer // the partition's recency list
	// gprev, gnext: the limit's broker-wide recency list, under its mu.
	gprev, gnext *producer
}

func (pr *producer) at(i int) *ProducerBatch {
	return &pr.batches[(pr.head+i)%ProducerBatches]
}

func (pr *producer) newest() *ProducerBatch { return pr.at(pr.n - 1) }

// push records a batch appended for the producer.
func (pr *producer) push(b ProducerBatch, epoch int16) {
	if epoch != pr.epoch || pr.n == 0 {
		pr.epoch, pr.n, pr.head = epoch, 0, 0
	}
	if pr.n == ProducerBatches {
		pr.head = (pr.head + 1) % ProducerBatches
		pr.n--
	}
	*pr.at(pr.n) = b
	pr.n++
	pr.lastWrite = b.MaxTimestamp
}

// Producers is one partition replica's producer state. Create it with
// NewProducers; it is safe for concurrent use.
type Producers struct {
	cfg ProducersConfig
	lim *ProducerLimit

	snap sync.RWMutex
	m    map[int64]*producer
	lru  producer // sentinel of the recency list: lru.next is the least recent

	evicted, expired atomic.Uint64
	expiration       atomic.Int64 // nanoseconds; cfg.Expiration, then SetExpiration's

	files snapshots
}

// ProducerLimit caps the producer state of the partitions that share it
// (a broker's): at most Max (producer id, partition) entries. Past it,
// recording a new producer evicts the least recently written idle
// entries across those partitions, counts them and logs at most once
// every evictLogEvery. Create it with NewProducerLimit; it is safe for
// concurrent use.
type ProducerLimit struct {
	max    int
	now    func() time.Time
	logger *zap.Logger

	mu  sync.Mutex
	n   int      // entries held by the partitions sharing the limit
	lru producer // sentinel of the broker-wide recency list (gprev, gnext)
	// Under mu: the eviction log's rate limit.
	lastEvictLog time.Time
	unlogged     int

	evicted atomic.Uint64
}

// NewProducerLimit returns a limit of max entries (DefaultMaxProducers
// when max <= 0). now is the clock of the eviction log's rate limit
// (time.Now when nil); logger gets the eviction warnings.
func NewProducerLimit(max int, now func() time.Time, logger *zap.Logger) *ProducerLimit {
	if max <= 0 {
		max = DefaultMaxProducers
	}
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	pl := &ProducerLimit{max: max, now: now, logger: logger}
	pl.lru.gprev, pl.lru.gnext = &pl.lru, &pl.lru
	return pl
}

// Max is the cap.
func (pl *ProducerLimit) Max() int { return pl.max }

// Len is the number of entries the partitions sharing the limit hold.
func (pl *ProducerLimit) Len() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.n
}

// Evicted is how many entries were evicted past the cap since
// NewProducerLimit.
func (pl *ProducerLimit) Evicted() uint64 { return pl.evicted.Load() }

// NewProducers returns an empty producer state; Load fills it from the
// partition's snapshot and log.
func NewProducers(cfg ProducersConfig) *Producers {
	if cfg.FS == nil {
		cfg.FS = vfs.Default
	}
	if cfg.MaxProducers <= 0 {
		cfg.MaxProducers = DefaultMaxProducers
	}
	if cfg.Expiration <= 0 {
		cfg.Expiration = DefaultProducerExpiration
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	lim := cfg.Limit
	if lim == nil {
		lim = NewProducerLimit(cfg.MaxProducers, cfg.Now, cfg.Logger)
	}
	ps := &Producers{cfg: cfg, lim: lim, m: map[int64]*producer{}, files: snapshots{fs: cfg.FS, dir: cfg.Dir}}
	ps.lru.prev, ps.lru.next = &ps.lru, &ps.lru
	ps.expiration.Store(int64(cfg.Expiration))
	return ps
}

// SetExpiration changes Expiration (a topic's producer.id.expiration.ms
// altered); d <= 0 is DefaultProducerExpiration. The next Expire uses it.
func (ps *Producers) SetExpiration(d time.Duration) {
	if d <= 0 {
		d = DefaultProducerExpiration
	}
	ps.expiration.Store(int64(d))
}

// Len is the number of producers the state holds.
func (ps *Producers) Len() int {
	ps.lim.mu.Lock()
	defer ps.lim.mu.Unlock()
	return len(ps.m)
}

// Evicted is how many of this partition's producers were evicted past
// the limit's cap since NewProducers.
func (ps *Producers) Evicted() uint64 { return ps.evicted.Load() }

// Expired is how many producers Expire forgot since NewProducers.
func (ps *Producers) Expired() uint64 { return ps.expired.Load() }

// Entries returns every producer's state, least recently written first.
func (ps *Producers) Entries() []ProducerEntry {
	ps.snap.Lock()
	defer ps.snap.Unlock()
	return ps.entriesLocked()
}

func (ps *Producers) entriesLocked() []ProducerEntry {
	out := make([]ProducerEntry, 0, len(ps.m))
	for pr := ps.lru.next; pr != &ps.lru; pr = pr.next {
		e := ProducerEntry{ID: pr.id, Epoch: pr.epoch, LastWrite: pr.lastWrite, Batches: make([]ProducerBatch, pr.n)}
		for i := range pr.n {
			e.Batches[i] = *pr.at(i)
		}
		out = append(out, e)
	}
	return out
}

// LeaderLog is what a leader append needs of the log; *log.Log has it.
type LeaderLog interface {
	AppendNoWait(b record.Batch) (log.Appended, error)
}

// ReplicaLog is what a replayed append needs of the log; *log.Log has it.
type ReplicaLog interface {
	AppendReplica(b record.Batch) (log.Appended, error)
}

// LeaderAppended is the outcome of AppendLeader: a batch appended now,
// or a duplicate of one appended before.
type LeaderAppended struct {
	// Appended is the new append (zero for a duplicate).
	Appended log.Appended
	// Duplicate is set when nothing was appended: Original is the batch
	// the producer sent before with the same sequence range.
	Duplicate bool
	Original  ProducerBatch
}

// AppendLeader checks b (a producer id >= 0) against the state, appends
// it to l when it is new and records it. A refusal is a *protocol.Error
// with OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH or
// UNKNOWN_PRODUCER_ID, and nothing was appended; a log error is returned
// as it is.
func (ps *Producers) AppendLeader(l LeaderLog, b record.Batch) (LeaderAppended, error) {
	ps.snap.RLock()
	defer ps.snap.RUnlock()
	pr := ps.lock(b.ProducerID())
	defer pr.mu.Unlock()
	var res LeaderAppended
	if dup, err := check(pr, b); err != nil {
		ps.dropIfEmpty(pr)
		return res, err
	} else if dup != nil {
		res.Duplicate, res.Original = true, *dup
		return res, nil
	}
	a, err := l.AppendNoWait(b)
	if err != nil {
		ps.dropIfEmpty(pr)
		return res, err
	}
	res.Appended = a
	ps.record(pr, b, a.Base)
	return res, nil
}

// AppendReplica appends a batch copied from the leader to l and, when it
// has a producer id, records it without checks (the leader checked it).
func (ps *Producers) AppendReplica(l ReplicaLog, b record.Batch) (log.Appended, error) {
	if b.ProducerID() < 0 {
		return l.AppendReplica(b)
	}
	ps.snap.RLock()
	defer ps.snap.RUnlock()
	a, err := l.AppendReplica(b)
	if err != nil {
		return a, err
	}
	ps.replayLocked(b)
	return a, nil
}

// replayLocked records b (its offsets stamped) unless the producer's
// state already has it. Call with snap held.
func (ps *Producers) replayLocked(b record.Batch) {
	pr := ps.lock(b.ProducerID())
	defer pr.mu.Unlock()
	if pr.n > 0 && pr.newest().Base >= b.BaseOffset() {
		return
	}
	ps.record(pr, b, b.BaseOffset())
}

// lock returns the producer id's state, created (empty) if it has none,
// with its mu held. Call with snap held for reading.
func (ps *Producers) lock(id int64) *producer {
	for {
		ps.lim.mu.Lock()
		pr := ps.m[id]
		if pr == nil {
			// Evicts no one until its first batch is recorded: a refused
			// batch must not cost another producer its state.
			pr = &producer{id: id}
			pr.mu.Lock()
			ps.addLocked(pr)
			ps.lim.mu.Unlock()
			return pr
		}
		ps.lim.mu.Unlock()
		pr.mu.Lock()
		if !pr.gone {
			return pr
		}
		pr.mu.Unlock()
	}
}

// record stores batch b, appended at base, in pr (mu held) and makes pr
// the most recently written producer.
func (ps *Producers) record(pr *producer, b record.Batch, base int64) {
	first, added := b.BaseSequence(), pr.n == 0
	pr.push(ProducerBatch{
		FirstSeq: first, LastSeq: incSeq(first, b.LastOffsetDelta()),
		Base: base, Last: base + int64(b.LastOffsetDelta()), MaxTimestamp: b.MaxTimestamp(),
	}, b.ProducerEpoch())
	ps.lim.mu.Lock()
	ps.touchLocked(pr)
	if added {
		ps.lim.evictLocked(ps)
	}
	ps.lim.mu.Unlock()
}

// dropIfEmpty removes a producer created for a batch that was refused or
// failed (pr.mu held).
func (ps *Producers) dropIfEmpty(pr *producer) {
	if pr.n > 0 {
		return
	}
	ps.lim.mu.Lock()
	ps.removeLocked(pr)
	ps.lim.mu.Unlock()
}

// Release forgets every producer of the partition, giving their entries
// back to the limit. Call it when the partition's replica is closed (its
// state stays in its snapshots and log): the limit would otherwise count
// them until evicted. The Producers stays usable; Load fills it again.
func (ps *Producers) Release() {
	ps.snap.Lock()
	defer ps.snap.Unlock()
	ps.lim.mu.Lock()
	defer ps.lim.mu.Unlock()
	ps.removeAllLocked()
}

// removeAllLocked takes every producer out of the table (snap held for
// writing, limit's mu held).
func (ps *Producers) removeAllLocked() {
	for pr := ps.lru.next; pr != &ps.lru; {
		next := pr.next
		ps.removeLocked(pr)
		pr = next
	}
}

// addLocked puts pr, new, in the table as the most recent producer
// (limit's mu held).
func (ps *Producers) addLocked(pr *producer) {
	pr.owner = ps
	ps.m[pr.id] = pr
	ps.lim.n++
	ps.touchLocked(pr)
}

// touchLocked moves pr to the most recent end of the partition's and the
// limit's recency lists (limit's mu held).
func (ps *Producers) touchLocked(pr *producer) {
	if pr.next != nil {
		pr.prev.next, pr.next.prev = pr.next, pr.prev
		pr.gprev.gnext, pr.gnext.gprev = pr.gnext, pr.gprev
	}
	pr.prev, pr.next = ps.lru.prev, &ps.lru
	ps.lru.prev.next = pr
	ps.lru.prev = pr
	g := &ps.lim.lru
	pr.gprev, pr.gnext = g.gprev, g
	g.gprev.gnext = pr
	g.gprev = pr
}

// removeLocked takes pr out of the table (limit's mu held, and pr.mu
// held or no appender able to hold it).
func (ps *Producers) removeLocked(pr *producer) {
	if pr.gone {
		return
	}
	pr.gone = true
	delete(ps.m, pr.id)
	ps.lim.n--
	pr.prev.next, pr.next.prev = pr.next, pr.prev
	pr.gprev.gnext, pr.gnext.gprev = pr.gnext, pr.gprev
	pr.prev, pr.next, pr.gprev, pr.gnext = nil, nil, nil, nil
}

// evictLocked evicts the least recently written idle entries, across the
// partitions sharing the limit, while they are over the cap (mu held).
// self is the partition of the caller, which holds its snap: another
// partition's producer is evicted only when its snap can be read-locked
// at once, and any producer only when it is in no append.
func (pl *ProducerLimit) evictLocked(self *Producers) {
	n := 0
	for pr := pl.lru.gnext; pl.n > pl.max && pr != &pl.lru; {
		next, owner := pr.gnext, pr.owner
		if owner == self || owner.snap.TryRLock() {
			if pr.mu.TryLock() {
				owner.removeLocked(pr)
				pr.mu.Unlock()
				owner.evicted.Add(1)
				n++
			}
			if owner != self {
				owner.snap.RUnlock()
			}
		}
		pr = next
	}
	if n == 0 {
		return
	}
	pl.evicted.Add(uint64(n))
	pl.unlogged += n
	if now := pl.now(); now.Sub(pl.lastEvictLog) >= evictLogEvery {
		pl.logger.Warn("producer ids evicted: the broker holds producer.id.max of them; an evicted producer that comes back gets UNKNOWN_PRODUCER_ID and initialises again",
			zap.Int("evicted", pl.unlogged), zap.Int("producer_id_max", pl.max), zap.Uint64("evicted_total", pl.evicted.Load()))
		pl.lastEvictLog, pl.unlogged = now, 0
	}
}

// check decides what to do with b given pr's state (mu held): a non-nil
// batch is the retained original b duplicates; an error refuses b.
func check(pr *producer, b record.Batch) (*ProducerBatch, error) {
	epoch, first := b.ProducerEpoch(), b.BaseSequence()
	last := incSeq(first, b.LastOffsetDelta())
	if pr.n == 0 {
		if first != 0 {
			return nil, &protocol.Error{Code: protocol.ErrUnknownProducerID, Detail: fmt.Sprintf(
				"producer %d: no state on this partition (never seen, expired or evicted) and the batch starts at sequence %d, not 0: initialise the producer again",
				pr.id, first)}
		}
		return nil, nil
	}
	switch {
	case epoch < pr.epoch:
		return nil, &protocol.Error{Code: protocol.ErrInvalidProducerEpoch, Detail: fmt.Sprintf(
			"producer %d: epoch %d is older than the partition's %d: a newer producer with this id took over", pr.id, epoch, pr.epoch)}
	case epoch > pr.epoch:
		if first != 0 {
			return nil, &protocol.Error{Code: protocol.ErrOutOfOrderSequenceNumber, Detail: fmt.Sprintf(
				"producer %d: new epoch %d must start at sequence 0, the batch starts at %d", pr.id, epoch, first)}
		}
		return nil, nil
	}
	for i := range pr.n {
		if r := pr.at(i); r.FirstSeq == first && r.LastSeq == last {
			return r, nil
		}
	}
	if want := incSeq(pr.newest().LastSeq, 1); first != want {
		return nil, &protocol.Error{Code: protocol.ErrOutOfOrderSequenceNumber, Detail: fmt.Sprintf(
			"producer %d epoch %d: batch starts at sequence %d, expected %d (the last batch ended at %d)",
			pr.id, epoch, first, want, pr.newest().LastSeq)}
	}
	return nil, nil
}

// incSeq is s + n with Kafka's wrap: the sequence after MaxInt32 is 0.
func incSeq(s, n int32) int32 {
	if n > 0 && s > math.MaxInt32-n {
		return n - (math.MaxInt32 - s) - 1
	}
	return s + n
}

// Expire forgets the producers whose last batch's max timestamp is older
// than Expiration, and returns how many.
func (ps *Producers) Expire() int {
	ps.snap.Lock()
	defer ps.snap.Unlock()
	return ps.expireLocked()
}

func (ps *Producers) expireLocked() int {
	limit := ps.cfg.Now().Add(-time.Duration(ps.expiration.Load())).UnixMilli()
	ps.lim.mu.Lock()
	defer ps.lim.mu.Unlock()
	n := 0
	for pr := ps.lru.next; pr != &ps.lru; {
		next := pr.next
		if pr.lastWrite < limit {
			ps.removeLocked(pr)
			n++
		}
		pr = next
	}
	ps.expired.Add(uint64(n))
	return n
}

// cutLocked drops from each producer its newest batches while dropNewest
// says so and then its oldest while dropOldest says so (either may be
// nil), and forgets the producers left with none. Call with snap held
// for writing.
func (ps *Producers) cutLocked(dropNewest func(*ProducerBatch) bool, dropOldest func(*ProducerBatch) bool) {
	ps.lim.mu.Lock()
	defer ps.lim.mu.Unlock()
	for pr := ps.lru.next; pr != &ps.lru; {
		next := pr.next
		for pr.n > 0 && dropNewest != nil && dropNewest(pr.newest()) {
			pr.n--
		}
		for pr.n > 0 && dropOldest != nil && dropOldest(pr.at(0)) {
			pr.head = (pr.head + 1) % ProducerBatches
			pr.n--
		}
		if pr.n == 0 {
			ps.removeLocked(pr)
		} else {
			pr.lastWrite = pr.newest().MaxTimestamp
		}
		pr = next
	}
}

// CutBelow drops what the log no longer holds after its start moved to
// start (retention, DeleteRecordsBefore): the batches ending below it.
func (ps *Producers) CutBelow(start int64) {
	ps.snap.Lock()
	defer ps.snap.Unlock()
	ps.cutLocked(nil, func(b *ProducerBatch) bool { return b.Last < start })
}

// TruncateLog is what Truncate and Reset need of the log.
type TruncateLog interface {
	StartOffset() int64
	TruncateTo(offset int64) error
	ResetTo(offset int64) error
}

// Truncate truncates the log to offset (l.TruncateTo) and the state with
// it: the snapshots above offset are deleted first (a crash after the log
// was cut must not find them), and a background one above it not yet
// written is dropped (one being written is waited for, then deleted),
// then the batches at and above offset are dropped, and with them
// producers left with none.
func (ps *Producers) Truncate(l TruncateLog, offset int64) error {
	ps.files.mu.Lock()
	defer ps.files.mu.Unlock()
	ps.snap.Lock()
	defer ps.snap.Unlock()
	ps.files.dropAbove(offset)
	if err := ps.files.removeAbove(offset); err != nil {
		return fmt.Errorf("replica: truncate producer state to %d: %w", offset, err)
	}
	if err := l.TruncateTo(offset); err != nil {
		return err
	}
	start := l.StartOffset()
	ps.cutLocked(func(b *ProducerBatch) bool { return b.Base >= offset }, func(b *ProducerBatch) bool { return b.Last < start })
	return nil
}

// Reset empties the log and restarts it at offset (l.ResetTo), and the
// state with it: every snapshot and producer goes.
func (ps *Producers) Reset(l TruncateLog, offset int64) error {
	ps.files.mu.Lock()
	defer ps.files.mu.Unlock()
	ps.snap.Lock()
	defer ps.snap.Unlock()
	ps.files.dropAbove(-1)
	if err := ps.files.removeAbove(-1); err != nil {
		return fmt.Errorf("replica: reset producer state: %w", err)
	}
	if err := l.ResetTo(offset); err != nil {
		return err
	}
	ps.cutLocked(func(*ProducerBatch) bool { return true }, nil)
	return nil
}
