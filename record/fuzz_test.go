package record

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzLimits keep each input cheap: a bomb stops at 1 MiB.
var fuzzLimits = Limits{MaxBatchBytes: 1 << 20, MaxDecompressedBytes: 1 << 20}

// addBatchSeeds gives a fuzz target every crafted corruption, valid
// batches of each codec, and decompression bombs.
func addBatchSeeds(f *testing.F, add func(b []byte)) {
	for _, tc := range checkCases(f) {
		add(tc.batch)
	}
	for _, c := range allCodecs {
		bld := NewBuilder(c)
		bld.SetProducer(1, 0, 0)
		for i := range 20 {
			var hs []Header
			if i%3 == 0 {
				hs = []Header{{Key: []byte("h"), Value: []byte("v")}, {Key: []byte{}, Value: nil}}
			}
			var key []byte
			if i%2 == 0 {
				key = []byte("k")
			}
			bld.Append(int64(1000+i*i), key, jsonish(i), hs)
		}
		b, err := bld.AppendBatch(nil)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
	// Bombs: far over fuzzLimits once decoded, small as seeds.
	add(bombBatch(f, Gzip, 100*mib))
	add(bombBatch(f, Zstd, 100*mib))
	add(bombBatch(f, LZ4, 8*mib))
	add(bombBatch(f, Snappy, 2*mib))
	add(snappyClaimBomb())
	// A length bomb: batchLength claims 2 GiB.
	b := bytes.Clone(mustBuild(f, None, 1))
	be.PutUint32(b[offBatchLength:], 0x7fffffff)
	add(b)
}

// FuzzValidate: Validate never panics, every refusal is a *CorruptError,
// and an accepted batch reads back exactly recordCount records that
// survive a rebuild unchanged. fixCRC reseals mutated bytes so that the
// fuzzer gets past the CRC to the records.
func FuzzValidate(f *testing.F) {
	addBatchSeeds(f, func(b []byte) {
		f.Add(b, false)
		f.Add(b, true)
	})
	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		if fixCRC {
			data = bytes.Clone(data)
			if b, err := ParseHeader(data, 0); err == nil {
				b.SetCRC()
			}
		}
		splitBatches(t, data)
		err := Validate(data, fuzzLimits)
		strict := fuzzLimits
		strict.Contiguous = true
		strictErr := Validate(data, strict)
		if err != nil {
			mustBeCorrupt(t, err)
			if strictErr == nil {
				t.Fatalf("Contiguous accepted what the default refused: %v", err)
			}
			return
		}
		if strictErr != nil {
			mustBeCorrupt(t, strictErr)
		}
		b := Batch(data)
		recs := readAll(t, b, fuzzLimits)
		if len(recs) != int(b.RecordCount()) {
			t.Fatalf("Validate accepted a batch of recordCount %d; the Reader read %d", b.RecordCount(), len(recs))
		}
		for i, r := range recs {
			if r.Offset < b.BaseOffset() || r.Offset > b.LastOffset() || (i > 0 && r.Offset <= recs[i-1].Offset) {
				t.Fatalf("record %d: offset %d out of order or outside [%d, %d]", i, r.Offset, b.BaseOffset(), b.LastOffset())
			}
			if strictErr == nil && r.Offset != b.BaseOffset()+int64(i) {
				t.Fatalf("Contiguous accepted record %d at offset %d", i, r.Offset)
			}
		}
		if len(recs) > 0 {
			rebuild(t, b.Attributes().Codec(), recs)
		}
	})
}

// FuzzReader: the Reader alone (no CRC check) never panics, refuses with
// a *CorruptError, reads exactly recordCount records when it ends cleanly,
// and agrees with Validate on whole batches whose CRC holds.
func FuzzReader(f *testing.F) {
	addBatchSeeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(fuzzLimits)
		if err := r.Reset(data); err != nil {
			mustBeCorrupt(t, err)
			if r.Next() {
				t.Fatal("Next true after a failed Reset")
			}
			return
		}
		b := Batch(data)
		n := 0
		for r.Next() {
			if n++; n > int(b.RecordCount()) {
				t.Fatalf("more than recordCount %d records", b.RecordCount())
			}
			rec := r.Record()
			_ = len(rec.Key) + len(rec.Value) + len(rec.Headers)
		}
		if err := r.Err(); err != nil {
			mustBeCorrupt(t, err)
			return
		}
		if n != int(b.RecordCount()) {
			t.Fatalf("clean end after %d records, recordCount %d", n, b.RecordCount())
		}
		if len(data) == b.Size() && b.VerifyCRC() == nil {
			if err := Validate(data, fuzzLimits); err != nil {
				t.Fatalf("the Reader accepted a whole batch with a good CRC; Validate: %v", err)
			}
		}
	})
}

