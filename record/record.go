// Package record is the record batch: the unit in which sluice moves data
// from producer to disk to consumer.
//
// The layout is byte-for-byte Kafka's RecordBatch v2 (magic 2), big-endian:
//
//	off  size  field
//	  0     8  baseOffset            (stamped by the broker, outside the CRC)
//	  8     4  batchLength           (bytes after this field)
//	 12     4  partitionLeaderEpoch  (stamped by the broker, outside the CRC)
//	 16     1  magic                 (2)
//	 17     4  crc                   (CRC-32C of bytes 21..end)
//	 21     2  attributes            (codec bits 0-2, timestamp type bit 3,
//	                                  transactional bit 4, control bit 5)
//	 23     4  lastOffsetDelta
//	 27     8  baseTimestamp
//	 35     8  maxTimestamp
//	 43     8  producerId
//	 51     2  producerEpoch
//	 53     4  baseSequence
//	 57     4  recordCount
//	 61     …  records (compressed as one block when a codec is set)
//
// A batch is encoded once, by the producer, and then travels unchanged: the
// broker validates it (Validate), stamps its base offset and leader epoch
// (SetBaseOffset, SetLeaderEpoch — both outside the CRC, so no re-checksum)
// and appends the bytes. Nothing on the broker's hot path looks at single
// records.
//
// Batch is a []byte with accessors; the accessors assume the slice holds at
// least HeaderSize bytes (check with ParseHeader or Validate first). None of
// them allocate.
//
// Producers encode with a Builder; consumers iterate with a Reader;
// untrusted bytes are checked with Validate, whose every refusal is a
// *CorruptError naming the check (R1). Every decoder here checks a length
// before allocating anything sized by it, and decompression never grows
// past Limits.MaxDecompressedBytes. Builder and Reader are reusable and
// allocate nothing in steady state, and neither is safe for concurrent use;
// Validate and the Batch accessors are.
package record

import (
	"encoding/binary"
)

// Field offsets within a batch header.
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57
)

const (
	// HeaderSize is the size of a batch header, up to the first record.
	HeaderSize = 61
	// LengthPrefixSize is the number of bytes before batchLength's count
	// starts: a whole batch occupies LengthPrefixSize + batchLength bytes.
	LengthPrefixSize = 12
	// CRCStart is the first byte covered by the CRC.
	CRCStart = offAttributes
	// Magic is the only batch format version sluice reads and writes.
	Magic = 2
)

// Batch is one encoded record batch. See the package comment for its layout.
type Batch []byte

var be = binary.BigEndian

// BaseOffset is the offset of the batch's first record.
func (b Batch) BaseOffset() int64 { return int64(be.Uint64(b[offBaseOffset:])) }

// SetBaseOffset stamps the base offset. It is outside the CRC.
func (b Batch) SetBaseOffset(o int64) { be.PutUint64(b[offBaseOffset:], uint64(o)) }

// Length is batchLength: the number of bytes after the length field.
func (b Batch) Length() int32 { return int32(be.Uint32(b[offBatchLength:])) }

// Size is the whole batch's size in bytes as its header declares it.
func (b Batch) Size() int { return LengthPrefixSize + int(b.Length()) }

// LeaderEpoch is the partition leader epoch stamped by the leader that
// appended the batch.
func (b Batch) LeaderEpoch() int32 { return int32(be.Uint32(b[offLeaderEpoch:])) }

// SetLeaderEpoch stamps the partition leader epoch. It is outside the CRC.
func (b Batch) SetLeaderEpoch(e int32) { be.PutUint32(b[offLeaderEpoch:], uint32(e)) }

// MagicByte is the format version byte.
func (b Batch) MagicByte() int8 { return int8(b[offMagic]) }

// CRC is the stored CRC-32C.
func (b Batch) CRC() uint32 { return be.Uint32(b[offCRC:]) }

// Attributes holds the codec, timestamp type, transactional and control bits.
func (b Batch) Attributes() Attributes { return Attributes(be.Uint16(b[offAttributes:])) }

// LastOffsetDelta is the offset of the last record minus BaseOffset.
func (b Batch) LastOffsetDelta() int32 { return int32(be.Uint32(b[offLastOffsetDelta:])) }

// LastOffset is the offset of the batch's last record.
func (b Batch) LastOffset() int64 { return b.BaseOffset() + int64(b.LastOffsetDelta()) }

// NextOffset is the offset that follows the batch.
func (b Batch) NextOffset() int64 { return b.LastOffset() + 1 }

// BaseTimestamp is the first record's timestamp in milliseconds since the
// epoch; records store deltas from it.
func (b Batch) BaseTimestamp() int64 { return int64(be.Uint64(b[offBaseTimestamp:])) }

// MaxTimestamp is the largest record timestamp in the batch.
func (b Batch) MaxTimestamp() int64 { return int64(be.Uint64(b[offMaxTimestamp:])) }

// ProducerID is the idempotent producer id, or -1.
func (b Batch) ProducerID() int64 { return int64(be.Uint64(b[offProducerID:])) }

// ProducerEpoch is the idempotent producer epoch, or -1.
func (b Batch) ProducerEpoch() int16 { return int16(be.Uint16(b[offProducerEpoch:])) }

// BaseSequence is the idempotent sequence number of the first record, or -1.
func (b Batch) BaseSequence() int32 { return int32(be.Uint32(b[offBaseSequence:])) }

// RecordCount is the number of records in the batch.
func (b Batch) RecordCount() int32 { return int32(be.Uint32(b[offRecordCount:])) }

// Attributes is the batch attributes field.
type Attributes uint16

const (
	attrCodecMask     = 0x07
	attrTimestampType = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

// Codec is the compression codec of the records block.
func (a Attributes) Codec() Codec { return Codec(a & attrCodecMask) }

// LogAppendTime reports whether timestamps were set by the broker.
func (a Attributes) LogAppendTime() bool { return a&attrTimestampType != 0 }

// Transactional reports the transactional bit.
func (a Attributes) Transactional() bool { return a&attrTransactional != 0 }

// Control reports the control-batch bit.
func (a Attributes) Control() bool { return a&attrControl != 0 }

// Codec names a compression codec, with Kafka's numbering.
type Codec uint8

// The codecs.
const (
	None   Codec = 0
	Gzip   Codec = 1
	Snappy Codec = 2
	LZ4    Codec = 3
	Zstd   Codec = 4
)

// String returns the codec's name as flags and configs spell it.
func (c Codec) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return "unknown"
}
