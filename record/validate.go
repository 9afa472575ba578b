package record

import (
	"errors"
	"sync"
)

// Defaults for the zero fields of Limits.
const (
	DefaultMaxDecompressedBytes = 64 << 20
	DefaultMaxHeaders           = 4096
)

// Limits bound what a Reader or Validate accepts from untrusted bytes.
type Limits struct {
	// MaxBatchBytes bounds a whole batch, its 12-byte prefix included. 0
	// means no bound beyond the bytes present.
	MaxBatchBytes int
	// MaxDecompressedBytes bounds the decompressed records block of one
	// batch; 0 means DefaultMaxDecompressedBytes.
	MaxDecompressedBytes int
	// MaxHeaders bounds the headers of one record; 0 means
	// DefaultMaxHeaders. A Reader holds a record's headers as a []Header,
	// 48 bytes for each header of as little as 2 encoded bytes, so without
	// this bound a 64 MiB block of empty headers would cost 1.5 GiB.
	MaxHeaders int
	// Contiguous requires the shape a producer writes: at least one record,
	// offset deltas 0, 1, 2, ... and lastOffsetDelta = recordCount-1. The
	// broker sets it for produce requests; batches from a log may have been
	// compacted, leaving gaps, and are read without it.
	Contiguous bool
	// RequireKeys refuses a record with a null key (ErrMissingKey): a
	// compacted topic keeps records by key, as Kafka refuses keyless
	// records to one.
	RequireKeys bool
}

// ErrMissingKey is the error of a record with a null key read under
// Limits.RequireKeys. It is not a CorruptError: the batch is well formed.
var ErrMissingKey = errors.New("record without a key")

func (l Limits) maxHeaders() int {
	if l.MaxHeaders > 0 {
		return l.MaxHeaders
	}
	return DefaultMaxHeaders
}

func (l Limits) maxDecompressed() int {
	if l.MaxDecompressedBytes > 0 {
		return l.MaxDecompressedBytes
	}
	return DefaultMaxDecompressedBytes
}

// Validate is the full check of a batch from an untrusted source (R1):
// header framing (ParseHeader) and nothing after the batch, the CRC, the
// codec, lastOffsetDelta and recordCount, and then every record — framing
// consistent with the batch length, varints no longer than their maximum,
// offset deltas increasing and within lastOffsetDelta, no bytes after the
// last record — with a compressed block decoded within the limit. A failure
// is a *CorruptError naming the check.
func Validate(b Batch, lim Limits) error {
	r := readerPool.Get().(*Reader)
	r.lim = lim
	err := r.Validate(b)
	// A pooled Reader keeps its decompression buffer only while it is of a
	// common size, so one huge batch does not pin memory.
	if cap(r.buf) > maxPooledBuffer {
		r.buf = nil
	}
	r.release()
	readerPool.Put(r)
	return err
}

const maxPooledBuffer = 4 << 20

var readerPool = sync.Pool{New: func() any { return new(Reader) }}

// release drops the Reader's references into the last batch, so a pooled
// Reader does not keep a caller's buffer alive.
func (r *Reader) release() {
	clear(r.frame.headers[:cap(r.frame.headers)])
	r.recs, r.rec, r.frame.key, r.frame.value = nil, Record{}, nil, nil
}

// Validate is the function Validate with the Reader's limits and buffers,
// for a caller that validates many batches. It leaves the Reader positioned
// at the end of b.
func (r *Reader) Validate(b Batch) error {
	batch, err := ParseHeader(b, r.lim.MaxBatchBytes)
	if err != nil {
		return err
	}
	if len(batch) != len(b) {
		return corrupt(CheckLength, "%d bytes after a batch of %d", len(b)-len(batch), len(batch))
	}
	if err := batch.VerifyCRC(); err != nil {
		return err
	}
	if err := r.Reset(batch); err != nil {
		return err
	}
	for r.Next() {
	}
	return r.Err()
}

// NextBatch splits the first batch off b, a blob of batches back to back
// (a produce request's or a fetch response's records), checking its header
// framing only (ParseHeader; validate it with Validate). rest is what
// follows it. A fetch response may end with a partial batch, reported as
// CheckShort.
func NextBatch(b []byte, maxBatchBytes int) (batch Batch, rest []byte, err error) {
	batch, err = ParseHeader(b, maxBatchBytes)
	if err != nil {
		return nil, b, err
	}
	return batch, b[len(batch):], nil
}
