package kafka

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkVersusKafka runs the same franz-go workloads against sluice's
// Kafka listener and against an Apache Kafka broker, both running as
// processes of their own, in one run: idempotent acks=all produce (1 ms
// linger, no compression) and consume from the start, 100 B and 1 KiB
// records. It reports records/s and, for produce, the p50 and p99 of the
// time from Produce to its acknowledgement. scripts/kafka-versus.sh starts
// both systems and runs it; by hand:
//
//	SLUICE_VERSUS='sluice=127.0.0.1:19095;kafka=127.0.0.1:19092' SLUICE_VERSUS_RF=1 \
//	  go test -run '^$' -bench VersusKafka -benchtime 300000x -count 1 ./kafka
//
// (go test's -count runs each workload that many times in a row, so the
// script runs rounds of -count 1 instead, swapping which system goes
// first every round: the two then see the same load.)
// SLUICE_VERSUS names each system's bootstrap addresses (comma-separated);
// SLUICE_VERSUS_RF (default 1) and SLUICE_VERSUS_PARTITIONS (default 3)
// shape the topics. Without SLUICE_VERSUS it is skipped. For tail-latency
// hunts: SLUICE_VERSUS_KGO_LOG names a file the producers log to at debug
// level (appended, each line stamped), and SLUICE_VERSUS_METADATA_MIN_AGE
// (a duration) sets the producers' kgo.MetadataMinAge (franz-go's default
// is 5 s); SLUICE_VERSUS_SETTLE (a duration) waits, untimed, between
// creating a produce run's topic and producing to it. Each produce run
// also reports its slowest acknowledgement (max-ms), how many took over
// 100 ms (over100ms) and how far into the run the last of those was
// produced (over100ms-until-ms), and logs when the acknowledgements over
// 1 s were produced.
func BenchmarkVersusKafka(b *testing.B) {
	spec := os.Getenv("SLUICE_VERSUS")
	if spec == "" {
		b.Skip("SLUICE_VERSUS is not set (scripts/kafka-versus.sh sets it)")
	}
	targets, err := parseVersus(spec)
	if err != nil {
		b.Fatal(err)
	}
	rf := int16(envInt(b, "SLUICE_VERSUS_RF", 1))
	partitions := int32(envInt(b, "SLUICE_VERSUS_PARTITIONS", 3))
	var settle time.Duration // untimed, between a produce topic's creation and the run
	if s := os.Getenv("SLUICE_VERSUS_SETTLE"); s != "" {
		if settle, err = time.ParseDuration(s); err != nil {
			b.Fatalf("SLUICE_VERSUS_SETTLE: %v", err)
		}
	}
	ctx := context.Background()
	for _, size := range []int{100, 1024} {
		value := make([]byte, size)
		for _, tg := range targets {
			adm := kadm.NewClient(newClient(b, tg.addrs))
			var topic string
			b.Run(fmt.Sprintf("produce/%dB/rf%d/%s", size, rf, tg.name), func(b *testing.B) {
				benchTopics++
				topic = fmt.Sprintf("versus-%d-%d-%d", size, time.Now().UnixNano(), benchTopics)
				createTopic(b, ctx, adm, topic, partitions, rf, nil)
				time.Sleep(settle)
				b.SetBytes(int64(size))
				b.ResetTimer()
				res := produceVersus(b, tg.addrs, topic, value, b.N)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(res.lat.ValueAtQuantile(50))/1e3, "p50-ms")
				b.ReportMetric(float64(res.lat.ValueAtQuantile(99))/1e3, "p99-ms")
				b.ReportMetric(float64(res.lat.Max())/1e3, "max-ms")
				b.ReportMetric(float64(res.over), "over100ms")
				b.ReportMetric(float64(res.overUntil.Milliseconds()), "over100ms-until-ms")
				b.StopTimer()
				deleteVersusTopic(b, ctx, adm, topic)
			})
			b.Run(fmt.Sprintf("consume/%dB/rf%d/%s", size, rf, tg.name), func(b *testing.B) {
				// A topic of its own holding b.N records, written untimed.
				benchTopics++
				topic := fmt.Sprintf("%s-consume-%d", topic, benchTopics)
				createTopic(b, ctx, adm, topic, partitions, rf, nil)
				produceVersus(b, tg.addrs, topic, value, b.N)
				b.SetBytes(int64(size))
				b.ResetTimer()
				consumeVersus(b, tg.addrs, topic, b.N)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				b.StopTimer()
				deleteVersusTopic(b, ctx, adm, topic)
			})
		}
	}
}

