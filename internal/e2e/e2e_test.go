package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startBroker runs an in-process broker on a free loopback port.
func startBroker(t *testing.T, dir string) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Config{ListenAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newClient(t *testing.T, addr string, opts ...client.Opt) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, append([]client.Opt{client.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// recordsPerRun is the number of records each codec/acks run produces.
// SLUICE_E2E_RECORDS overrides it.
func recordsPerRun(t *testing.T, def int) int {
	if s := os.Getenv("SLUICE_E2E_RECORDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("SLUICE_E2E_RECORDS: %v", err)
		}
		return n
	}
	return def
}

// payload makes a value of a size drawn from a mix of small, medium and
// large records, with the sequence number in front so it can be checked.
func payload(rng *rand.Rand, seq int) []byte {
	var n int
	switch r := rng.IntN(100); {
	case r < 70:
		n = rng.IntN(100)
	case r < 97:
		n = 100 + rng.IntN(2000)
	default:
		n = 2000 + rng.IntN(60000)
	}
	v := strconv.AppendInt(make([]byte, 0, n+12), int64(seq), 10)
	v = append(v, ':')
	for len(v) < cap(v) {
		v = append(v, byte('a'+len(v)%26))
	}
	return v
}

type sent struct {
	key, value []byte
}

// TestProduceConsumeEveryCodecAndAcks produces records of mixed sizes and
// keys with each codec and acks setting through the client and the broker,
// then consumes every partition from the start and checks that each
// partition holds exactly the records produced to it, in produce order,
// byte-identical.
func TestProduceConsumeEveryCodecAndAcks(t *testing.T) {
	b := startBroker(t, t.TempDir())
	codecs := []record.Codec{record.None, record.Gzip, record.Snappy, record.LZ4, record.Zstd}
	acks := []client.AckLevel{client.AcksNone, client.AcksLeader, client.AcksAll}
	n := recordsPerRun(t, 100000)
	if testing.Short() {
		n = 2000
	}
	for _, codec := range codecs {
		for _, ack := range acks {
			t.Run(fmt.Sprintf("%s/acks=%d", codec, ack), func(t *testing.T) {
				topic := fmt.Sprintf("mix-%s-%d", codec, ack+1)
				admin := newClient(t, b.Addr())
				ctx := context.Background()
				if err := admin.CreateTopics(ctx, client.TopicSpec{Name: topic, Partitions: 4, ReplicationFactor: 1}); err != nil {
					t.Fatal(err)
				}
				prod := newClient(t, b.Addr(), client.Compression(codec), client.Acks(ack), client.Linger(2*time.Millisecond))
				rng := rand.New(rand.NewPCG(uint64(codec), uint64(ack+1)))
				var mu sync.Mutex
				var failures []error
				var wg sync.WaitGroup
				recs := make([]*client.Record, n)
				for i := range n {
					r := &client.Record{Topic: topic, Value: payload(rng, i)}
					if rng.IntN(10) > 0 { // 10% without a key: sticky partitioning
						r.Key = []byte("key-" + strconv.Itoa(rng.IntN(50)))
					}
					recs[i] = r
					wg.Add(1)
					prod.Produce(ctx, r, func(_ *client.Record, err error) {
						defer wg.Done()
						if err != nil {
							mu.Lock()
							failures = append(failures, err)
							mu.Unlock()
						}
					})
				}
				if err := prod.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				wg.Wait()
				if len(failures) > 0 {
					t.Fatalf("%d records failed, first: %v", len(failures), failures[0])
				}
				want := map[int32][]sent{}
				for _, r := range recs {
					want[r.Partition] = append(want[r.Partition], sent{r.Key, r.Value})
				}
				checkConsume(t, b.Addr(), topic, 4, want)
			})
		}
	}
}

// TestProduceConsumeOverTLS produces records of mixed sizes to a broker
// with TLS on its listener (mutual TLS, auth.Conn: fetch responses leave
// through WriteBuffers) and consumes them through the client's TLS
// connection: several fetch responses of up to 1 MiB per partition, each
// decoded while the next is fetched, every record arrives once, in order,
// byte-identical.
func TestProduceConsumeOverTLS(t *testing.T) {
	b, opts := benchBroker(t, true)
	t.Cleanup(func() { b.Close() })
	tlsOpt := opts[0] // client.TLS; the rest is the seed
	const topic, partitions = "tls", 3
	prod := newClient(t, b.Addr(), tlsOpt, client.Acks(client.AcksLeader), client.Linger(2*time.Millisecond))
	ctx := context.Background()
	if err := prod.CreateTopics(ctx, client.TopicSpec{Name: topic, Partitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(18, 18))
	n := recordsPerRun(t, 8000) // about 10 MB: several 1 MiB fetch responses per partition
	recs := make([]*client.Record, n)
	for i := range recs {
		recs[i] = &client.Record{Topic: topic, Key: []byte("key-" + strconv.Itoa(rng.IntN(30))), Value: payload(rng, i)}
	}
	if err := prod.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	want := map[int32][]sent{}
	for _, r := range recs {
		want[r.Partition] = append(want[r.Partition], sent{r.Key, r.Value})
	}
	checkConsume(t, b.Addr(), topic, partitions, want, tlsOpt)
}

// checkConsume reads every partition from the start until it has as many
// records as want says and compares them in order.
func checkConsume(t *testing.T, addr, topic string, partitions int32, want map[int32][]sent, opts ...client.Opt) {
	t.Helper()
	cons := newClient(t, addr, opts...)
	assign := map[client.TopicPartition]client.Offset{}
	total := 0
	for p := range partitions {
		assign[client.TopicPartition{Topic: topic, Partition: p}] = client.AtStart()
		total += len(want[p])
	}
	cons.Assign(assign)
	got := map[int32][]sent{}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for n := 0; n < total; {
		fs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d records: %v", n, total, err)
		}
		for _, fe := range fs.Errors {
			t.Fatalf("fetch error: %v", fe)
		}
		for _, r := range fs.Records {
			got[r.Partition] = append(got[r.Partition], sent{bytes.Clone(r.Key), bytes.Clone(r.Value)})
			n++
		}
	}
	for p := range partitions {
		g, w := got[p], want[p]
		if len(g) != len(w) {
			t.Fatalf("partition %d: %d records, want %d", p, len(g), len(w))
		}
		for i := range w {
			if !bytes.Equal(g[i].key, w[i].key) || !bytes.Equal(g[i].value, w[i].value) {
				t.Fatalf("partition %d record %d: got key %q value %.40q…, want key %q value %.40q…",
					p, i, g[i].key, g[i].value, w[i].key, w[i].value)
			}
		}
	}
}