// FuzzBuild: whatever records go into a Builder come out of a Reader
// unchanged, for every codec, and the batch passes Validate.
func FuzzBuild(f *testing.F) {
	f.Add(uint8(0), uint8(1), int64(0), int64(1), []byte("k"), []byte("v"), []byte("h"), []byte("hv"), uint8(0))
	f.Add(uint8(1), uint8(3), int64(-1), int64(-1<<62), []byte{}, []byte(nil), []byte(nil), []byte{}, uint8(0xff))
	f.Add(uint8(2), uint8(64), int64(1<<62), int64(7), []byte(nil), bytes.Repeat([]byte("x"), 300), []byte("h"), []byte(nil), uint8(0x55))
	f.Add(uint8(3), uint8(10), int64(-1<<63), int64(1<<63-1), []byte("key"), []byte{}, []byte{}, []byte("v"), uint8(0xaa))
	f.Add(uint8(4), uint8(200), int64(1700000000000), int64(3), jsonish(1), jsonish(2), []byte("trace"), []byte("0123"), uint8(0x0f))
	f.Fuzz(func(t *testing.T, codec, n uint8, ts, step int64, key, value, hkey, hval []byte, flags uint8) {
		c := Codec(codec % 5)
		var want []Record
		bld := NewBuilder(c)
		for i := range int(n%100) + 1 {
			r := Record{Timestamp: ts + int64(i)*step, Key: key, Value: value}
			if flags&(1<<(i%8)) != 0 {
				r.Key = nil
			}
			if flags&(1<<((i+3)%8)) != 0 {
				r.Value = nil
			}
			if i%3 == 1 {
				r.Headers = []Header{{Key: hkey, Value: hval}, {Key: hval, Value: nil}}
			}
			want = append(want, r)
			bld.Append(r.Timestamp, r.Key, r.Value, r.Headers)
		}
		b, err := bld.Build()
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(b, Limits{Contiguous: true}); err != nil {
			t.Fatalf("Validate of a built batch: %v", err)
		}
		sameRecords(t, readAll(t, b, Limits{}), want)
	})
}

// splitBatches walks a blob with NextBatch: it must always make progress.
func splitBatches(t *testing.T, blob []byte) {
	for len(blob) > 0 {
		b, rest, err := NextBatch(blob, fuzzLimits.MaxBatchBytes)
		if err != nil {
			mustBeCorrupt(t, err)
			return
		}
		if len(rest) >= len(blob) || len(b)+len(rest) != len(blob) {
			t.Fatalf("NextBatch: batch %d + rest %d of %d bytes", len(b), len(rest), len(blob))
		}
		blob = rest
	}
}

func mustBeCorrupt(t *testing.T, err error) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Check < CheckShort || ce.Check > CheckCompression {
		t.Fatalf("error %v (%T) is not a *CorruptError with a known check", err, err)
	}
}

// readAll reads every record of b, copying what aliases the batch.
func readAll(t *testing.T, b Batch, lim Limits) []Record {
	t.Helper()
	r := NewReader(lim)
	if err := r.Reset(b); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	var out []Record
	for r.Next() {
		rec := *r.Record()
		rec.Key, rec.Value = cloneBytes(rec.Key), cloneBytes(rec.Value)
		rec.Headers = nil
		for _, h := range r.Record().Headers {
			rec.Headers = append(rec.Headers, Header{Key: cloneBytes(h.Key), Value: cloneBytes(h.Value)})
		}
		out = append(out, rec)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("after %d records: %v", len(out), err)
	}
	return out
}

// cloneBytes copies b keeping nil and empty apart.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// rebuild writes recs into a new batch of codec and checks they read back
// the same.
func rebuild(t *testing.T, c Codec, recs []Record) {
	t.Helper()
	bld := NewBuilder(c)
	for _, r := range recs {
		bld.Append(r.Timestamp, r.Key, r.Value, r.Headers)
	}
	b, err := bld.Build()
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if err := Validate(b, Limits{Contiguous: true}); err != nil {
		t.Fatalf("rebuilt batch: %v", err)
	}
	sameRecords(t, readAll(t, b, Limits{}), recs)
}

// sameRecords compares timestamps, keys, values and headers (a nil header
// key reads back empty); offsets are the callers' business.
func sameRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	same := func(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) }
	for i := range want {
		g, w := got[i], want[i]
		if g.Timestamp != w.Timestamp || !same(g.Key, w.Key) || !same(g.Value, w.Value) || len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: got ts %d key %q value %q %d headers; want ts %d key %q value %q %d headers",
				i, g.Timestamp, trunc(g.Key), trunc(g.Value), len(g.Headers), w.Timestamp, trunc(w.Key), trunc(w.Value), len(w.Headers))
		}
		for j := range w.Headers {
			if !bytes.Equal(g.Headers[j].Key, w.Headers[j].Key) || g.Headers[j].Key == nil || !same(g.Headers[j].Value, w.Headers[j].Value) {
				t.Fatalf("record %d header %d: %+v, want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}
