package record

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"io"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

const mib = 1 << 20

var bombUnits sync.Map // Codec -> []byte

// bombBlock is a records block of codec that decompresses to size zero
// bytes (size a multiple of 1 MiB), built cheaply: one unit — a gzip member,
// an LZ4 frame or a zstd stream of 1 MiB of zeros, or a 64 KiB xerial
// snappy chunk — repeated, as each format allows. The zstd unit is a stream
// without a content size, so the limit must hold while decoding, not from
// the header.
func bombBlock(tb testing.TB, codec Codec, size int) []byte {
	tb.Helper()
	unit := bombUnit(tb, codec)
	var out []byte
	switch codec {
	case Snappy:
		out = cat(xerialMagic, []byte{0, 0, 0, 1, 0, 0, 0, 1})
		for range size / (64 << 10) {
			out = append(out, unit...)
		}
	default:
		for range size / mib {
			out = append(out, unit...)
		}
	}
	return out
}

func bombUnit(tb testing.TB, codec Codec) []byte {
	if b, ok := bombUnits.Load(codec); ok {
		return b.([]byte)
	}
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch codec {
	case Gzip:
		w, err = gzip.NewWriterLevel(&buf, gzip.BestCompression)
	case LZ4:
		lw := lz4.NewWriter(&buf)
		err = lw.Apply(lz4.BlockSizeOption(lz4.Block64Kb))
		w = lw
	case Zstd:
		w, err = zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	case Snappy:
		chunk := snappy.Encode(nil, make([]byte, 64<<10))
		buf.Write(be.AppendUint32(nil, uint32(len(chunk))))
		buf.Write(chunk)
	default:
		tb.Fatalf("no bomb for %s", codec)
	}
	if err != nil {
		tb.Fatal(err)
	}
	if w != nil {
		if _, err := w.Write(make([]byte, mib)); err != nil {
			tb.Fatal(err)
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	b, _ := bombUnits.LoadOrStore(codec, buf.Bytes())
	return b.([]byte)
}

// bombBatch wraps a bomb in a batch whose header is otherwise valid.
func bombBatch(tb testing.TB, codec Codec, size int) Batch {
	tb.Helper()
	b := append(make([]byte, HeaderSize), bombBlock(tb, codec, size)...)
	return seal(b, codec, 1, 0)
}

// snappyClaimBomb is a raw snappy block whose header claims 100 MiB.
func snappyClaimBomb() Batch {
	b := binary.AppendUvarint(make([]byte, HeaderSize), 100*mib)
	b = append(b, 0x00, 0x00) // a one-byte literal
	return seal(b, Snappy, 1, 0)
}

func TestDecompressionBomb(t *testing.T) {
	const limit = 4 * mib
	cases := map[string]Batch{
		"snappy claim": snappyClaimBomb(),
	}
	for _, c := range []Codec{Gzip, Snappy, LZ4, Zstd} {
		cases[c.String()] = bombBatch(t, c, 100*mib)
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewReader(Limits{MaxDecompressedBytes: limit})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := r.Reset(b)
			runtime.ReadMemStats(&after)
			wantCheck(t, err, CheckCompression)
			// Growing the buffer to the limit in capStep sizes allocates
			// under twice the limit; the bomb's own size is 100 MiB.
			// A zstd stream also has its decoder's window, up to
			// max(limit, zstdWindowFloor), allocated once per Reader.
			allowed := uint64(2*limit + mib)
			if b.Attributes().Codec() == Zstd {
				allowed += zstdWindowFloor + mib
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > allowed {
				t.Fatalf("rejecting the bomb allocated %d bytes, limit %d, allowed %d", got, limit, allowed)
			}
			// A warm Reader reuses its buffer.
			runtime.ReadMemStats(&before)
			err = r.Reset(b)
			runtime.ReadMemStats(&after)
			wantCheck(t, err, CheckCompression)
			if got := after.TotalAlloc - before.TotalAlloc; got > mib {
				t.Fatalf("warm Reader: rejecting the bomb allocated %d bytes", got)
			}
			// The bomb is genuine: built the same way but of 8 MiB, it
			// decodes to exactly that under a limit that fits it.
			if c := b.Attributes().Codec(); name != "snappy claim" {
				out, err := new(decompressor).decompress(c, nil, bombBlock(t, c, 8*mib), 8*mib)
				if err != nil || len(out) != 8*mib || !bytes.Equal(out[len(out)-10:], make([]byte, 10)) {
					t.Fatalf("8 MiB bomb: %d bytes, %v", len(out), err)
				}
			}
		})
	}
}

func TestDecompressAtLimit(t *testing.T) {
	// A records block of exactly the limit decodes; one byte more is refused.
	block := cat(threeRecords)
	for _, c := range []Codec{Gzip, Snappy, LZ4, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			b := rawBatch(t, c, 3, 2, block)
			if err := Validate(b, Limits{MaxDecompressedBytes: len(block)}); err != nil {
				t.Fatalf("at the limit: %v", err)
			}
			wantCheck(t, Validate(b, Limits{MaxDecompressedBytes: len(block) - 1}), CheckCompression)
		})
	}
}

