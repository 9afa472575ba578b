package httpapi

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicemq/sluice/broker"
)

// BrokerStats is what GET /api/stats answers: this broker's own traffic
// counters and request latency histograms, the values /metrics exports
// (sluice_topic_bytes_in_total and the rest, sluice_request_duration_seconds),
// at a time. Two answers give rates and latency quantiles over the time
// between them, as Prometheus' rate() and histogram_quantile() would; the
// overview charts them. The counters count from the broker's start.
type BrokerStats struct {
	Time   int64 `json:"time"` // Unix milliseconds
	Broker int32 `json:"broker"`
	// BytesIn and the rest sum the topics' counters, but the internal
	// topic's (consumer group commits).
	BytesIn    int64          `json:"bytes_in"`
	BytesOut   int64          `json:"bytes_out"`
	RecordsIn  int64          `json:"records_in"`
	RecordsOut int64          `json:"records_out"`
	Topics     []TopicTraffic `json:"topics"`
	// Buckets are the latency histograms' upper bounds, in seconds; the
	// +Inf bucket is each histogram's count.
	Buckets []float64 `json:"buckets"`
	// Requests has an entry per API this broker has answered requests of,
	// sorted by name.
	Requests []APILatency `json:"requests"`
}

// TopicTraffic is one topic's traffic through the partitions this broker
// leads: bytes and records produced, and sent to consumers.
type TopicTraffic struct {
	Topic      string `json:"topic"`
	Internal   bool   `json:"internal"`
	BytesIn    int64  `json:"bytes_in"`
	BytesOut   int64  `json:"bytes_out"`
	RecordsIn  int64  `json:"records_in"`
	RecordsOut int64  `json:"records_out"`
}

// APILatency is one API's requests on one listener (sluice, kafka): how
// many, and the histogram of each stage, in the order queue, local, wait,
// send.
type APILatency struct {
	Listener string         `json:"listener"`
	API      string         `json:"api"`
	Count    uint64         `json:"count"`
	Stages   []StageLatency `json:"stages"`
}

// StageLatency is one stage's histogram: how many observations, their
// sum in seconds, and the cumulative count at or below each of
// BrokerStats.Buckets.
type StageLatency struct {
	Stage  string   `json:"stage"`
	Count  uint64   `json:"count"`
	Sum    float64  `json:"sum"`
	Counts []uint64 `json:"counts"`
}

func (c *console) getStats(w http.ResponseWriter, _ *http.Request) {
	st, err := c.stats(time.Now())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// stats reads this broker's counters (broker.Stats, as a scrape does) and
// its request histograms (Metrics) at now.
func (c *console) stats(now time.Time) (BrokerStats, error) {
	st := c.src.Stats(false)
	out := BrokerStats{Time: now.UnixMilli(), Broker: st.BrokerID, Topics: make([]TopicTraffic, 0, len(st.Topics)),
		Buckets: latencyBuckets, Requests: []APILatency{}}
	for _, t := range st.Topics {
		tt := TopicTraffic{Topic: t.Topic, Internal: t.Topic == broker.OffsetsTopic,
			BytesIn: t.BytesIn, BytesOut: t.BytesOut, RecordsIn: t.RecordsIn, RecordsOut: t.RecordsOut}
		if !tt.Internal {
			out.BytesIn += t.BytesIn
			out.BytesOut += t.BytesOut
			out.RecordsIn += t.RecordsIn
			out.RecordsOut += t.RecordsOut
		}
		out.Topics = append(out.Topics, tt)
	}
	slices.SortFunc(out.Topics, func(a, b TopicTraffic) int { return cmp.Compare(a.Topic, b.Topic) })
	for _, a := range c.metrics.apiList() {
		l, err := a.latency()
		if err != nil {
			return BrokerStats{}, err
		}
		if l.Count > 0 {
			out.Requests = append(out.Requests, l)
		}
	}
	slices.SortFunc(out.Requests, func(a, b APILatency) int {
		return cmp.Or(cmp.Compare(a.Listener, b.Listener), cmp.Compare(a.API, b.API))
	})
	return out, nil
}

// apiList is every API's series: the sluice listener's, the unknown
// APIs' ("other") included, then those of the other front ends.
func (m *Metrics) apiList() []*apiMetrics {
	out := make([]*apiMetrics, 0, len(m.apis)+1)
	for _, a := range m.apis {
		out = append(out, a)
	}
	out = append(out, m.other)
	m.frontMu.RLock()
	defer m.frontMu.RUnlock()
	for _, byName := range m.fronts {
		for _, a := range byName {
			out = append(out, a)
		}
	}
	return out
}

// latency reads the API's stage histograms. Each stage is observed once
// per request, so the count of any is the API's: it is taken from the
// first (a stage read a moment later may count a request more).
func (a *apiMetrics) latency() (APILatency, error) {
	out := APILatency{Listener: a.listener, API: a.name, Stages: make([]StageLatency, 0, len(a.stages))}
	for i, o := range a.stages {
		var m dto.Metric
		if err := o.(prometheus.Metric).Write(&m); err != nil {
			return APILatency{}, fmt.Errorf("read the %s %s histogram: %w", a.name, stageNames[i], err)
		}
		h := m.GetHistogram()
		if i == 0 {
			out.Count = h.GetSampleCount()
		}
		s := StageLatency{Stage: stageNames[i], Count: h.GetSampleCount(), Sum: h.GetSampleSum(), Counts: make([]uint64, 0, len(h.GetBucket()))}
		for _, b := range h.GetBucket() {
			s.Counts = append(s.Counts, b.GetCumulativeCount())
		}
		out.Stages = append(out.Stages, s)
	}
	return out, nil
}
