package bench

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Report is the outcome of a workload. Records and Bytes count what
// succeeded (acknowledged, or consumed); Bytes are key and value bytes, not
// the wire's. MB is 10^6 bytes.
type Report struct {
	Workload      string   `json:"workload"`
	Records       int64    `json:"records"`
	Bytes         int64    `json:"bytes"`
	Errors        int64    `json:"errors"`
	Seconds       float64  `json:"seconds"`
	RecordsPerSec float64  `json:"records_per_sec"`
	MBPerSec      float64  `json:"mb_per_sec"`
	Latency       *Latency `json:"latency,omitempty"` // nil when the workload measures none
	// FirstError is the first failure seen, if any, for the reader to act on.
	FirstError string `json:"first_error,omitempty"`
}

// newReport computes the rates of records and bytes over elapsed.
func newReport(workload string, records, bytes, errs int64, elapsed time.Duration) *Report {
	r := &Report{Workload: workload, Records: records, Bytes: bytes, Errors: errs, Seconds: elapsed.Seconds()}
	if s := elapsed.Seconds(); s > 0 {
		r.RecordsPerSec = float64(records) / s
		r.MBPerSec = float64(bytes) / s / 1e6
	}
	return r
}

// WriteText writes the report for people: a throughput line, then the
// latency line when there is one.
func (r *Report) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s: %d records, %.1f MB in %.2fs: %.0f records/s, %.2f MB/s, %d errors\n",
		r.Workload, r.Records, float64(r.Bytes)/1e6, r.Seconds, r.RecordsPerSec, r.MBPerSec, r.Errors)
	if err == nil && r.Latency != nil {
		l := r.Latency
		_, err = fmt.Fprintf(w, "latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f over %d)\n",
			l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.MeanMs, l.Count)
	}
	if err == nil && r.FirstError != "" {
		_, err = fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
	return err
}

// counters are one worker's running totals, read by the progress line
// while the worker adds to them. Padded so that workers on different cores
// do not share a cache line.
type counters struct {
	records atomic.Int64
	bytes   atomic.Int64
	errors  atomic.Int64
	_       [40]byte
}

// tally holds the counters of every worker of a run and its first error.
type tally struct {
	workers  []counters
	errOnce  sync.Once
	firstErr atomic.Value // string
}

func newTally(n int) *tally { return &tally{workers: make([]counters, n)} }

// fail counts an error against worker i and keeps the first one.
func (t *tally) fail(i int, err error) {
	t.workers[i].errors.Add(1)
	t.errOnce.Do(func() { t.firstErr.Store(err.Error()) })
}

func (t *tally) sum() (records, bytes, errs int64) {
	for i := range t.workers {
		records += t.workers[i].records.Load()
		bytes += t.workers[i].bytes.Load()
		errs += t.workers[i].errors.Load()
	}
	return records, bytes, errs
}

// report turns the totals into a Report.
func (t *tally) report(workload string, elapsed time.Duration, lat *Histogram) *Report {
	rec, b, e := t.sum()
	r := newReport(workload, rec, b, e, elapsed)
	if lat != nil {
		l := lat.Summary()
		r.Latency = &l
	}
	if s, ok := t.firstErr.Load().(string); ok {
		r.FirstError = s
	}
	return r
}

// progress rewrites a status line on w every interval until stop. A nil
// w makes a progress that prints nothing.
type progress struct {
	stopc chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// startProgress starts the progress line of a run that began at start.
func startProgress(w io.Writer, label string, t *tally, start time.Time, interval time.Duration) *progress {
	p := &progress{stopc: make(chan struct{})}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		var lastRec, lastBytes int64
		last := start
		for {
			select {
			case <-p.stopc:
				fmt.Fprint(w, "\n")
				return
			case now := <-tick.C:
				rec, b, errs := t.sum()
				dt := now.Sub(last).Seconds()
				fmt.Fprintf(w, "\r%s: %6.1fs  %10.0f records/s  %8.2f MB/s  %d records  %d errors   ",
					label, now.Sub(start).Seconds(), float64(rec-lastRec)/dt, float64(b-lastBytes)/dt/1e6, rec, errs)
				lastRec, lastBytes, last = rec, b, now
			}
		}
	}()
	return p
}

// stop ends the progress line and waits for its goroutine. Idempotent.
func (p *progress) stop() {
	p.once.Do(func() { close(p.stopc) })
	p.wg.Wait()
}
