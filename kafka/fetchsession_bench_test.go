package kafka

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchBytes counts the Fetch requests a kgo client sends and the bytes
// of them and of their answers (kgo's broker hooks).
type fetchBytes struct{ reqs, written, read atomic.Int64 }

func (h *fetchBytes) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, _ error) {
	if key == fetchKey {
		h.reqs.Add(1)
		h.written.Add(int64(n))
	}
}

func (h *fetchBytes) OnBrokerRead(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, _ error) {
	if key == fetchKey {
		h.read.Add(int64(n))
	}
}

var (
	_ kgo.HookBrokerWrite = (*fetchBytes)(nil)
	_ kgo.HookBrokerRead  = (*fetchBytes)(nil)
)

// BenchmarkFetchSessions: a franz-go consumer of a topic of 64 partitions,
// from a listener with fetch sessions (1,000 slots) and without (0), in
// one run. backlog: each iteration consumes 64 x 500 records of 100 B from
// the start with a new client whose fetches are capped at 64 KiB (about 50
// fetches of many partitions each; b.N x 32,000 records). tail: a caught-up
// consumer receives b.N records produced one at a time, each to the next
// partition; most of its fetches find one partition changed. The figures
// are records/s, and the Fetch requests' and responses' bytes per request
// (req-B/fetch, resp-B/fetch) as kgo counts them on the wire.
//
//	go test -run '^$' -bench FetchSessions -benchtime 5x -count 5 ./kafka        # backlog
//	go test -run '^$' -bench 'FetchSessions/tail' -benchtime 2000x -count 5 ./kafka
func BenchmarkFetchSessions(b *testing.B) {
	const parts, perPart = 64, 500
	value := make([]byte, 100)
	for _, mode := range []string{"backlog", "tail"} {
		for _, slots := range []int{DefaultFetchSessionSlots, 0} {
			name := "sessions"
			if slots == 0 {
				name = "sessionless"
			}
			b.Run(mode+"/"+name, func(b *testing.B) {
				_, addr, _ := singleWith(b, nil, FetchSessionSlots(slots))
				ctx := context.Background()
				pr := newClient(b, []string{addr}, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond),
					kgo.ProducerBatchCompression(kgo.NoCompression()))
				createTopic(b, ctx, kadm.NewClient(pr), "fs", parts, 1, nil)
				var h fetchBytes
				var consumed int
				var start time.Time
				switch mode {
				case "backlog":
					recs := make([]*kgo.Record, 0, parts*perPart)
					for p := range int32(parts) {
						for range perPart {
							recs = append(recs, &kgo.Record{Topic: "fs", Partition: p, Value: value})
						}
					}
					if err := pr.ProduceSync(ctx, recs...).FirstErr(); err != nil {
						b.Fatal(err)
					}
					b.ResetTimer()
					start = time.Now()
					for range b.N {
						co := benchConsumer(b, addr, &h, kgo.FetchMaxBytes(64<<10))
						consumed += pollN(b, co, parts*perPart)
						co.Close()
					}
				case "tail":
					co := benchConsumer(b, addr, &h)
					defer co.Close()
					// Caught up: the first fetch's answer (empty) came back.
					if err := pr.ProduceSync(ctx, &kgo.Record{Topic: "fs", Partition: 0, Value: value}).FirstErr(); err != nil {
						b.Fatal(err)
					}
					pollN(b, co, 1)
					h.reqs.Store(0)
					h.written.Store(0)
					h.read.Store(0)
					b.ResetTimer()
					start = time.Now()
					for i := range b.N {
						if err := pr.ProduceSync(ctx, &kgo.Record{Topic: "fs", Partition: int32(i % parts), Value: value}).FirstErr(); err != nil {
							b.Fatal(err)
						}
						consumed += pollN(b, co, 1)
					}
				}
				elapsed := time.Since(start)
				b.StopTimer()
				reqs := max(h.reqs.Load(), 1)
				b.ReportMetric(float64(consumed)/elapsed.Seconds(), "records/s")
				b.ReportMetric(float64(h.written.Load())/float64(reqs), "req-B/fetch")
				b.ReportMetric(float64(h.read.Load())/float64(reqs), "resp-B/fetch")
				b.ReportMetric(float64(reqs)/float64(b.N), "fetches/op")
			})
		}
	}
}

// benchConsumer is a kgo consumer of "fs" from the start, counting its
// fetch bytes in h; the caller closes it.
func benchConsumer(b *testing.B, addr string, h *fetchBytes, opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics("fs"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond), kgo.WithHooks(h)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	return cl
}

// pollN polls co until n records came (60 s at most) and returns n.
func pollN(b *testing.B, co *kgo.Client, n int) int {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := 0
	for got < n {
		fs := co.PollRecords(ctx, n-got)
		if ctx.Err() != nil {
			b.Fatalf("polled %d of %d records: %v", got, n, ctx.Err())
		}
		fs.EachError(func(t string, p int32, err error) { b.Fatalf("fetch %s/%d: %v", t, p, err) })
		got += fs.NumRecords()
	}
	if got != n {
		b.Fatalf("polled %d records, want %d", got, n)
	}
	return n
}
