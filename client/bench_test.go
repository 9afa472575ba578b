package client

import (
	"context"
	"testing"
	"time"
)

// BenchmarkProduce is the producer's hot path: Produce of 100-byte records
// into batches sent to a fake broker that answers at once, through the
// real connection layer, idempotent (the default with acks=all: sequence
// numbers, up to five batches in flight, the fake broker checking them) and
// not. records/s is the figure to watch; allocs/op counts every allocation
// per record, batching and requests included.
func BenchmarkProduce(b *testing.B) {
	for _, idem := range []bool{true, false} {
		name := "idempotent"
		if !idem {
			name = "not-idempotent"
		}
		b.Run(name, func(b *testing.B) { benchmarkProduce(b, idem) })
	}
}

func benchmarkProduce(b *testing.B, idem bool) {
	fc := newFakeCluster(b, 1)
	fc.addTopic("t", 1)
	c, err := New(context.Background(), SeedBrokers(fc.addrs()...), Linger(time.Millisecond), Idempotent(idem))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	cb := func(*Record, error) {}
	recs := make([]Record, 4096)
	val := make([]byte, 100)
	b.SetBytes(int64(len(val)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		r := &recs[i%len(recs)]
		if i > 0 && i%len(recs) == 0 {
			// The producer owns a Record until its callback: settle a lap
			// of slots before reusing them.
			if err := c.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		*r = Record{Topic: "t", Value: val}
		c.Produce(ctx, r, cb)
	}
	if err := c.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkStickyPartitionAllStalled is the keyless choice while every
// partition of a 1000-partition topic stalls: bounded probes, not a scan.
func BenchmarkStickyPartitionAllStalled(b *testing.B) {
	const n = 1000
	t0 := time.Unix(100, 0)
	tp := &ptopic{sticky: -1}
	for i := range n {
		tp.parts = append(tp.parts, &ppart{t: tp, partition: int32(i), open: &batch{created: t0}})
	}
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for b.Loop() {
		tp.stickyPartition(n, now, 5*time.Millisecond)
	}
}
