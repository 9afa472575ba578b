package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// Keyed records land on KeyPartition's partition, in produce order.
func TestProduceKeysAndOrder(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 1, 2, 1)
	c := newTestClient(t, fc)
	var recs []*Record
	want := map[int32][]string{}
	for i := range 60 {
		key := []byte(fmt.Sprintf("k%d", i%7))
		v := fmt.Sprint(i)
		recs = append(recs, &Record{Topic: "t", Key: key, Value: []byte(v)})
		p := KeyPartition(key, 3)
		want[p] = append(want[p], v)
	}
	if err := c.ProduceSync(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		if got := fc.values("t", p); fmt.Sprint(got) != fmt.Sprint(want[p]) {
			t.Errorf("partition %d: %v, want %v", p, got, want[p])
		}
	}
	for _, r := range recs {
		if r.Partition != KeyPartition(r.Key, 3) || r.Offset < 0 {
			t.Errorf("record %s: partition %d offset %d", r.Value, r.Partition, r.Offset)
		}
	}
}

// Definite retriable failures injected at random never reorder a
// partition: one batch in flight, retried at the head.
func TestProduceOrderUnderRetries(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, Linger(time.Millisecond), BatchMaxBytes(300))
	var n atomic.Int64
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key == protocol.Produce && n.Add(1)%3 == 0 {
			return action{resp: produceErrorResponse(req.(*protocol.ProduceRequest), protocol.ErrNotEnoughReplicas)}
		}
		return action{}
	})
	const total = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []int64
	wg.Add(total)
	for i := range total {
		c.Produce(context.Background(), &Record{Topic: "t", Value: []byte(fmt.Sprintf("%04d", i))}, func(r *Record, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("record %s: %v", r.Value, err)
				return
			}
			mu.Lock()
			acked = append(acked, r.Offset)
			mu.Unlock()
		})
	}
	wg.Wait()
	got := fc.values("t", 0)
	if len(got) != total {
		t.Fatalf("%d records stored, want %d", len(got), total)
	}
	for i, v := range got {
		if v != fmt.Sprintf("%04d", i) {
			t.Fatalf("offset %d holds %s: reordered", i, v)
		}
	}
	for i := 1; i < len(acked); i++ {
		if acked[i] != acked[i-1]+1 {
			t.Fatalf("callbacks out of order: offset %d after %d", acked[i], acked[i-1])
		}
	}
	if n.Load() <= int64(total/50) {
		t.Errorf("only %d produce requests: batching or injection not exercised", n.Load())
	}
}

// Flush waits for every record; Close delivers what is still buffered
// (a linger of an hour would otherwise hold it) and calls every callback
// exactly once.
func TestFlushAndCloseLoseNothing(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c, err := New(context.Background(), SeedBrokers(fc.addrs()...), Linger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	calls := make([]atomic.Int32, 20)
	produce := func(i int) {
		c.Produce(context.Background(), &Record{Topic: "t", Value: []byte{byte(i)}}, func(r *Record, err error) {
			if err != nil {
				t.Errorf("record %d: %v", i, err)
			}
			calls[i].Add(1)
		})
	}
	for i := range 10 {
		produce(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if calls[i].Load() != 1 {
			t.Fatalf("after Flush record %d has %d callbacks", i, calls[i].Load())
		}
	}
	for i := 10; i < 20; i++ {
		produce(i)
	}
	c.Close()
	c.Close() // idempotent
	for i := range calls {
		if n := calls[i].Load(); n != 1 {
			t.Errorf("record %d: %d callbacks, want 1", i, n)
		}
	}
	if got := fc.values("t", 0); len(got) != 20 {
		t.Errorf("%d records stored, want 20", len(got))
	}
	var after error
	c.Produce(context.Background(), &Record{Topic: "t"}, func(_ *Record, err error) { after = err })
	if !errors.Is(after, ErrClosed) {
		t.Errorf("produce after Close: %v", after)
	}
}

// A full buffer blocks Produce until its context ends; the record then
// fails, definitely, with the context's error.
func TestProduceBlocksOnMemoryLimit(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	hold := make(chan struct{})
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key == protocol.Produce {
			return action{wait: hold}
		}
		return action{}
	})
	c := newTestClient(t, fc, BatchMaxBytes(4096), MaxBufferedBytes(4096), Linger(0))
	val := make([]byte, 1000)
	for range 3 {
		c.Produce(context.Background(), &Record{Topic: "t", Value: val}, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	var got error
	c.Produce(ctx, &Record{Topic: "t", Value: val}, func(_ *Record, err error) { got = err })
	if !errors.Is(got, context.DeadlineExceeded) || IsIndeterminate(got) {
		t.Fatalf("got %v, want a definite deadline error", got)
	}
	close(hold)
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: val}); err != nil {
		t.Fatalf("produce after space freed: %v", err)
	}
}

func TestProduceAcksNone(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, Acks(AcksNone))
	rec := &Record{Topic: "t", Value: []byte("v")}
	if err := c.ProduceSync(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if rec.Offset != -1 {
		t.Errorf("acks=0 offset %d, want -1", rec.Offset)
	}
	poll.Until(t, 10*time.Second, "the record stored", func() bool { return len(fc.values("t", 0)) == 1 })
}

// Every codec goes through the broker's validation and back through the
// consumer.
func TestProduceConsumeEveryCodec(t *testing.T) {
	for _, codec := range []record.Codec{record.None, record.Gzip, record.Snappy, record.LZ4, record.Zstd} {
		t.Run(codec.String(), func(t *testing.T) {
			fc := newFakeCluster(t, 1)
			fc.addTopic("t", 1)
			c := newTestClient(t, fc, Compression(codec), FetchMaxWait(10*time.Millisecond))
			var recs []*Record
			for i := range 50 {
				recs = append(recs, &Record{Topic: "t", Key: []byte("k"), Value: []byte(fmt.Sprintf("value-%d", i)),
					Headers: []record.Header{{Key: []byte("h"), Value: []byte(fmt.Sprint(i))}}})
			}
			if err := c.ProduceSync(context.Background(), recs...); err != nil {
				t.Fatal(err)
			}
			got := consumeN(t, c, "t", 0, AtStart(), 50)
			for i, r := range got {
				if string(r.Value) != fmt.Sprintf("value-%d", i) || r.Offset != int64(i) ||
					len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i) {
					t.Fatalf("record %d: offset %d value %q headers %v", i, r.Offset, r.Value, r.Headers)
				}
			}
		})
	}
}
