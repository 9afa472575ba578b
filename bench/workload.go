package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/client"
)

// progressInterval is how often the progress line is rewritten.
const progressInterval = time.Second

// Produce runs cfg.Producers producers, each its own client, until they
// have sent cfg.Records between them or cfg.Duration has passed. Latency
// is from Produce (or the record's scheduled time with cfg.Rate) to the
// acknowledgement.
func Produce(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Records == 0 && cfg.Duration == 0 {
		cfg.Records = DefaultRecords
	}
	prods, err := openProducers(ctx, &cfg, client.DeliveryTimeout(cfg.DeliveryTimeout))
	if err != nil {
		return nil, err
	}
	defer closeAll(prods)
	t := newTally(len(prods))
	start := time.Now()
	prog := startProgress(cfg.Progress, "produce", t, start, progressInterval)
	lat := runProducers(ctx, &cfg, prods, t, start, false)
	elapsed := time.Since(start)
	prog.stop()
	return t.report("produce", elapsed, lat), nil
}

// Consume reads the topic from the start of every partition to the end
// each had when it began, with cfg.Consumers consumers sharing the
// partitions; cfg.Records and cfg.Duration end it sooner. It measures
// throughput only.
func Consume(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Group != "" {
		cfg.Consumer = append(append([]client.Opt(nil), cfg.Consumer...), client.ConsumerGroup(cfg.Group,
			client.GroupTopics(cfg.Topic), client.GroupResetOffset(client.AtStart())))
	}
	// Group members join, and start fetching, as their clients are
	// created: their time starts before, so that it counts the joins and
	// the records fetched while the offsets below are looked up.
	begin := time.Now()
	cons, nparts, err := openConsumers(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer closeAll(cons)
	starts, err := listOffsets(ctx, cons[0], cfg.Topic, nparts, client.AtStart(), cfg.ReadTimeout)
	if err != nil {
		return nil, err
	}
	if cfg.Group != "" {
		if err := groupStarts(ctx, cons[0], cfg.Group, cfg.Topic, starts); err != nil {
			return nil, err
		}
	}
	ends, err := endOffsets(ctx, cons[0], cfg.Topic, nparts, cfg.ReadTimeout)
	if err != nil {
		return nil, err
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	t := newTally(len(cons))
	start := time.Now()
	if cfg.Group != "" {
		start = begin
	}
	prog := startProgress(cfg.Progress, "consume", t, start, progressInterval)
	stop := func() bool {
		n, _, _ := t.sum()
		return cfg.Records > 0 && n >= cfg.Records
	}
	var last time.Time
	if cfg.Group != "" {
		last, err = runGroupConsumers(ctx, cons, starts, ends, t, stop)
	} else {
		last, err = runConsumers(ctx, cfg.Topic, cons, starts, ends, t, nil, stop)
	}
	prog.stop()
	return t.report("consume", sinceOr(start, last), nil), err
}

// E2E runs producers and consumers together: consumers start at the end
// of every partition, producers send as Produce does, and consumers read
// until they have seen as many records as were acknowledged (at most
// cfg.ReadTimeout after the producers finish). Latency is from the produce
// time each record carries in its first 8 value bytes to the Poll that
// returned it. Records, bytes and throughput are the consumers'.
func E2E(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Records == 0 && cfg.Duration == 0 {
		cfg.Records = DefaultRecords
	}
	if cfg.RecordSize < e2eHeader {
		return nil, fmt.Errorf("bench: e2e record size %d: must be at least %d (the produce time)", cfg.RecordSize, e2eHeader)
	}
	prods, err := openProducers(ctx, &cfg, client.DeliveryTimeout(cfg.DeliveryTimeout))
	if err != nil {
		return nil, err
	}
	defer closeAll(prods)
	cons, nparts, err := openConsumers(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer closeAll(cons)
	ends, err := endOffsets(ctx, cons[0], cfg.Topic, nparts, cfg.ReadTimeout)
	if err != nil {
		return nil, err
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ct := newTally(len(cons))
	var target atomic.Int64 // records the consumers must see; set when producers finish
	target.Store(1<<63 - 1)
	lat := NewHistogram()
	var last time.Time
	var cerr error
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		last, cerr = runConsumers(cctx, cfg.Topic, cons, ends, nil, ct, lat, func() bool {
			n, _, _ := ct.sum()
			return n >= target.Load()
		})
	}()

	pt := newTally(len(prods))
	start := time.Now()
	prog := startProgress(cfg.Progress, "e2e (consumed)", ct, start, progressInterval)
	runProducers(ctx, &cfg, prods, pt, start, true)
	acked, _, perrs := pt.sum()
	target.Store(acked)
	drain := time.AfterFunc(cfg.ReadTimeout, cancel)
	if n, _, _ := ct.sum(); n >= acked {
		cancel()
	}
	<-consumed
	drain.Stop()
	prog.stop()
	r := ct.report("e2e", sinceOr(start, last), lat)
	r.Errors += perrs
	if r.FirstError == "" {
		if s, ok := pt.firstErr.Load().(string); ok {
			r.FirstError = s
		}
	}
	err = cerr
	if r.Records < acked && ctx.Err() == nil {
		err = errors.Join(err, fmt.Errorf("bench: e2e: consumed %d of %d acknowledged records within %v of the last acknowledgement",
			r.Records, acked, cfg.ReadTimeout))
	}
	return r, err
}

// runConsumers runs one consumer loop per client until ctx ends, stop
// (checked after every Poll that returned records) reports true, or —
// with ends — every consumer has read its partitions to their ends.
// Partition p goes to client p mod len(cls), starting at from[p]. It
// returns when the last record was consumed (zero if none was).
func runConsumers(ctx context.Context, topic string, cls []*client.Client, from, ends []int64, t *tally, lat *Histogram,
	stop func() bool) (time.Time, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var last atomic.Int64 // UnixNano
	errs := make([]error, len(cls))
	var wg sync.WaitGroup
	for i, cl := range cls {
		w := &consumer{cl: cl, idx: i, t: t}
		if lat != nil {
			w.lat = NewHistogram()
		}
		if ends != nil {
			w.ends, w.next = map[int32]int64{}, map[int32]int64{}
		}
		parts := map[client.TopicPartition]client.Offset{}
		for p := i; p < len(from); p += len(cls) {
			parts[client.TopicPartition{Topic: topic, Partition: int32(p)}] = client.At(from[p])
			if ends != nil {
				w.ends[int32(p)], w.next[int32(p)] = ends[p], from[p]
			}
		}
		cl.Assign(parts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.loop(ctx, func() bool {
				last.Store(time.Now().UnixNano())
				if stop() {
					cancel()
					return true
				}
				return w.ends != nil && w.reachedEnds()
			})
			if lat != nil {
				lat.Merge(w.lat)
			}
		}()
	}
	wg.Wait()
	var at time.Time
	if ns := last.Load(); ns != 0 {
		at = time.Unix(0, ns)
	}
	return at, errors.Join(errs...)
}

// sinceOr is the time from start to end, or to now if end is zero.
func sinceOr(start, end time.Time) time.Duration {
	if end.IsZero() {
		return time.Since(start)
	}
	return end.Sub(start)
}

// openProducers connects cfg.Producers producing clients, creating the
// topic first if asked to; first go before cfg.Producer.
func openProducers(ctx context.Context, cfg *Config, first ...client.Opt) ([]*client.Client, error) {
	var cls []*client.Client
	for i := range cfg.Producers {
		opts := append(append([]client.Opt(nil), first...), cfg.Producer...)
		cl, err := cfg.newClient(ctx, fmt.Sprintf("sluice-bench-producer-%d", i), opts)
		if err != nil {
			closeAll(cls)
			return nil, err
		}
		cls = append(cls, cl)
		if i == 0 {
			if _, err := cfg.prepareTopic(ctx, cl); err != nil {
				closeAll(cls)
				return nil, err
			}
		}
	}
	return cls, nil
}

// openConsumers connects min(cfg.Consumers, partitions) consuming clients
// and returns them with the topic's partition count.
func openConsumers(ctx context.Context, cfg *Config) ([]*client.Client, int32, error) {
	var cls []*client.Client
	var nparts int32
	for i := 0; i < cfg.Consumers && (i == 0 || int32(i) < nparts); i++ {
		cl, err := cfg.newClient(ctx, fmt.Sprintf("sluice-bench-consumer-%d", i), cfg.Consumer)
		if err != nil {
			closeAll(cls)
			return nil, 0, err
		}
		cls = append(cls, cl)
		if i == 0 {
			if nparts, err = cfg.prepareTopic(ctx, cl); err != nil {
				closeAll(cls)
				return nil, 0, err
			}
		}
	}
	return cls, nparts, nil
}

func closeAll(cls []*client.Client) {
	for _, cl := range cls {
		cl.Close()
	}
}

// endOffsets returns every partition's end offset (its high watermark).
func endOffsets(ctx context.Context, cl *client.Client, topic string, nparts int32, bound time.Duration) ([]int64, error) {
	return listOffsets(ctx, cl, topic, nparts, client.AtEnd(), bound)
}

// listOffsets lists every partition's offset. A retriable failure (a
// leader that moved, a broker restarting or still applying metadata) is
// tried again after a backoff, the whole for at most bound: the client
// refreshes its metadata on such failures, so a retry goes to the current
// leader. The error is the last failure, with how long it was retried.
func listOffsets(ctx context.Context, cl *client.Client, topic string, nparts int32, at client.Offset, bound time.Duration) ([]int64, error) {
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last error
	for attempt := 1; ; attempt++ {
		out, err := listOffsetsOnce(lctx, cl, topic, nparts, at)
		if err == nil {
			return out, nil
		}
		if lctx.Err() != nil && ctx.Err() == nil && last != nil {
			err = last // the bound cut this attempt short: the one before says why
		}
		last = err
		if client.IsRetriable(err) && lctx.Err() == nil {
			select {
			case <-lctx.Done():
			case <-time.After(listBackoff(attempt)):
				continue
			}
		}
		if attempt > 1 {
			err = fmt.Errorf("%w (%d attempts in %v)", err, attempt, time.Since(start).Round(time.Millisecond))
		}
		return nil, err
	}
}

// listBackoff is the wait after failed attempt n (1-based) of listOffsets:
// 50 ms doubling to at most 1 s.
func listBackoff(n int) time.Duration {
	return min(50*time.Millisecond<<min(n-1, 5), time.Second)
}

func listOffsetsOnce(ctx context.Context, cl *client.Client, topic string, nparts int32, at client.Offset) ([]int64, error) {
	offs, err := cl.ListOffsets(ctx, topic, at)
	if err != nil {
		return nil, fmt.Errorf("bench: list %s offsets of %s: %w", at, topic, err)
	}
	if int32(len(offs)) != nparts {
		return nil, fmt.Errorf("bench: topic %s has %d partitions, expected %d", topic, len(offs), nparts)
	}
	out := make([]int64, nparts)
	for _, o := range offs {
		if o.Err != nil {
			return nil, fmt.Errorf("bench: list %s offset of %s[%d]: %w", at, topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	}
	return out, nil
}

// runProducers runs one producer loop per client and waits for every
// acknowledgement; it returns their merged latencies.
func runProducers(ctx context.Context, cfg *Config, cls []*client.Client, t *tally, start time.Time, e2e bool) *Histogram {
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(cls)) / cfg.Rate)
	}
	lat := NewHistogram()
	var wg sync.WaitGroup
	for i, cl := range cls {
		p := &producer{cfg: cfg, cl: cl, idx: i, t: t, lat: NewHistogram(),
			count: share(cfg.Records, i, len(cls)), deadline: deadline, interval: interval, e2e: e2e}
		if cfg.Records == 0 {
			p.count = -1
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx, start)
			lat.Merge(p.lat)
		}()
	}
	wg.Wait()
	return lat
}

// Record structs come from a pool of slots: a slot is taken for each
// Produce and given back by its callback, so a partition that stalls holds
// only its own records' slots and the others keep cycling. The pool grows
// by slotChunk slots when it is empty, up to maxSlots; at the cap the loop
// waits for a callback, which the client's DeliveryTimeout bounds. The cap
// is the old ring's size: more records outstanding only queue in the client
// (1M records at acks=1 on one in-process broker: p99 260-380 ms and a
// third of the throughput with 262,144 slots, against 6-42 ms with 65,536).
const (
	slotChunk = 1 << 14
	maxSlots  = 4 * slotChunk
)

// slotCap is the pool's cap: maxSlots, or the test's Config.slots.
func (p *producer) slotCap() int {
	if p.cfg.slots > 0 {
		return p.cfg.slots
	}
	return maxSlots
}

// Slot states, in slot.state: free, expired, or (any positive value) the
// deadline in Unix nanoseconds of the pending record it holds. Holding the
// deadline in the state makes the expiry a single compare-and-swap that
// cannot hit a later record reusing the slot (its deadline differs).
const (
	slotFree    = 0
	slotExpired = -1
)

// slot is one record the producer may have outstanding, with its own
// callback (made once per slot, not per record).
type slot struct {
	rec   client.Record
	cb    func(*client.Record, error)
	state atomic.Int64
}

// producer is one producing client's loop.
type producer struct {
	cfg      *Config
	cl       *client.Client
	idx      int
	t        *tally
	lat      *Histogram
	count    int64         // records to send; -1: until the deadline
	deadline time.Time     // zero: none
	interval time.Duration // between scheduled sends; 0: as fast as possible
	e2e      bool          // write the produce time into each value

	free  chan *slot // slots without a record
	mu    sync.Mutex
	slots []*slot // every slot made; guarded by mu
	noAck error   // the error of a record that outlived cfg.DeliveryTimeout
}

// take returns a free slot, growing the pool when none is free, or nil if
// ctx ended while it waited at the cap.
func (p *producer) take(ctx context.Context) *slot {
	select {
	case s := <-p.free:
		return s
	default:
	}
	p.mu.Lock()
	if n := len(p.slots); n < p.slotCap() {
		chunk := make([]slot, min(slotChunk, p.slotCap()))
		for i := range chunk {
			s := &chunk[i]
			s.cb = func(r *client.Record, err error) { p.done(s, r, err) }
			p.slots = append(p.slots, s)
			if i > 0 {
				p.free <- s
			}
		}
		p.mu.Unlock()
		return &chunk[0]
	}
	p.mu.Unlock()
	select {
	case s := <-p.free:
		return s
	case <-ctx.Done():
		return nil
	}
}

// done is a record's callback: it counts the outcome unless the record
// was already counted as expired, and frees the slot.
func (p *producer) done(s *slot, r *client.Record, err error) {
	if st := s.state.Load(); st != slotExpired && s.state.CompareAndSwap(st, slotFree) {
		if err != nil {
			p.t.fail(p.idx, err)
		} else {
			c := &p.t.workers[p.idx]
			c.records.Add(1)
			c.bytes.Add(int64(len(r.Key) + len(r.Value)))
			p.lat.Record(time.Since(r.Timestamp))
		}
	} else {
		s.state.Store(slotFree)
	}
	p.free <- s // never blocks: the channel holds every slot
}

// expire counts every pending record whose deadline has passed as failed,
// once; its slot stays taken until its callback. It returns the latest
// deadline still pending (0: none).
func (p *producer) expire(now time.Time) (latest int64) {
	p.mu.Lock()
	slots := p.slots
	p.mu.Unlock()
	ns := now.UnixNano()
	for _, s := range slots {
		st := s.state.Load()
		if st <= 0 {
			continue
		}
		if st <= ns && s.state.CompareAndSwap(st, slotExpired) {
			p.t.fail(p.idx, p.noAck)
			continue
		}
		latest = max(latest, st)
	}
	return latest
}

// watch runs expire every tick until stop is closed.
func (p *producer) watch(stop <-chan struct{}) {
	tick := time.NewTicker(expireTick(p.cfg.DeliveryTimeout))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			p.expire(now)
		}
	}
}

