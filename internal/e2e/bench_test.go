package e2e

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/testcerts"
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

// benchBroker starts a broker for a benchmark and returns it with the
// client options that reach it: with TLS when secure.
func benchBroker(b *testing.B, secure bool) (*broker.Broker, []client.Opt) {
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
	// Records are reused from a ring of chunks; before a chunk is
	// refilled, wait for the callbacks of its previous round only,
	// so the producer always has three chunks in flight.
	const chunk, chunks = 1 << 15, 4
	recs := make([]client.Record, chunk*chunks)
	var wgs [chunks]sync.WaitGroup
	var failed sync.Once
	var firstErr error
	cbs := make([]func(*client.Record, error), chunks)
	for i := range cbs {
		wg := &wgs[i]
		cbs[i] = func(_ *client.Record, err error) {
			if err != nil {
				failed.Do(func() { firstErr = err })
			}
			wg.Done()
		}
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		slot := i % len(recs)
		c := slot / chunk
		if slot%chunk == 0 {
			wgs[c].Wait()
		}
		r := &recs[slot]
		*r = client.Record{Topic: topic, Value: value}
		wgs[c].Add(1)
		prod.Produce(ctx, r, cbs[c])
	}
	if err := prod.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	for i := range wgs {
		wgs[i].Wait()
	}
	produced, producedCPU := time.Since(start), cpuTime()-cpu
	if firstErr != nil {
		b.Fatal(firstErr)
	}

	cons, err := client.New(ctx, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	cons.Assign(map[client.TopicPartition]client.Offset{{Topic: topic, Partition: 0}: client.AtStart()})
	start, cpu = time.Now(), cpuTime()
	for n := 0; n < b.N; {
		fs, err := cons.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n += len(fs.Records)
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
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
