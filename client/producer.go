package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// producer is the Client's record accumulator and sender. Records are
// appended under mu into their partition's open batch (a reused
// record.Builder); the send loop takes batches that are full, lingered or
// flushed — up to maxInflight per partition — and sends each leader's
// share as Produce requests, in order on the leader's connection.
//
// A partition's batches go through queued (sealed, never sent) to sent
// (sent at least once, not yet settled, in send order: with idempotence,
// sequence order) to done (settled, callbacks not yet run). A batch that
// must be sent again stays in sent as pending; pending batches are resent,
// in order, only once nothing of their partition is in flight (Kafka's
// rule), and new batches wait behind them. Callbacks run in sent's order,
// by one goroutine at a time per partition (deliver).
type producer struct {
	c   *Client
	cfg *config
	// idem: the producer is idempotent (R13); maxInflight: batches in
	// flight per partition. Guarded by mu: a cluster that does not serve
	// InitProducerId turns default idempotence off (fetchPID).
	idem        bool
	maxInflight int

	mu          sync.Mutex
	topics      map[string]*ptopic
	active      map[*ppart]struct{} // partitions holding an open or queued batch
	free        []*batch            // recycled batches with their builders
	flushing    int
	closing     bool
	outstanding int // records accepted and not yet called back
	idle        notifier

	pid          pidState
	resolved     int64     // records acknowledged after an attempt with an unknown outcome (ResolvedUnknown)
	inflight     int       // batches in flight, all partitions
	stallRefresh time.Time // when a stalled batch last asked for metadata

	mem     memLimit
	wake    chan struct{} // capacity 1: something for the send loop to do
	started bool          // the send loop runs; guarded by mu
	// drain's output, owned by the send loop: per leader, the requests to
	// send in order (a partition's k-th batch goes in the k-th); and the
	// partitions with settled batches to deliver.
	reqs      map[int32][][]sendItem
	deliverTo []*ppart
	// lanes orders the requests to one leader: each request is handed to
	// the connection after the one before it (send loop only).
	lanes map[int32]chan struct{}
}

// ptopic is a topic's partitions and its sticky placement.
type ptopic struct {
	name        string
	parts       []*ppart
	sticky      int32
	stickyBatch *batch // the batch keyless records stick to while it is open
	// maxBatch, when above 0, caps the topic's new batches below
	// BatchMaxBytes: the size of the half a batch refused as
	// MESSAGE_TOO_LARGE was split into (splitTooLarge), so the next ones
	// are built to fit the topic's max.message.bytes.
	maxBatch int
}

// batchLimit is the size at which t's open batches are sealed.
func (p *producer) batchLimit(t *ptopic) int {
	if t.maxBatch > 0 && t.maxBatch < p.cfg.batchMaxBytes {
		return t.maxBatch
	}
	return p.cfg.batchMaxBytes
}

// ppart is one partition's batches: open accepts records, queued are
// sealed and never sent, sent are sent and not settled (see producer), done
// are settled and await their callbacks. p.mu guards all of it.
type ppart struct {
	t          *ptopic
	partition  int32
	open       *batch
	queued     []*batch
	sent       []*batch
	inflight   int   // batches of sent in flight
	nextSeq    int32 // idempotence: the sequence of the next new batch
	done       []*batch
	delivering bool // a goroutine is running done's callbacks
	probe      bool // resend one pending batch at a time (see drainPart)
}

// batch is a partition's records being built or sent. It is recycled with
// its builder and slices once its callbacks have run and no request
// refers to it.
type batch struct {
	part     *ppart
	bld      *record.Builder
	recs     []pendingRecord
	bytes    int64     // counted against MaxBufferedBytes
	created  time.Time // first record: linger runs from here
	deadline time.Time // DeliveryTimeout from the first record
	retryAt  time.Time
	attempts int
	lastErr  error
	// data is the sealed bytes, built by the first send (again after an
	// epoch bump restamps the batch); written under p.mu.
	data record.Batch

	state  batchState
	seq    int32 // idempotence: base sequence, -1 before the first send
	leader int32 // where the request in flight went
	sentAt time.Time
	// conn is the connection the request in flight went out on (nil
	// until the send hands it over), movedAt when leadersChanged first
	// saw another broker lead the partition while it was in flight.
	conn    atomic.Pointer[conn]
	movedAt time.Time
	// gen numbers the batch's sends; a response for an earlier one is
	// ignored (the batch was given up on that connection). It survives
	// recycling, so a late response never matches a reused batch.
	gen          uint64
	refs         int  // send goroutines holding the batch (its bytes)
	maybeWritten bool // an attempt's outcome was unknown (R14)
	base         int64
	err          error // the final error of a failed batch
}

