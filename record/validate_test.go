package record

import (
	"bytes"
	"testing"
)

// threeRecords is a well-formed records block with offset deltas 0, 1, 2.
var threeRecords = cat(plainRecord(0, "a", "x"), plainRecord(1, "b", "y"), plainRecord(2, "c", "z"))

// withBody frames one record (offset delta 0) around the body fields after
// attributes, timestampDelta and offsetDelta.
func withBody(rest ...[]byte) []byte {
	return framed(append([][]byte{{0}, vi(0), vi(0)}, rest...)...)
}

// checkCase is a batch and the check Validate must report for it.
type checkCase struct {
	name  string
	batch Batch
	lim   Limits
	want  Check // 0: valid
}

// checkCases has a crafted batch for every check, and valid edge cases;
// the fuzz targets start from them too.
func checkCases(t testing.TB) []checkCase {
	valid := mustBuild(t, None, 3)
	mutate := func(f func(b []byte) []byte) Batch {
		return Batch(f(bytes.Clone(valid)))
	}
	overlong := []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00} // 0 in 6 bytes
	return []checkCase{
		{"valid", valid, Limits{Contiguous: true}, 0},
		{"valid gapped without Contiguous", rawBatch(t, None, 3, 9, cat(plainRecord(0, "a", ""), plainRecord(4, "b", ""), plainRecord(7, "", ""))), Limits{}, 0},
		{"valid empty without Contiguous", rawBatch(t, None, 0, 5, nil), Limits{}, 0},
		{"null key and value", rawBatch(t, None, 1, 0, withBody(vi(-1), vi(-1), vi(0))), Limits{}, 0},
		{"null header value", rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), vi(1), vi(1), []byte("h"), vi(-1))), Limits{}, 0},

		{"shorter than a header", valid[:HeaderSize-1], Limits{}, CheckShort},
		{"shorter than declared", valid[:len(valid)-1], Limits{}, CheckShort},
		{"batchLength below minimum", mutate(func(b []byte) []byte { be.PutUint32(b[offBatchLength:], 48); return b }), Limits{}, CheckLength},
		{"batchLength negative", mutate(func(b []byte) []byte { be.PutUint32(b[offBatchLength:], 0x80000000); return b }), Limits{}, CheckLength},
		{"over MaxBatchBytes", valid, Limits{MaxBatchBytes: len(valid) - 1}, CheckLength},
		{"bytes after the batch", Batch(append(bytes.Clone(valid), 0)), Limits{}, CheckLength},
		{"magic", mutate(func(b []byte) []byte { b[offMagic] = 1; return b }), Limits{}, CheckMagic},
		{"crc", mutate(func(b []byte) []byte { b[len(b)-3] ^= 1; return b }), Limits{}, CheckCRC},
		{"crc of a header field", mutate(func(b []byte) []byte { b[offMaxTimestamp] ^= 1; return b }), Limits{}, CheckCRC},

		{"lastOffsetDelta negative", rawBatch(t, None, 3, -1, threeRecords), Limits{}, CheckOffsetDelta},
		{"lastOffsetDelta below recordCount-1", rawBatch(t, None, 3, 1, threeRecords), Limits{}, CheckOffsetDelta},
		{"lastOffsetDelta gap under Contiguous", rawBatch(t, None, 3, 3, threeRecords), Limits{Contiguous: true}, CheckOffsetDelta},
		{"offsetDelta repeated", rawBatch(t, None, 3, 2, cat(plainRecord(0, "", ""), plainRecord(0, "", ""), plainRecord(2, "", ""))), Limits{}, CheckOffsetDelta},
		{"offsetDelta decreasing", rawBatch(t, None, 3, 5, cat(plainRecord(3, "", ""), plainRecord(1, "", ""), plainRecord(2, "", ""))), Limits{}, CheckOffsetDelta},
		{"offsetDelta negative", rawBatch(t, None, 1, 0, plainRecord(-1, "", "")), Limits{}, CheckOffsetDelta},
		{"offsetDelta past lastOffsetDelta", rawBatch(t, None, 2, 1, cat(plainRecord(0, "", ""), plainRecord(2, "", ""))), Limits{}, CheckOffsetDelta},
		{"offsetDelta gap under Contiguous", rawBatch(t, None, 2, 1, cat(plainRecord(1, "", ""), plainRecord(1, "", ""))), Limits{Contiguous: true}, CheckOffsetDelta},

		{"recordCount negative", rawBatch(t, None, -1, 2, threeRecords), Limits{}, CheckRecordCount},
		{"recordCount zero under Contiguous", rawBatch(t, None, 0, 0, nil), Limits{Contiguous: true}, CheckRecordCount},
		{"recordCount bomb", rawBatch(t, None, 1<<30, 1<<30, threeRecords), Limits{}, CheckRecordCount},
		{"recordCount bomb compressed", rawBatch(t, Zstd, 1<<30, 1<<30, threeRecords), Limits{MaxDecompressedBytes: 1 << 20}, CheckRecordCount},
		{"recordCount above the bytes", rawBatch(t, None, 4, 3, threeRecords), Limits{}, CheckRecordCount},
		{"recordCount above the records", rawBatch(t, None, 4, 3, cat(plainRecord(0, "0123456789", ""), plainRecord(1, "0123456789", ""))), Limits{}, CheckRecordCount},
		{"recordCount below the records", rawBatch(t, None, 2, 2, threeRecords), Limits{}, CheckRecord},

		{"record length negative", rawBatch(t, None, 1, 0, cat(vi(-1), make([]byte, 6))), Limits{}, CheckRecord},
		{"record length too small", rawBatch(t, None, 1, 0, cat(vi(5), make([]byte, 6))), Limits{}, CheckRecord},
		{"record length past the batch", rawBatch(t, None, 1, 0, cat(vi(100), make([]byte, 6))), Limits{}, CheckRecord},
		{"record length bomb", rawBatch(t, None, 1, 0, cat(vi(0x7fffffff), make([]byte, 6))), Limits{}, CheckRecord},
		{"record length overlong varint", rawBatch(t, None, 1, 0, cat(overlong, make([]byte, 6))), Limits{}, CheckVarint},
		{"record length truncated varint", rawBatch(t, None, 2, 1, cat(plainRecord(0, "0123456789", ""), []byte{0x80})), Limits{}, CheckVarint},
		{"record length int32 overflow", rawBatch(t, None, 1, 0, cat([]byte{0xfe, 0xff, 0xff, 0xff, 0x1f}, make([]byte, 6))), Limits{}, CheckVarint},
		{"timestampDelta overlong", rawBatch(t, None, 1, 0, framed([]byte{0}, bytes.Repeat([]byte{0x80}, 10), []byte{0}, vi(0), vi(0), vi(0), vi(0))), Limits{}, CheckVarint},
		{"timestampDelta max length", rawBatch(t, None, 1, 0, framed([]byte{0}, vi(-1<<63), vi(0), vi(0), vi(0), vi(0))), Limits{}, 0},
		{"offsetDelta overlong", rawBatch(t, None, 1, 0, framed([]byte{0}, vi(0), overlong, vi(0), vi(0), vi(0))), Limits{}, CheckVarint},
		{"offsetDelta over int32", rawBatch(t, None, 1, 0, framed([]byte{0}, vi(0), vi(1<<32), vi(0), vi(0), vi(0))), Limits{}, CheckVarint},
		{"key length -2", rawBatch(t, None, 1, 0, withBody(vi(-2), vi(0), vi(0))), Limits{}, CheckRecord},
		{"key length past the record", rawBatch(t, None, 1, 0, withBody(vi(10), vi(0), vi(0))), Limits{}, CheckRecord},
		{"key length bomb", rawBatch(t, None, 1, 0, withBody(vi(0x7fffffff), vi(0), vi(0))), Limits{}, CheckRecord},
		{"key length overlong", rawBatch(t, None, 1, 0, withBody(overlong, vi(0), vi(0))), Limits{}, CheckVarint},
		{"value length -5", rawBatch(t, None, 1, 0, withBody(vi(0), vi(-5), vi(0))), Limits{}, CheckRecord},
		{"value length past the record", rawBatch(t, None, 1, 0, cat(withBody(vi(0), vi(2), vi(0)), []byte("xx"))), Limits{}, CheckRecord},
		{"header count missing", rawBatch(t, None, 1, 0, framed([]byte{0}, vi(0), vi(0), vi(0), vi(2), []byte("ab"))), Limits{}, CheckVarint},
		{"header count negative", rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), vi(-1))), Limits{}, CheckRecord},
		{"header count bomb", rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), vi(1<<30), vi(0), vi(0))), Limits{}, CheckRecord},
		{"header count over MaxHeaders", rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), vi(3), vi(0), vi(0), vi(0), vi(0), vi(0), vi(0))), Limits{MaxHeaders: 2}, CheckRecord},
		{"header count at MaxHeaders", rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), vi(2), vi(0), vi(0), vi(0), vi(0))), Limits{MaxHeaders: 2}, 0},
		{"header key null", rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), vi(1), vi(-1), vi(0))), Limits{}, CheckRecord},
		{"header value -2", rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), vi(1), vi(0), vi(-2))), Limits{}, CheckRecord},
		{"header value past the record", rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), vi(1), vi(0), vi(3), []byte("ab"))), Limits{}, CheckRecord},
		{"header count varint truncated", rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), []byte{0x80})), Limits{}, CheckVarint},
		{"bytes after the headers", rawBatch(t, None, 1, 0, withBody(vi(0), vi(0), vi(0), []byte{0})), Limits{}, CheckRecord},

		{"unknown codec", resealCodec(rawBatch(t, None, 3, 2, threeRecords), 5), Limits{}, CheckCompression},
		{"gzip garbage", resealCodec(rawBatch(t, None, 3, 2, threeRecords), Gzip), Limits{}, CheckCompression},
		{"zstd garbage", resealCodec(rawBatch(t, None, 3, 2, threeRecords), Zstd), Limits{}, CheckCompression},
		{"lz4 garbage", resealCodec(rawBatch(t, None, 3, 2, threeRecords), LZ4), Limits{}, CheckCompression},
		{"snappy garbage", resealCodec(rawBatch(t, None, 3, 2, threeRecords), Snappy), Limits{}, CheckCompression},
		{"gzip truncated", truncBlock(rawBatch(t, Gzip, 3, 2, threeRecords)), Limits{}, CheckCompression},
		{"lz4 truncated", truncBlock(rawBatch(t, LZ4, 3, 2, threeRecords)), Limits{}, CheckCompression},
		{"zstd truncated", truncBlock(rawBatch(t, Zstd, 3, 2, threeRecords)), Limits{}, CheckCompression},
		{"snappy truncated", truncBlock(rawBatch(t, Snappy, 3, 2, threeRecords)), Limits{}, CheckCompression},
		{"zstd framing bad in the block", rawBatch(t, Zstd, 4, 3, cat(threeRecords, plainRecord(2, "", ""))), Limits{}, CheckOffsetDelta},
	}
}