// expireTick is how often pending records are checked against their
// deadline: a tenth of the timeout, within [10ms, 1s].
func expireTick(timeout time.Duration) time.Duration {
	return min(max(timeout/10, 10*time.Millisecond), time.Second)
}

func (p *producer) run(ctx context.Context, start time.Time) {
	value := make([]byte, p.cfg.RecordSize)
	rng := rand.New(rand.NewPCG(uint64(p.idx), uint64(start.UnixNano())))
	for i := range value {
		value[i] = 'A' + byte(rng.IntN(26))
	}
	p.free = make(chan *slot, p.slotCap())
	p.noAck = fmt.Errorf("no acknowledgement within %v (delivery timeout)", p.cfg.DeliveryTimeout)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		p.watch(stop)
	}()
	// Waiting for a slot ends with the run.
	tctx := ctx
	if !p.deadline.IsZero() {
		var cancel context.CancelFunc
		tctx, cancel = context.WithDeadline(ctx, p.deadline)
		defer cancel()
	}
	var key []byte
	for i := int64(0); p.count < 0 || i < p.count; i++ {
		if i%1024 == 0 && ctx.Err() != nil {
			break
		}
		s := p.take(tctx)
		if s == nil {
			break
		}
		now := time.Now()
		ts := now
		if p.interval > 0 {
			ts = start.Add(time.Duration(i) * p.interval)
			if d := ts.Sub(now); d > 0 {
				time.Sleep(d) // at most one interval: never ahead of schedule by more
				now = time.Now()
			}
		}
		if !p.deadline.IsZero() && !now.Before(p.deadline) {
			p.free <- s
			break
		}
		if p.cfg.KeyCount > 0 {
			key = strconv.AppendInt(append(key[:0], "key-"...), i%int64(p.cfg.KeyCount), 10)
		}
		if p.e2e {
			binary.BigEndian.PutUint64(value, uint64(ts.UnixNano()))
		}
		s.rec = client.Record{Topic: p.cfg.Topic, Key: key, Value: value, Timestamp: ts}
		s.state.Store(now.Add(p.cfg.DeliveryTimeout).UnixNano())
		p.cl.Produce(ctx, &s.rec, s.cb)
	}
	// Wait for every callback, or until every record still pending has
	// passed its deadline and been counted as failed: a stalled partition
	// must not hold the report back. Records whose callback has not run
	// still belong to the client, which is closed after the run.
	close(stop)
	<-watched
	if latest := p.expire(time.Now()); latest > 0 {
		fctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, latest))
		_ = p.cl.Flush(fctx)
		cancel()
	}
	p.expire(time.Now().Add(time.Millisecond))
}

