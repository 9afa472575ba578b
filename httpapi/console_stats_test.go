package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// TestConsoleStats checks GET /api/stats against the Stats and the request
// observations it is made of: the traffic totals leave the internal topic
// out, and each API's stage histograms are those of /metrics.
func TestConsoleStats(t *testing.T) {
	st := sampleStats(true)
	st.Topics = append(st.Topics, broker.TopicStats{Topic: broker.OffsetsTopic, BytesIn: 7000, RecordsIn: 70, BytesOut: 9000, RecordsOut: 90})
	m := NewMetrics(LevelInfo)
	at := func(us int) broker.Instant { return broker.Instant(time.Second + time.Duration(us)*time.Microsecond) }
	// Produce: queue 30 µs, local 200 µs, wait 3 ms, send 0; then all 0.
	m.Request(broker.RequestTiming{API: protocol.Produce, Read: at(0), Start: at(30), Local: at(230), Done: at(3230), Sent: at(3230)})
	m.Request(broker.RequestTiming{API: protocol.Produce, Read: at(0), Start: at(0), Local: at(0), Done: at(0), Sent: at(0)})
	m.Request(broker.RequestTiming{API: protocol.Fetch, Read: at(0), Start: at(0), Local: at(0), Done: at(20_000_000), Sent: at(20_000_000)})
	// The Kafka listener's Produce: its own row, not summed into the
	// sluice listener's.
	m.Request(broker.RequestTiming{Listener: "kafka", APIName: "Produce", Read: at(0), Start: at(10), Local: at(110), Done: at(5110), Sent: at(5120)})

	c := newConsole(notServing{}, &fakeSource{st: st}, m, nil, zap.NewNop())
	defer c.close()
	mux := http.NewServeMux()
	c.register(mux)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/api/stats", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/stats: %d %s", w.Code, w.Body)
	}
	var got BrokerStats
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Broker != 2 || got.Time == 0 {
		t.Errorf("broker %d, time %d", got.Broker, got.Time)
	}
	// Topic a has the traffic, b none; the offsets topic is not summed.
	if got.BytesIn != 1000 || got.BytesOut != 500 || got.RecordsIn != 10 || got.RecordsOut != 5 {
		t.Errorf("totals: in %d B %d records, out %d B %d records; want 1000 10 500 5", got.BytesIn, got.RecordsIn, got.BytesOut, got.RecordsOut)
	}
	names := make([]string, 0, len(got.Topics))
	for _, tt := range got.Topics {
		names = append(names, tt.Topic)
		if (tt.Topic == broker.OffsetsTopic) != tt.Internal {
			t.Errorf("topic %s: internal %v", tt.Topic, tt.Internal)
		}
	}
	if want := []string{broker.OffsetsTopic, "a", "b"}; !slices.Equal(names, want) {
		t.Errorf("topics %q, want %q", names, want)
	}
	if !slices.Equal(got.Buckets, latencyBuckets[:]) {
		t.Errorf("buckets %v", got.Buckets)
	}
	var rows []string
	for _, a := range got.Requests {
		rows = append(rows, a.Listener+" "+a.API)
	}
	if want := []string{"kafka Produce", "sluice Fetch", "sluice Produce"}; !slices.Equal(rows, want) {
		t.Fatalf("requests: %q, want %q", rows, want)
	}
	for _, a := range got.Requests {
		sums := histSums(t, m, "sluice_request_duration_seconds", a.Listener)
		if len(a.Stages) != 4 {
			t.Fatalf("%s: %d stages", a.API, len(a.Stages))
		}
		for i, s := range a.Stages {
			h := sums[a.API+"/"+s.Stage]
			if s.Stage != stageNames[i] || h == nil || s.Count != h.GetSampleCount() || s.Count != a.Count || !near(s.Sum, h.GetSampleSum()) ||
				len(s.Counts) != len(latencyBuckets) {
				t.Errorf("%s %s: %+v, /metrics has %v", a.API, s.Stage, s, h)
				continue
			}
			for j, b := range h.GetBucket() {
				if s.Counts[j] != b.GetCumulativeCount() {
					t.Errorf("%s %s: count at %v is %d, /metrics has %d", a.API, s.Stage, latencyBuckets[j], s.Counts[j], b.GetCumulativeCount())
				}
			}
		}
	}
	// Produce's wait: one of 3 ms (bucket le 0.005, index 6) and one of 0.
	wait := got.Requests[2].Stages[2]
	if wait.Count != 2 || wait.Counts[5] != 1 || wait.Counts[6] != 2 {
		t.Errorf("Produce wait: %+v", wait)
	}
	// Fetch's 20 s wait is above every bucket: only in the count.
	if fw := got.Requests[1].Stages[2]; fw.Count != 1 || fw.Counts[len(fw.Counts)-1] != 0 {
		t.Errorf("Fetch wait: %+v", fw)
	}
	// The Kafka Produce's wait of 5 ms: bucket le 0.005 (index 6).
	if kw := got.Requests[0].Stages[2]; kw.Count != 1 || kw.Counts[5] != 0 || kw.Counts[6] != 1 {
		t.Errorf("kafka Produce wait: %+v", kw)
	}
}
