package record

import "hash/crc32"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ParseHeader checks the header-level framing of the batch at the start of
// b — enough bytes for a header, batchLength within [HeaderSize-12,
// maxBatchBytes-12] and within len(b), magic — and returns the batch, sliced
// to exactly its declared size. It does not check the CRC (VerifyCRC) nor the
// records (Validate). maxBatchBytes bounds the whole batch including its
// 12-byte prefix; 0 or less means no bound beyond len(b).
func ParseHeader(b []byte, maxBatchBytes int) (Batch, error) {
	if len(b) < HeaderSize {
		return nil, corrupt(CheckShort, "%d bytes, header needs %d", len(b), HeaderSize)
	}
	n := int64(int32(be.Uint32(b[offBatchLength:])))
	if n < HeaderSize-LengthPrefixSize {
		return nil, corrupt(CheckLength, "batchLength %d below minimum %d", n, HeaderSize-LengthPrefixSize)
	}
	size := LengthPrefixSize + n
	if maxBatchBytes > 0 && size > int64(maxBatchBytes) {
		return nil, corrupt(CheckLength, "batch of %d bytes over the limit of %d", size, maxBatchBytes)
	}
	if size > int64(len(b)) {
		return nil, corrupt(CheckShort, "batch declares %d bytes, %d present", size, len(b))
	}
	if b[offMagic] != Magic {
		return nil, corrupt(CheckMagic, "magic %d, want %d", int8(b[offMagic]), Magic)
	}
	return Batch(b[:size]), nil
}

// ComputeCRC returns the CRC-32C of the bytes the CRC covers. b must hold a
// whole batch (ParseHeader).
func (b Batch) ComputeCRC() uint32 { return crc32.Checksum(b[CRCStart:], castagnoli) }

// VerifyCRC checks the stored CRC against the bytes. b must hold a whole
// batch (ParseHeader).
func (b Batch) VerifyCRC() error {
	if got, want := b.ComputeCRC(), b.CRC(); got != want {
		return corrupt(CheckCRC, "crc %#08x, stored %#08x", got, want)
	}
	return nil
}

// SetCRC computes and stores the CRC. Producers call it when sealing a
// batch; nothing on the broker needs it, since the fields the broker stamps
// are outside the CRC.
func (b Batch) SetCRC() { be.PutUint32(b[offCRC:], b.ComputeCRC()) }
