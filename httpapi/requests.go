package httpapi

import (
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// The request metrics: what Metrics.Request does once per request, on the
// broker's connection goroutines (both listeners' requests come here, the
// Kafka listener's through broker.RequestTiming.Listener), and how
// /metrics and the console read it.
//
// A request adds to one counter of sluice_requests_total and observes one
// series of sluice_request_duration_seconds per stage. Every series a
// request touches is resolved before it comes (the sluice listener's APIs
// when the Metrics are made, a front end's API at its first request), so
// a request costs no label hashing and no lock: an index by API key (the
// sluice listener) or one lookup in a map that is never written once
// published (another front end), one counter add, and per stage a bucket
// search over integer nanoseconds, an add to the bucket and one to the
// sum. The stage histograms are this package's (stageHistograms) rather
// than prometheus.Histogram, whose Observe does four atomic operations in
// three cache lines or more per histogram (a count-and-hot-index add, a
// bucket add, a compare-and-swap of the sum, a count add): they export
// the same series, buckets and sums at scrape time.
// BenchmarkRequestObserved measures a request's cost, BENCHMARKS.md has
// the figures.

// latencyBounds are latencyBuckets in nanoseconds: a duration d is in
// bucket i when d <= latencyBounds[i] (and above the bound before), as
// prometheus.Histogram places d.Seconds() (TestStageHistogramsMatchPrometheus).
var latencyBounds = func() (b [len(latencyBuckets)]time.Duration) {
	for i, s := range latencyBuckets {
		b[i] = time.Duration(math.Round(s * float64(time.Second)))
	}
	return b
}()

// stageHistograms are one API's four stage histograms (stageNames). Each
// count and sum is updated on its own, so a scrape during an observation
// may see its bucket counted and not yet its sum; the count of a stage is
// the sum of its buckets, never out of step with them.
type stageHistograms struct {
	// sums are each stage's sum of observations in seconds, as float64
	// bits, as prometheus.Histogram keeps it.
	sums [len(stageNames)]atomic.Uint64
	// counts[b][s] counts stage s's observations in bucket b (not
	// cumulative); the last bucket is +Inf. Bucket first, so that the
	// four observations of a request, most in the first buckets, share a
	// cache line or two.
	counts [len(latencyBuckets) + 1][len(stageNames)]atomic.Uint64
}

// observe adds d to stage's histogram.
func (h *stageHistograms) observe(stage int, d time.Duration) {
	b := 0
	for b < len(latencyBounds) && d > latencyBounds[b] {
		b++
	}
	h.counts[b][stage].Add(1)
	sum := &h.sums[stage]
	for {
		old := sum.Load()
		if sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d.Seconds())) {
			return
		}
	}
}

// stageSnapshot is one stage's histogram as read at one time.
type stageSnapshot struct {
	count uint64
	sum   float64
	// cumulative[i] counts the observations at or below latencyBuckets[i].
	cumulative [len(latencyBuckets)]uint64
}

// read returns stage's histogram.
func (h *stageHistograms) read(stage int) stageSnapshot {
	var s stageSnapshot
	for b := range h.counts {
		s.count += h.counts[b][stage].Load()
		if b < len(s.cumulative) {
			s.cumulative[b] = s.count
		}
	}
	s.sum = math.Float64frombits(h.sums[stage].Load())
	return s
}

// apiMetrics are one (listener, API)'s series, resolved once.
type apiMetrics struct {
	listener string
	name     string
	created  time.Time // exported as the histograms' created timestamp
	ok       prometheus.Counter
	stages   stageHistograms
}

// frontKey names a front end's API.
type frontKey struct{ listener, name string }

// requestMetrics are the request series of every listener's APIs.
type requestMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.Desc
	// bySluiceKey are the sluice listener's APIs by key; nil for a key it
	// does not serve (other). Read-only after newRequestMetrics.
	bySluiceKey []*apiMetrics
	other       *apiMetrics
	// fronts are the other front ends' APIs, made on first use (each front
	// end names its APIs from a fixed set). A published map is never
	// written: a new API's series are added to a copy, under frontMu.
	fronts  atomic.Pointer[map[frontKey]*apiMetrics]
	frontMu sync.Mutex
}

