package client

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/record"
)

// BenchmarkDecodeRecords measures the consumer's decode of a 1 MiB fetch
// of 100 B records (batches of 1,000), per record, into a slab reused
// from one decode to the next (as a released fetch buffer's is).
//
//	go test -run '^$' -bench DecodeRecords -benchmem ./client/
func BenchmarkDecodeRecords(b *testing.B) {
	var data []byte
	bld := record.NewBuilder(record.None)
	value := make([]byte, 100)
	off := int64(0)
	for len(data) < 1<<20 {
		bld.Reset()
		for range 1000 {
			bld.Append(1700000000000, nil, value, nil)
		}
		batch, err := bld.Build()
		if err != nil {
			b.Fatal(err)
		}
		start := len(data)
		data = append(data, batch...)
		record.Batch(data[start:]).SetBaseOffset(off)
		off += 1000
	}
	var rd record.Reader
	var slab recSlab
	tp := TopicPartition{Topic: "t", Partition: 0}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		recs, _, err := decodeRecords(&rd, data, 0, tp, 1<<30, &slab)
		if err != nil || int64(len(recs)) != off {
			b.Fatalf("decoded %d records, err %v; want %d", len(recs), err, off)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*off), "ns/record")
}

// BenchmarkConsumeFetch measures the consumer's whole read path per fetch
// response of about 1 MiB (one batch of 1 KiB or 100 B records): the
// conn reading the frame off loopback TCP, decoding the response and its
// records, and Poll handing them over, with the application releasing
// each Fetches once it has read it (Fetches.Release) or keeping it for
// the garbage collector. B/op and allocs/op are per response. The fake
// broker serves an endless partition from one prebuilt batch, stamped
// with the offset asked for (the base offset is outside the CRC), so it
// allocates next to nothing itself.
//
//	go test -run '^$' -bench ConsumeFetch -benchmem ./client/
func BenchmarkConsumeFetch(b *testing.B) {
	for _, size := range []int{1024, 100} {
		for _, release := range []bool{false, true} {
			name := fmt.Sprintf("%dB/keep", size)
			if release {
				name = fmt.Sprintf("%dB/release", size)
			}
			b.Run(name, func(b *testing.B) { benchConsumeFetch(b, size, release) })
		}
	}
}

func benchConsumeFetch(b *testing.B, size int, release bool) {
	n := (1 << 20) / (size + 8)
	bld := record.NewBuilder(record.None)
	value := make([]byte, size)
	for range n {
		bld.Append(1700000000000, nil, value, nil)
	}
	built, err := bld.Build()
	if err != nil {
		b.Fatal(err)
	}
	batch := record.Batch(append([]byte(nil), built...))
	fc := newFakeCluster(b, 1)
	serveEndless(fc, func(int64) record.Batch { return batch }) // the base offset is outside the CRC
	c := newTestClient(b, fc, FetchMaxWait(10*time.Millisecond))
	c.Assign(map[TopicPartition]Offset{{"t", 0}: At(0)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	poll := func(want int64) {
		for got := int64(0); got < want; {
			fs, err := c.Poll(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(fs.Errors) > 0 {
				b.Fatal(fs.Errors[0])
			}
			got += int64(len(fs.Records))
			if release {
				fs.Release()
			}
		}
	}
	poll(int64(8 * n)) // warm up: connections, metadata, the first buffers
	b.SetBytes(int64(n * size))
	b.ReportAllocs()
	b.ResetTimer()
	poll(int64(b.N * n))
}
