package httpapi_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/httpapi"
	"github.com/sluicemq/sluice/internal/cost"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// BenchmarkProduceMetrics is the produce path with metrics off (no
// Observer: no clock reads, no histograms) and on (httpapi.Metrics at
// each level), with small batches (10 records of 100 B) so that the
// per-request cost of the metrics weighs as much as it can. Each
// goroutine produces to its own partition over its own connection, acks=1.
// Compare the sub-benchmarks of one run: docs/observability.md has the
// ratio.
func BenchmarkProduceMetrics(b *testing.B) {
	for _, c := range []struct {
		name    string
		metrics bool
		level   httpapi.Level
	}{
		{"metrics=off", false, 0},
		{"metrics=info", true, httpapi.LevelInfo},
		{"metrics=debug", true, httpapi.LevelDebug},
	} {
		b.Run(c.name, func(b *testing.B) {
			o := startObserved(b, 1, c.level, c.metrics)
			benchProduce(b, o.Broker(1))
		})
	}
}

const benchPartitions = 8

// rawProducers creates topic with benchPartitions partitions on br and
// returns a raw connection to it per partition, once br leads them, and a
// batch of 10 records of 100 B.
func rawProducers(b *testing.B, br *broker.Broker, topic string) ([]*testcluster.RawConn, []byte) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.SeedBrokers(br.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := cl.CreateTopics(ctx, client.TopicSpec{Name: topic, Partitions: benchPartitions, ReplicationFactor: 1}); err != nil {
		b.Fatal(err)
	}
	conns := make([]*testcluster.RawConn, benchPartitions)
	for i := range conns {
		conns[i] = testcluster.DialRaw(b, br.Addr())
		conns[i].WaitLeading(topic, int32(i))
	}
	bl := record.NewBuilder(record.None)
	val := make([]byte, 100)
	for i := range 10 {
		bl.Append(time.Now().UnixMilli()+int64(i), nil, val, nil)
	}
	batch, err := bl.AppendBatch(nil)
	if err != nil {
		b.Fatal(err)
	}
	return conns, batch
}

