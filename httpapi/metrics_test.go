package httpapi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/cost"
	"github.com/sluicemq/sluice/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource serves a fixed Stats.
type fakeSource struct {
	st    broker.Stats
	ready error
}

func (f *fakeSource) Stats(partitions bool) broker.Stats {
	st := f.st
	st.Topics = append([]broker.TopicStats(nil), f.st.Topics...)
	st.Groups = nil
	for _, g := range f.st.Groups {
		g.Topics = append([]broker.GroupLag(nil), g.Topics...)
		st.Groups = append(st.Groups, g)
	}
	if !partitions {
		for i := range st.Topics {
			st.Topics[i].Partitions = nil
		}
		for _, g := range st.Groups {
			for i := range g.Topics {
				g.Topics[i].Partitions = nil
			}
		}
	}
	return st
}

func (f *fakeSource) Ready() error { return f.ready }

func sampleStats(leader bool) broker.Stats {
	return broker.Stats{
		BrokerID: 2, Ready: true, ControllerLeader: leader, AppliedIndex: 42,
		BrokersAlive: 2, BrokersOffline: 1, OfflinePartitions: 3, ConnectionsOpen: 7,
		ConnectionsRefused: map[string]int64{"max_connections": 5, "max_connections_per_ip": 0, "first_request_timeout": 1},
		ISRShrinksTotal:    4, ISRExpandsTotal: 2, LeaderElectionsTotal: 9,
		Topics: []broker.TopicStats{
			{Topic: "a", BytesIn: 1000, RecordsIn: 10, BytesOut: 500, RecordsOut: 5, Led: 2, UnderReplicated: 1, UnderMinISR: 1,
				OfflineReplicas: 1, Bytes: 4096, Segments: 3,
				Partitions: []broker.PartitionStats{
					{Partition: 0, Leader: true, Replicas: 3, ISR: 2, Bytes: 2048, Segments: 2, EndOffset: 8, HighWatermark: 6},
					{Partition: 1, Leader: false, Replicas: 3, ISR: 3, Bytes: 2048, Segments: 1, EndOffset: 2, HighWatermark: 2},
				}},
			{Topic: "b", Led: 1, Bytes: 10, Segments: 1},
		},
		Groups: []broker.GroupStats{
			{Group: "g", Members: 2, Topics: []broker.GroupLag{
				{Topic: "a", Lag: 12, Partitions: []broker.PartitionLag{
					{Partition: 0, Committed: 2, End: 6, Lag: 4}, {Partition: 1, Committed: -1, End: 8, Lag: 8}}},
				{Topic: "b", Lag: 0, Partitions: []broker.PartitionLag{{Partition: 0, Committed: 3, End: 3}}},
			}},
			{Group: "idle"},
		},
		DiskFree: 250, DiskCapacity: 1000,
	}
}

