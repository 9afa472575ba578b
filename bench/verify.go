package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/sluicemq/sluice/client"
)

// DefaultVerifyRecords is how many records Verify sends when cfg sets
// neither Records nor Duration.
const DefaultVerifyRecords = 20_000

// Verify runs a verifiable workload and returns everything it observed,
// for Check to judge:
//
//   - cfg.Producers producers send records with unique values (a run id,
//     the producer and its sequence number, padded to cfg.RecordSize), and
//     record each outcome: acknowledged with partition and offset, failed
//     for sure, or unknown (client.IsIndeterminate).
//   - cfg.Consumers consumers each read every partition while the
//     producers run, until they reach the end offsets the partitions have
//     once the producers are done.
//   - A final read takes every partition from its log start to that end.
//
// Every read retries retriable failures with fresh metadata, each step
// for at most cfg.ReadTimeout (see Config.ReadTimeout). A final read that
// could not complete — the end offsets could not be listed, a partition
// could not be read to its end — is said in History.ReadBackError, and
// Check then calls nothing lost.
//
// The producers must use acks=all (the client's default; cfg.Producer
// should not change it). The topic must be empty, or absent with
// cfg.Create: every record in it must be one of this run's. cfg.Rate paces
// the producers as in Produce. The error is about running the workload:
// with no History.Sends, the run did not start; otherwise it joins every
// read that failed or did not complete (a live consumer's, the final
// read's). What the cluster did wrong is for Check.
func Verify(ctx context.Context, cfg Config) (History, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return History{}, err
	}
	if cfg.Records == 0 && cfg.Duration == 0 {
		cfg.Records = DefaultVerifyRecords
	}
	prods, err := openProducers(ctx, &cfg)
	if err != nil {
		return History{}, err
	}
	defer closeAll(prods)
	nparts, err := cfg.prepareTopic(ctx, prods[0])
	if err != nil {
		return History{}, err
	}
	starts, err := listOffsets(ctx, prods[0], cfg.Topic, nparts, client.AtStart(), cfg.ReadTimeout)
	if err != nil {
		return History{}, err
	}
	ends, err := endOffsets(ctx, prods[0], cfg.Topic, nparts, cfg.ReadTimeout)
	if err != nil {
		return History{}, err
	}
	for p := range starts {
		if starts[p] != ends[p] {
			return History{}, fmt.Errorf("bench: verify: topic %s is not empty (partition %d holds offsets %d to %d): verify needs a topic of its own",
				cfg.Topic, p, starts[p], ends[p])
		}
	}

	// Live consumers run until the producers are done and they have read
	// to the end offsets as of then.
	live := make([]*Reader, cfg.Consumers)
	for i := range live {
		cl, err := cfg.newClient(ctx, fmt.Sprintf("sluice-verify-consumer-%d", i), cfg.Consumer)
		if err != nil {
			for _, rd := range live[:i] {
				rd.cl.Close()
			}
			return History{}, err
		}
		live[i] = NewReader(cl, cfg.Topic, starts)
	}
	defer func() {
		for _, rd := range live {
			rd.cl.Close()
		}
	}()
	lctx, stopLive := context.WithCancel(ctx)
	defer stopLive()
	var lwg sync.WaitGroup
	lerrs := make([]error, len(live))
	for i, rd := range live {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			lerrs[i] = rd.Run(lctx)
		}()
	}

	vr := startVerifyProducers(ctx, &cfg, prods, "verify (acknowledged)")
	h := History{Idempotent: true, Sends: vr.wait()}
	for _, cl := range prods {
		h.Idempotent = h.Idempotent && cl.Idempotent()
		h.ResolvedUnknown += cl.ResolvedUnknown()
	}
	if cfg.AfterProduce != nil {
		cfg.AfterProduce()
	}

	// The end offsets as of now, with the client the producers used: its
	// metadata may be stale by now (a leader moved after the last
	// produce), which the lookup's retries get past.
	ends, err = endOffsets(ctx, prods[0], cfg.Topic, nparts, cfg.ReadTimeout)
	var drain *time.Timer
	if err != nil {
		stopLive()
		err = fmt.Errorf("end offsets after the producers: %w", err)
		h.ReadBackError = err.Error()
	} else {
		h.Ends = ends
		for _, rd := range live {
			rd.SetEnds(ends)
		}
		drain = time.AfterFunc(cfg.ReadTimeout, stopLive)
	}
	lwg.Wait()
	if drain != nil {
		drain.Stop()
	}
	var errs []error
	for i, rd := range live {
		h.Live = append(h.Live, rd.Reads())
		if lerrs[i] != nil {
			errs = append(errs, fmt.Errorf("live consumer %d: %w", i, lerrs[i]))
		}
	}
	if err != nil {
		return h, errors.Join(append(errs, err)...)
	}

	h.Final, err = finalRead(ctx, &cfg, nparts, ends)
	if err != nil {
		h.ReadBackError = err.Error()
		errs = append(errs, err)
	}
	return h, errors.Join(errs...)
}

