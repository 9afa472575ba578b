package kafka

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/cost"
	"github.com/sluicemq/sluice/record"
)

// listenersProfile is a directory where BenchmarkListeners writes a CPU
// profile of each run's timed part (workload_size_side.prof), without
// the untimed writes of the consume runs that -cpuprofile would mix in.
var listenersProfile = flag.String("listeners.profile", "", "BenchmarkListeners: write a CPU profile of each timed part into this directory")

// listenersSides is the order BenchmarkListeners runs the two clients in
// on each workload: alternate it from run to run, so neither always runs
// second (after the other's writes, in a page cache the other warmed).
var listenersSides = flag.String("listeners.sides", "sluice,franz", "BenchmarkListeners: the clients in the order they run on each workload")

// BenchmarkListeners compares, against one broker in one run, franz-go on
// the Kafka listener with sluice's own client on the sluice listener:
// produce (idempotent, acks=all, 1 ms linger, no compression) and consume
// from the start, of 100 B and 1 KiB records, one partition. records/s is
// the figure; the ratio of the two clients is what a shared, noisy
// machine can tell. cpu-ns/record is the CPU time (user and system) the
// whole process, clients and broker, spent per record: on a machine
// shared with other work it moves far less than records/s.
//
// Every run has a topic of its own, deleted after it: a topic growing
// from run to run, or the dirty pages of the previous run's writes, would
// make a run's cost depend on what ran before it (the page cache's
// writeback throttles the broker's writes).
//
//	go test -run '^$' -bench Listeners -benchtime 200000x ./kafka
//
// -args -listeners.sides franz,sluice runs franz-go first; with
// -listeners.profile DIR each timed part's CPU profile goes to DIR, for
// scripts/pprof-owners.py to split by owner (BENCHMARKS.md).
func BenchmarkListeners(b *testing.B) {
	sides := strings.Split(*listenersSides, ",")
	if len(sides) != 2 || !slices.Contains(sides, "sluice") || !slices.Contains(sides, "franz") {
		b.Fatalf("-listeners.sides %q: want sluice,franz or franz,sluice", *listenersSides)
	}
	br, kafkaAddr := single(b, nil)
	sluiceAddr := br.Addr()
	ctx := context.Background()
	adm := kadm.NewClient(newClient(b, []string{kafkaAddr}))
	for _, size := range []int{100, 1024} {
		value := make([]byte, size)
		for _, side := range sides {
			b.Run(fmt.Sprintf("produce/%dB/%s", size, side), func(b *testing.B) {
				topic := benchTopic(b, ctx, adm, "produce", size, side)
				b.SetBytes(int64(size))
				timed(b, "produce", size, side, func() {
					if side == "sluice" {
						produceSluice(b, sluiceAddr, topic, value, b.N)
					} else {
						produceFranz(b, kafkaAddr, topic, value, b.N)
					}
				})
			})
		}
		for _, side := range sides {
			b.Run(fmt.Sprintf("consume/%dB/%s", size, side), func(b *testing.B) {
				// b.N records, written untimed.
				topic := benchTopic(b, ctx, adm, "consume", size, side)
				produceSluice(b, sluiceAddr, topic, value, b.N)
				b.SetBytes(int64(size))
				b.ResetTimer()
				timed(b, "consume", size, side, func() {
					if side == "sluice" {
						consumeSluice(b, sluiceAddr, topic, b.N)
					} else {
						consumeFranz(b, kafkaAddr, topic, b.N)
					}
				})
			})
		}
	}
}

// benchTopics numbers the benchmark runs' topics.
var benchTopics int

// benchTopic creates a topic of one partition for one run, deleted when
// the run ends.
func benchTopic(b *testing.B, ctx context.Context, adm *kadm.Client, op string, size int, side string) string {
	benchTopics++
	topic := fmt.Sprintf("bench-%s-%d-%s-%d", op, size, side, benchTopics)
	createTopic(b, ctx, adm, topic, 1, 1, nil)
	b.Cleanup(func() {
		res, err := adm.DeleteTopics(ctx, topic)
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			b.Errorf("delete topic %s: %v", topic, err)
		}
	})
	return topic
}

