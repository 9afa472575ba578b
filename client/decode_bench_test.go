package client

import (
	"testing"

	"github.com/sluicemq/sluice/record"
)

// BenchmarkDecodeRecords measures the consumer's decode of a 1 MiB fetch
// of 100 B records (batches of 1,000), per record.
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
	tp := TopicPartition{Topic: "t", Partition: 0}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		recs, _, err := decodeRecords(&rd, data, 0, tp, 1<<30)
		if err != nil || int64(len(recs)) != off {
			b.Fatalf("decoded %d records, err %v; want %d", len(recs), err, off)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*off), "ns/record")
}
