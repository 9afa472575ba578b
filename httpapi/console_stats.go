package httpapi

import (
	"cmp"
	"net/http"
	"slices"
	"time"

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
		Buckets: latencyBuckets[:], Requests: []APILatency{}}
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
	for _, a := range c.metrics.req.list() {
		if l := a.latency(); l.Count > 0 {
			out.Requests = append(out.Requests, l)
		}
	}
	slices.SortFunc(out.Requests, func(a, b APILatency) int {
		return cmp.Or(cmp.Compare(a.Listener, b.Listener), cmp.Compare(a.API, b.API))
	})
	return out, nil
}

// latency reads the API's stage histograms. Each stage is observed once
// per request, so the count of any is the API's: it is taken from the
// first (a stage read a moment later may count a request more).
func (a *apiMetrics) latency() APILatency {
	out := APILatency{Listener: a.listener, API: a.name, Stages: make([]StageLatency, 0, len(stageNames))}
	for i, stage := range stageNames {
		h := a.stages.read(i)
		if i == 0 {
			out.Count = h.count
		}
		out.Stages = append(out.Stages, StageLatency{Stage: stage, Count: h.count, Sum: h.sum, Counts: append([]uint64(nil), h.cumulative[:]...)})
	}
	return out
}