// deleteVersusTopic deletes a run's topic once measured, untimed: at RF 3
// five rounds of both systems would otherwise leave about 20 GB on the
// disk.
func deleteVersusTopic(b *testing.B, ctx context.Context, adm *kadm.Client, topic string) {
	res, err := adm.DeleteTopics(ctx, topic)
	if err == nil {
		err = res[topic].Err
	}
	if err != nil {
		b.Fatalf("delete topic %s: %v", topic, err)
	}
}

type versusTarget struct {
	name  string
	addrs []string
}

// parseVersus reads "name=addr,addr;name=addr".
func parseVersus(spec string) ([]versusTarget, error) {
	var out []versusTarget
	for _, part := range strings.Split(spec, ";") {
		name, addrs, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || addrs == "" {
			return nil, fmt.Errorf("SLUICE_VERSUS: %q is not name=addr[,addr...]", part)
		}
		out = append(out, versusTarget{name: name, addrs: strings.Split(addrs, ",")})
	}
	return out, nil
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// versusProduced is what produceVersus measured: the histogram, in
// microseconds, of the time from Produce to acknowledgement, and where in
// the run its tail lies: how many acknowledgements took over 100 ms, and
// how long after the run's first record the last of them was produced (a
// tail that ends early in a long run is the run's start, such as a new
// topic's followers, not its steady state).
type versusProduced struct {
	lat       *hdrhistogram.Histogram
	over      int
	overUntil time.Duration
}

// produceVersus produces n records with up to window of them in flight.
func produceVersus(b *testing.B, addrs []string, topic string, value []byte, n int) versusProduced {
	ctx := context.Background()
	opts := append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RequiredAcks(kgo.AllISRAcks())}, versusDebugOpts(b)...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	// A record belongs to the client until its callback, so slots are
	// handed back by the callback.
	free := make(chan *kgo.Record, window)
	for range window {
		free <- new(kgo.Record)
	}
	var (
		mu     sync.Mutex
		lat    = hdrhistogram.New(1, 60_000_000, 3)
		failed atomic.Int64
		// The acknowledgements over 1 s: how many, and the first and
		// last produce time among them (to find them in the logs).
		slow                int
		slowFirst, slowLast time.Time
		// The acknowledgements over 100 ms: how many, and the last
		// produce time among them.
		over     int
		overLast time.Time
		start    = time.Now()
	)
	cb := func(r *kgo.Record, err error) {
		if err != nil {
			if failed.Add(1) == 1 {
				b.Errorf("produce: %v", err)
			}
		}
		d := time.Since(r.Timestamp)
		mu.Lock()
		_ = lat.RecordValue(d.Microseconds())
		if d > 100*time.Millisecond {
			if over++; r.Timestamp.After(overLast) {
				overLast = r.Timestamp
			}
		}
		if d > time.Second {
			if slow++; slowFirst.IsZero() || r.Timestamp.Before(slowFirst) {
				slowFirst = r.Timestamp
			}
			if r.Timestamp.After(slowLast) {
				slowLast = r.Timestamp
			}
		}
		mu.Unlock()
		free <- r
	}
	for range n {
		r := <-free
		*r = kgo.Record{Value: value, Timestamp: time.Now()}
		cl.Produce(ctx, r, cb)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d records failed", f, n)
	}
	if slow > 0 {
		b.Logf("%s: %d of %d acknowledgements took over 1 s (max %v), produced from %s to %s", topic, slow, n,
			time.Duration(lat.Max())*time.Microsecond, slowFirst.UTC().Format(time.RFC3339Nano), slowLast.UTC().Format(time.RFC3339Nano))
	}
	res := versusProduced{lat: lat, over: over}
	if over > 0 {
		res.overUntil = overLast.Sub(start)
	}
	return res
}

// versusDebugOpts are the producers' options from SLUICE_VERSUS_KGO_LOG
// and SLUICE_VERSUS_METADATA_MIN_AGE (BenchmarkVersusKafka).
func versusDebugOpts(b *testing.B) []kgo.Opt {
	var opts []kgo.Opt
	if s := os.Getenv("SLUICE_VERSUS_METADATA_MIN_AGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("SLUICE_VERSUS_METADATA_MIN_AGE: %v", err)
		}
		opts = append(opts, kgo.MetadataMinAge(d))
	}
	if path := os.Getenv("SLUICE_VERSUS_KGO_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			b.Fatalf("SLUICE_VERSUS_KGO_LOG: %v", err)
		}
		b.Cleanup(func() { f.Close() })
		stamp := func() string { return time.Now().UTC().Format("15:04:05.000000 ") }
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(f, kgo.LogLevelDebug, stamp)))
	}
	return opts
}

func consumeVersus(b *testing.B, addrs []string, topic string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatalf("after %d of %d records: %v", got, n, err)
		}
		got += fs.NumRecords()
	}
}
