package record

// Header is one record header. Kafka's header key is a non-null string; a
// nil Key is written as an empty key. A nil Value is written as null (-1)
// and reads back as nil, an empty one as empty.
type Header struct {
	Key   []byte
	Value []byte
}

// Record is one record as a Reader yields it. Key, Value and the header
// bytes alias the batch (or the Reader's decompression buffer) and stay
// valid until the Reader's next Reset; the Headers slice itself is reused by
// the next call to Next. A null key or value is nil; an empty one is empty
// but not nil.
type Record struct {
	Offset    int64
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []Header
}

// The smallest encodings: a record with no key, value or headers has a
// 1-byte length followed by attributes, timestampDelta, offsetDelta,
// keyLength, valueLength and header count of 1 byte each; a header has at
// least its two lengths. These bound counts read from untrusted bytes
// before anything sized by them is allocated.
const (
	minRecordBody   = 6
	minRecordSize   = 1 + minRecordBody
	minHeaderSize   = 2
	nullLength      = -1
	recordAttrsSize = 1
)

// appendRecord appends one record in Kafka's framing: length varint,
// attributes int8, timestampDelta varlong, offsetDelta varint, key, value
// (each a varint length, -1 for null, then bytes) and the headers (a count,
// then each header's key and value framed the same way).
func appendRecord(dst []byte, tsDelta int64, offDelta int32, key, value []byte, headers []Header) []byte {
	body := recordAttrsSize + varintLen(tsDelta) + varintLen(int64(offDelta)) +
		bytesLen(key) + bytesLen(value) + varintLen(int64(len(headers)))
	for i := range headers {
		body += varintLen(int64(len(headers[i].Key))) + len(headers[i].Key) + bytesLen(headers[i].Value)
	}
	dst = appendVarint(dst, int64(body))
	dst = append(dst, 0) // record attributes: unused by Kafka, always 0
	dst = appendVarint(dst, tsDelta)
	dst = appendVarint(dst, int64(offDelta))
	dst = appendBytes(dst, key)
	dst = appendBytes(dst, value)
	dst = appendVarint(dst, int64(len(headers)))
	for i := range headers {
		dst = appendVarint(dst, int64(len(headers[i].Key)))
		dst = append(dst, headers[i].Key...)
		dst = appendBytes(dst, headers[i].Value)
	}
	return dst
}

// appendVarint is binary.AppendVarint without the call overhead for the
// one-byte case, which is most lengths and deltas in a batch.
func appendVarint(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 1) // zigzag(-1)
	}
	dst = appendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// recordFrame is one decoded record before the batch's base offset and
// timestamp are applied. headers is reused from record to record.
type recordFrame struct {
	tsDelta  int64
	offDelta int32
	key      []byte
	value    []byte
	headers  []Header
	// maxHeaders bounds len(headers): see Limits.MaxHeaders.
	maxHeaders int
}

// read decodes the record at the start of b and returns its encoded size.
// On failure it returns the check that failed and a constant reason (no
// allocation; the caller adds the record's index). It never reads past b
// and allocates only the headers slice, bounded by the record's length.
func (f *recordFrame) read(b []byte) (size int, c Check, why string) {
	length, n := varint32(b)
	if n <= 0 {
		return 0, CheckVarint, "length varint"
	}
	if length < minRecordBody || int(length) > len(b)-n {
		return 0, CheckRecord, "length out of range"
	}
	size = n + int(length)
	body := b[n:size]
	p := recordAttrsSize
	if f.tsDelta, n = varint64(body[p:]); n <= 0 {
		return 0, CheckVarint, "timestampDelta varint"
	}
	p += n
	if f.offDelta, n = varint32(body[p:]); n <= 0 {
		return 0, CheckVarint, "offsetDelta varint"
	}
	p += n
	if f.key, p, c, why = readBytes(body, p, true, "key"); c != 0 {
		return 0, c, why
	}
	if f.value, p, c, why = readBytes(body, p, true, "value"); c != 0 {
		return 0, c, why
	}
	count, n := varint32(body[p:])
	if n <= 0 {
		return 0, CheckVarint, "header count varint"
	}
	p += n
	if count < 0 || int(count) > (len(body)-p)/minHeaderSize {
		return 0, CheckRecord, "header count out of range"
	}
	if int(count) > f.maxHeaders {
		return 0, CheckRecord, "header count over the limit"
	}
	if cap(f.headers) < int(count) {
		f.headers = make([]Header, count)
	}
	f.headers = f.headers[:count]
	for i := range f.headers {
		h := &f.headers[i]
		if h.Key, p, c, why = readBytes(body, p, false, "header key"); c != 0 {
			return 0, c, why
		}
		if h.Value, p, c, why = readBytes(body, p, true, "header value"); c != 0 {
			return 0, c, why
		}
	}
	if p != len(body) {
		return 0, CheckRecord, "bytes after the last header"
	}
	return size, 0, ""
}

// readBytes reads a varint length and that many bytes at body[p:]. A length
// of -1 is null when nullable; any other negative length, or one past the
// end of body, is corrupt.
func readBytes(body []byte, p int, nullable bool, what string) (v []byte, next int, c Check, why string) {
	n, w := varint32(body[p:])
	if w <= 0 {
		return nil, p, CheckVarint, what + " length varint"
	}
	p += w
	switch {
	case n == nullLength && nullable:
		return nil, p, 0, ""
	case n < 0:
		return nil, p, CheckRecord, what + " length negative"
	case int(n) > len(body)-p:
		return nil, p, CheckRecord, what + " length past the record"
	}
	return body[p : p+int(n) : p+int(n)], p + int(n), 0, ""
}