func TestValidateChecks(t *testing.T) {
	cases := checkCases(t)
	seen := map[Check]bool{}
	for _, tc := range cases {
		seen[tc.want] = true
	}
	for c := CheckShort; c <= CheckCompression; c++ {
		if !seen[c] {
			t.Errorf("no case for check %s", c)
		}
	}
	// Checks the Reader leaves to Validate.
	validateOnly := map[string]bool{"bytes after the batch": true, "crc": true, "crc of a header field": true}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.batch, tc.lim)
			if tc.want == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantCheck(t, err, tc.want)
			// The Reader reaches the same verdict for everything but the
			// checks only Validate makes (CRC, bytes after the batch).
			if validateOnly[tc.name] {
				return
			}
			r := NewReader(tc.lim)
			if err := r.Reset(tc.batch); err == nil {
				for r.Next() {
				}
			}
			wantCheck(t, r.Err(), tc.want)
		})
	}
}

// truncBlock cuts the last byte of a compressed block and reseals.
func truncBlock(b Batch) Batch {
	b = Batch(bytes.Clone(b[:len(b)-1]))
	be.PutUint32(b[offBatchLength:], uint32(len(b)-LengthPrefixSize))
	b.SetCRC()
	return b
}

func resealCodec(b Batch, c Codec) Batch {
	b = Batch(bytes.Clone(b))
	be.PutUint16(b[offAttributes:], uint16(c))
	b.SetCRC()
	return b
}
