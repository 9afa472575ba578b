package record

import "encoding/binary"

// Records inside a batch are framed with zigzag varints, as Kafka frames
// them. Kafka reads a varint (int32) in at most 5 bytes and a varlong
// (int64) in at most 10, so a longer encoding — even one whose value would
// fit — is corrupt (CheckVarint), never silently accepted.
const (
	maxVarint32Len = 5
	maxVarint64Len = binary.MaxVarintLen64
)

// varint32 decodes a zigzag varint holding an int32 from the start of b. n
// is the number of bytes read; n <= 0 means truncated, longer than
// maxVarint32Len, or out of int32 range. Callers build the error, so that
// the hot path stays free of allocation.
func varint32(b []byte) (v int32, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		return int32(b[0]>>1) ^ -int32(b[0]&1), 1
	}
	w, n := binary.Varint(b)
	if n <= 0 || n > maxVarint32Len || w != int64(int32(w)) {
		return 0, 0
	}
	return int32(w), n
}

// varint64 is varint32 for a varlong (int64, at most maxVarint64Len bytes).
func varint64(b []byte) (v int64, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		return int64(b[0]>>1) ^ -int64(b[0]&1), 1
	}
	v, n = binary.Varint(b)
	if n <= 0 || n > maxVarint64Len {
		return 0, 0
	}
	return v, n
}

// varintLen is the encoded size of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