// TestForeignEncoders reads blocks written the way other Kafka clients
// write them: Java's xerial-framed snappy, stdlib gzip, LZ4 frames with 4
// MiB dependent blocks and checksums, streamed zstd with a checksum.
func TestForeignEncoders(t *testing.T) {
	bld := NewBuilder(None)
	for i := range 300 {
		bld.Append(int64(i), []byte("k"), jsonish(i), []Header{{Key: []byte("h"), Value: []byte("v")}})
	}
	plain, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	records := plain[HeaderSize:]
	stream := func(w io.WriteCloser, buf *bytes.Buffer) []byte {
		if _, err := w.Write(records); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	var gz, lz, zs bytes.Buffer
	lw := lz4.NewWriter(&lz)
	if err := lw.Apply(lz4.BlockSizeOption(lz4.Block4Mb), lz4.ChecksumOption(true), lz4.BlockChecksumOption(true)); err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(&zs, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[Codec][]byte{
		Snappy: xerial.Encode(nil, records),
		Gzip:   stream(stdgzip.NewWriter(&gz), &gz),
		LZ4:    stream(lw, &lz),
		Zstd:   stream(zw, &zs),
	}
	for c, block := range blocks {
		t.Run(c.String(), func(t *testing.T) {
			b := append(bytes.Clone(plain[:HeaderSize]), block...)
			be.PutUint16(b[offAttributes:], uint16(c))
			be.PutUint32(b[offBatchLength:], uint32(len(b)-LengthPrefixSize))
			Batch(b).SetCRC()
			if err := Validate(b, Limits{Contiguous: true}); err != nil {
				t.Fatal(err)
			}
			var got, want Reader
			if err := got.Reset(b); err != nil {
				t.Fatal(err)
			}
			if err := want.Reset(plain); err != nil {
				t.Fatal(err)
			}
			for want.Next() {
				if !got.Next() || !bytes.Equal(got.Record().Value, want.Record().Value) {
					t.Fatalf("record %d differs", want.Record().Offset)
				}
			}
			if got.Next() || got.Err() != nil || want.Err() != nil {
				t.Fatalf("end: %v %v", got.Err(), want.Err())
			}
		})
	}
}

func TestXerialFraming(t *testing.T) {
	cases := map[string]struct {
		block []byte
		ok    bool
	}{
		"header only":            {cat(xerialMagic, []byte{0, 0, 0, 1, 0, 0, 0, 1}), true},
		"truncated header":       {cat(xerialMagic, []byte{0, 0, 0, 1}), false},
		"truncated chunk length": {cat(xerialMagic, []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0}), false},
		"chunk past the block":   {cat(xerialMagic, []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 1, 0}), false},
		"chunk length negative":  {cat(xerialMagic, []byte{0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 1, 0}), false},
		"two chunks":             {cat(xerialMagic, []byte{0, 0, 0, 1, 0, 0, 0, 1}, be.AppendUint32(nil, 3), snappy.Encode(nil, []byte("a")), be.AppendUint32(nil, 3), snappy.Encode(nil, []byte("b"))), true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := decodeSnappy(nil, tc.block, mib)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%t", err, tc.ok)
			}
		})
	}
}
