package record

import (
	"errors"
	"fmt"
	"math"
)

// ErrEmptyBatch is returned by Build when no record was appended: Kafka's
// producers never send an empty batch and brokers refuse one.
var ErrEmptyBatch = errors.New("record: empty batch")

// maxRecordsBytes keeps batchLength, an int32, from overflowing.
const maxRecordsBytes = math.MaxInt32 - (HeaderSize - LengthPrefixSize)

// Builder encodes records into one batch. It is reusable: after Reset it
// writes into the buffers it already has, so a producer that keeps one
// Builder per partition allocates nothing in steady state. A Builder is not
// safe for concurrent use.
type Builder struct {
	codec Codec
	buf   []byte // header placeholder, then the uncompressed records
	out   []byte // header, then the compressed records (codec != None)

	count         int32
	baseTimestamp int64
	maxTimestamp  int64
	producerID    int64
	producerEpoch int16
	baseSequence  int32
}

// NewBuilder returns an empty Builder whose batches use codec.
func NewBuilder(codec Codec) *Builder {
	b := &Builder{codec: codec}
	b.Reset()
	return b
}

// Reset empties the Builder, keeping its codec and buffers, and clears the
// producer fields to -1 (no idempotence). Batches it returned before are
// overwritten.
func (b *Builder) Reset() {
	if cap(b.buf) < HeaderSize {
		b.buf = make([]byte, HeaderSize, 16<<10)
	}
	b.buf = b.buf[:HeaderSize]
	b.count = 0
	b.baseTimestamp, b.maxTimestamp = 0, 0
	b.producerID, b.producerEpoch, b.baseSequence = -1, -1, -1
}

// Codec is the codec the Builder compresses with.
func (b *Builder) Codec() Codec { return b.codec }

// SetProducer sets the idempotent producer id, epoch and the sequence
// number of the batch's first record (R13: the broker deduplicates on them).
func (b *Builder) SetProducer(id int64, epoch int16, baseSequence int32) {
	b.producerID, b.producerEpoch, b.baseSequence = id, epoch, baseSequence
}

// Append adds one record. timestamp is in milliseconds since the epoch; a
// nil key or value is written as null. The bytes are copied, so the caller
// may reuse them. Append after Build is allowed and makes the next Build
// include the new record; it invalidates the Batch Build returned.
func (b *Builder) Append(timestamp int64, key, value []byte, headers []Header) {
	if b.count == 0 {
		b.baseTimestamp, b.maxTimestamp = timestamp, timestamp
	} else if timestamp > b.maxTimestamp {
		b.maxTimestamp = timestamp
	}
	// The delta may wrap for absurd timestamps; the reader adds it back with
	// the same wrapping arithmetic, so the timestamp still round-trips.
	b.buf = appendRecord(b.buf, timestamp-b.baseTimestamp, b.count, key, value, headers)
	b.count++
}

// Len is the number of records appended since the last Reset.
func (b *Builder) Len() int { return int(b.count) }

// EstimatedSize is the size of the batch if it were built now without
// compression: an upper bound, in practice, of the compressed size, so a
// producer can cap its batches before sealing them.
func (b *Builder) EstimatedSize() int { return len(b.buf) }

// Build seals the batch: header fields, compression, CRC. Base offset is 0
// and partition leader epoch -1, as a producer sends them; the broker stamps
// both (outside the CRC). The returned bytes are owned by the Builder and
// valid until its next Reset or Append.
func (b *Builder) Build() (Batch, error) {
	if b.count == 0 {
		return nil, ErrEmptyBatch
	}
	records := b.buf[HeaderSize:]
	if len(records) > maxRecordsBytes {
		return nil, fmt.Errorf("record: batch of %d bytes of records over the format's limit", len(records))
	}
	batch := Batch(b.buf)
	if b.codec != None {
		out, err := compress(b.codec, append(b.out[:0], b.buf[:HeaderSize]...), records)
		if err != nil {
			return nil, fmt.Errorf("record: build batch: %w", err)
		}
		if len(out)-HeaderSize > maxRecordsBytes {
			return nil, fmt.Errorf("record: compressed batch of %d bytes over the format's limit", len(out))
		}
		b.out = out
		batch = Batch(out)
	}
	b.writeHeader(batch)
	batch.SetCRC()
	return batch, nil
}

// AppendBatch builds the batch and appends it to dst.
func (b *Builder) AppendBatch(dst []byte) ([]byte, error) {
	batch, err := b.Build()
	if err != nil {
		return dst, err
	}
	return append(dst, batch...), nil
}

func (b *Builder) writeHeader(batch Batch) {
	be.PutUint64(batch[offBaseOffset:], 0)
	be.PutUint32(batch[offBatchLength:], uint32(len(batch)-LengthPrefixSize))
	be.PutUint32(batch[offLeaderEpoch:], math.MaxUint32) // -1: not yet appended by a leader
	batch[offMagic] = Magic
	be.PutUint16(batch[offAttributes:], uint16(b.codec)&attrCodecMask)
	be.PutUint32(batch[offLastOffsetDelta:], uint32(b.count-1))
	be.PutUint64(batch[offBaseTimestamp:], uint64(b.baseTimestamp))
	be.PutUint64(batch[offMaxTimestamp:], uint64(b.maxTimestamp))
	be.PutUint64(batch[offProducerID:], uint64(b.producerID))
	be.PutUint16(batch[offProducerEpoch:], uint16(b.producerEpoch))
	be.PutUint32(batch[offBaseSequence:], uint32(b.baseSequence))
	be.PutUint32(batch[offRecordCount:], uint32(b.count))
}
