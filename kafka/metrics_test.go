package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/httpapi"
)

// TestKafkaRequestMetrics: requests on the Kafka listener are counted and
// timed by the same metrics as the sluice listener's, under
// listener="kafka" and Kafka's API names, with the wait stage of an
// acks=all produce and a long-poll fetch; records a Kafka client fetches
// count in sluice_topic_bytes_out_total and records_out, as a sluice
// consumer's do.
func TestKafkaRequestMetrics(t *testing.T) {
	m := httpapi.NewMetrics(httpapi.LevelInfo)
	b, addr := single(t, func(cfg *broker.Config) { cfg.Observer = m })
	srv, err := httpapi.Start(context.Background(), httpapi.Config{Addr: "127.0.0.1:0", Broker: b, Metrics: m, Console: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx := testContext(t)
	cl := newClient(t, []string{addr})
	createTopic(t, ctx, kadm.NewClient(cl), "k", 1, 1, nil)
	const n = 7
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "k", Value: fmt.Appendf(nil, "value-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	got := consumeN(t, addr, "k", n)
	var valueBytes int
	for _, r := range got {
		valueBytes += len(r.Value)
	}

	fams := scrapeMetrics(t, srv.Addr())
	count := func(name string, labels ...string) (float64, bool) {
		var sum float64
		found := false
	series:
		for _, s := range fams[name].GetMetric() {
			have := map[string]string{}
			for _, l := range s.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			found = true
			switch {
			case s.GetCounter() != nil:
				sum += s.GetCounter().GetValue()
			case s.GetHistogram() != nil:
				sum += float64(s.GetHistogram().GetSampleCount())
			}
		}
		return sum, found
	}
	for _, c := range []struct {
		api   string
		min   float64
		exact bool
	}{{"Produce", n, true}, {"Fetch", 1, false}, {"Metadata", 1, false}, {"CreateTopics", 1, true}} {
		v, _ := count("sluice_requests_total", "listener", "kafka", "api", c.api, "code", "NONE")
		if v < c.min || c.exact && v != c.min {
			t.Errorf("sluice_requests_total{listener=kafka,api=%s,code=NONE} = %v, want %v (exact %v)", c.api, v, c.min, c.exact)
		}
		h, _ := count("sluice_request_duration_seconds", "listener", "kafka", "api", c.api, "stage", "wait")
		if h < c.min {
			t.Errorf("sluice_request_duration_seconds{listener=kafka,api=%s,stage=wait}: %v observations, want at least %v", c.api, h, c.min)
		}
	}
	if v, found := count("sluice_requests_total", "listener", "sluice", "api", "Produce"); !found || v != 0 {
		t.Errorf("the sluice listener's Produce series: %v (exported %v), want 0 and exported", v, found)
	}
	if v, _ := count("sluice_topic_records_out_total", "topic", "k"); v < n {
		t.Errorf("sluice_topic_records_out_total{topic=k} = %v after a Kafka client consumed %d records", v, n)
	}
	if v, _ := count("sluice_topic_bytes_out_total", "topic", "k"); v < float64(valueBytes) {
		t.Errorf("sluice_topic_bytes_out_total{topic=k} = %v, below the %d value bytes consumed", v, valueBytes)
	}
	if v, _ := count("sluice_topic_records_in_total", "topic", "k"); v != n {
		t.Errorf("sluice_topic_records_in_total{topic=k} = %v, want %d", v, n)
	}

	// The console's per-API table (GET /api/stats) has the Kafka
	// listener's rows beside the sluice listener's.
	resp, err := http.Get("http://" + srv.Addr() + "/api/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st httpapi.BrokerStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("GET /api/stats: %v", err)
	}
	var produce *httpapi.APILatency
	for i, a := range st.Requests {
		if a.Listener == "kafka" && a.API == "Produce" {
			produce = &st.Requests[i]
		}
	}
	if produce == nil || produce.Count != n || len(produce.Stages) != 4 || produce.Stages[2].Count != n {
		t.Errorf("GET /api/stats: kafka Produce row %+v, want %d requests with 4 stages (all rows: %+v)", produce, n, st.Requests)
	}
}

func scrapeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}
