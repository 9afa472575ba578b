package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// BenchmarkProduceConsume produces b.N records of one size through the
// client library and an in-process broker on loopback, then consumes them
// back. It reports records/s and MB/s of each phase separately. acks=1,
// fsync=interval, no compression, one partition, one producer: the figures
// issue #6 sets targets for.
//
//	go test -run '^$' -bench ProduceConsume -benchtime 2000000x ./internal/e2e/
func BenchmarkProduceConsume(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			br := startBroker(&testing.T{}, b.TempDir())
			defer br.Close()
			ctx := context.Background()
			topic := "bench"
			prod, err := client.New(ctx, client.SeedBrokers(br.Addr()), client.Acks(client.AcksLeader))
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
			start := time.Now()
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
			produced := time.Since(start)
			if firstErr != nil {
				b.Fatal(firstErr)
			}

			cons, err := client.New(ctx, client.SeedBrokers(br.Addr()))
			if err != nil {
				b.Fatal(err)
			}
			defer cons.Close()
			cons.Assign(map[client.TopicPartition]client.Offset{{Topic: topic, Partition: 0}: client.AtStart()})
			start = time.Now()
			for n := 0; n < b.N; {
				fs, err := cons.Poll(ctx)
				if err != nil {
					b.Fatal(err)
				}
				n += len(fs.Records)
			}
			consumed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/produced.Seconds(), "produce-rec/s")
			b.ReportMetric(float64(b.N)*float64(size)/produced.Seconds()/1e6, "produce-MB/s")
			b.ReportMetric(float64(b.N)/consumed.Seconds(), "consume-rec/s")
			b.ReportMetric(float64(b.N)*float64(size)/consumed.Seconds()/1e6, "consume-MB/s")
		})
	}
}
