package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

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
	count := func(name string, labels ...string) (float64, bool) { return sumSeries(fams, name, labels...) }
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

// sumSeries sums the values of the series of family name whose labels
// include labels (name, value pairs): counters and gauges by value,
// histograms by observation count. found says whether any matched.
func sumSeries(fams map[string]*dto.MetricFamily, name string, labels ...string) (sum float64, found bool) {
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
		case s.GetGauge() != nil:
			sum += s.GetGauge().GetValue()
		case s.GetHistogram() != nil:
			sum += float64(s.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}

// TestFetchSessionMetrics drives the fetch-session cache through each of
// its outcomes with raw Fetch v11 requests (five slots, the injected
// clock) and reads every sluice_kafka_fetch_session* series from the real
// /metrics text: sessions opened, one evicted for the connection cap,
// one for idleness, one for growing too large, a full cache refusing a
// session, a wrong epoch and an unknown id.
func TestFetchSessionMetrics(t *testing.T) {
	ctx := testContext(t)
	m := httpapi.NewMetrics(httpapi.LevelInfo)
	clock := &testClock{}
	const slots = maxSessionsPerConn + 1
	b, addr, ks := singleWith(t, func(cfg *broker.Config) { cfg.Observer = m }, FetchSessionSlots(slots), clock.option())
	if err := m.CollectFetchSessions(ks.FetchSessionStats); err != nil {
		t.Fatal(err)
	}
	srv, err := httpapi.Start(context.Background(), httpapi.Config{Addr: "127.0.0.1:0", Broker: b, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cl := newClient(t, []string{addr})
	createTopic(t, ctx, kadm.NewClient(cl), "fsm", 1, 1, nil)
	produceTo(t, cl, &kgo.Record{Topic: "fsm", Value: []byte("v")})
	part0 := map[int32]int64{0: 0}

	// One connection opens one session more than its cap: its first is
	// evicted.
	c1, corr := dialRaw(t, addr), int32(0)
	var ids []int32
	for range maxSessionsPerConn + 1 {
		corr++
		resp := sessionFetch(t, c1, corr, 0, 0, "fsm", part0)
		if resp.ErrorCode != 0 || resp.SessionID <= 0 {
			t.Fatalf("session %d: id %d error %d", len(ids), resp.SessionID, resp.ErrorCode)
		}
		ids = append(ids, resp.SessionID)
	}
	for _, f := range []struct {
		id, epoch int32
		code      int16
	}{
		{ids[1], 1, 0}, // incremental
		{ids[1], 7, kerr.InvalidFetchSessionEpoch.Code}, // out of step
		{ids[0], 1, kerr.FetchSessionIDNotFound.Code},   // evicted for the cap
	} {
		corr++
		if resp := sessionFetch(t, c1, corr, f.id, f.epoch, "fsm", nil); resp.ErrorCode != f.code {
			t.Fatalf("session %d epoch %d: error %d, want %d", f.id, f.epoch, resp.ErrorCode, f.code)
		}
	}
	// A second connection takes the last slot; its next session finds the
	// cache full of active sessions and gets none; past the idle age it
	// evicts the least recently used (ids[2]: ids[1] was used since).
	c2 := dialRaw(t, addr)
	if resp := sessionFetch(t, c2, 1, 0, 0, "fsm", part0); resp.SessionID <= 0 {
		t.Fatalf("the last slot: id %d error %d", resp.SessionID, resp.ErrorCode)
	}
	if resp := sessionFetch(t, c2, 2, 0, 0, "fsm", part0); resp.SessionID != 0 || resp.ErrorCode != 0 {
		t.Fatalf("a session past the slots: id %d error %d, want none", resp.SessionID, resp.ErrorCode)
	}
	clock.advance(sessionEvictIdle + time.Minute)
	if resp := sessionFetch(t, c2, 3, 0, 0, "fsm", part0); resp.SessionID <= 0 {
		t.Fatalf("a session evicting an idle one: id %d error %d", resp.SessionID, resp.ErrorCode)
	}
	// A session grown past maxSessionPartitions is dropped.
	big := tooManyPartitions("fsm")
	big.SessionID, big.SessionEpoch = ids[1], 2
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(11)
	corr++
	if err := resp.ReadFrom(c1.request(big, corr)); err != nil || resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("a session grown past %d partitions: %v, error %d", maxSessionPartitions, err, resp.ErrorCode)
	}

	fams := scrapeMetrics(t, srv.Addr())
	for _, w := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluice_kafka_fetch_session_slots", nil, slots},
		{"sluice_kafka_fetch_sessions", nil, slots - 1}, // ids[2] idle and ids[1] too large went; c2's two came
		{"sluice_kafka_fetch_session_partitions", nil, slots - 1},
		{"sluice_kafka_fetch_sessions_created_total", nil, maxSessionsPerConn + 3},
		{"sluice_kafka_fetch_sessions_evicted_total", []string{"reason", "connection_cap"}, 1},
		{"sluice_kafka_fetch_sessions_evicted_total", []string{"reason", "idle"}, 1},
		{"sluice_kafka_fetch_sessions_evicted_total", []string{"reason", "too_large"}, 1},
		{"sluice_kafka_fetch_sessions_cache_full_total", nil, 1},
		{"sluice_kafka_fetch_session_errors_total", []string{"code", "FETCH_SESSION_ID_NOT_FOUND"}, 2},
		{"sluice_kafka_fetch_session_errors_total", []string{"code", "INVALID_FETCH_SESSION_EPOCH"}, 1},
		{"sluice_kafka_fetches_total", []string{"session", "full"}, maxSessionsPerConn + 3},
		{"sluice_kafka_fetches_total", []string{"session", "incremental"}, 1},
		{"sluice_kafka_fetches_total", []string{"session", "none"}, 1},
	} {
		if got, found := sumSeries(fams, w.name, w.labels...); !found || got != w.want {
			t.Errorf("%s%v = %v (exported %v), want %v", w.name, w.labels, got, found, w.want)
		}
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
