package e2e

import (
	"context"
	"flag"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/cost"
	"github.com/sluicemq/sluice/internal/testcerts"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// BenchmarkProduceConsume produces b.N records of one size through the
// client library and an in-process broker on loopback, then consumes them
// back. It reports records/s and MB/s of each phase separately. acks=1,
// fsync=interval, no compression, one partition, one producer: the figures
// issue #6 sets targets for. Each size runs over plain TCP and over TLS
// (TLS 1.3, an ECDSA P-256 certificate from internal/testcerts, client
// certificates required), one after the other, so one run compares them.
//
//	go test -run '^$' -bench ProduceConsume -benchtime 2000000x ./internal/e2e/
func BenchmarkProduceConsume(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, secure := range []bool{false, true} {
			name := fmt.Sprintf("%dB", size)
			if secure {
				name = fmt.Sprintf("tls/%dB", size)
			}
			b.Run(name, func(b *testing.B) { benchProduceConsume(b, size, secure) })
		}
	}
}

// benchBroker starts a broker for a benchmark or test and returns it with
// the client options that reach it: with TLS when secure.
func benchBroker(b testing.TB, secure bool) (*broker.Broker, []client.Opt) {
	cfg := broker.Config{ListenAddr: "127.0.0.1:0", DataDir: b.TempDir()}
	var opts []client.Opt
	if secure {
		dir := b.TempDir()
		ca := testcerts.NewCA(b, "bench CA")
		bf, cf := ca.Issue(b, dir, "broker", testcerts.Valid), ca.Issue(b, dir, "client", testcerts.Valid)
		br, err := auth.NewReloader(auth.TLSFiles{CertFile: bf.CertFile, KeyFile: bf.KeyFile, CAFile: bf.CAFile})
		if err != nil {
			b.Fatal(err)
		}
		if cfg.TLS, err = auth.NewTransport(br, auth.ClientAuthRequired); err != nil {
			b.Fatal(err)
		}
		cr, err := auth.NewReloader(auth.TLSFiles{CertFile: cf.CertFile, KeyFile: cf.KeyFile, CAFile: cf.CAFile})
		if err != nil {
			b.Fatal(err)
		}
		opts = append(opts, client.TLS(cr.ClientConfig("")))
	}
	br, err := broker.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return br, append(opts, client.SeedBrokers(br.Addr()))
}

