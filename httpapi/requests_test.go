package httpapi

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// TestStageHistogramsMatchPrometheus: the stage histograms export what a
// prometheus.HistogramVec with the same name, help, labels and buckets
// exports for the same observations, in the text /metrics serves: the
// same series, bucket counts (a duration on a bound counts in that
// bucket), counts and sums.
func TestStageHistogramsMatchPrometheus(t *testing.T) {
	m := NewMetrics(LevelInfo)
	ref := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_request_duration_seconds",
		Help:    "Time requests spent in each stage, by listener (sluice, kafka) and API: queue (read, waiting for the handler), local (decode, append or read, encode), wait (ISR, fsync or long-poll), send (until handed to the socket).",
		Buckets: latencyBuckets[:],
	}, []string{"listener", "api", "stage"})
	var durations []time.Duration
	for _, b := range latencyBounds {
		durations = append(durations, b-1, b, b+1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		durations = append(durations, time.Duration(rng.Int64N(int64(20*time.Second))), time.Duration(rng.Int64N(int64(time.Millisecond))))
	}
	durations = append(durations, 0, time.Hour)
	t0 := broker.Instant(time.Second)
	for i, d := range durations {
		tm := broker.RequestTiming{API: protocol.Produce, Read: t0, Start: t0 + broker.Instant(d), Local: t0 + broker.Instant(d), Done: t0 + broker.Instant(2*d), Sent: t0 + broker.Instant(2*d+time.Duration(i))}
		api := "Produce"
		if i%3 == 0 {
			tm.Listener, tm.APIName = "kafka", "Fetch"
			api = tm.APIName
		}
		m.Request(tm)
		q, l, w, s := tm.Stages()
		for j, v := range []time.Duration{q, l, w, s} {
			ref.WithLabelValues(map[bool]string{false: "sluice", true: "kafka"}[tm.Listener != ""], api, stageNames[j]).Observe(v.Seconds())
		}
	}
	// The reference has series for the APIs that were observed only; the
	// Metrics have every sluice API's from the start, at zero.
	for _, r := range protocol.SupportedAPIs() {
		for _, stage := range stageNames {
			ref.WithLabelValues("sluice", r.Key.String(), stage)
		}
	}
	for _, stage := range stageNames {
		ref.WithLabelValues("sluice", "other", stage)
	}
	refReg := prometheus.NewRegistry()
	refReg.MustRegister(ref)
	if got, want := familyText(t, m.reg, "sluice_request_duration_seconds"), familyText(t, refReg, "sluice_request_duration_seconds"); got != want {
		t.Fatalf("/metrics differs from prometheus.HistogramVec's:\n got %.2000s\nwant %.2000s", got, want)
	}
}

// familyText is family name of reg's in the text format.
func familyText(t *testing.T, reg prometheus.Gatherer, name string) string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			var buf bytes.Buffer
			if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
				t.Fatal(err)
			}
			return buf.String()
		}
	}
	t.Fatalf("no family %s", name)
	return ""
}

// TestRequestsCountedOncePerListener: requests observed from many
// goroutines at once, on both listeners (the Kafka listener's APIs made
// on first use while others are observed), are each counted once in
// sluice_requests_total and once in each stage of
// sluice_request_duration_seconds, under their own listener and API and
// no other.
func TestRequestsCountedOncePerListener(t *testing.T) {
	m := NewMetrics(LevelInfo)
	type api struct {
		listener, name string
		key            protocol.APIKey
	}
	apis := []api{{"sluice", "Produce", protocol.Produce}, {"sluice", "Fetch", protocol.Fetch}, {"sluice", "other", 999},
		{"kafka", "Produce", 0}, {"kafka", "Fetch", 0}, {"kafka", "Metadata", 0}}
	const goroutines, each = 8, 300
	var wg sync.WaitGroup
	t0 := broker.Instant(time.Second)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				a := apis[(g+i)%len(apis)]
				tm := broker.RequestTiming{API: a.key, Read: t0, Start: t0 + broker.Instant(time.Microsecond), Local: t0 + broker.Instant(3*time.Microsecond),
					Done: t0 + broker.Instant(time.Millisecond), Sent: t0 + broker.Instant(2*time.Millisecond)}
				if a.listener != "sluice" {
					tm.Listener, tm.APIName = a.listener, a.name
				}
				if i%10 == 0 {
					tm.Code = protocol.ErrNotLeaderOrFollower
				}
				m.Request(tm)
			}
		})
	}
	wg.Wait()
	want := map[string]uint64{}
	for g := range goroutines {
		for i := range each {
			a := apis[(g+i)%len(apis)]
			want[a.listener+"/"+a.name]++
		}
	}
	fams := gather(t, m)
	requests := map[string]float64{}
	for _, s := range fams["sluice_requests_total"].GetMetric() {
		l := Labels(s)
		requests[l["listener"]+"/"+l["api"]] += s.GetCounter().GetValue()
	}
	stages := map[string]map[string]*dto.Histogram{}
	for _, s := range fams["sluice_request_duration_seconds"].GetMetric() {
		l := Labels(s)
		k := l["listener"] + "/" + l["api"]
		if stages[k] == nil {
			stages[k] = map[string]*dto.Histogram{}
		}
		stages[k][l["stage"]] = s.GetHistogram()
	}
	for k, byStage := range stages {
		if len(byStage) != len(stageNames) {
			t.Errorf("%s: stages %v, want %v", k, byStage, stageNames)
		}
		for _, stage := range stageNames {
			h := byStage[stage]
			if h.GetSampleCount() != want[k] {
				t.Errorf("%s %s: %d observations, want %d", k, stage, h.GetSampleCount(), want[k])
			}
		}
		if requests[k] != float64(want[k]) {
			t.Errorf("%s: %v requests counted, want %d", k, requests[k], want[k])
		}
	}
	for k, n := range want {
		if stages[k] == nil {
			t.Errorf("%s: %d requests, no histograms", k, n)
		}
	}
	if h := stages["kafka/Produce"]["wait"]; h == nil || !near(h.GetSampleSum(), float64(want["kafka/Produce"])*(time.Millisecond-3*time.Microsecond).Seconds()) {
		t.Errorf("kafka Produce wait sum: %v", h)
	}
	if n := len(*m.req.fronts.Load()); n != 3 {
		t.Errorf("%d front-end APIs made, want 3", n)
	}
}
