package protocol

// Encoding is append-style: every function appends one field to dst and
// returns the extended slice, so a caller encodes into a buffer it reuses
// across messages and nothing allocates once the buffer has grown.

func appendInt8(dst []byte, v int8) []byte { return append(dst, byte(v)) }

func appendInt16(dst []byte, v int16) []byte { return be.AppendUint16(dst, uint16(v)) }

func appendInt32(dst []byte, v int32) []byte { return be.AppendUint32(dst, uint32(v)) }

func appendInt64(dst []byte, v int64) []byte { return be.AppendUint64(dst, uint64(v)) }

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// appendString writes an i16 length and the bytes. A string longer than
// 32767 bytes cannot be represented; rather than cut it (a cut topic name
// names another topic) it is written as the invalid length -2, which every
// decoder refuses, so the peer rejects the message loudly. Names that long
// are refused by validation long before they reach the encoder.
func appendString(dst []byte, s string) []byte {
	if len(s) > maxStringLen {
		return appendInt16(dst, -2)
	}
	dst = appendInt16(dst, int16(len(s)))
	return append(dst, s...)
}

const maxStringLen = 1<<15 - 1

// appendBytes writes an i32 length (-1 for nil) and the bytes.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return appendInt32(dst, -1)
	}
	dst = appendInt32(dst, int32(len(b)))
	return append(dst, b...)
}

func appendInt32s(dst []byte, s []int32) []byte {
	dst = appendInt32(dst, int32(len(s)))
	for _, v := range s {
		dst = appendInt32(dst, v)
	}
	return dst
}

func appendStrings(dst []byte, s []string) []byte {
	dst = appendInt32(dst, int32(len(s)))
	for _, v := range s {
		dst = appendString(dst, v)
	}
	return dst
}

// appendArray writes an i32 count and each element with enc.
func appendArray[T any](dst []byte, s []T, enc func(*T, []byte) []byte) []byte {
	dst = appendInt32(dst, int32(len(s)))
	for i := range s {
		dst = enc(&s[i], dst)
	}
	return dst
}

// appendTopic writes the {name, partitions} shape shared by the
// topic-grouped APIs (Produce, Fetch, ListOffsets).
func appendTopic[P any](dst []byte, name string, parts []P, enc func(*P, []byte) []byte) []byte {
	return appendArray(appendString(dst, name), parts, enc)
}
