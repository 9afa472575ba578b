package record

import (
	"fmt"
	"testing"
)

const benchRecords = 1000

// benchValues are 100-byte JSON-ish record values, varied enough that the
// codecs see realistic text rather than one repeated string.
func benchValues() [][]byte {
	vals := make([][]byte, benchRecords)
	for i := range vals {
		v := jsonish(i * 7919)
		for len(v) < 100 {
			v = append(v, ' ')
		}
		vals[i] = v[:100]
	}
	return vals
}

func benchKeys() [][]byte {
	keys := make([][]byte, benchRecords)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user-%03d", i%1000)
	}
	return keys
}

func buildBench(b *testing.B, c Codec) Batch {
	bld := NewBuilder(c)
	keys, vals := benchKeys(), benchValues()
	for i := range benchRecords {
		bld.Append(1_700_000_000_000+int64(i), keys[i], vals[i], nil)
	}
	out, err := bld.AppendBatch(nil)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func perRecord(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRecords), "ns/record")
}

// BenchmarkBuild: Reset, 1,000 Appends of an 8-byte key and a 100-byte
// value, Build. For codecs other than none it includes compression.
func BenchmarkBuild(b *testing.B) {
	keys, vals := benchKeys(), benchValues()
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			bld := NewBuilder(c)
			b.ReportAllocs()
			b.SetBytes(int64(len(buildBench(b, None))))
			for b.Loop() {
				bld.Reset()
				for i := range benchRecords {
					bld.Append(1_700_000_000_000+int64(i), keys[i], vals[i], nil)
				}
				if _, err := bld.Build(); err != nil {
					b.Fatal(err)
				}
			}
			perRecord(b)
		})
	}
}

// BenchmarkRead: Reset and iterate the 1,000 records of a built batch
// (including decompression for codecs other than none).
func BenchmarkRead(b *testing.B) {
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			batch := buildBench(b, c)
			var r Reader
			sum := 0
			b.ReportAllocs()
			b.SetBytes(int64(len(buildBench(b, None))))
			for b.Loop() {
				if err := r.Reset(batch); err != nil {
					b.Fatal(err)
				}
				for r.Next() {
					sum += len(r.Record().Value)
				}
				if r.Err() != nil {
					b.Fatal(r.Err())
				}
			}
			perRecord(b)
			if sum == 0 {
				b.Fatal("read nothing")
			}
		})
	}
}

// BenchmarkValidate: the broker's R1 check of an uncompressed batch of
// 1,000 records (CRC plus every record's framing), pooled Reader.
func BenchmarkValidate(b *testing.B) {
	batch := buildBench(b, None)
	b.ReportAllocs()
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if err := Validate(batch, Limits{Contiguous: true}); err != nil {
			b.Fatal(err)
		}
	}
	perRecord(b)
}

func BenchmarkCRC64K(b *testing.B) {
	batch := make(Batch, 64<<10)
	for i := range batch {
		batch[i] = byte(i * 31)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(batch) - CRCStart))
	for b.Loop() {
		batch.SetCRC()
	}
}

// BenchmarkCompress and BenchmarkDecompress measure each codec alone on
// the records block of the 1,000-record batch (about 110 KB of JSON-ish
// text); MB/s is of uncompressed bytes.
func BenchmarkCompress(b *testing.B) {
	src := buildBench(b, None)[HeaderSize:]
	for _, c := range allCodecs[1:] {
		b.Run(c.String(), func(b *testing.B) {
			var dst []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				var err error
				if dst, err = compress(c, dst[:0], src); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(src))/float64(len(dst)), "ratio")
		})
	}
}

func BenchmarkDecompress(b *testing.B) {
	src := buildBench(b, None)[HeaderSize:]
	for _, c := range allCodecs[1:] {
		b.Run(c.String(), func(b *testing.B) {
			block, err := compress(c, nil, src)
			if err != nil {
				b.Fatal(err)
			}
			var d decompressor
			var dst []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if dst, err = d.decompress(c, dst, block, DefaultMaxDecompressedBytes); err != nil {
					b.Fatal(err)
				}
			}
			if len(dst) != len(src) {
				b.Fatalf("decompressed %d bytes, want %d", len(dst), len(src))
			}
		})
	}
}