// timed runs run, the timed part of a BenchmarkListeners run of b.N
// records, and reports records/s and the process's CPU time per record,
// under a CPU profile when -listeners.profile is set.
func timed(b *testing.B, op string, size int, side string, run func()) {
	if *listenersProfile != "" {
		f, err := os.Create(filepath.Join(*listenersProfile, fmt.Sprintf("%s_%dB_%s.prof", op, size, side)))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, err := cost.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	run()
	wall := time.Since(start)
	cpu1, err := cost.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/wall.Seconds(), "records/s")
	b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/record")
}

func produceSluice(b *testing.B, addr, topic string, value []byte, n int) {
	ctx := context.Background()
	c, err := client.New(ctx, client.SeedBrokers(addr), client.Linger(time.Millisecond), client.Compression(record.None))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	recs := make([]client.Record, window)
	cb := func(_ *client.Record, err error) {
		if err != nil {
			b.Error(err)
		}
	}
	produceLoop(b, n, func(i int) {
		recs[i] = client.Record{Topic: topic, Value: value}
		c.Produce(ctx, &recs[i], cb)
	}, func() error { return c.Flush(ctx) })
}

func produceFranz(b *testing.B, addr, topic string, value []byte, n int) {
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	recs := make([]kgo.Record, window)
	cb := func(_ *kgo.Record, err error) {
		if err != nil {
			b.Error(err)
		}
	}
	produceLoop(b, n, func(i int) {
		recs[i] = kgo.Record{Value: value}
		cl.Produce(ctx, &recs[i], cb)
	}, func() error { return cl.Flush(ctx) })
}

// window is how many records a produce benchmark has in flight: a client
// owns a record until its callback, so the slots are reused only after a
// flush.
const window = 4096

// produceLoop calls produce(slot) n times, flushing every window records
// and at the end.
func produceLoop(b *testing.B, n int, produce func(slot int), flush func() error) {
	for i := range n {
		if i > 0 && i%window == 0 {
			if err := flush(); err != nil {
				b.Fatal(err)
			}
		}
		produce(i % window)
	}
	if err := flush(); err != nil {
		b.Fatal(err)
	}
}

// consumeSluice reads n records from the start.
func consumeSluice(b *testing.B, addr, topic string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(ctx, client.SeedBrokers(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Assign(map[client.TopicPartition]client.Offset{{Topic: topic, Partition: 0}: client.AtStart()})
	for got := 0; got < n; {
		fs, err := c.Poll(ctx)
		if err != nil {
			b.Fatalf("after %d of %d records: %v", got, n, err)
		}
		got += len(fs.Records)
	}
}

// consumeFranz reads n records from the start with kgo, and reports how
// many Fetch round trips that took and the share of the time that kgo
// was waiting for one (request written to answer read: the broker's
// service and the transfer): kgo has one fetch per broker at a time, so
// the rest is kgo decoding and handing the records over.
func consumeFranz(b *testing.B, addr, topic string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rtt := &fetchRoundTrips{}
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(rtt))
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
	wall := time.Since(start)
	rtt.mu.Lock()
	defer rtt.mu.Unlock()
	b.ReportMetric(float64(rtt.n), "fetches")
	b.ReportMetric(100*float64(rtt.wait)/float64(wall), "fetch-wait-%")
	b.ReportMetric(100*float64(rtt.first)/float64(wall), "fetch-first-byte-%")
}

// fetchRoundTrips is a kgo hook summing its Fetch round trips.
type fetchRoundTrips struct {
	mu   sync.Mutex
	n    int
	wait time.Duration
	// first is the part of wait from the request written to the answer's
	// first byte read (the broker's service, kgo's reader waking); the
	// rest is the transfer of the answer.
	first time.Duration
}

func (h *fetchRoundTrips) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	if key != fetchKey {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	h.wait += e.DurationE2E()
	h.first += e.ReadWait
}
