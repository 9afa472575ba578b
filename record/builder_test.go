package record

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
)

type testRecord struct {
	ts         int64
	key, value []byte
	headers    []Header
}

func roundTripCases() map[string][]testRecord {
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: multi-byte lengths, several lz4 blocks
	many := make([]testRecord, 1000)
	for i := range many {
		many[i] = testRecord{ts: 1_700_000_000_000 + int64(i%7)*3 - 10, key: []byte(fmt.Sprint("k", i)), value: jsonish(i)}
	}
	return map[string][]testRecord{
		"nil key and value":   {{ts: 1}},
		"empty key and value": {{ts: 1, key: []byte{}, value: []byte{}}},
		"nil key":             {{ts: 5, value: []byte("v")}},
		"nil value":           {{ts: 5, key: []byte("tombstone")}},
		"headers": {{ts: 7, key: []byte("k"), value: []byte("v"), headers: []Header{
			{Key: []byte("trace"), Value: []byte("abc")},
			{Key: []byte("null"), Value: nil},
			{Key: []byte("empty"), Value: []byte{}},
			{Key: []byte{}, Value: []byte("empty key")},
		}}},
		"timestamps out of order and negative": {{ts: 100}, {ts: -5}, {ts: math.MaxInt64}, {ts: math.MinInt64}, {ts: 0}},
		"large value":                          {{ts: 1, key: []byte("big"), value: big}, {ts: 2, value: []byte("after")}},
		"many records":                         many,
	}
}

func TestRoundTrip(t *testing.T) {
	for name, recs := range roundTripCases() {
		for _, codec := range allCodecs {
			t.Run(name+"/"+codec.String(), func(t *testing.T) {
				bld := NewBuilder(codec)
				bld.SetProducer(42, 3, 1000)
				for _, r := range recs {
					bld.Append(r.ts, r.key, r.value, r.headers)
				}
				if bld.Len() != len(recs) {
					t.Fatalf("Len %d, want %d", bld.Len(), len(recs))
				}
				b, err := bld.Build()
				if err != nil {
					t.Fatal(err)
				}
				checkHeader(t, b, codec, recs)
				if err := Validate(b, Limits{Contiguous: true}); err != nil {
					t.Fatalf("Validate: %v", err)
				}
				b.SetBaseOffset(500)
				b.SetLeaderEpoch(9)
				if err := b.VerifyCRC(); err != nil {
					t.Fatalf("stamping base offset and epoch broke the CRC: %v", err)
				}
				checkRecords(t, b, recs, 500)
			})
		}
	}
}

func checkHeader(t *testing.T, b Batch, codec Codec, recs []testRecord) {
	t.Helper()
	maxTs := recs[0].ts
	for _, r := range recs {
		maxTs = max(maxTs, r.ts)
	}
	got := []any{b.Size(), b.MagicByte(), b.Attributes().Codec(), b.RecordCount(), b.LastOffsetDelta(),
		b.BaseTimestamp(), b.MaxTimestamp(), b.ProducerID(), b.ProducerEpoch(), b.BaseSequence(), b.LeaderEpoch(), b.BaseOffset()}
	want := []any{len(b), int8(Magic), codec, int32(len(recs)), int32(len(recs) - 1),
		recs[0].ts, maxTs, int64(42), int16(3), int32(1000), int32(-1), int64(0)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("header fields %v, want %v", got, want)
	}
}

func checkRecords(t *testing.T, b Batch, recs []testRecord, base int64) {
	t.Helper()
	var r Reader
	if err := r.Reset(b); err != nil {
		t.Fatal(err)
	}
	i := 0
	for ; r.Next(); i++ {
		if i >= len(recs) {
			t.Fatalf("more records than the %d appended", len(recs))
		}
		got, want := r.Record(), recs[i]
		if got.Offset != base+int64(i) || got.Timestamp != want.ts {
			t.Fatalf("record %d: offset %d ts %d, want %d %d", i, got.Offset, got.Timestamp, base+int64(i), want.ts)
		}
		sameBytes(t, fmt.Sprint("record ", i, " key"), got.Key, want.key)
		sameBytes(t, fmt.Sprint("record ", i, " value"), got.Value, want.value)
		if len(got.Headers) != len(want.headers) {
			t.Fatalf("record %d: %d headers, want %d", i, len(got.Headers), len(want.headers))
		}
		for j, h := range want.headers {
			if !bytes.Equal(got.Headers[j].Key, h.Key) || got.Headers[j].Key == nil {
				t.Fatalf("record %d header %d: key %q, want %q (never nil)", i, j, got.Headers[j].Key, h.Key)
			}
			sameBytes(t, fmt.Sprint("record ", i, " header ", j, " value"), got.Headers[j].Value, h.Value)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatalf("after %d records: %v", i, err)
	}
	if i != len(recs) {
		t.Fatalf("%d records, want %d", i, len(recs))
	}
}

// sameBytes compares contents and nil-ness: null and empty are different
// values in Kafka (a null value is a tombstone).
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
		t.Fatalf("%s: %q (nil %t), want %q (nil %t)", what, trunc(got), got == nil, trunc(want), want == nil)
	}
}