// batchState is where a batch of ppart.sent stands.
type batchState uint8

const (
	batchPending  batchState = iota // to be sent (again)
	batchInflight                   // a request is out
	batchAcked                      // acknowledged at base; settles once those before it have
	batchFailed                     // failed with err; settles once those before it have
	batchDone                       // its callbacks ran; recycled when refs reaches 0
)

// maxInflightIdempotent is how many batches per partition an idempotent
// producer keeps in flight: the leader remembers the last five per
// producer (Kafka's max.in.flight.requests.per.connection limit for
// idempotence).
const maxInflightIdempotent = 5

type pendingRecord struct {
	rec *Record
	cb  func(*Record, error)
}

// recordOverhead bounds the framing the builder adds per record (length,
// attributes, timestamp and offset deltas, key and value lengths, header
// count, all varints) and per header (two lengths).
const (
	recordOverhead = 40
	headerOverhead = 10
)

func recordSize(r *Record) int64 {
	n := int64(len(r.Key) + len(r.Value) + recordOverhead)
	for _, h := range r.Headers {
		n += int64(len(h.Key) + len(h.Value) + headerOverhead)
	}
	return n
}

func (p *producer) init(c *Client) {
	p.c, p.cfg = c, &c.cfg
	p.topics = map[string]*ptopic{}
	p.active = map[*ppart]struct{}{}
	p.wake = make(chan struct{}, 1)
	p.reqs = map[int32][][]sendItem{}
	p.lanes = map[int32]chan struct{}{}
	p.mem.limit = c.cfg.maxBufferedBytes
	p.idem = c.cfg.idempotent()
	p.maxInflight = 1
	if p.idem {
		p.maxInflight = maxInflightIdempotent
	}
}

// Produce buffers rec for sending to rec.Topic and returns; cb (which may
// be nil) is called exactly once with rec when the record is acknowledged
// — rec.Partition and rec.Offset set — or has failed with a *ProduceError.
// Callbacks of one partition run in order, on a goroutine of the client, so
// they must not block for long; they may run on the caller's goroutine if
// Produce fails before buffering.
//
// Produce blocks while the topic's metadata is unknown and while
// MaxBufferedBytes are buffered, until ctx ends (the record then fails
// with ctx's error, not written). ctx has no effect once rec is buffered.
// The client owns rec until cb; rec's byte slices are copied and may be
// reused as soon as Produce returns.
func (c *Client) Produce(ctx context.Context, rec *Record, cb func(*Record, error)) {
	p := &c.prod
	if cb == nil {
		cb = func(*Record, error) {}
	}
	fail := func(part int32, err error) {
		cl := classify(err, false)
		cb(rec, &ProduceError{Topic: rec.Topic, Partition: part, Code: cl.code, Indeterminate: false, Err: err})
	}
	if c.closed() {
		fail(-1, ErrClosed)
		return
	}
	if rec.Topic == "" {
		fail(-1, errors.New("record has no topic"))
		return
	}
	size := recordSize(rec)
	if size+record.HeaderSize > int64(p.cfg.batchMaxBytes) {
		fail(-1, fmt.Errorf("%w: %d bytes", ErrRecordTooLarge, size))
		return
	}
	ti, err := c.topicInfo(ctx, rec.Topic)
	if err != nil {
		fail(-1, err)
		return
	}
	n := int32(len(ti.partitions))
	part := p.cfg.partitioner.Partition(rec, n)
	if part != StickyPartition && (part < 0 || part >= n) {
		fail(part, fmt.Errorf("partition %d out of range: topic has %d: %w", part, n, protocol.ErrUnknownTopicOrPartition))
		return
	}
	if err := p.mem.acquire(ctx, size); err != nil {
		fail(part, err)
		return
	}
	now := time.Now()
	if rec.Timestamp.IsZero() {
		rec.Timestamp = now
	}
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		p.mem.release(size)
		fail(part, ErrClosed)
		return
	}
	if !p.started {
		// Started under mu after the closing check, so Close (which sets
		// closing under mu before waiting for goroutines) cannot miss it.
		p.started = true
		c.wg.Add(1)
		go p.sendLoop()
	}
	kickNow := p.append(rec, cb, part, n, size, now)
	p.mu.Unlock()
	if kickNow {
		kick(p.wake)
	}
}

