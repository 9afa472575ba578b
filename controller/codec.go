package controller

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// The binary encoding shared by commands, forwarded requests and snapshots.
// Integers are varints, strings and lists are prefixed with their length,
// maps are written in key order. A value has exactly one encoding, so two
// replicas that hold equal metadata write equal bytes, and a decoder refuses
// anything else (duplicate or unsorted keys, trailing bytes).

// maxString bounds every string in the encoding; names and addresses are far
// shorter, config values too.
const maxString = 1 << 16

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendInt32s(b []byte, v []int32) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, x := range v {
		b = binary.AppendVarint(b, int64(x))
	}
	return b
}

func appendInt64s(b []byte, v []int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, x := range v {
		b = binary.AppendVarint(b, x)
	}
	return b
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func appendConfigs(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for _, k := range sortedKeys(m) {
		b = appendString(b, k)
		b = appendString(b, m[k])
	}
	return b
}

// appendStringSet writes v sorted and without duplicates.
func appendStringSet(b []byte, v []string) []byte {
	s := append([]string(nil), v...)
	sort.Strings(s)
	n := 0
	for i, x := range s {
		if i == 0 || x != s[n-1] {
			s[n] = x
			n++
		}
	}
	s = s[:n]
	b = binary.AppendUvarint(b, uint64(len(s)))
	for _, x := range s {
		b = appendString(b, x)
	}
	return b
}

// decoder reads the encoding. The first error sticks: later reads return
// zero values, and callers check err once at the end. Every count is checked
// against the bytes left before anything is allocated.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrCorrupt, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.left() < 1 {
		d.fail("truncated")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	var scratch [binary.MaxVarintLen64]byte
	if n <= 0 || n != binary.PutUvarint(scratch[:], v) {
		d.fail("bad uvarint") // or not minimal: one encoding per value
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	var scratch [binary.MaxVarintLen64]byte
	if n <= 0 || n != binary.PutVarint(scratch[:], v) {
		d.fail("bad varint") // or not minimal: one encoding per value
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("%d out of int32 range", v)
		return 0
	}
	return int32(v)
}

// count reads a length prefix for elements of at least min bytes each.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(d.left()/min) {
		d.fail("count %d exceeds the %d bytes left", n, d.left())
		return 0
	}
	return int(n)
}

// bool reads what appendBool wrote; any byte but 0 and 1 is refused, so
// there is one encoding per value.
func (d *decoder) bool() bool {
	c := d.byte()
	if c > 1 {
		d.fail("bool byte %d", c)
	}
	return c == 1
}

func (d *decoder) string() string {
	n := d.count(1)
	if n > maxString {
		d.fail("string of %d bytes, at most %d", n, maxString)
		return ""
	}
	if d.err != nil {
		return ""
	}
	s := string(d.b[d.off : d.off+n])
	d.off += n
	return s
}

func (d *decoder) int32s() []int32 { return decodeList(d, d.int32) }

func (d *decoder) int64s() []int64 { return decodeList(d, d.varint) }

// decodeList reads a count-prefixed list of varints (at least a byte
// each).
func decodeList[T any](d *decoder, read func() T) []T {
	n := d.count(1)
	if n == 0 || d.err != nil {
		return nil
	}
	v := make([]T, n)
	for i := range v {
		v[i] = read()
	}
	return v
}

// configs reads a map written by appendConfigs; keys must be strictly
// increasing, so there is one encoding per map.
func (d *decoder) configs() map[string]string {
	n := d.count(2)
	if n == 0 || d.err != nil {
		return nil
	}
	m := make(map[string]string, n)
	prev := ""
	for i := 0; i < n; i++ {
		k, v := d.string(), d.string()
		if d.err != nil {
			return nil
		}
		if i > 0 && k <= prev {
			d.fail("config key %q not after %q", k, prev)
			return nil
		}
		m[k], prev = v, k
	}
	return m
}

func (d *decoder) stringSet() []string {
	n := d.count(1)
	if n == 0 || d.err != nil {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = d.string()
		if i > 0 && d.err == nil && v[i] <= v[i-1] {
			d.fail("%q not after %q", v[i], v[i-1])
		}
	}
	if d.err != nil {
		return nil
	}
	return v
}

// end fails unless every byte was read.
func (d *decoder) end() error {
	if d.err == nil && d.left() != 0 {
		d.fail("%d trailing bytes", d.left())
	}
	return d.err
}
