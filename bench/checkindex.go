package bench

import "math"

// The indexes Check judges a history with: integer ids for values, and
// per-partition tables of what was seen at each offset.

// valueIDs numbers values: a value sent has its index in the sends; a
// value never sent gets an id past them.
type valueIDs struct {
	sends   []Send
	byValue map[string]int32
	extra   []string // values never sent: id len(sends)+i
}

func newValueIDs(sends []Send) *valueIDs {
	v := &valueIDs{sends: sends, byValue: make(map[string]int32, len(sends))}
	for i := range sends {
		v.byValue[sends[i].Value] = int32(i)
	}
	return v
}

// id returns value's id, numbering it if it was never sent.
func (v *valueIDs) id(value string) int32 {
	if id, ok := v.byValue[value]; ok {
		return id
	}
	id := int32(len(v.sends) + len(v.extra))
	v.extra = append(v.extra, value)
	v.byValue[value] = id
	return id
}

// of returns the ids of the values of reads, in order.
func (v *valueIDs) of(reads []Read) []int32 {
	out := make([]int32, len(reads))
	for i := range reads {
		out[i] = v.id(reads[i].Value)
	}
	return out
}

// value returns the value with the given id; "" for -1 (nothing).
func (v *valueIDs) value(id int32) string {
	switch {
	case id < 0:
		return ""
	case int(id) < len(v.sends):
		return v.sends[id].Value
	}
	return v.extra[int(id)-len(v.sends)]
}

// maxDenseParts bounds the partition numbers held in dense columns;
// others (never seen in a real run) go to a map.
const maxDenseParts = 1 << 12

// column is one partition's table: vals[offset-base] is a value id + 1,
// 0 when nothing was seen there.
type column struct {
	base int64
	vals []int32
}

// offsetTables map (partition, offset) to a value id. Partitions whose
// offsets are dense (the rule in a verify run) get a column; the rest a
// map.
type offsetTables struct {
	cols  []column // by partition; a nil vals means "use other"
	other map[pos]int32
}

// tableLayout is where each partition's offsets lie, shared by the tables
// of one history.
type tableLayout struct {
	lo, hi []int64 // by partition; lo > hi when none seen
}

func layoutOf(h History) tableLayout {
	var l tableLayout
	see := func(p int32, o int64) {
		if p < 0 || p >= maxDenseParts {
			return
		}
		for int(p) >= len(l.lo) {
			l.lo = append(l.lo, math.MaxInt64)
			l.hi = append(l.hi, math.MinInt64)
		}
		l.lo[p], l.hi[p] = min(l.lo[p], o), max(l.hi[p], o)
	}
	for i := range h.Sends {
		if s := &h.Sends[i]; s.Outcome == Acked {
			see(s.Partition, s.Offset)
		}
	}
	for _, rd := range h.Final {
		see(rd.Partition, rd.Offset)
	}
	for _, l := range h.Live {
		for _, rd := range l {
			see(rd.Partition, rd.Offset)
		}
	}
	return l
}

// newOffsetTables returns empty tables: a dense column for each partition
// of layout whose offset range is at most 4 entries per record of the
// history plus a little (so a bogus offset cannot make it allocate
// gigabytes), a map for the rest.
func newOffsetTables(l tableLayout, records int) *offsetTables {
	t := &offsetTables{cols: make([]column, len(l.lo)), other: map[pos]int32{}}
	for p := range l.lo {
		if l.lo[p] > l.hi[p] {
			continue
		}
		if span := uint64(l.hi[p] - l.lo[p]); span < uint64(4*records+4096) {
			t.cols[p] = column{base: l.lo[p], vals: make([]int32, span+1)}
		}
	}
	return t
}

func (t *offsetTables) col(p pos) *column {
	if p.p >= 0 && int(p.p) < len(t.cols) {
		if c := &t.cols[p.p]; c.vals != nil && p.o >= c.base && p.o-c.base < int64(len(c.vals)) {
			return c
		}
	}
	return nil
}

// get returns the id at p, -1 when none.
func (t *offsetTables) get(p pos) int32 {
	if c := t.col(p); c != nil {
		return c.vals[p.o-c.base] - 1
	}
	if id, ok := t.other[p]; ok {
		return id
	}
	return -1
}

func (t *offsetTables) set(p pos, id int32) {
	if c := t.col(p); c != nil {
		c.vals[p.o-c.base] = id + 1
		return
	}
	t.other[p] = id
}

// where records the distinct offsets each sent value was read at, in the
// order first read.
type where struct {
	first []pos // by send id; o == unseen when never read
	more  map[int32][]pos
}

const unseen = math.MinInt64

func newWhere(n int) *where {
	w := &where{first: make([]pos, n), more: map[int32][]pos{}}
	for i := range w.first {
		w.first[i].o = unseen
	}
	return w
}

func (w *where) note(id int32, p pos) {
	switch f := &w.first[id]; {
	case f.o == unseen:
		*f = p
		return
	case *f == p:
		return
	}
	for _, q := range w.more[id] {
		if q == p {
			return
		}
	}
	w.more[id] = append(w.more[id], p)
}

func (w *where) seen(id int32) bool { return w.first[id].o != unseen }

func (w *where) count(id int32) int { return 1 + len(w.more[id]) }

func (w *where) all(id int32) []pos {
	if !w.seen(id) {
		return nil
	}
	return append([]pos{w.first[id]}, w.more[id]...)
}