// TestCollector checks every series the collector makes from a snapshot,
// at both levels and on a controller leader and a follower.
func TestCollector(t *testing.T) {
	for _, tc := range []struct {
		name    string
		level   Level
		leader  bool
		offline string
	}{
		{"info follower", LevelInfo, false, "0"},
		{"info leader", LevelInfo, true, "3"},
		{"debug leader", LevelDebug, true, "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &collector{src: &fakeSource{st: sampleStats(tc.leader)}, level: tc.level}
			want := `
# HELP sluice_partitions_offline Partitions of the cluster with no leader; reported by the controller leader, 0 elsewhere, so the cluster sums to the count.
# TYPE sluice_partitions_offline gauge
sluice_partitions_offline ` + tc.offline + `
# HELP sluice_partitions_led Partitions this broker leads.
# TYPE sluice_partitions_led gauge
sluice_partitions_led 3
# HELP sluice_partitions_under_replicated Partitions this broker leads whose ISR is smaller than their replica list.
# TYPE sluice_partitions_under_replicated gauge
sluice_partitions_under_replicated 1
# HELP sluice_topic_records_in_total Records produced to the partitions this broker leads.
# TYPE sluice_topic_records_in_total counter
sluice_topic_records_in_total{topic="a"} 10
sluice_topic_records_in_total{topic="b"} 0
# HELP sluice_log_offline_replicas Partition replicas on this broker whose log went offline after a storage error (R5).
# TYPE sluice_log_offline_replicas gauge
sluice_log_offline_replicas 1
# HELP sluice_connections_refused_total Connections refused, by the limit that refused them.
# TYPE sluice_connections_refused_total counter
sluice_connections_refused_total{reason="first_request_timeout"} 1
sluice_connections_refused_total{reason="max_connections"} 5
sluice_connections_refused_total{reason="max_connections_per_ip"} 0
# HELP sluice_controller_brokers Registered brokers by state (alive, offline: failed or left, fenced out of every ISR), as this broker's copy of the metadata says.
# TYPE sluice_controller_brokers gauge
sluice_controller_brokers{state="alive"} 2
sluice_controller_brokers{state="offline"} 1
# HELP sluice_group_lag Offsets the group has not consumed of the topic: the sum over its partitions of the high watermark minus the committed offset (the log start offset for none), exported by the group's coordinator.
# TYPE sluice_group_lag gauge
sluice_group_lag{group="g",topic="a"} 12
sluice_group_lag{group="g",topic="b"} 0
# HELP sluice_group_members Members of the consumer group, exported by the group's coordinator.
# TYPE sluice_group_members gauge
sluice_group_members{group="g"} 2
sluice_group_members{group="idle"} 0
# HELP sluice_disk_free_bytes Bytes free to the broker on the file system of its data directory.
# TYPE sluice_disk_free_bytes gauge
sluice_disk_free_bytes 250
# HELP sluice_disk_capacity_bytes Size of the file system of the broker's data directory.
# TYPE sluice_disk_capacity_bytes gauge
sluice_disk_capacity_bytes 1000
`
			if err := testutil.CollectAndCompare(c, strings.NewReader(want),
				"sluice_partitions_offline", "sluice_partitions_led", "sluice_partitions_under_replicated",
				"sluice_topic_records_in_total", "sluice_log_offline_replicas", "sluice_connections_refused_total",
				"sluice_controller_brokers", "sluice_group_lag", "sluice_group_members", "sluice_disk_free_bytes", "sluice_disk_capacity_bytes"); err != nil {
				t.Fatal(err)
			}
			for _, debug := range []struct {
				name string
				n    int
			}{{"sluice_partition_high_watermark", 2}, {"sluice_group_partition_lag", 3}} {
				n, err := testutil.GatherAndCount(registryOf(t, c).Registry(), debug.name)
				if err != nil {
					t.Fatal(err)
				}
				if tc.level != LevelDebug {
					debug.n = 0
				}
				if n != debug.n {
					t.Fatalf("%s: %d series, want %d", debug.name, n, debug.n)
				}
			}
			if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP sluice_controller_is_leader 1 on the broker whose Raft node leads the metadata group, else 0; the cluster sums to 1.
# TYPE sluice_controller_is_leader gauge
sluice_controller_is_leader `+map[bool]string{true: "1", false: "0"}[tc.leader]+`
`), "sluice_controller_is_leader"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// registryOf returns a metrics registry holding only c.
func registryOf(t *testing.T, c *collector) *Metrics {
	t.Helper()
	m := NewMetrics(c.level)
	if err := m.collect(c.src); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCollectTwice: a second broker on the same Metrics is refused.
func TestCollectTwice(t *testing.T) {
	m := NewMetrics(LevelInfo)
	if err := m.collect(&fakeSource{}); err != nil {
		t.Fatal(err)
	}
	if err := m.collect(&fakeSource{}); !errors.Is(err, errCollecting) {
		t.Fatalf("second collect: %v, want errCollecting", err)
	}
}

// TestRequestMetrics checks that a request is counted under its API and
// code and that each stage is observed with its own duration.
func TestRequestMetrics(t *testing.T) {
	m := NewMetrics(LevelInfo)
	at := func(ms int) broker.Instant { return broker.Instant(time.Second + time.Duration(ms)*time.Millisecond) }
	m.Request(broker.RequestTiming{API: protocol.Produce, Code: protocol.NoError, Read: at(0), Start: at(1), Local: at(3), Done: at(7), Sent: at(15)})
	m.Request(broker.RequestTiming{API: protocol.Produce, Code: protocol.ErrNotEnoughReplicas, Read: at(0), Start: at(0), Local: at(0), Done: at(0), Sent: at(0)})
	m.Request(broker.RequestTiming{API: 999, Read: at(0), Start: at(0), Local: at(0), Done: at(0), Sent: at(0)})
	// A long-poll that completed before the handler noted its local end.
	m.Request(broker.RequestTiming{API: protocol.Fetch, Read: at(0), Start: at(1), Local: at(5), Done: at(4), Sent: at(6)})

	if got := testutil.ToFloat64(m.req.requests.WithLabelValues("sluice", "Produce", "NONE")); got != 1 {
		t.Errorf("Produce NONE = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.req.requests.WithLabelValues("sluice", "Produce", protocol.ErrNotEnoughReplicas.String())); got != 1 {
		t.Errorf("Produce %v = %v, want 1", protocol.ErrNotEnoughReplicas, got)
	}
	if got := testutil.ToFloat64(m.req.requests.WithLabelValues("sluice", "other", "NONE")); got != 1 {
		t.Errorf("other NONE = %v, want 1", got)
	}
	// A front end's requests: their own listener label, under the names
	// the front end gives, beside the sluice listener's of the same name.
	m.Request(broker.RequestTiming{Listener: "kafka", APIName: "Produce", Read: at(0), Start: at(2), Local: at(3), Done: at(13), Sent: at(14)})
	m.Request(broker.RequestTiming{Listener: "kafka", APIName: "Produce", Code: protocol.ErrNotLeaderOrFollower, Read: at(0), Start: at(0), Local: at(0), Done: at(0), Sent: at(0)})
	if got := testutil.ToFloat64(m.req.requests.WithLabelValues("kafka", "Produce", "NONE")); got != 1 {
		t.Errorf("kafka Produce NONE = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.req.requests.WithLabelValues("kafka", "Produce", protocol.ErrNotLeaderOrFollower.String())); got != 1 {
		t.Errorf("kafka Produce %v = %v, want 1", protocol.ErrNotLeaderOrFollower, got)
	}
	for _, mt := range gather(t, m)["sluice_request_duration_seconds"].GetMetric() {
		if l := Labels(mt); l["listener"] == "kafka" && l["stage"] == "wait" {
			if h := mt.GetHistogram(); h.GetSampleCount() != 2 || !near(h.GetSampleSum(), .010) {
				t.Errorf("kafka Produce wait: %v, want count 2 sum 0.010", h)
			}
		}
	}
	sums := histSums(t, m, "sluice_request_duration_seconds", listenerSluice)
	for _, c := range []struct {
		api, stage string
		count      uint64
		sum        float64
	}{
		{"Produce", "queue", 2, .001}, {"Produce", "local", 2, .002}, {"Produce", "wait", 2, .004}, {"Produce", "send", 2, .008},
		{"Fetch", "wait", 1, 0}, {"Fetch", "send", 1, .002},
	} {
		h := sums[c.api+"/"+c.stage]
		if h == nil || h.GetSampleCount() != c.count || !near(h.GetSampleSum(), c.sum) {
			t.Errorf("%s %s: %v, want count %d sum %v", c.api, c.stage, h, c.count, c.sum)
		}
	}

	m.Sync(3*time.Millisecond, nil)
	m.Sync(time.Millisecond, errors.New("EIO"))
	m.Commit(2 * time.Millisecond)
	if got := testutil.ToFloat64(m.fsyncErr); got != 1 {
		t.Errorf("flush failures = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.fsync); n != 1 {
		t.Errorf("fsync histogram: %d series", n)
	}
	fam := gather(t, m)["sluice_log_fsync_duration_seconds"]
	if h := fam.GetMetric()[0].GetHistogram(); h.GetSampleCount() != 2 || !near(h.GetSampleSum(), .004) {
		t.Errorf("fsync histogram: %v", h)
	}
	fam = gather(t, m)["sluice_controller_commit_duration_seconds"]
	if h := fam.GetMetric()[0].GetHistogram(); h.GetSampleCount() != 1 || !near(h.GetSampleSum(), .002) {
		t.Errorf("commit histogram: %v", h)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// histSums returns the histograms of family name by "api/stage", those
// of listener only.
func histSums(t *testing.T, m *Metrics, name, listener string) map[string]*dto.Histogram {
	t.Helper()
	out := map[string]*dto.Histogram{}
	for _, mt := range gather(t, m)[name].GetMetric() {
		l := Labels(mt)
		if l["listener"] != listener {
			continue
		}
		out[l["api"]+"/"+l["stage"]] = mt.GetHistogram()
	}
	return out
}

// Labels returns a series' labels by name (for this package's external
// tests too).
func Labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestDefaultAddr(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"127.0.0.1:7092", "127.0.0.1:7095"},
		{"0.0.0.0:9092", "0.0.0.0:9095"},
		{":7092", ":7095"},
		{"[::1]:7092", "[::1]:7095"},
		{"127.0.0.1:0", "127.0.0.1:0"},
	} {
		got, err := DefaultAddr(c.in)
		if err != nil || got != c.want {
			t.Errorf("DefaultAddr(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"7092", "host:port", "h:65533", "h:-1"} {
		if got, err := DefaultAddr(bad); err == nil {
			t.Errorf("DefaultAddr(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParseLevel(t *testing.T) {
	if l, err := ParseLevel("debug"); err != nil || l != LevelDebug {
		t.Fatalf("debug: %v %v", l, err)
	}
	if l, err := ParseLevel("info"); err != nil || l != LevelInfo {
		t.Fatalf("info: %v %v", l, err)
	}
	if _, err := ParseLevel("trace"); err == nil {
		t.Fatal("trace accepted")
	}
}

// BenchmarkRequestObserved is what the metrics add to one request: five
// clock reads as the broker's (observeNow's monotonic-clock reading) and Metrics.Request (a counter and four
// histogram observations), in wall-clock and CPU time (cpu-ns/op, the
// process's, which a loaded machine moves less). BenchmarkMetricsRequest
// has Metrics.Request alone; BenchmarkProduceMetrics measures it against
// a whole produce.
//
//	go test -run '^$' -bench RequestObserved -count 5 ./httpapi
func BenchmarkRequestObserved(b *testing.B) {
	m := NewMetrics(LevelInfo)
	epoch := time.Now()
	now := func() broker.Instant { return broker.Instant(time.Since(epoch)) }
	b.ReportAllocs()
	cpuPerOp(b, func() {
		for b.Loop() {
			var t broker.RequestTiming
			t.API, t.Read = protocol.Produce, now()
			t.Start = now()
			t.Local = now()
			t.Done = now()
			t.Sent = now()
			m.Request(t)
		}
	})
}

// BenchmarkMetricsRequest is Metrics.Request alone, for a request of the
// sluice listener and one of the Kafka listener, from one goroutine and
// from eight at once (the broker calls it from each connection's writer);
// "histogramvec" is the same work done as it was before requests.go, with
// prometheus.Histogram (four Observe on series resolved beforehand) and a
// counter, for comparison in one run.
//
//	go test -run '^$' -bench MetricsRequest -count 5 ./httpapi
func BenchmarkMetricsRequest(b *testing.B) {
	m := NewMetrics(LevelInfo)
	t0 := broker.Instant(time.Second)
	sluice := broker.RequestTiming{API: protocol.Produce, Read: t0, Start: t0 + 3_000, Local: t0 + 20_000, Done: t0 + 20_000, Sent: t0 + 90_000}
	kafka := sluice
	kafka.Listener, kafka.APIName = "kafka", "Produce"
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "d", Buckets: latencyBuckets[:]}, []string{"listener", "api", "stage"})
	var hs [4]prometheus.Observer
	for i, stage := range stageNames {
		hs[i] = vec.WithLabelValues("sluice", "Produce", stage)
	}
	ok := prometheus.NewCounter(prometheus.CounterOpts{Name: "c"})
	histogramvec := func(t broker.RequestTiming) {
		ok.Inc()
		q, l, w, s := t.Stages()
		hs[0].Observe(q.Seconds())
		hs[1].Observe(l.Seconds())
		hs[2].Observe(w.Seconds())
		hs[3].Observe(s.Seconds())
	}
	for _, c := range []struct {
		name    string
		t       broker.RequestTiming
		request func(broker.RequestTiming)
	}{{"sluice", sluice, m.Request}, {"kafka", kafka, m.Request}, {"histogramvec", sluice, histogramvec}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cpuPerOp(b, func() {
				for b.Loop() {
					c.request(c.t)
				}
			})
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(4) // 8 goroutines on 2 cores
			cpuPerOp(b, func() {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						c.request(c.t)
					}
				})
			})
		})
	}
}

// cpuPerOp runs bench and reports the process's CPU time per iteration.
func cpuPerOp(b *testing.B, bench func()) {
	c0, err := cost.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	bench()
	c1, err := cost.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(c1-c0)/float64(b.N), "cpu-ns/op")
}