// consumer is one consuming client's loop.
type consumer struct {
	cl   *client.Client
	idx  int
	t    *tally
	lat  *Histogram             // e2e latency; nil: not measured
	ends map[int32]int64        // partition → offset to read up to; nil: no end
	next map[int32]int64        // partition → next offset; set with ends
	seen func(r *client.Record) // called for every record, if set (Verify)
}

// loop polls until ctx ends or done, called after every Poll that returned
// records, reports true. A partition fetch error ends it with that error.
func (w *consumer) loop(ctx context.Context, done func() bool) error {
	if w.ends != nil && w.reachedEnds() {
		return nil
	}
	c := &w.t.workers[w.idx]
	for {
		fs, err := w.cl.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if len(fs.Errors) > 0 {
			for _, fe := range fs.Errors {
				w.t.fail(w.idx, fe)
			}
			return fs.Errors[0]
		}
		now := time.Now().UnixNano()
		var nbytes int64
		for i, r := range fs.Records {
			nbytes += int64(len(r.Key) + len(r.Value))
			if w.lat != nil && len(r.Value) >= e2eHeader {
				w.lat.Record(time.Duration(now - int64(binary.BigEndian.Uint64(r.Value))))
			}
			// A partition's records come in order and together: its
			// position is its last record's, noted once per run of them
			// rather than once per record.
			if w.ends != nil && (i+1 == len(fs.Records) || fs.Records[i+1].Partition != r.Partition) {
				w.next[r.Partition] = r.Offset + 1
			}
			if w.seen != nil {
				w.seen(r)
			}
		}
		n := len(fs.Records)
		if w.seen == nil {
			// Nothing of the records is kept: their memory goes back to
			// the client for the next fetches.
			fs.Release()
		}
		c.records.Add(int64(n))
		c.bytes.Add(nbytes)
		if n > 0 && done() {
			return nil
		}
	}
}

// reachedEnds reports whether every partition has been read to its end.
func (w *consumer) reachedEnds() bool {
	for p, end := range w.ends {
		if w.next[p] < end {
			return false
		}
	}
	return true
}
