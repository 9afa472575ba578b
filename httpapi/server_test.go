package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/httpapi"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// observed is a cluster whose brokers have metrics and an HTTP endpoint
// each.
type observed struct {
	*testcluster.Cluster
	mu      sync.Mutex
	metrics map[int32]*httpapi.Metrics
	servers map[int32]*httpapi.Server
}

// startObserved starts n brokers with metrics at level and an HTTP
// endpoint each; with metrics off, neither (benchmarks compare).
// configure, if any, changes each broker's configuration.
func startObserved(t testing.TB, n int, level httpapi.Level, metrics bool, configure ...func(*broker.Config)) *observed {
	t.Helper()
	o := &observed{metrics: map[int32]*httpapi.Metrics{}, servers: map[int32]*httpapi.Server{}}
	o.Cluster = testcluster.Start(t, n, testcluster.Options{Configure: func(cfg *broker.Config) {
		for _, f := range configure {
			f(cfg)
		}
		if !metrics {
			return
		}
		m := httpapi.NewMetrics(level)
		cfg.Observer = m
		o.mu.Lock()
		o.metrics[cfg.BrokerID] = m
		o.mu.Unlock()
	}})
	if !metrics {
		return o
	}
	for _, id := range o.IDs() {
		srv, err := httpapi.Start(context.Background(), httpapi.Config{Addr: "127.0.0.1:0", Broker: o.Broker(id), Metrics: o.metrics[id]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		o.servers[id] = srv
	}
	return o
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// scrape gets /metrics over HTTP and parses it.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the value of the family's series whose labels include want
// (name=value pairs), or -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	for _, m := range fams[name].GetMetric() {
		labels := httpapi.Labels(m)
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			match = match && labels[want[i]] == want[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// histSum is the sample sum of the api and stage's histogram.
func histSum(fams map[string]*dto.MetricFamily, name, api, stage string) float64 {
	for _, m := range fams[name].GetMetric() {
		if l := httpapi.Labels(m); l["api"] == api && l["stage"] == stage {
			return m.GetHistogram().GetSampleSum()
		}
	}
	return -1
}

// TestScrapeAfterProduce starts a broker with its endpoint, produces and
// consumes, and checks over real HTTP that the metrics moved and that the
// health endpoints answer.
func TestScrapeAfterProduce(t *testing.T) {
	o := startObserved(t, 1, httpapi.LevelDebug, true)
	addr := o.servers[1].Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	before := scrape(t, addr)
	if v := value(before, "sluice_topic_records_in_total", "topic", "m"); v > 0 {
		t.Fatalf("records in before producing: %v", v)
	}
	cl := o.Client(client.RecordPartitioner(client.ManualPartitioner()))
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "m", Partitions: 2, ReplicationFactor: 1,
		Configs: map[string]string{"fsync": "always"}})
	const n = 50
	var recs []*client.Record
	for i := range n {
		recs = append(recs, &client.Record{Topic: "m", Partition: int32(i % 2), Value: []byte(fmt.Sprintf("value-%03d", i))})
	}
	if err := cl.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	cl.Assign(map[client.TopicPartition]client.Offset{{Topic: "m", Partition: 0}: client.AtStart(), {Topic: "m", Partition: 1}: client.AtStart()})
	for seen := 0; seen < n; {
		f, err := cl.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Errors) > 0 {
			t.Fatal(f.Errors[0])
		}
		seen += len(f.Records)
	}

	var fams map[string]*dto.MetricFamily
	poll.Until(t, 10*time.Second, "the metrics to count what was produced and consumed", func() error {
		fams = scrape(t, addr)
		for _, c := range []struct {
			name   string
			labels []string
			min    float64
		}{
			{"sluice_topic_records_in_total", []string{"topic", "m"}, n},
			{"sluice_topic_records_out_total", []string{"topic", "m"}, n},
			{"sluice_topic_bytes_in_total", []string{"topic", "m"}, n * 9},
			{"sluice_topic_bytes_out_total", []string{"topic", "m"}, n * 9},
			{"sluice_requests_total", []string{"api", "Produce", "code", "NONE"}, 1},
			{"sluice_requests_total", []string{"api", "Fetch", "code", "NONE"}, 1},
			{"sluice_request_duration_seconds", []string{"api", "Produce", "stage", "wait"}, 1},
			{"sluice_request_duration_seconds", []string{"api", "Fetch", "stage", "send"}, 1},
			{"sluice_log_fsync_duration_seconds", nil, 1},
			{"sluice_controller_commit_duration_seconds", nil, 1},
			{"sluice_partitions_led", nil, 2},
			{"sluice_partition_leader_elections_total", nil, 2},
			{"sluice_controller_is_leader", nil, 1},
			{"sluice_controller_applied_index", nil, 1},
			{"sluice_controller_brokers", []string{"state", "alive"}, 1},
			{"sluice_broker_ready", nil, 1},
			{"sluice_connections_open", nil, 1},
			{"sluice_memory_budget_bytes", nil, 1 << 20},
			{"sluice_log_segments", []string{"topic", "m"}, 2},
			{"sluice_log_size_bytes", []string{"topic", "m"}, n * 9},
			{"sluice_partition_high_watermark", []string{"topic", "m", "partition", "1"}, n / 2},
			{"sluice_disk_capacity_bytes", nil, 1},
			{"sluice_disk_free_bytes", nil, 1},
			{"go_goroutines", nil, 1},
		} {
			if v := value(fams, c.name, c.labels...); v < c.min {
				return fmt.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
			}
		}
		return nil
	})
	// An acks=all produce to an fsync=always topic waits for the fsync:
	// the wait stage measured it (and the local stage the append).
	for _, stage := range []string{"local", "wait"} {
		if sum := histSum(fams, "sluice_request_duration_seconds", "Produce", stage); sum <= 0 {
			t.Errorf("Produce %s stage: %v s in all, want more than 0", stage, sum)
		}
	}
	// Exactly what was produced: counted per batch, not per attempt.
	if v := value(fams, "sluice_topic_records_in_total", "topic", "m"); v != n {
		t.Errorf("records in = %v, want %d", v, n)
	}
	for _, name := range []string{"sluice_partitions_under_replicated", "sluice_partitions_under_min_isr", "sluice_partitions_offline", "sluice_log_flush_failures_total"} {
		if v := value(fams, name); v != 0 {
			t.Errorf("%s = %v, want 0", name, v)
		}
	}

	if code, body := get(t, "http://"+addr+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	o.Stop(1)
	if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz of a stopped broker: %d %q", code, body)
	}
	if code, _ := get(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz of a stopped broker's process: %d", code)
	}
}

// TestReadyzBeforeStart: a broker not started yet is alive but not ready.
func TestReadyzBeforeStart(t *testing.T) {
	m := httpapi.NewMetrics(httpapi.LevelInfo)
	b, err := broker.New(broker.Config{ListenAddr: "127.0.0.1:0", DataDir: t.TempDir(), Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := httpapi.Start(ctx, httpapi.Config{Addr: "127.0.0.1:0", Broker: b, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not registered") {
		t.Errorf("/readyz before Start: %d %q", code, body)
	}
	if v := value(scrape(t, addr), "sluice_broker_ready"); v != 0 {
		t.Errorf("sluice_broker_ready before Start = %v", v)
	}
	// Cancelling the context stops the server; Close then returns at once.
	cancel()
	poll.Until(t, 5*time.Second, "the server to stop on cancel", func() bool {
		_, err := http.Get("http://" + addr + "/healthz")
		return err != nil
	})
	if err := srv.Close(); err != nil {
		t.Logf("close after cancel: %v", err)
	}
	b.Close()
}

// TestFsyncFailureCounted fails the fsyncs of one partition's segments
// (EIO from the file-system seam): the failure is counted, the replica
// is reported offline, and the other partition is not.
func TestFsyncFailureCounted(t *testing.T) {
	fs := errorfs.New(vfs.Default)
	o := startObserved(t, 1, httpapi.LevelInfo, true, func(cfg *broker.Config) { cfg.FS = fs })
	addr := o.servers[1].Addr()
	cl := o.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "f", Partitions: 2, ReplicationFactor: 1,
		Configs: map[string]string{"fsync": "always"}})
	raw := testcluster.DialRaw(t, o.Broker(1).Addr())
	raw.WaitLeading("f", 0)
	raw.WaitLeading("f", 1)
	batch := testcluster.ProducerBatch(t, -1, -1, -1)
	if r, err := raw.Produce("f", 0, protocol.AcksLeader, batch); err != nil || r.ErrorCode != protocol.NoError {
		t.Fatalf("produce before the fault: %+v %v", r, err)
	}
	fams := scrape(t, addr)
	if v := value(fams, "sluice_log_flush_failures_total"); v != 0 {
		t.Fatalf("flush failures before the fault: %v", v)
	}
	syncs := value(fams, "sluice_log_fsync_duration_seconds")
	if syncs < 1 {
		t.Fatalf("fsyncs observed before the fault: %v", syncs)
	}

	fs.Arm(errorfs.Fault{Ops: errorfs.OpSync, Path: filepath.Join(o.Dir(1), "f-1", "*.log"), Err: syscall.EIO})
	if r, err := raw.Produce("f", 1, protocol.AcksLeader, batch); err != nil || r.ErrorCode != protocol.ErrStorageError {
		t.Fatalf("produce under the fault: %+v %v, want %v", r, err, protocol.ErrStorageError)
	}
	fams = scrape(t, addr)
	if v := value(fams, "sluice_log_flush_failures_total"); v != 1 {
		t.Errorf("flush failures = %v, want 1", v)
	}
	if v := value(fams, "sluice_log_offline_replicas"); v != 1 {
		t.Errorf("offline replicas = %v, want 1", v)
	}
	if v := value(fams, "sluice_log_fsync_duration_seconds"); v <= syncs {
		t.Errorf("fsyncs observed = %v, want more than %v", v, syncs)
	}
	// An offline log does not close cleanly: stop as a crash would.
	o.Kill(1)
}

// TestISRExpandsCounted kills a follower, whose partitions' ISRs the
// controller shrinks when it fences it, and restarts it: the leaders,
// brokers 1 and 2, count one ISR expansion per partition they take it
// back into, and no shrink of their own.
func TestISRExpandsCounted(t *testing.T) {
	o := startObserved(t, 3, httpapi.LevelInfo, true, func(cfg *broker.Config) {
		cfg.LeaderRebalanceInterval = -1
	})
	cl := o.Client()
	const parts = 4
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "isr", Partitions: parts, ReplicationFactor: 3})
	testcluster.WaitFullISR(t, cl, "isr", 20*time.Second)
	o.Kill(3)
	for p := range int32(parts) {
		testcluster.WaitPartition(t, cl, "isr", p, 20*time.Second, "broker 3 out of the ISR", func(pd client.PartitionDescription) error {
			if slices.Contains(pd.ISR, 3) || pd.Leader == 3 || pd.Leader < 0 {
				return fmt.Errorf("leader %d, ISR %v", pd.Leader, pd.ISR)
			}
			return nil
		})
	}
	sum := func(name string) float64 {
		total := 0.0
		for _, id := range []int32{1, 2} {
			total += max(value(scrape(t, o.servers[id].Addr()), name), 0)
		}
		return total
	}
	before := sum("sluice_partition_isr_expands_total")
	o.Restart(3)
	testcluster.WaitFullISR(t, cl, "isr", 30*time.Second)
	// A leader counts an expansion once its own metadata applies its
	// AlterPartition, which may be a moment after clients see the ISR.
	poll.Until(t, 10*time.Second, "four ISR expansions counted", func() error {
		if got := sum("sluice_partition_isr_expands_total") - before; got != parts {
			return fmt.Errorf("ISR expansions by brokers 1 and 2: %v, want %d", got, parts)
		}
		return nil
	})
	if got := sum("sluice_partition_isr_shrinks_total"); got != 0 {
		t.Errorf("ISR shrinks by brokers 1 and 2: %v, want 0 (the controller removed broker 3)", got)
	}
	if got := sum("sluice_partitions_led"); got != parts {
		t.Errorf("partitions led by brokers 1 and 2: %v, want %d", got, parts)
	}
}