func newRequestMetrics() *requestMetrics {
	r := &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_requests_total",
			Help: "Requests answered, by listener (sluice, kafka), API and error code (the uniform error response's, or a produce's or fetch's first partition error).",
		}, []string{"listener", "api", "code"}),
		duration: prometheus.NewDesc("sluice_request_duration_seconds",
			"Time requests spent in each stage, by listener (sluice, kafka) and API: queue (read, waiting for the handler), local (decode, append or read, encode), wait (ISR, fsync or long-poll), send (until handed to the socket).",
			[]string{"listener", "api", "stage"}, nil),
	}
	apis := protocol.SupportedAPIs()
	maxKey := protocol.APIKey(0)
	for _, a := range apis {
		maxKey = max(maxKey, a.Key)
	}
	r.bySluiceKey = make([]*apiMetrics, int(maxKey)+1)
	for _, a := range apis {
		r.bySluiceKey[a.Key] = r.newAPI(listenerSluice, a.Key.String())
	}
	r.other = r.newAPI(listenerSluice, "other")
	r.fronts.Store(&map[frontKey]*apiMetrics{})
	return r
}

func (r *requestMetrics) newAPI(listener, name string) *apiMetrics {
	return &apiMetrics{listener: listener, name: name, created: time.Now(),
		ok: r.requests.WithLabelValues(listener, name, protocol.NoError.String())}
}

// api returns the series t is counted in.
func (r *requestMetrics) api(t *broker.RequestTiming) *apiMetrics {
	if t.Listener != "" {
		return r.front(t.Listener, t.APIName)
	}
	if k := int(t.API); k >= 0 && k < len(r.bySluiceKey) && r.bySluiceKey[k] != nil {
		return r.bySluiceKey[k]
	}
	return r.other
}

// front returns the series of a front end's API, made on first use.
func (r *requestMetrics) front(listener, name string) *apiMetrics {
	k := frontKey{listener, name}
	if a := (*r.fronts.Load())[k]; a != nil {
		return a
	}
	r.frontMu.Lock()
	defer r.frontMu.Unlock()
	if a := (*r.fronts.Load())[k]; a != nil {
		return a
	}
	next := maps.Clone(*r.fronts.Load())
	a := r.newAPI(listener, name)
	next[k] = a
	r.fronts.Store(&next)
	return a
}

// request counts a request and observes its stages.
func (r *requestMetrics) request(t *broker.RequestTiming) {
	a := r.api(t)
	if t.Code == protocol.NoError {
		a.ok.Inc()
	} else {
		r.requests.WithLabelValues(a.listener, a.name, t.Code.String()).Inc()
	}
	q, l, w, s := t.Stages()
	a.stages.observe(0, q)
	a.stages.observe(1, l)
	a.stages.observe(2, w)
	a.stages.observe(3, s)
}

// list is every API's series: the sluice listener's, the unknown APIs'
// ("other") included, then those of the other front ends.
func (r *requestMetrics) list() []*apiMetrics {
	fronts := *r.fronts.Load()
	out := make([]*apiMetrics, 0, len(r.bySluiceKey)+1+len(fronts))
	for _, a := range r.bySluiceKey {
		if a != nil {
			out = append(out, a)
		}
	}
	out = append(out, r.other)
	for _, a := range fronts {
		out = append(out, a)
	}
	return out
}

// Describe and Collect make requestMetrics the collector of
// sluice_requests_total and sluice_request_duration_seconds.
func (r *requestMetrics) Describe(ch chan<- *prometheus.Desc) {
	r.requests.Describe(ch)
	ch <- r.duration
}

// Collect sends the request counters and each API's stage histograms.
func (r *requestMetrics) Collect(ch chan<- prometheus.Metric) {
	r.requests.Collect(ch)
	for _, a := range r.list() {
		for i, stage := range stageNames {
			s := a.stages.read(i)
			buckets := make(map[float64]uint64, len(latencyBuckets))
			for j, ub := range latencyBuckets {
				buckets[ub] = s.cumulative[j]
			}
			ch <- prometheus.MustNewConstHistogramWithCreatedTimestamp(r.duration, s.count, s.sum, buckets, a.created,
				a.listener, a.name, stage)
		}
	}
}
