package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/client"
)

// queueBatch is the most records one worker receives at a time.
const queueBatch = 500

// Queue receives and accepts the records of cfg.Topic as members of queue
// group cfg.Group (a new group named after the time when empty), with
// cfg.Consumers workers, each its own client, until every record the
// topic held when the run began is accepted (or cfg.Records records, or
// cfg.Duration). A worker receives up to 500 records at a time and
// accepts them in one batch, sent with its next receive (AcceptAsync), or
// before it with cfg.QueueSyncAccept (AcceptAll). Records and bytes are
// those accepted; the latency is from a receive's start to its
// acceptance's answer.
func Queue(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	group := cfg.Group
	if group == "" {
		group = fmt.Sprintf("sluice-bench-queue-%d", time.Now().UnixNano())
	}
	var cls []*client.Client
	defer func() { closeAll(cls) }()
	var nparts int32
	for i := range cfg.Consumers {
		cl, err := cfg.newClient(ctx, fmt.Sprintf("sluice-bench-queue-%d", i), cfg.Consumer)
		if err != nil {
			return nil, err
		}
		cls = append(cls, cl)
		if i == 0 {
			if nparts, err = cfg.prepareTopic(ctx, cl); err != nil {
				return nil, err
			}
		}
	}
	starts, err := listOffsets(ctx, cls[0], cfg.Topic, nparts, client.AtStart(), cfg.ReadTimeout)
	if err != nil {
		return nil, err
	}
	ends, err := endOffsets(ctx, cls[0], cfg.Topic, nparts, cfg.ReadTimeout)
	if err != nil {
		return nil, err
	}
	var total int64
	for p := range ends {
		total += ends[p] - starts[p]
	}
	if cfg.Records > 0 {
		total = min(total, cfg.Records)
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := newTally(len(cls))
	lat := NewHistogram()
	start := time.Now()
	prog := startProgress(cfg.Progress, "queue", t, start, progressInterval)
	var accepted, last atomic.Int64
	errs := make([]error, len(cls))
	var wg sync.WaitGroup
	var latMu sync.Mutex
	for i, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := cl.QueueGroup(group, cfg.Topic)
			h := NewHistogram()
			defer func() {
				latMu.Lock()
				lat.Merge(h)
				latMu.Unlock()
			}()
			var hmu sync.Mutex // h, from the goroutines waiting for acceptances
			settled := func(err error, ds []*client.Delivery, t0 time.Time) {
				hmu.Lock()
				h.Record(time.Since(t0))
				hmu.Unlock()
				if err != nil {
					// A lease lost to another worker: counted as an error,
					// the record is accepted by the one that has it.
					t.fail(i, err)
					return
				}
				var b int64
				for _, d := range ds {
					b += int64(len(d.Key) + len(d.Value))
				}
				t.workers[i].records.Add(int64(len(ds)))
				t.workers[i].bytes.Add(b)
				last.Store(time.Now().UnixNano())
				if accepted.Add(int64(len(ds))) >= total {
					cancel()
				}
			}
			// AcceptAsync's answers come with the next receive (or on their
			// own), while that receive may still wait for records: one
			// goroutine per acceptance in flight waits for its answer,
			// which always comes (within the client's request timeout).
			var inflight sync.WaitGroup
			defer inflight.Wait()
			for accepted.Load() < total && ctx.Err() == nil {
				t0 := time.Now()
				rctx, rcancel := context.WithTimeout(ctx, cfg.ReadTimeout)
				ds, err := q.Receive(rctx, queueBatch)
				rcancel()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if errors.Is(err, context.DeadlineExceeded) {
						errs[i] = fmt.Errorf("worker %d: no record for %v with %d of %d accepted", i, cfg.ReadTimeout, accepted.Load(), total)
						cancel()
						return
					}
					t.fail(i, err)
					continue
				}
				if cfg.QueueSyncAccept {
					settled(q.AcceptAll(ds), ds, t0)
					continue
				}
				answer := q.AcceptAsync(ds)
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					settled(<-answer, ds, t0)
				}()
			}
		}()
	}
	wg.Wait()
	prog.stop()
	var at time.Time
	if ns := last.Load(); ns != 0 {
		at = time.Unix(0, ns)
	}
	return t.report("queue", sinceOr(start, at), lat), errors.Join(errs...)
}
