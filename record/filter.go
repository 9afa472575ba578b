package record

import (
	"fmt"
	"math"
)

// Filter rewrites batches keeping some of their records: what log
// compaction does to a batch. A rewritten batch keeps every header field
// (base offset, lastOffsetDelta, timestamps, producer id, epoch and base
// sequence, leader epoch, attributes), so offsets, sequence numbers and
// the leader-epoch order of the log are unchanged and only recordCount,
// batchLength and the CRC are recomputed; the kept records are copied
// byte for byte (their offset and timestamp deltas stay right because
// the bases do not move) and compressed again with the batch's codec. A
// Filter is reusable and not safe for concurrent use.
type Filter struct {
	r    Reader
	recs []byte // the kept records, uncompressed
}

// NewFilter returns a Filter whose Reader enforces lim (decompression
// bounds; Contiguous must be false for batches read from a log).
func NewFilter(lim Limits) *Filter { return &Filter{r: Reader{lim: lim}} }

// Apply appends to dst the batch b with only the records keep returns
// true for, and returns the new dst and how many records were kept. keep
// sees each record in order; its Record is valid only during the call.
// When every record is kept, b is appended unchanged; when none is, nothing
// is appended (the caller decides whether an empty batch must stand in for
// it: AppendEmpty). b must be a whole batch (its CRC is not checked here).
func (f *Filter) Apply(dst []byte, b Batch, keep func(*Record) bool) ([]byte, int, error) {
	if err := f.r.Reset(b); err != nil {
		return dst, 0, err
	}
	f.recs = f.recs[:0]
	kept := 0
	for f.r.Next() {
		if keep(&f.r.rec) {
			f.recs = append(f.recs, f.r.recs[f.r.recStart:f.r.pos]...)
			kept++
		}
	}
	if err := f.r.Err(); err != nil {
		return dst, 0, err
	}
	switch {
	case kept == int(b.RecordCount()):
		return append(dst, b...), kept, nil
	case kept == 0:
		return dst, 0, nil
	}
	start := len(dst)
	dst = append(dst, b[:HeaderSize]...)
	if codec := b.Attributes().Codec(); codec == None {
		dst = append(dst, f.recs...)
	} else {
		var err error
		if dst, err = compress(codec, dst, f.recs); err != nil {
			return dst[:start], 0, fmt.Errorf("record: filter batch at %d: %w", b.BaseOffset(), err)
		}
	}
	out := Batch(dst[start:])
	if len(out)-LengthPrefixSize > math.MaxInt32 {
		return dst[:start], 0, fmt.Errorf("record: filter batch at %d: %d bytes over the format's limit", b.BaseOffset(), len(out))
	}
	be.PutUint32(out[offBatchLength:], uint32(len(out)-LengthPrefixSize))
	be.PutUint32(out[offRecordCount:], uint32(kept))
	out.SetCRC()
	return dst, kept, nil
}

// AppendEmpty appends a batch with like's header and no records: what
// compaction leaves of an idempotent producer's last batch when every
// record in it is superseded, so the producer's sequence state survives
// (Kafka does the same). The codec bits are cleared (there is no block to
// decompress); offsets, timestamps, producer fields and leader epoch stay.
func AppendEmpty(dst []byte, like Batch) []byte {
	start := len(dst)
	dst = append(dst, like[:HeaderSize]...)
	out := Batch(dst[start:])
	be.PutUint32(out[offBatchLength:], uint32(HeaderSize-LengthPrefixSize))
	be.PutUint16(out[offAttributes:], uint16(like.Attributes())&^attrCodecMask)
	be.PutUint32(out[offRecordCount:], 0)
	out.SetCRC()
	return dst
}

// AppendGap appends an empty batch covering the offsets [base, next) with
// no producer: compaction writes one where it removed whole batches, so a
// segment's batches still follow each other offset by offset (the
// segment and the log check that contiguity) while the removed offsets
// read as a gap. epoch is the leader epoch of the removed batches (the
// last of them), maxTimestamp their newest timestamp.
func AppendGap(dst []byte, base, next int64, epoch int32, maxTimestamp int64) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	out := Batch(dst[start:])
	be.PutUint64(out[offBaseOffset:], uint64(base))
	be.PutUint32(out[offBatchLength:], uint32(HeaderSize-LengthPrefixSize))
	be.PutUint32(out[offLeaderEpoch:], uint32(epoch))
	out[offMagic] = Magic
	be.PutUint32(out[offLastOffsetDelta:], uint32(next-base-1))
	be.PutUint64(out[offBaseTimestamp:], uint64(maxTimestamp))
	be.PutUint64(out[offMaxTimestamp:], uint64(maxTimestamp))
	be.PutUint64(out[offProducerID:], math.MaxUint64) // -1: no producer
	be.PutUint16(out[offProducerEpoch:], math.MaxUint16)
	be.PutUint32(out[offBaseSequence:], math.MaxUint32)
	out.SetCRC()
	return dst
}

// TrimGap appends to dst the part of b from offset from on, when b is a
// gap batch (what AppendGap writes: no records, no producer) whose
// offsets include from past its first, and reports whether it did. A
// follower whose log ends at an offset where the leader's cleaner merged
// removed batches into one gap continues the gap from its own end.
func TrimGap(dst []byte, b Batch, from int64) ([]byte, bool) {
	a := b.Attributes()
	if len(b) != HeaderSize || b.RecordCount() != 0 || b.ProducerID() >= 0 || a.Control() || a.Transactional() ||
		from <= b.BaseOffset() || from > b.LastOffset() {
		return dst, false
	}
	return AppendGap(dst, from, b.NextOffset(), b.LeaderEpoch(), b.MaxTimestamp()), true
}
