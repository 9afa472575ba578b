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
// The producers must use acks=all (the client's default; cfg.Producer
// should not change it). The topic must be empty, or absent with
// cfg.Create: every record in it must be one of this run's. cfg.Rate paces
// the producers as in Produce. The error is about running the workload;
// what the cluster did wrong is for Check.
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
	starts, err := listOffsets(ctx, prods[0], cfg.Topic, nparts, client.AtStart())
	if err != nil {
		return History{}, err
	}
	ends, err := endOffsets(ctx, prods[0], cfg.Topic, nparts)
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

	t := newTally(len(prods))
	start := time.Now()
	prog := startProgress(cfg.Progress, "verify (acknowledged)", t, start, progressInterval)
	run := strconv.FormatUint(rand.Uint64()&0xffffff, 16)
	sends := make([][]Send, len(prods))
	var pwg sync.WaitGroup
	for i, cl := range prods {
		vp := &verifyProducer{cfg: &cfg, cl: cl, idx: i, t: t, runID: run, count: share(cfg.Records, i, len(prods))}
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			sends[i] = vp.run(ctx, start)
		}()
	}
	pwg.Wait()
	prog.stop()

	var h History
	for _, s := range sends {
		h.Sends = append(h.Sends, s...)
	}
	ends, err = endOffsets(ctx, prods[0], cfg.Topic, nparts)
	if err != nil {
		stopLive()
		lwg.Wait()
		return h, err
	}
	h.Ends = ends
	for _, rd := range live {
		rd.SetEnds(ends)
	}
	drain := time.AfterFunc(DrainTimeout, stopLive)
	lwg.Wait()
	drain.Stop()
	for _, rd := range live {
		h.Live = append(h.Live, rd.Reads())
	}
	var errs []error
	for i, e := range lerrs {
		if e != nil {
			errs = append(errs, fmt.Errorf("live consumer %d: %w", i, e))
		}
	}

	// The final read: a fresh client, every partition from its start.
	cl, err := cfg.newClient(ctx, "sluice-verify-final", cfg.Consumer)
	if err != nil {
		return h, errors.Join(append(errs, err)...)
	}
	defer cl.Close()
	first, err := listOffsets(ctx, cl, cfg.Topic, nparts, client.AtStart())
	if err != nil {
		return h, errors.Join(append(errs, err)...)
	}
	fr := NewReader(cl, cfg.Topic, first)
	fr.SetEnds(ends)
	fctx, cancel := context.WithTimeout(ctx, DrainTimeout)
	defer cancel()
	if err := fr.Run(fctx); err != nil {
		errs = append(errs, fmt.Errorf("final read: %w", err))
	}
	h.Final = fr.Reads()
	if !fr.Done() {
		errs = append(errs, fmt.Errorf("final read: did not reach the end offsets %v within %v", ends, DrainTimeout))
	}
	return h, errors.Join(errs...)
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