func trunc(b []byte) []byte { return b[:min(len(b), 40)] }

func TestBuilderReuse(t *testing.T) {
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			bld := NewBuilder(codec)
			bld.SetProducer(7, 1, 0)
			bld.Append(10, []byte("a"), []byte("first"), nil)
			if _, err := bld.Build(); err != nil {
				t.Fatal(err)
			}
			// Append after Build extends the batch.
			bld.Append(11, nil, []byte("second"), nil)
			b, err := bld.Build()
			if err != nil {
				t.Fatal(err)
			}
			checkRecords(t, b, []testRecord{{ts: 10, key: []byte("a"), value: []byte("first")}, {ts: 11, value: []byte("second")}}, 0)

			bld.Reset()
			if bld.Len() != 0 || bld.EstimatedSize() != HeaderSize {
				t.Fatalf("after Reset: Len %d EstimatedSize %d", bld.Len(), bld.EstimatedSize())
			}
			if _, err := bld.Build(); !errors.Is(err, ErrEmptyBatch) {
				t.Fatalf("Build of an empty builder: %v, want ErrEmptyBatch", err)
			}
			bld.Append(20, []byte("b"), nil, nil)
			b, err = bld.Build()
			if err != nil {
				t.Fatal(err)
			}
			if b.ProducerID() != -1 || b.ProducerEpoch() != -1 || b.BaseSequence() != -1 {
				t.Fatalf("Reset kept producer fields: %d %d %d", b.ProducerID(), b.ProducerEpoch(), b.BaseSequence())
			}
			checkRecords(t, b, []testRecord{{ts: 20, key: []byte("b")}}, 0)
		})
	}
}

func TestBuilderEstimatedSize(t *testing.T) {
	bld := NewBuilder(None)
	for i := range 10 {
		bld.Append(int64(i), []byte("k"), jsonish(i), []Header{{Key: []byte("h"), Value: []byte("v")}})
		b, err := bld.Build()
		if err != nil {
			t.Fatal(err)
		}
		if bld.EstimatedSize() != len(b) {
			t.Fatalf("after %d records: EstimatedSize %d, built %d", i+1, bld.EstimatedSize(), len(b))
		}
	}
}

func TestBuilderUnknownCodec(t *testing.T) {
	bld := NewBuilder(Codec(6))
	bld.Append(1, nil, []byte("v"), nil)
	if _, err := bld.Build(); err == nil {
		t.Fatal("Build with codec 6 succeeded")
	}
}

func TestAppendBatchAndNextBatch(t *testing.T) {
	var blob []byte
	var want []int
	for i, codec := range allCodecs {
		bld := NewBuilder(codec)
		for j := 0; j <= i; j++ {
			bld.Append(int64(j), nil, []byte("v"), nil)
		}
		var err error
		if blob, err = bld.AppendBatch(blob); err != nil {
			t.Fatal(err)
		}
		want = append(want, i+1)
	}
	var got []int
	for rest := blob; len(rest) > 0; {
		b, next, err := NextBatch(rest, 1<<20)
		if err != nil {
			t.Fatalf("batch %d: %v", len(got), err)
		}
		if err := Validate(b, Limits{MaxBatchBytes: 1 << 20}); err != nil {
			t.Fatalf("batch %d: %v", len(got), err)
		}
		got = append(got, int(b.RecordCount()))
		rest = next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("record counts %v, want %v", got, want)
	}
	// A partial batch at the end, as a fetch response may carry.
	_, rest, err := NextBatch(blob[:len(blob)-1], 0)
	for err == nil && len(rest) > 0 {
		_, rest, err = NextBatch(rest, 0)
	}
	wantCheck(t, err, CheckShort)
}