// ProduceSync produces recs and waits for all of their callbacks,
// returning their errors joined (nil if every record was acknowledged).
// Batches are sent without waiting for Linger while it runs: the caller is
// waiting already.
func (c *Client) ProduceSync(ctx context.Context, recs ...*Record) error {
	p := &c.prod
	p.mu.Lock()
	p.flushing++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	wg.Add(len(recs))
	for _, r := range recs {
		c.Produce(ctx, r, func(_ *Record, err error) {
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	kick(p.wake)
	wg.Wait()
	return errors.Join(errs...)
}

// append adds a record to its partition's open batch, starting a batch
// when there is none or the record would overflow it. It reports whether
// the send loop should look now: a batch became full or a new batch began
// (whose linger deadline the loop must arm). p.mu is held.
func (p *producer) append(rec *Record, cb func(*Record, error), part, n int32, size int64, now time.Time) bool {
	t := p.topics[rec.Topic]
	if t == nil {
		t = &ptopic{name: rec.Topic, sticky: -1}
		p.topics[rec.Topic] = t
	}
	for int32(len(t.parts)) < n {
		t.parts = append(t.parts, &ppart{t: t, partition: int32(len(t.parts))})
	}
	sticky := part == StickyPartition
	if sticky {
		part = t.stickyPartition(n, now, p.cfg.linger)
	}
	pp := t.parts[part]
	wake := false
	if p.overflows(pp, size) {
		p.seal(pp)
		wake = true
		if sticky {
			// The sticky batch is done: move on instead of starting the
			// partition's next batch (Kafka's onNewBatch).
			part = t.stickyPartition(n, now, p.cfg.linger)
			if pp = t.parts[part]; p.overflows(pp, size) {
				p.seal(pp)
			}
		}
	}
	b := pp.open
	if b == nil {
		b = p.newBatch(pp, now)
		pp.open = b
		p.active[pp] = struct{}{}
		// Always wake the send loop for a new batch: it may be asleep with
		// no deadline at all, and only it can arm the linger timer.
		wake = true
	}
	b.bld.Append(rec.Timestamp.UnixMilli(), rec.Key, rec.Value, rec.Headers)
	b.recs = append(b.recs, pendingRecord{rec: rec, cb: cb})
	b.bytes += size
	rec.Partition = part
	p.outstanding++
	if b.bld.EstimatedSize() >= p.batchLimit(t) {
		p.seal(pp)
		wake = true
	}
	if sticky {
		t.stickyBatch = pp.open
	}
	return wake
}

// overflows reports whether a record of size would push pp's open batch
// over its topic's batch limit.
func (p *producer) overflows(pp *ppart, size int64) bool {
	return pp.open != nil && int64(pp.open.bld.EstimatedSize())+size > int64(p.batchLimit(pp.t))
}

// stickyPartition is the partition for a keyless record: the current
// sticky one while its batch is open and not stalled, else a new one at
// random — a different one when there is a choice, so load moves on with
// each batch — avoiding stalled partitions when it can. t.parts holds n.
func (t *ptopic) stickyPartition(n int32, now time.Time, linger time.Duration) int32 {
	if t.sticky >= 0 && t.sticky < n && t.stickyBatch != nil && t.parts[t.sticky].open == t.stickyBatch &&
		!t.parts[t.sticky].stalled(now, linger) {
		return t.sticky
	}
	cur := t.sticky
	if cur >= n {
		cur = -1
	}
	start := rand.Int32N(n)
	if n > 1 && cur >= 0 {
		// Uniform over the partitions other than the current one.
		if start = rand.Int32N(n - 1); start >= cur {
			start++
		}
	}
	// From there, the next few partitions, not all: this runs per record
	// while partitions stall, and a topic may have thousands.
	first, next := int32(-1), int32(-1)
	for i, tried := int32(0), 0; i < n && tried < stickyProbes; i++ {
		c := (start + i) % n
		if c == cur && n > 1 {
			continue
		}
		tried++
		if first < 0 {
			first = c
		}
		if !t.parts[c].stalled(now, linger) {
			next = c
			break
		}
	}
	switch {
	case next >= 0:
	case cur >= 0 && !t.parts[cur].stalled(now, linger):
		next = cur // the others tried are stalled
	default:
		next = first // all stalled: spread the wait
	}
	t.sticky, t.stickyBatch = next, nil
	return next
}

// stickyPatience is how long past its linger an open batch may wait before
// its partition counts as stalled for keyless records: its leader is
// failing over, or acks=all waits on a slow follower. Staying would pile
// every keyless record onto the one partition that cannot take them, as
// long as the stall lasts (Kafka's adaptive partitioning, KIP-794, avoids
// slow partitions in the same spirit). Well above a healthy ack time.
const stickyPatience = 100 * time.Millisecond

// stickyProbes bounds the partitions a keyless record tries when its
// sticky partition is done or stalled.
const stickyProbes = 4

// stalled reports whether pp's open batch has waited longer than linger
// and stickyPatience: it should have been sent and was not.
func (pp *ppart) stalled(now time.Time, linger time.Duration) bool {
	return pp.open != nil && now.Sub(pp.open.created) > linger+stickyPatience
}

// seal moves the open batch to the send queue. p.mu is held.
func (p *producer) seal(pp *ppart) {
	pp.queued = append(pp.queued, pp.open)
	pp.open = nil
}

func (p *producer) newBatch(pp *ppart, now time.Time) *batch {
	var b *batch
	if n := len(p.free); n > 0 {
		b, p.free = p.free[n-1], p.free[:n-1]
	} else {
		b = &batch{bld: record.NewBuilder(p.cfg.codec)}
	}
	b.part, b.created, b.deadline = pp, now, now.Add(p.cfg.deliveryTimeout)
	b.seq, b.leader, b.base = -1, -1, -1
	return b
}

// maxFreeBatches bounds the recycled batches kept; each holds a builder
// whose buffers may have grown to BatchMaxBytes.
const maxFreeBatches = 64

// recycle returns a finished batch to the free list. p.mu is held.
func (p *producer) recycle(b *batch) {
	clear(b.recs)
	b.bld.Reset()
	*b = batch{bld: b.bld, recs: b.recs[:0], gen: b.gen}
	if len(p.free) < maxFreeBatches {
		p.free = append(p.free, b)
	}
}

// Flush sends every buffered record without waiting for linger and waits
// until all records produced so far — and any produced while it waits —
// have had their callbacks, or ctx ends.
func (c *Client) Flush(ctx context.Context) error {
	p := &c.prod
	p.mu.Lock()
	p.flushing++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	kick(p.wake)
	return p.waitIdle(ctx)
}

// waitIdle waits until no record is outstanding.
func (p *producer) waitIdle(ctx context.Context) error {
	for {
		p.mu.Lock()
		if p.outstanding == 0 {
			p.mu.Unlock()
			return nil
		}
		ch := p.idle.wait()
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close refuses new records, sends what is buffered once (no retries) and
// waits for every callback. It is bounded by the request timeouts.
func (p *producer) close() {
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	p.mem.close()
	kick(p.wake)
	_ = p.waitIdle(context.Background())
}

// memLimit counts buffered record bytes against MaxBufferedBytes.
type memLimit struct {
	mu     sync.Mutex
	used   int64
	limit  int64
	closed bool
	freed  notifier
}

// acquire takes n bytes, waiting for space until ctx ends or the limit is
// closed. A request larger than the whole limit cannot happen: records are
// capped at BatchMaxBytes, and the limit is at least that.
func (m *memLimit) acquire(ctx context.Context, n int64) error {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		if m.used+n <= m.limit {
			m.used += n
			m.mu.Unlock()
			return nil
		}
		ch := m.freed.wait()
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (m *memLimit) release(n int64) {
	m.mu.Lock()
	m.used -= n
	m.mu.Unlock()
	m.freed.notify()
}

func (m *memLimit) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.freed.notify()
}
