package record_test

import (
	"errors"
	"fmt"

	"github.com/sluicemq/sluice/record"
)

// A batch's life: a producer builds it, the broker validates it and
// stamps its offset, a consumer iterates its records.
func Example() {
	// Producer: records in, one sealed batch out (compressed, CRC set).
	b := record.NewBuilder(record.Snappy)
	b.Append(1764806400000, []byte("alice"), []byte("1"), nil)
	b.Append(1764806400001, nil, []byte("2"), []record.Header{{Key: []byte("source"), Value: []byte("cli")}})
	b.Append(1764806400002, []byte("alice"), []byte("3"), nil)
	batch, err := b.Build()
	if err != nil {
		panic(err)
	}

	// Broker: check every byte before trusting any, then give the batch
	// its place in the log (outside the CRC, so no re-checksum).
	if err := record.Validate(batch, record.Limits{MaxBatchBytes: 1 << 20, Contiguous: true}); err != nil {
		panic(err)
	}
	batch.SetBaseOffset(40)
	fmt.Println(batch.RecordCount(), "records, offsets", batch.BaseOffset(), "to", batch.LastOffset(), "codec", batch.Attributes().Codec())

	// Consumer: iterate the records; Key and Value alias the batch.
	r := record.NewReader(record.Limits{})
	if err := r.Reset(batch); err != nil {
		panic(err)
	}
	for r.Next() {
		rec := r.Record()
		fmt.Printf("%d key=%q value=%s headers=%d\n", rec.Offset, rec.Key, rec.Value, len(rec.Headers))
	}
	if err := r.Err(); err != nil {
		panic(err)
	}
	// Output:
	// 3 records, offsets 40 to 42 codec snappy
	// 40 key="alice" value=1 headers=0
	// 41 key="" value=2 headers=1
	// 42 key="alice" value=3 headers=0
}

// Validate refuses damaged bytes with a *CorruptError that names the
// check that failed (R1).
func ExampleValidate() {
	b := record.NewBuilder(record.None)
	b.Append(1764806400000, nil, []byte("hello"), nil)
	batch, err := b.Build()
	if err != nil {
		panic(err)
	}
	batch[len(batch)-1] ^= 0xff // a bit flip in the last value byte
	err = record.Validate(batch, record.Limits{})
	var ce *record.CorruptError
	fmt.Println(errors.Is(err, record.ErrCorrupt), errors.As(err, &ce) && ce.Check == record.CheckCRC)
	fmt.Println(err)
	// Output:
	// true true
	// corrupt record batch: crc: crc 0x95bacc73, stored 0x38c79f22
}
