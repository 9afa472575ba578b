package record

import "fmt"

// Reader iterates over the records of a batch:
//
//	if err := r.Reset(batch); err != nil { ... }
//	for r.Next() {
//		rec := r.Record()
//	}
//	if err := r.Err(); err != nil { ... }
//
// It checks every length and varint as it goes, so any bytes are safe to
// give it: bad framing ends the iteration with a *CorruptError. It does not
// check the CRC; Validate (or Reader.Validate) does, and checks every record
// before any is used. A Reader is reusable and allocates nothing in steady
// state for uncompressed batches; a compressed batch is decompressed into a
// buffer the Reader keeps, never past Limits.MaxDecompressedBytes. The zero
// Reader uses default Limits. A Reader is not safe for concurrent use.
type Reader struct {
	lim Limits

	recs      []byte // the records block: the batch's bytes or buf
	pos       int
	i         int32
	count     int32
	lastDelta int32
	prevDelta int32
	contig    bool
	recStart  int // where the last record Next decoded starts in recs

	baseOffset    int64
	baseTimestamp int64
	logAppendTime bool
	maxTimestamp  int64

	frame recordFrame
	rec   Record
	err   error

	buf []byte // decompressed records, reused across batches
	dec decompressor
}

// NewReader returns a Reader enforcing lim.
func NewReader(lim Limits) *Reader { return &Reader{lim: lim} }

// SetLimits replaces the Reader's limits; they apply from the next Reset.
func (r *Reader) SetLimits(lim Limits) { r.lim = lim }

// Reset starts iterating over b. It checks the header framing (ParseHeader),
// the codec, lastOffsetDelta and recordCount against the bytes present, and
// decompresses the records block; the error, if any, is also Err's.
func (r *Reader) Reset(b Batch) error {
	*r = Reader{lim: r.lim, frame: recordFrame{headers: r.frame.headers[:0], maxHeaders: r.lim.maxHeaders()}, buf: r.buf, dec: r.dec}
	batch, err := ParseHeader(b, r.lim.MaxBatchBytes)
	if err != nil {
		return r.fail(err)
	}
	if err := checkCounts(batch, r.lim.Contiguous); err != nil {
		return r.fail(err)
	}
	r.count = batch.RecordCount()
	r.lastDelta = batch.LastOffsetDelta()
	r.prevDelta = -1
	r.contig = r.lim.Contiguous
	r.baseOffset = batch.BaseOffset()
	r.baseTimestamp = batch.BaseTimestamp()
	r.logAppendTime = batch.Attributes().LogAppendTime()
	r.maxTimestamp = batch.MaxTimestamp()

	block := batch[HeaderSize:]
	codec := batch.Attributes().Codec()
	if codec == None {
		r.recs = block
	} else {
		if codec > Zstd {
			return r.fail(corrupt(CheckCompression, "unknown codec %d", codec))
		}
		limit := r.lim.maxDecompressed()
		if int64(r.count)*minRecordSize > int64(limit) {
			return r.fail(corrupt(CheckRecordCount, "recordCount %d cannot fit the decompression limit of %d bytes", r.count, limit))
		}
		out, err := r.dec.decompress(codec, r.buf, block, limit)
		r.buf = out[:0]
		if err != nil {
			return r.fail(corrupt(CheckCompression, "%s records block: %v", codec, err))
		}
		r.recs = out
	}
	if int64(r.count)*minRecordSize > int64(len(r.recs)) {
		return r.fail(corrupt(CheckRecordCount, "recordCount %d cannot fit in %d bytes of records", r.count, len(r.recs)))
	}
	return nil
}

