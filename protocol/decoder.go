package protocol

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

var be = binary.BigEndian

// maxPathDepth bounds the element path a Decoder remembers for error
// messages; deeper levels are still decoded, only not named.
const maxPathDepth = 6

type pathElem struct {
	field string
	index int
}

// Decoder reads one message body from a byte slice. It records the first
// error and returns zero values after it, so a message's decode method reads
// every field straight through and checks once at the end. Every length and
// count is checked against the bytes remaining before anything is allocated:
// a declared count of 1e9 with 10 bytes left fails, it never reaches make.
//
// Slices returned for bytes fields alias the input (zero copy); they stay
// valid as long as the input does. A Decoder is reusable (Reset) and holds
// no state between messages, so a connection keeps one and decodes every
// request with it without allocating.
type Decoder struct {
	b     []byte
	off   int
	err   error
	what  string
	path  [maxPathDepth]pathElem
	depth int
}

// Reset makes d read b from its start.
func (d *Decoder) Reset(b []byte) {
	*d = Decoder{b: b}
}

// Remaining is the number of unread bytes.
func (d *Decoder) Remaining() int { return len(d.b) - d.off }

// Err is the first error met, or nil.
func (d *Decoder) Err() error { return d.err }

// finish checks that the whole body was consumed and returns the first
// error. Trailing bytes are an error: versions are negotiated, so a body
// longer than its version's layout is malformed, not an extension.
func (d *Decoder) finish() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("", "%d trailing bytes", len(d.b)-d.off)
	}
	return d.err
}

// enter and leave bracket the decoding of element i of array field, so that
// an error inside names it ("topics[2].partitions[0].records").
func (d *Decoder) enter(field string, i int) {
	if d.depth < maxPathDepth {
		d.path[d.depth] = pathElem{field, i}
	}
	d.depth++
}

func (d *Decoder) leave() { d.depth-- }

// fail records the first error, naming the current path and field.
func (d *Decoder) fail(field, format string, args ...any) {
	if d.err != nil {
		return
	}
	var sb strings.Builder
	for i := 0; i < d.depth && i < maxPathDepth; i++ {
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(d.path[i].field)
		sb.WriteByte('[')
		sb.WriteString(strconv.Itoa(d.path[i].index))
		sb.WriteByte(']')
	}
	if field != "" {
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(field)
	}
	d.err = &MalformedError{What: d.what, Field: sb.String(), Reason: fmt.Sprintf(format, args...)}
}

// take returns the next n bytes, or nil (and records an error) if fewer
// remain.
func (d *Decoder) take(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.fail(field, "need %d bytes, %d remain", n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

func (d *Decoder) int8(field string) int8 {
	if p := d.take(field, 1); p != nil {
		return int8(p[0])
	}
	return 0
}

func (d *Decoder) int16(field string) int16 {
	if p := d.take(field, 2); p != nil {
		return int16(be.Uint16(p))
	}
	return 0
}

func (d *Decoder) int32(field string) int32 {
	if p := d.take(field, 4); p != nil {
		return int32(be.Uint32(p))
	}
	return 0
}

func (d *Decoder) int64(field string) int64 {
	if p := d.take(field, 8); p != nil {
		return int64(be.Uint64(p))
	}
	return 0
}

// bool accepts only 0 and 1, so every accepted body re-encodes to itself.
func (d *Decoder) bool(field string) bool {
	p := d.take(field, 1)
	if p == nil {
		return false
	}
	if p[0] > 1 {
		d.fail(field, "boolean byte %d", p[0])
		return false
	}
	return p[0] == 1
}

// string reads an i16-length string. Body strings are never null: -1 is an
// error. reuse is the value the field held before; when the bytes equal it,
// it is returned instead of a new string, so decoding into a reused struct
// does not allocate for names that repeat request after request.
func (d *Decoder) string(field, reuse string) string {
	n := d.int16(field)
	if d.err != nil {
		return ""
	}
	if n < 0 {
		d.fail(field, "string length %d", n)
		return ""
	}
	p := d.take(field, int(n))
	if string(p) == reuse { // compiled without allocation
		return reuse
	}
	return string(p)
}

// bytes reads an i32-length byte string, -1 meaning null (nil). The result
// aliases the input.
func (d *Decoder) bytes(field string) []byte {
	n := d.int32(field)
	if d.err != nil {
		return nil
	}
	if n < -1 {
		d.fail(field, "bytes length %d", n)
		return nil
	}
	if n == -1 {
		return nil
	}
	if int(n) > d.Remaining() {
		d.fail(field, "length %d exceeds remaining %d bytes", n, d.Remaining())
		return nil
	}
	return d.take(field, int(n))
}

// arrayLen reads an i32 element count and checks that count elements of at
// least minSize bytes each fit in what remains. Null (-1) is not accepted.
func (d *Decoder) arrayLen(field string, minSize int) int {
	n, null := d.nullableArrayLen(field, minSize)
	if null {
		d.fail(field, "null array")
	}
	return n
}

// nullableArrayLen is arrayLen accepting -1 as null (count 0).
func (d *Decoder) nullableArrayLen(field string, minSize int) (n int, null bool) {
	c := d.int32(field)
	if d.err != nil {
		return 0, false
	}
	switch {
	case c == -1:
		return 0, true
	case c < 0:
		d.fail(field, "count %d", c)
		return 0, false
	case int64(c)*int64(minSize) > int64(d.Remaining()):
		d.fail(field, "count %d exceeds remaining %d bytes", c, d.Remaining())
		return 0, false
	}
	return int(c), false
}

// int32s reads an array of i32 into dst's storage.
func (d *Decoder) int32s(field string, dst []int32) []int32 {
	dst = resize(dst, d.arrayLen(field, 4))
	for i := range dst {
		dst[i] = d.int32(field)
	}
	return dst
}

// strings reads an array of strings into dst's storage, reusing equal
// strings.
func (d *Decoder) strings(field string, dst []string) []string {
	return d.fillStrings(field, resize(dst, d.arrayLen(field, 2)))
}

// fillStrings reads len(dst) strings into dst, reusing equal strings.
func (d *Decoder) fillStrings(field string, dst []string) []string {
	for i := range dst {
		d.enter(field, i)
		dst[i] = d.string("", dst[i])
		d.leave()
	}
	return dst
}

// decodeArray reads an array of T into s's storage, reusing its elements
// (and their own slices and strings), decoding each with dec.
func decodeArray[T any](d *Decoder, field string, minSize int, s []T, dec func(*T, *Decoder)) []T {
	s = resize(s, d.arrayLen(field, minSize))
	for i := range s {
		d.enter(field, i)
		dec(&s[i], d)
		d.leave()
		if d.err != nil {
			return s[:0]
		}
	}
	return s
}

// resize returns s with length n, reusing its storage when it is large
// enough. Elements keep their old contents (and slices' storage) until the
// caller overwrites them, which every decode method does field by field.
func resize[T any](s []T, n int) []T {
	if n <= cap(s) {
		return s[:n]
	}
	return append(s[:cap(s)], make([]T, n-cap(s))...)
}

// decodeTopic reads the {name, partitions} shape written by appendTopic.
func decodeTopic[P any](d *Decoder, name string, parts []P, minSize int, dec func(*P, *Decoder)) (string, []P) {
	name = d.string("name", name)
	return name, decodeArray(d, "partitions", minSize, parts, dec)
}
