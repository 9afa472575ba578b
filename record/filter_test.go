package record

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestFilter(t *testing.T) {
	for _, codec := range []Codec{None, Gzip, Snappy, LZ4, Zstd} {
		t.Run(codec.String(), func(t *testing.T) {
			bld := NewBuilder(codec)
			bld.SetProducer(9, 3, 100)
			for i := range 10 {
				bld.Append(1000+int64(i), []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprintf("v%d", i)), []Header{{Key: []byte("h"), Value: []byte{byte(i)}}})
			}
			b, err := bld.Build()
			if err != nil {
				t.Fatal(err)
			}
			b.SetBaseOffset(500)
			b.SetLeaderEpoch(4)
			f := NewFilter(Limits{})
			out, kept, err := f.Apply(nil, b, func(r *Record) bool { return (r.Offset-500)%3 == 0 })
			if err != nil {
				t.Fatal(err)
			}
			if kept != 4 {
				t.Fatalf("kept %d, want 4", kept)
			}
			nb := Batch(out)
			if err := Validate(nb, Limits{}); err != nil {
				t.Fatalf("filtered batch: %v", err)
			}
			if nb.BaseOffset() != 500 || nb.LastOffsetDelta() != 9 || nb.LeaderEpoch() != 4 || nb.ProducerID() != 9 ||
				nb.ProducerEpoch() != 3 || nb.BaseSequence() != 100 || nb.RecordCount() != 4 || nb.Attributes() != b.Attributes() ||
				nb.MaxTimestamp() != b.MaxTimestamp() || nb.BaseTimestamp() != b.BaseTimestamp() {
				t.Fatalf("header changed: %x", nb[:HeaderSize])
			}
			var r Reader
			if err := r.Reset(nb); err != nil {
				t.Fatal(err)
			}
			var got []int64
			for r.Next() {
				rec := r.Record()
				i := rec.Offset - 500
				if string(rec.Key) != fmt.Sprintf("k%d", i) || string(rec.Value) != fmt.Sprintf("v%d", i) || rec.Timestamp != 1000+i || rec.Headers[0].Value[0] != byte(i) {
					t.Fatalf("record at %d: %q=%q ts %d", rec.Offset, rec.Key, rec.Value, rec.Timestamp)
				}
				got = append(got, rec.Offset)
			}
			if fmt.Sprint(got) != "[500 503 506 509]" {
				t.Fatalf("offsets %v", got)
			}
			// All kept: the same bytes; none kept: nothing.
			all, n, err := f.Apply(nil, b, func(*Record) bool { return true })
			if err != nil || n != 10 || !bytes.Equal(all, b) {
				t.Fatalf("keep all: %d %v", n, err)
			}
			none, n, err := f.Apply([]byte("x"), b, func(*Record) bool { return false })
			if err != nil || n != 0 || string(none) != "x" {
				t.Fatalf("keep none: %d %v %q", n, err, none)
			}
			// The empty batch standing in for a producer's last batch.
			e := Batch(AppendEmpty(nil, b))
			if err := Validate(e, Limits{}); err != nil {
				t.Fatalf("empty batch: %v", err)
			}
			if e.RecordCount() != 0 || e.LastOffsetDelta() != 9 || e.BaseSequence() != 100 || e.Attributes().Codec() != None || len(e) != HeaderSize {
				t.Fatalf("empty batch header %x", e)
			}
			if err := Validate(e, Limits{Contiguous: true}); err == nil {
				t.Fatal("an empty batch passes the producer's check")
			}
		})
	}
}

func TestAppendGap(t *testing.T) {
	g := Batch(AppendGap(nil, 10, 25, 7, 1234))
	if err := Validate(g, Limits{}); err != nil {
		t.Fatal(err)
	}
	if g.BaseOffset() != 10 || g.NextOffset() != 25 || g.LeaderEpoch() != 7 || g.MaxTimestamp() != 1234 || g.ProducerID() != -1 || g.RecordCount() != 0 {
		t.Fatalf("gap batch %x", g)
	}
}

func TestFilterCorrupt(t *testing.T) {
	bld := NewBuilder(None)
	bld.Append(1, []byte("k"), []byte("v"), nil)
	b, _ := bld.Build()
	bad := bytes.Clone(b)
	bad[len(bad)-3] = 0x7f // a length past the end
	if _, _, err := NewFilter(Limits{}).Apply(nil, bad, func(*Record) bool { return false }); err == nil {
		t.Fatal("a corrupt batch filtered without error")
	}
}

// FuzzFilter: any bytes given to Filter.Apply give an error or a batch,
// never a panic; from a batch whose CRC holds (Apply's contract: the
// caller checks it, as the cleaner does) the batch's CRC holds too.
func FuzzFilter(f *testing.F) {
	for _, codec := range []Codec{None, Gzip, Zstd} {
		bld := NewBuilder(codec)
		for i := range 4 {
			bld.Append(int64(i), []byte{byte(i % 2)}, []byte{byte(i)}, nil)
		}
		b, _ := bld.Build()
		f.Add([]byte(b), uint8(5))
	}
	f.Fuzz(func(t *testing.T, b []byte, mask uint8) {
		fl := NewFilter(Limits{MaxDecompressedBytes: 1 << 20})
		i := 0
		out, kept, err := fl.Apply(nil, b, func(*Record) bool { i++; return mask>>(i%8)&1 != 0 })
		if err != nil || kept == 0 || verifyCRCBatch(b) != nil {
			return
		}
		if verifyCRCBatch(out) != nil {
			t.Fatalf("filtered batch has a bad CRC")
		}
	})
}

// verifyCRCBatch checks the header and CRC of a whole batch.
func verifyCRCBatch(b []byte) error {
	batch, err := ParseHeader(b, 0)
	if err != nil {
		return err
	}
	return batch.VerifyCRC()
}

func TestTrimGap(t *testing.T) {
	g := Batch(AppendGap(nil, 10, 25, 7, 1234))
	out, ok := TrimGap(nil, g, 17)
	if !ok {
		t.Fatal("gap not trimmed")
	}
	tg := Batch(out)
	if err := Validate(tg, Limits{}); err != nil || tg.BaseOffset() != 17 || tg.NextOffset() != 25 || tg.LeaderEpoch() != 7 || tg.MaxTimestamp() != 1234 {
		t.Fatalf("trimmed gap %x, %v", tg, err)
	}
	for _, from := range []int64{10, 9, 25} {
		if _, ok := TrimGap(nil, g, from); ok {
			t.Fatalf("trimmed at %d", from)
		}
	}
	bld := NewBuilder(None)
	bld.Append(1, []byte("k"), []byte("v"), nil)
	bld.Append(1, []byte("k"), []byte("v"), nil)
	b, _ := bld.Build()
	if _, ok := TrimGap(nil, b, 1); ok {
		t.Fatal("a batch with records trimmed")
	}
}

func TestValidateRequireKeys(t *testing.T) {
	bld := NewBuilder(Gzip)
	bld.Append(1, []byte("k"), []byte("v"), nil)
	bld.Append(1, nil, []byte("v"), nil)
	b, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(b, Limits{}); err != nil {
		t.Fatal(err)
	}
	err = Validate(b, Limits{RequireKeys: true})
	if !errors.Is(err, ErrMissingKey) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("keyless record under RequireKeys: %v, want ErrMissingKey (not corrupt)", err)
	}
}