func benchProduceConsume(b *testing.B, size int, secure bool) {
	br, opts := benchBroker(b, secure)
	defer br.Close()
	ctx := context.Background()
	topic := "bench"
	prod, err := client.New(ctx, append(opts, client.Acks(client.AcksLeader))...)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	if err := prod.CreateTopics(ctx, client.TopicSpec{Name: topic, Partitions: 1}); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	if err := cost.ProduceN(ctx, prod, topic, value, b.N); err != nil {
		b.Fatal(err)
	}
	produced, producedCPU := time.Since(start), cpuTime()-cpu

	cons, err := client.New(ctx, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	start, cpu = time.Now(), cpuTime()
	if err := cost.ConsumeN(ctx, cons, topic, 1, b.N); err != nil {
		b.Fatal(err)
	}
	consumed, consumedCPU := time.Since(start), cpuTime()-cpu
	b.StopTimer()
	b.ReportMetric(float64(b.N)/produced.Seconds(), "produce-rec/s")
	b.ReportMetric(float64(b.N)*float64(size)/produced.Seconds()/1e6, "produce-MB/s")
	b.ReportMetric(float64(b.N)/consumed.Seconds(), "consume-rec/s")
	b.ReportMetric(float64(b.N)*float64(size)/consumed.Seconds()/1e6, "consume-MB/s")
	// CPU time (user and system, the whole process: client and broker)
	// per record: what a phase costs, whatever else loads the machine.
	b.ReportMetric(float64(producedCPU.Nanoseconds())/float64(b.N), "produce-cpu-ns/rec")
	b.ReportMetric(float64(consumedCPU.Nanoseconds())/float64(b.N), "consume-cpu-ns/rec")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	d, _ := cost.CPUTime()
	return d
}

// costPairs is how many interleaved pairs the cost benchmarks run
// (BenchmarkIdempotenceCost): go test ... -args -cost.pairs 9.
var costPairs = flag.Int("cost.pairs", 7, "interleaved A/B pairs of the cost benchmarks")

// costOnly, if set, makes BenchmarkIdempotenceCost run only that mode
// ("plain" or "idem"), costPairs times, for a CPU profile of one mode.
var costOnly = flag.String("cost.only", "", "run one mode only (plain or idem), for a profile")

// produceCounter is a broker.Observer that counts Produce requests
// (a run's records per request tells how full its batches were).
type produceCounter struct{ n atomic.Int64 }

func (o *produceCounter) Request(t broker.RequestTiming) {
	if t.API == protocol.Produce {
		o.n.Add(1)
	}
}
func (o *produceCounter) Sync(time.Duration, error) {}
func (o *produceCounter) Commit(time.Duration)      {}

// BenchmarkIdempotenceCost compares the idempotent producer with the
// plain one (client.Idempotent(true) against (false), acks=all both) by
// what a fixed number of records costs the process in CPU time and heap
// allocations: brokers and client run in this process, so the figures
// are both sides' together. The brokers count Produce requests (an
// Observer that reads the clock a few times per request, in both modes)
// and each run prints its records per request. Per replication factor (1, and 3 on three
// in-process brokers) and record size (100 B, 1 KiB), one cluster and
// one client per mode produce a fresh 3-partition topic per run (deleted
// after it), the two modes alternating in costPairs pairs
// (internal/cost.Compare). It reports per mode the median CPU ns and
// allocations per record, and the medians of the per-pair ratios
// idempotent/plain with their range in the log; BENCHMARKS.md has the
// figures.
//
//	go test -run '^$' -bench IdempotenceCost -benchtime 1x -timeout 30m ./internal/e2e/
func BenchmarkIdempotenceCost(b *testing.B) {
	for _, rf := range []int{1, 3} {
		for _, size := range []int{100, 1024} {
			b.Run(fmt.Sprintf("rf=%d/%dB", rf, size), func(b *testing.B) { benchIdempotenceCost(b, rf, size) })
		}
	}
}

func benchIdempotenceCost(b *testing.B, rf, size int) {
	n := 1_000_000 // 100 MB of 100 B values
	if size > 100 {
		n = 250_000 // 256 MB of 1 KiB values
	}
	var obs produceCounter
	c := testcluster.Start(b, rf, testcluster.Options{Configure: func(cfg *broker.Config) { cfg.Observer = &obs }})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	admin := c.Client()
	plain := c.Client(client.Acks(client.AcksAll), client.Idempotent(false))
	idem := c.Client(client.Acks(client.AcksAll), client.Idempotent(true))
	value := make([]byte, size)
	run := func(cl *client.Client, mode string) func(int) (cost.Sample, error) {
		return func(pair int) (cost.Sample, error) {
			topic := fmt.Sprintf("%s%d", mode, pair+1)
			testcluster.CreateTopic(b, admin, client.TopicSpec{Name: topic, Partitions: 3, ReplicationFactor: int16(rf)})
			reqs := obs.n.Load()
			s, err := cost.Measure(int64(n), func() error { return cost.ProduceN(ctx, cl, topic, value, n) })
			if err != nil {
				return s, err
			}
			fmt.Printf("%s: %s records per Produce request %.0f\n", b.Name(), mode, float64(n)/float64(obs.n.Load()-reqs))
			cost.Print(b, pair, mode, s)
			testcluster.DeleteTopic(b, admin, topic)
			return s, nil
		}
	}
	b.ResetTimer()
	if *costOnly != "" {
		cl := map[string]*client.Client{"plain": plain, "idem": idem}[*costOnly]
		for i := range *costPairs {
			if _, err := run(cl, *costOnly)(i); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	for range b.N {
		p, err := cost.Compare(*costPairs, run(plain, "plain"), run(idem, "idem"))
		if err != nil {
			b.Fatal(err)
		}
		p.Report(b, "plain", "idem")
	}
}
