package httpapi_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/httpapi"
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

func benchProduce(b *testing.B, br *broker.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.SeedBrokers(br.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := cl.CreateTopics(ctx, client.TopicSpec{Name: "bench", Partitions: benchPartitions, ReplicationFactor: 1}); err != nil {
		b.Fatal(err)
	}
	conns := make([]*testcluster.RawConn, benchPartitions)
	for i := range conns {
		conns[i] = testcluster.DialRaw(b, br.Addr())
		conns[i].WaitLeading("bench", int32(i))
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
