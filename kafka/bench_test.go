package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/record"
)

// BenchmarkListeners compares, against one broker in one run, franz-go on
// the Kafka listener with sluice's own client on the sluice listener:
// produce (idempotent, acks=all, 1 ms linger, no compression) and consume
// from the start, of 100 B and 1 KiB records, one partition. records/s is
// the figure; the ratio of the two clients is what a shared, noisy
// machine can tell.
//
//	go test -run '^$' -bench Listeners -benchtime 200000x ./kafka
func BenchmarkListeners(b *testing.B) {
	br, kafkaAddr := single(b, nil)
	sluiceAddr := br.Addr()
	ctx := context.Background()
	adm := kadm.NewClient(newClient(b, []string{kafkaAddr}))
	for _, size := range []int{100, 1024} {
		value := make([]byte, size)
		for _, side := range []string{"sluice", "franz"} {
			topic := fmt.Sprintf("bench-%s-%d", side, size)
			createTopic(b, ctx, adm, topic, 1, 1, nil)
			b.Run(fmt.Sprintf("produce/%dB/%s", size, side), func(b *testing.B) {
				b.SetBytes(int64(size))
				start := time.Now()
				if side == "sluice" {
					produceSluice(b, sluiceAddr, topic, value, b.N)
				} else {
					produceFranz(b, kafkaAddr, topic, value, b.N)
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			})
			b.Run(fmt.Sprintf("consume/%dB/%s", size, side), func(b *testing.B) {
				// A topic of its own holding b.N records, written untimed.
				benchTopics++
				topic := fmt.Sprintf("%s-consume-%d", topic, benchTopics)
				createTopic(b, ctx, adm, topic, 1, 1, nil)
				produceSluice(b, sluiceAddr, topic, value, b.N)
				b.SetBytes(int64(size))
				b.ResetTimer()
				start := time.Now()
				if side == "sluice" {
					consumeSluice(b, sluiceAddr, topic, b.N)
				} else {
					consumeFranz(b, kafkaAddr, topic, b.N)
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			})
		}
	}
}

// benchTopics numbers the consume benchmarks' topics (-count reruns them).
var benchTopics int

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

func consumeFranz(b *testing.B, addr, topic string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
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