// finalRead reads every partition from its log start to ends with a
// client of its own, for at most cfg.ReadTimeout once it has the start
// offsets. The error says why it did not complete; the reads are those
// made until then.
func finalRead(ctx context.Context, cfg *Config, nparts int32, ends []int64) ([]Read, error) {
	cl, err := cfg.newClient(ctx, "sluice-verify-final", cfg.Consumer)
	if err != nil {
		return nil, fmt.Errorf("final read: %w", err)
	}
	defer cl.Close()
	first, err := listOffsets(ctx, cl, cfg.Topic, nparts, client.AtStart(), cfg.ReadTimeout)
	if err != nil {
		return nil, fmt.Errorf("final read: %w", err)
	}
	fr := NewReader(cl, cfg.Topic, first)
	fr.SetEnds(ends)
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, cfg.ReadTimeout)
	defer cancel()
	err = fr.Run(fctx)
	switch {
	case err != nil:
		err = fmt.Errorf("final read: %w", err)
	case !fr.Done():
		err = fmt.Errorf("final read: at offsets %v, short of the end offsets %v, after %v",
			fr.Position(), ends, time.Since(start).Round(time.Millisecond))
	}
	return fr.Reads(), err
}

// verifyRun is the verify producers of a run, one per client, with a
// progress line.
type verifyRun struct {
	done  chan struct{} // closed when every producer is done
	prog  *progress
	sends [][]Send
}

// startVerifyProducers starts the verify producers (cfg.Records in all,
// or for cfg.Duration).
func startVerifyProducers(ctx context.Context, cfg *Config, prods []*client.Client, label string) *verifyRun {
	t := newTally(len(prods))
	start := time.Now()
	vr := &verifyRun{done: make(chan struct{}), prog: startProgress(cfg.Progress, label, t, start, progressInterval),
		sends: make([][]Send, len(prods))}
	run := strconv.FormatUint(rand.Uint64()&0xffffff, 16)
	var wg sync.WaitGroup
	for i, cl := range prods {
		vp := &verifyProducer{cfg: cfg, cl: cl, idx: i, t: t, runID: run, count: share(cfg.Records, i, len(prods))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			vr.sends[i] = vp.run(ctx, start)
		}()
	}
	go func() {
		wg.Wait()
		close(vr.done)
	}()
	return vr
}

// wait waits for the producers, stops the progress line and returns
// every send, producer by producer.
func (vr *verifyRun) wait() []Send {
	<-vr.done
	vr.prog.stop()
	var out []Send
	for _, s := range vr.sends {
		out = append(out, s...)
	}
	return out
}

// verifyProducer sends records with unique values and records each
// outcome. It allocates per record (a value and a callback): it checks,
// it does not measure.
type verifyProducer struct {
	cfg   *Config
	cl    *client.Client
	idx   int
	t     *tally
	runID string
	count int64
}

func (p *verifyProducer) run(ctx context.Context, start time.Time) []Send {
	var (
		mu    sync.Mutex
		sends []Send
		wg    sync.WaitGroup
	)
	var interval time.Duration
	if p.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(p.cfg.Producers) / p.cfg.Rate)
	}
	c := &p.t.workers[p.idx]
	for seq := int64(0); p.cfg.Duration > 0 || seq < p.count; seq++ {
		if ctx.Err() != nil || (p.cfg.Duration > 0 && time.Since(start) >= p.cfg.Duration) {
			break
		}
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(seq) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		value := VerifyValue(p.runID, p.idx, seq, p.cfg.RecordSize)
		mu.Lock()
		sends = append(sends, Send{Producer: p.idx, Seq: seq, Value: string(value)})
		mu.Unlock()
		wg.Add(1)
		p.cl.Produce(ctx, &client.Record{Topic: p.cfg.Topic, Value: value}, func(r *client.Record, err error) {
			defer wg.Done()
			mu.Lock()
			s := &sends[seq]
			switch {
			case err == nil:
				s.Outcome, s.Partition, s.Offset = Acked, r.Partition, r.Offset
			case client.IsIndeterminate(err):
				s.Outcome = Unknown
			default:
				s.Outcome = Failed
			}
			mu.Unlock()
			if err != nil {
				p.t.fail(p.idx, err)
				return
			}
			c.records.Add(1)
			c.bytes.Add(int64(len(r.Value)))
		})
	}
	_ = p.cl.Flush(context.Background()) // every callback runs; bounded by the delivery timeout
	wg.Wait()
	return sends
}

// VerifyValue is a record value unique in a run: "<run>-p<producer>-s<seq>"
// padded with '.' to size.
func VerifyValue(run string, producer int, seq int64, size int) []byte {
	v := make([]byte, 0, max(size, len(run)+24))
	v = append(v, run...)
	v = append(v, "-p"...)
	v = strconv.AppendInt(v, int64(producer), 10)
	v = append(v, "-s"...)
	v = strconv.AppendInt(v, seq, 10)
	for len(v) < size {
		v = append(v, '.')
	}
	return v
}
