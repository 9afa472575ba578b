package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/client"
)

// WorkloadConfig is what Workload runs.
type WorkloadConfig struct {
	Topic      string
	Producers  int     // each its own client; default 3
	Rate       float64 // records/s over all producers; default 1000
	RecordSize int     // value bytes; default 100
	// MaxRecords bounds the records each producer sends, whatever the
	// time; default Rate × 1 hour / Producers.
	MaxRecords int64
	// Plain: the producers are not idempotent (client.Idempotent(false)):
	// a plain producer cannot resend a batch whose outcome it does not
	// know, so every indeterminate answer stays an unknown outcome.
	Plain bool
}

func (c WorkloadConfig) withDefaults() WorkloadConfig {
	if c.Producers <= 0 {
		c.Producers = 3
	}
	if c.Rate <= 0 {
		c.Rate = 1000
	}
	if c.RecordSize <= 0 {
		c.RecordSize = 100
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = int64(c.Rate * 3600 / float64(c.Producers))
	}
	return c
}

// Ack is one acknowledgement: when it came (since the workload started),
// for which partition, and how long after the record's scheduled send.
type Ack struct {
	At        time.Duration
	Partition int32
	Latency   time.Duration
}

// Outcome is everything a workload observed: the History for bench.Check,
// every acknowledgement's time, the ack latencies, how long producers ran,
// and the errors the live reader met (fetch errors it recovered from).
type Outcome struct {
	History     bench.History
	Acks        []Ack
	Latency     *bench.Histogram
	Producing   time.Duration
	FetchErrors int
	// SendErrors counts the sends that ended unknown or failed, by
	// producer and error message: which leader a stall was on, and why.
	SendErrors map[string]int
}

// Workload is verifiable producers (acks=all, values unique in the run,
// every outcome recorded with its time) and one live reader, running
// against a cluster until Finish.
type Workload struct {
	cfg   WorkloadConfig
	c     *Cluster
	start time.Time
	npart int32

	stop  chan struct{}
	prods []*timedProducer
	pwg   sync.WaitGroup
	live  *bench.Reader
	lcl   *client.Client // the live reader's
	lwg   sync.WaitGroup
	lctx  context.Context
	lstop context.CancelFunc
	lerr  error
}

// StartWorkload starts the producers and the live reader on an existing,
// empty topic.
func StartWorkload(ctx context.Context, c *Cluster, cfg WorkloadConfig) (*Workload, error) {
	cfg = cfg.withDefaults()
	w := &Workload{cfg: cfg, c: c, stop: make(chan struct{})}
	admin, err := c.Client(ctx, "chaos-workload-admin")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	d, err := admin.DescribeTopic(ctx, cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("chaos: workload: %w", err)
	}
	w.npart = int32(len(d.Partitions))
	lcl, err := c.Client(ctx, "chaos-live-reader")
	if err != nil {
		return nil, err
	}
	w.lcl, w.live = lcl, newTailReader(lcl, cfg.Topic, make([]int64, w.npart))
	for i := range cfg.Producers {
		var opts []client.Opt
		if cfg.Plain {
			opts = append(opts, client.Idempotent(false))
		}
		cl, err := c.Client(ctx, "chaos-producer-"+strconv.Itoa(i), opts...)
		if err != nil {
			w.closeClients()
			return nil, err
		}
		w.prods = append(w.prods, &timedProducer{cl: cl, idx: i, lat: bench.NewHistogram()})
	}
	w.start = time.Now()
	w.lctx, w.lstop = context.WithCancel(context.Background())
	w.lwg.Add(1)
	go func() {
		defer w.lwg.Done()
		w.lerr = w.live.Run(w.lctx)
	}()
	run := strconv.FormatUint(rand.Uint64()&0xffffff, 16)
	interval := time.Duration(float64(time.Second) * float64(cfg.Producers) / cfg.Rate)
	for _, p := range w.prods {
		w.pwg.Add(1)
		go func() {
			defer w.pwg.Done()
			p.run(&w.cfg, run, w.start, interval, w.stop)
		}()
	}
	return w, nil
}

// Since is the time since the workload started, on the clock of Ack.At.
func (w *Workload) Since() time.Duration { return time.Since(w.start) }

// AcksAfter is how many records of partition p were acknowledged after
// since (on the clock of Since).
func (w *Workload) AcksAfter(p int32, since time.Duration) int {
	n := 0
	for _, pr := range w.prods {
		pr.mu.Lock()
		for _, a := range pr.acks {
			if a.Partition == p && a.At > since {
				n++
			}
		}
		pr.mu.Unlock()
	}
	return n
}