// checkCounts checks lastOffsetDelta and recordCount against each other.
// Offset deltas strictly increase from 0 to at most lastOffsetDelta, so
// lastOffsetDelta >= recordCount-1; compaction may leave gaps (or no
// records at all), a producer's batch has none.
func checkCounts(b Batch, contiguous bool) error {
	count, last := b.RecordCount(), b.LastOffsetDelta()
	switch {
	case last < 0:
		return corrupt(CheckOffsetDelta, "lastOffsetDelta %d negative", last)
	case count < 0:
		return corrupt(CheckRecordCount, "recordCount %d negative", count)
	case contiguous && count == 0:
		return corrupt(CheckRecordCount, "no records")
	case int64(last) < int64(count)-1:
		return corrupt(CheckOffsetDelta, "lastOffsetDelta %d too small for %d records", last, count)
	case contiguous && last != count-1:
		return corrupt(CheckOffsetDelta, "lastOffsetDelta %d, want %d for %d records", last, count-1, count)
	}
	return nil
}

// Next decodes the next record, reporting whether there is one. At the end,
// or on the first corrupt record, it returns false; Err tells which.
func (r *Reader) Next() bool {
	if r.err != nil {
		return false
	}
	if r.i >= r.count {
		if r.pos != len(r.recs) {
			r.fail(corrupt(CheckRecord, "%d bytes after record %d of %d", len(r.recs)-r.pos, r.count-1, r.count))
		}
		return false
	}
	if r.pos == len(r.recs) {
		r.fail(corrupt(CheckRecordCount, "recordCount %d, records end after %d", r.count, r.i))
		return false
	}
	f := &r.frame
	n, c, why := f.read(r.recs[r.pos:])
	if c != 0 {
		r.fail(corrupt(c, "record %d at byte %d of the records: %s", r.i, r.pos, why))
		return false
	}
	d := f.offDelta
	if d <= r.prevDelta || d > r.lastDelta || (r.contig && d != r.i) {
		r.fail(corrupt(CheckOffsetDelta, "record %d: offsetDelta %d after %d, lastOffsetDelta %d", r.i, d, r.prevDelta, r.lastDelta))
		return false
	}
	if r.lim.RequireKeys && f.key == nil {
		r.fail(fmt.Errorf("%w: record %d", ErrMissingKey, r.i))
		return false
	}
	r.prevDelta = d
	r.recStart = r.pos
	r.pos += n
	r.i++
	r.rec.Offset = r.baseOffset + int64(d)
	if r.logAppendTime {
		r.rec.Timestamp = r.maxTimestamp
	} else {
		r.rec.Timestamp = r.baseTimestamp + f.tsDelta
	}
	r.rec.Key, r.rec.Value, r.rec.Headers = f.key, f.value, f.headers
	return true
}

// SkipTo moves past the records before offset reading only their
// lengths and offset deltas, so that the next Next decodes the first
// record at or after offset: a reader that wants the end of a large batch
// does not decode the rest. It stops at the first record it cannot skip
// safely (a bad length or delta), which Next then decodes and reports.
func (r *Reader) SkipTo(offset int64) {
	for r.err == nil && r.i < r.count && r.pos < len(r.recs) {
		b := r.recs[r.pos:]
		length, n := varint32(b)
		if n <= 0 || length < minRecordBody || int(length) > len(b)-n {
			return
		}
		body := b[n : n+int(length)]
		_, m := varint64(body[recordAttrsSize:])
		if m <= 0 {
			return
		}
		d, k := varint32(body[recordAttrsSize+m:])
		if k <= 0 || d <= r.prevDelta || d > r.lastDelta || (r.contig && d != r.i) || r.baseOffset+int64(d) >= offset {
			return
		}
		r.prevDelta = d
		r.pos += n + int(length)
		r.i++
	}
}

// Record is the record Next decoded. The pointer is the same on every call;
// see Record for how long its contents stay valid.
func (r *Reader) Record() *Record { return &r.rec }

// Err is the error that ended the iteration, or nil at a clean end.
func (r *Reader) Err() error { return r.err }

func (r *Reader) fail(err error) error {
	r.err = err
	r.recs = nil
	return err
}