func benchProduce(b *testing.B, br *broker.Broker) {
	conns, batch := rawProducers(b, br, "bench")
	var next atomic.Int32
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	b.SetParallelism(benchPartitions / 2) // 8 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1) - 1
		c := conns[i%benchPartitions]
		for pb.Next() {
			if _, err := c.Produce("bench", i%benchPartitions, protocol.AcksLeader, batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// metricsCostRounds is how many times BenchmarkMetricsCost runs each mode.
const metricsCostRounds = 3

// BenchmarkMetricsCost measures produce and consume throughput with the
// metrics off (no Observer and no endpoint: what --http-addr off runs)
// and on (--metrics-level info and debug, /metrics scraped once a second
// while loaded, 15 times Prometheus' default rate), through the client
// as users see it: bench.Produce for 5 s (2 producers, 8 partitions,
// 100 B records, the client's default batching, acks=all on one broker)
// into a fresh topic, then bench.Consume of all of it (2 consumers);
// then the worst case for a cost per request, requests of one 10-record
// batch over raw connections for 3 s (smallProduceRun). Besides the
// rates it takes the process's CPU time (user + system, the clients'
// included) per record or request, which a machine shared with other
// work moves less than the wall clock.
//
// The three modes are single-broker clusters running side by side, and
// they run interleaved: each round runs every mode once, in an order
// rotated from round to round, so that the load of a shared machine
// drifts over all of them alike. It logs each run, and reports each
// mode's median and spread ((max-min)/median) over metricsCostRounds
// rounds, and the on modes' medians over off's (the metrics x/off-*:
// records/s above 1 and CPU per record below 1 favour the metrics). One
// iteration is the whole comparison (-benchtime 1x); BENCHMARKS.md has
// the figures.
func BenchmarkMetricsCost(b *testing.B) {
	type mode struct {
		name    string
		metrics bool
		level   httpapi.Level
		o       *observed
		runs    []costRun
	}
	modes := []*mode{{name: "off"}, {name: "info", metrics: true, level: httpapi.LevelInfo}, {name: "debug", metrics: true, level: httpapi.LevelDebug}}
	for _, m := range modes {
		m.o = startObserved(b, 1, m.level, m.metrics)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ResetTimer()
	for range b.N {
		for _, m := range modes {
			m.runs = nil
		}
		for round := range metricsCostRounds {
			var order []string
			for i := range modes {
				m := modes[(i+round)%len(modes)]
				order = append(order, m.name)
				m.runs = append(m.runs, metricsCostRun(ctx, b, m.o, fmt.Sprintf("cost-%d", round)))
			}
			line := fmt.Sprintf("round %d (run %s):", round+1, strings.Join(order, ", "))
			for _, m := range modes {
				r := m.runs[round]
				line += fmt.Sprintf(" %s %.0f/%.2f %.0f/%.2f %.0f/%.1f;", m.name, r.produceRate, r.produceCPU, r.consumeRate, r.consumeCPU, r.smallRate, r.smallCPU)
			}
			b.Log(line)
		}
	}
	b.StopTimer()
	// The benchmark's log keeps 10 lines: a line a round above (produce
	// and consume records/s / CPU µs per record, small requests/s / CPU
	// µs per request), a line a mode here.
	figures := []struct {
		name, unit string
		of         func(costRun) float64
	}{
		{"produce", "records/s", func(r costRun) float64 { return r.produceRate }},
		{"produce-cpu", "µs/record", func(r costRun) float64 { return r.produceCPU }},
		{"consume", "records/s", func(r costRun) float64 { return r.consumeRate }},
		{"consume-cpu", "µs/record", func(r costRun) float64 { return r.consumeCPU }},
		{"small", "requests/s", func(r costRun) float64 { return r.smallRate }},
		{"small-cpu", "µs/request", func(r costRun) float64 { return r.smallCPU }},
	}
	off := modes[0]
	for _, m := range modes {
		line := m.name + ":"
		for _, f := range figures {
			med, spread := medianSpread(m.runs, f.of)
			line += fmt.Sprintf(" %s median %.2f %s spread %.1f%%", f.name, med, f.unit, 100*spread)
			if m == off {
				b.ReportMetric(med, m.name+"-"+f.name+"-"+f.unit)
			} else {
				ref, _ := medianSpread(off.runs, f.of)
				b.ReportMetric(med/ref, m.name+"/off-"+f.name)
				line += fmt.Sprintf(" (%.3f of off)", med/ref)
			}
			line += ";"
		}
		if m != off {
			pp, _ := medianSpread(m.runs, func(r costRun) float64 { return r.perProduce })
			pf, _ := medianSpread(m.runs, func(r costRun) float64 { return r.perFetch })
			line += fmt.Sprintf(" records per request: Produce %.0f, Fetch %.0f", pp, pf)
		}
		b.Log(line)
	}
}

// costRun is one run of BenchmarkMetricsCost's workload: records/s and
// the process's CPU µs per record, producing and consuming; with the
// metrics on, records per Produce and per Fetch request (what the
// per-request cost of the metrics is spread over).
type costRun struct {
	produceRate, produceCPU, consumeRate, consumeCPU float64
	perProduce, perFetch                             float64
	// smallRate and smallCPU are the small-request run's Produce
	// requests/s and CPU µs per request.
	smallRate, smallCPU float64
}

// metricsCostRun produces to a new topic on o's broker for 5 s, scraping
// its /metrics each second when it has an endpoint, then consumes the
// topic whole.
func metricsCostRun(ctx context.Context, b *testing.B, o *observed, topic string) costRun {
	b.Helper()
	cfg := bench.Config{Client: []client.Opt{client.SeedBrokers(o.Broker(1).Addr())}, Topic: topic, Create: true,
		Partitions: 8, ReplicationFactor: 1, RecordSize: 100, Producers: 2, Consumers: 2, Duration: 5 * time.Second}
	runtime.GC() // each run starts from a collected heap, not the previous run's garbage
	sctx, stop := context.WithCancel(ctx)
	var scraper sync.WaitGroup
	if srv := o.servers[1]; srv != nil {
		scraper.Go(func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-sctx.Done():
					return
				case <-tick.C:
				}
				req, err := http.NewRequestWithContext(sctx, http.MethodGet, "http://"+srv.Addr()+"/metrics", nil)
				if err != nil {
					b.Error(err)
					return
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					if sctx.Err() == nil {
						b.Error(err)
					}
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	m := o.metrics[1]
	produces, fetches := requestCount(b, m, "Produce"), requestCount(b, m, "Fetch")
	cpu0 := cpuTime(b)
	pr, err := bench.Produce(ctx, cfg)
	stop()
	scraper.Wait()
	cpu1 := cpuTime(b)
	if err != nil || pr.Errors > 0 || pr.Records == 0 {
		b.Fatalf("produce to %s: %v %+v", topic, err, pr)
	}
	runtime.GC()
	cpu2 := cpuTime(b)
	cfg.Duration = 0
	cr, err := bench.Consume(ctx, cfg)
	cpu3 := cpuTime(b)
	if err != nil || cr.Records != pr.Records {
		b.Fatalf("consume %s: %v: %+v, produced %d", topic, err, cr, pr.Records)
	}
	perRecord := func(d time.Duration, n int64) float64 { return float64(d.Microseconds()) / float64(n) }
	r := costRun{produceRate: pr.RecordsPerSec, produceCPU: perRecord(cpu1-cpu0, pr.Records),
		consumeRate: cr.RecordsPerSec, consumeCPU: perRecord(cpu3-cpu2, cr.Records)}
	if m != nil {
		r.perProduce = float64(pr.Records) / (requestCount(b, m, "Produce") - produces)
		r.perFetch = float64(cr.Records) / (requestCount(b, m, "Fetch") - fetches)
	}
	r.smallRate, r.smallCPU = smallProduceRun(b, o, topic+"-small")
	return r
}

// smallProduceRun produces 10-record batches of 100 B, one per request
// (acks=1), over 8 connections for 3 s, each to its own partition of a
// new topic: requests as small as a client sends with linger 0, where the
// metrics' cost per request weighs the most. It returns the requests/s
// and the process's CPU µs per request.
func smallProduceRun(b *testing.B, o *observed, topic string) (rate, cpuPerRequest float64) {
	b.Helper()
	conns, batch := rawProducers(b, o.Broker(1), topic)
	runtime.GC()
	var requests atomic.Int64
	var wg sync.WaitGroup
	cpu0, start := cpuTime(b), time.Now()
	deadline := start.Add(3 * time.Second)
	for i, c := range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if _, err := c.Produce(topic, int32(i), protocol.AcksLeader, batch); err != nil {
					b.Error(err)
					return
				}
				requests.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	n := float64(requests.Load())
	return n / elapsed.Seconds(), float64(cpu.Microseconds()) / n
}

// requestCount is how many requests of api m has counted, 0 without m.
func requestCount(b *testing.B, m *httpapi.Metrics, api string) float64 {
	if m == nil {
		return 0
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	n := 0.0
	for _, f := range fams {
		if f.GetName() != "sluice_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			if httpapi.Labels(s)["api"] == api {
				n += s.GetCounter().GetValue()
			}
		}
	}
	return n
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// medianSpread is the median of the runs' figures and their spread,
// (max-min)/median.
func medianSpread(runs []costRun, of func(costRun) float64) (median, spread float64) {
	s := make([]float64, len(runs))
	for i, r := range runs {
		s[i] = of(r)
	}
	slices.Sort(s)
	median = s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return median, (s[len(s)-1] - s[0]) / median
}

// metricsPairs is how many interleaved pairs BenchmarkMetricsCPU runs:
// go test ... -args -cost.pairs 9.
var metricsPairs = flag.Int("cost.pairs", 7, "interleaved off/info pairs of BenchmarkMetricsCPU")

// BenchmarkMetricsCPU compares a broker without metrics (no Observer and
// no endpoint: --http-addr off) with one at --metrics-level info by what
// a fixed amount of work costs the process in CPU time and heap
// allocations (internal/cost), which a shared machine's load moves far
// less than the throughput BenchmarkMetricsCost reports. The two are
// single-broker clusters in this process, the work alternating between
// them in metricsPairs pairs; each run scrapes /metrics once (with
// metrics on) after the measured time, so that the figures are the cost
// of counting, and the scrape sub-benchmark measures what a scrape costs
// (a Prometheus scrape every 15 s spreads it over that much work). The
// work:
//   - produce: 1,000,000 records of 100 B through the client (default
//     batching, acks=all) into a fresh 8-partition topic;
//   - fetch: consuming those records back (the producing is not
//     measured);
//   - small: 32,000 Produce requests of one 10-record batch each (acks=1)
//     over 8 raw connections, the worst case for a cost per request.
//
// It reports per mode the median CPU ns and allocations per record (per
// request for small), and logs the per-pair ratios info/off; scrape
// reports CPU ns and allocations per scrape of the info broker.
//
//	go test -run '^$' -bench MetricsCPU -benchtime 1x -timeout 30m ./httpapi
func BenchmarkMetricsCPU(b *testing.B) {
	const records, requests = 1_000_000, 32_000
	value := make([]byte, 100)
	type mode struct {
		name              string
		o                 *observed
		prod, cons, admin *client.Client
	}
	start := func(name string, metrics bool) *mode {
		o := startObserved(b, 1, httpapi.LevelInfo, metrics)
		return &mode{name: name, o: o, prod: o.Client(client.Acks(client.AcksAll)), cons: o.Client(), admin: o.Client()}
	}
	off, info := start("off", false), start("info", true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	scrape := func(m *mode) error {
		srv := m.o.servers[1]
		if srv == nil {
			return nil
		}
		resp, err := http.Get("http://" + srv.Addr() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	create := func(m *mode, topic string) {
		testcluster.CreateTopic(b, m.admin, client.TopicSpec{Name: topic, Partitions: benchPartitions, ReplicationFactor: 1})
	}
	for _, w := range []struct {
		name string
		run  func(m *mode, topic string) (cost.Sample, error)
	}{
		{"produce", func(m *mode, topic string) (cost.Sample, error) {
			create(m, topic)
			return cost.Measure(records, func() error { return cost.ProduceN(ctx, m.prod, topic, value, records) })
		}},
		{"fetch", func(m *mode, topic string) (cost.Sample, error) {
			create(m, topic)
			if err := cost.ProduceN(ctx, m.prod, topic, value, records); err != nil {
				return cost.Sample{}, err
			}
			return cost.Measure(records, func() error { return cost.ConsumeN(ctx, m.cons, topic, benchPartitions, records) })
		}},
		{"small", func(m *mode, topic string) (cost.Sample, error) {
			conns, batch := rawProducers(b, m.o.Broker(1), topic)
			return cost.Measure(requests, func() error {
				var wg sync.WaitGroup
				errs := make([]error, len(conns))
				for i, c := range conns {
					wg.Go(func() {
						for range requests / len(conns) {
							if _, err := c.Produce(topic, int32(i), protocol.AcksLeader, batch); err != nil {
								errs[i] = err
								return
							}
						}
					})
				}
				wg.Wait()
				return errors.Join(errs...)
			})
		}},
	} {
		b.Run(w.name, func(b *testing.B) {
			run := func(m *mode) func(int) (cost.Sample, error) {
				return func(pair int) (cost.Sample, error) {
					topic := fmt.Sprintf("%s-%s%d", w.name, m.name, pair+1)
					s, err := w.run(m, topic)
					if err == nil {
						err = scrape(m)
					}
					if err != nil {
						return s, err
					}
					cost.Print(b, pair, m.name, s)
					testcluster.DeleteTopic(b, m.admin, topic)
					return s, nil
				}
			}
			for range b.N {
				p, err := cost.Compare(*metricsPairs, run(off), run(info))
				if err != nil {
					b.Fatal(err)
				}
				p.Report(b, "off", "info")
			}
		})
	}
	b.Run("scrape", func(b *testing.B) {
		const scrapes = 50
		for range b.N {
			s, err := cost.Measure(scrapes, func() error {
				for range scrapes {
					if err := scrape(info); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(s.CPU, "cpu-ns/scrape")
			b.ReportMetric(s.Allocs, "allocs/scrape")
		}
	})
}