// Finish stops the producers, waits for every outcome, reads the end
// offsets, lets the live reader reach them, and reads every partition
// again from its start with a fresh client. The cluster must be healed.
func (w *Workload) Finish(ctx context.Context) (Outcome, error) {
	close(w.stop)
	w.pwg.Wait()
	var o Outcome
	o.Producing = time.Since(w.start)
	o.Latency = bench.NewHistogram()
	o.SendErrors = map[string]int{}
	o.History.Idempotent = len(w.prods) > 0
	for _, p := range w.prods {
		// Idempotent producers (R13): a duplicate fails the check.
		o.History.Idempotent = o.History.Idempotent && p.cl.Idempotent()
		o.History.ResolvedUnknown += p.cl.ResolvedUnknown()
		for msg, n := range p.errs {
			o.SendErrors[fmt.Sprintf("producer %d: %s", p.idx, msg)] += n
		}
		o.History.Sends = append(o.History.Sends, p.sends...)
		o.Acks = append(o.Acks, p.acks...)
		o.Latency.Merge(p.lat)
	}
	defer w.closeClients()

	cl, err := w.c.Client(ctx, "chaos-final-reader")
	if err != nil {
		w.lstop()
		w.lwg.Wait()
		return o, err
	}
	defer cl.Close()
	var starts, ends []int64
	err = Poll(ctx, 60*time.Second, "start and end offsets", func(ctx context.Context) error {
		var err error
		if starts, err = offsets(ctx, cl, w.cfg.Topic, client.AtStart()); err != nil {
			return err
		}
		ends, err = offsets(ctx, cl, w.cfg.Topic, client.AtEnd())
		return err
	})
	if err != nil {
		w.lstop()
		w.lwg.Wait()
		return o, err
	}
	o.History.Ends = ends
	w.live.SetEnds(ends)
	drain := time.AfterFunc(60*time.Second, w.lstop)
	w.lwg.Wait()
	drain.Stop()
	o.History.Live = [][]bench.Read{w.live.Reads()}
	o.FetchErrors = w.live.FetchErrors()
	var errs []error
	if w.lerr != nil {
		errs = append(errs, fmt.Errorf("live reader: %w", w.lerr))
	}
	if !w.live.Done() {
		errs = append(errs, fmt.Errorf("live reader: did not reach the end offsets %v in 60 s (at %v)", ends, w.live.Position()))
	}

	fr := newTailReader(cl, w.cfg.Topic, starts)
	fr.SetEnds(ends)
	fctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	if err := fr.Run(fctx); err != nil {
		errs = append(errs, fmt.Errorf("final read: %w", err))
	}
	o.History.Final = fr.Reads()
	if !fr.Done() {
		errs = append(errs, fmt.Errorf("final read: did not reach the end offsets %v (at %v)", ends, fr.Position()))
	}
	return o, errors.Join(errs...)
}

func (w *Workload) closeClients() {
	for _, p := range w.prods {
		p.cl.Close()
	}
	w.lcl.Close()
}

// maxFetchErrors bounds the partition errors a chaos reader recovers from
// before it gives up: a reader that keeps failing is a finding, not
// something to retry for ever.
const maxFetchErrors = 10_000

// newTailReader is bench's verify reader, made to recover from partition
// errors: under faults a fetch fails now and then, and the partition
// resumes where it was.
func newTailReader(cl *client.Client, topic string, starts []int64) *bench.Reader {
	rd := bench.NewReader(cl, topic, starts)
	rd.MaxFetchErrors = maxFetchErrors
	return rd
}

// offsets is every partition's offset at, or the first partition error.
func offsets(ctx context.Context, cl *client.Client, topic string, at client.Offset) ([]int64, error) {
	pos, err := cl.ListOffsets(ctx, topic, at)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(pos))
	for i, p := range pos {
		if p.Err != nil {
			return nil, fmt.Errorf("partition %d: %w", p.Partition, p.Err)
		}
		out[i] = p.Offset
	}
	return out, nil
}

// timedProducer sends records on a fixed schedule and records each
// outcome, and each acknowledgement's time and latency. Latency counts
// from the scheduled send time, so a stalled cluster is not hidden by the
// producer waiting (no coordinated omission).
type timedProducer struct {
	cl  *client.Client
	idx int
	lat *bench.Histogram

	mu    sync.Mutex
	sends []bench.Send
	acks  []Ack
	errs  map[string]int // unknown and failed sends by message (maxErrorKinds)
}

// maxErrorKinds bounds the distinct messages a producer counts; more go
// under one key.
const maxErrorKinds = 32

// countError counts a send that ended with err. p.mu is held.
func (p *timedProducer) countError(err error) {
	if p.errs == nil {
		p.errs = map[string]int{}
	}
	msg := err.Error()
	if _, ok := p.errs[msg]; !ok && len(p.errs) >= maxErrorKinds {
		msg = "(other messages)"
	}
	p.errs[msg]++
}

func (p *timedProducer) run(cfg *WorkloadConfig, run string, start time.Time, interval time.Duration, stop <-chan struct{}) {
	var wg sync.WaitGroup
	// Produce blocks only on the client's memory limit; stop ends that
	// too, failing what waited as not written.
	pctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-pctx.Done():
		}
	}()
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for seq := int64(0); seq < cfg.MaxRecords; seq++ {
		sched := start.Add(time.Duration(seq) * interval)
		if d := time.Until(sched); d > 0 {
			select {
			case <-stop:
			case <-time.After(d):
			}
		}
		if stopped() {
			break
		}
		p.send(pctx, cfg, run, seq, start, sched, &wg)
	}
	// Every callback runs: the client's delivery timeout bounds the wait.
	_ = p.cl.Flush(context.Background())
	wg.Wait()
}

func (p *timedProducer) send(ctx context.Context, cfg *WorkloadConfig, run string, seq int64, start, sched time.Time, wg *sync.WaitGroup) {
	value := bench.VerifyValue(run, p.idx, seq, cfg.RecordSize)
	p.mu.Lock()
	p.sends = append(p.sends, bench.Send{Producer: p.idx, Seq: seq, Value: string(value)})
	p.mu.Unlock()
	wg.Add(1)
	p.cl.Produce(ctx, &client.Record{Topic: cfg.Topic, Value: value}, func(r *client.Record, err error) {
		defer wg.Done()
		now := time.Now()
		p.mu.Lock()
		defer p.mu.Unlock()
		s := &p.sends[seq]
		switch {
		case err == nil:
			s.Outcome, s.Partition, s.Offset = bench.Acked, r.Partition, r.Offset
			p.acks = append(p.acks, Ack{At: now.Sub(start), Partition: r.Partition, Latency: now.Sub(sched)})
			p.lat.Record(now.Sub(sched))
		case client.IsIndeterminate(err):
			s.Outcome = bench.Unknown
			p.countError(err)
		default:
			s.Outcome = bench.Failed
			p.countError(err)
		}
	})
}
