package record

import (
	"encoding/binary"
	"errors"
	"strconv"
	"testing"
)

var allCodecs = []Codec{None, Gzip, Snappy, LZ4, Zstd}

// vi is a zigzag varint, as records frame their fields.
func vi(v int64) []byte { return binary.AppendVarint(nil, v) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// framed prefixes a record body with its correct length.
func framed(body ...[]byte) []byte {
	b := cat(body...)
	return cat(vi(int64(len(b))), b)
}

// plainRecord is a well-formed record body's bytes with the given offset
// delta, key and value and no headers.
func plainRecord(offDelta int64, key, value string) []byte {
	return framed([]byte{0}, vi(0), vi(offDelta), vi(int64(len(key))), []byte(key), vi(int64(len(value))), []byte(value), vi(0))
}

// rawBatch writes a header around a hand-made records block, compressing
// it with codec, and seals the CRC: the way to reach the record-level
// checks with framing no Builder would write.
func rawBatch(t testing.TB, codec Codec, count, lastDelta int32, records []byte) Batch {
	t.Helper()
	b := make([]byte, HeaderSize, HeaderSize+len(records))
	if codec == None {
		b = append(b, records...)
	} else {
		var err error
		if b, err = compress(codec, b, records); err != nil {
			t.Fatalf("compress %s: %v", codec, err)
		}
	}
	return seal(b, codec, count, lastDelta)
}

func seal(b []byte, codec Codec, count, lastDelta int32) Batch {
	be.PutUint32(b[offBatchLength:], uint32(len(b)-LengthPrefixSize))
	be.PutUint32(b[offLeaderEpoch:], 0xffffffff)
	b[offMagic] = Magic
	be.PutUint16(b[offAttributes:], uint16(codec))
	be.PutUint32(b[offLastOffsetDelta:], uint32(lastDelta))
	be.PutUint64(b[offProducerID:], 0xffffffffffffffff)
	be.PutUint16(b[offProducerEpoch:], 0xffff)
	be.PutUint32(b[offBaseSequence:], 0xffffffff)
	be.PutUint32(b[offRecordCount:], uint32(count))
	Batch(b).SetCRC()
	return Batch(b)
}

// wantCheck fails unless err is a *CorruptError for check c.
func wantCheck(t testing.TB, err error, c Check) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a *CorruptError with check %s", err, c)
	}
	if ce.Check != c {
		t.Fatalf("check %s (%v), want %s", ce.Check, err, c)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("errors.Is(%v, ErrCorrupt) is false", err)
	}
}

// mustBuild builds a batch of n records with the builder's codec and
// returns a copy the test owns.
func mustBuild(t testing.TB, codec Codec, n int) Batch {
	t.Helper()
	bld := NewBuilder(codec)
	for i := range n {
		bld.Append(int64(1000+i), []byte("key"), jsonish(i), nil)
	}
	b, err := bld.AppendBatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	return Batch(b)
}

// jsonish is a realistic record value of about 100 bytes.
func jsonish(i int) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"user":"user-`...)
	b = strconv.AppendInt(b, int64(i%97), 10)
	b = append(b, `","event":"page_view","path":"/items/`...)
	b = strconv.AppendInt(b, int64(i*7%1000), 10)
	b = append(b, `","ok":true,"ms":`...)
	b = strconv.AppendInt(b, int64(i*31%500), 10)
	return append(b, '}')
}
