package log

import "hash/maphash"

// keyMap is the cleaner's bounded map from a record key to the offset of
// its latest record, as Kafka's SkimpyOffsetMap: it holds a 128-bit hash
// of each key (two 64-bit maphash values with independent seeds), never
// the key, in an open-addressing table sized once from a byte budget, so a
// pass of the cleaner uses a fixed amount of memory whatever its keys. Two
// keys whose 128-bit hashes collide would be taken for one (the odds are
// about n²/2¹²⁹ for n keys; Kafka accepts the same with MD5).
type keyMap struct {
	seed0, seed1 maphash.Seed
	slots        []keySlot
	n, limit     int
}

// keySlot is one entry; h0 == 0 marks an empty slot (put forces bit 0 on).
type keySlot struct {
	h0, h1 uint64
	offset int64
}

// keySlotBytes is the memory of one slot.
const keySlotBytes = 24

// keyMapLoad is the fill at which the map says it is full: linear probing
// stays short below it.
const keyMapLoad = 0.75

// minKeyMapSlots keeps a tiny budget usable.
const minKeyMapSlots = 64

func newKeyMap(bytes int) *keyMap {
	n := max(bytes/keySlotBytes, minKeyMapSlots)
	return &keyMap{
		seed0: maphash.MakeSeed(), seed1: maphash.MakeSeed(),
		slots: make([]keySlot, n),
		limit: int(float64(n) * keyMapLoad),
	}
}

// room reports whether n more keys surely fit.
func (m *keyMap) room(n int) bool { return m.n+n <= m.limit }

// reset empties the map, keeping its memory, with fresh seeds.
func (m *keyMap) reset() {
	clear(m.slots)
	m.n = 0
	m.seed0, m.seed1 = maphash.MakeSeed(), maphash.MakeSeed()
}

func (m *keyMap) hash(key []byte) (uint64, uint64) {
	return maphash.Bytes(m.seed0, key) | 1, maphash.Bytes(m.seed1, key)
}

// put records offset as key's latest. The caller checks room first: put
// on a map at its limit still succeeds (the table is never full below
// load 1), so a batch is never split across passes.
func (m *keyMap) put(key []byte, offset int64) {
	h0, h1 := m.hash(key)
	s := m.find(h0, h1)
	if s.h0 == 0 {
		*s = keySlot{h0: h0, h1: h1}
		m.n++
	}
	s.offset = offset
}

// get returns the latest offset recorded for key.
func (m *keyMap) get(key []byte) (int64, bool) {
	s := m.find(m.hash(key))
	return s.offset, s.h0 != 0
}

// find returns the slot holding the hash, or the empty slot where it
// goes (linear probing).
func (m *keyMap) find(h0, h1 uint64) *keySlot {
	i := h0 % uint64(len(m.slots))
	for {
		s := &m.slots[i]
		if s.h0 == 0 || s.h0 == h0 && s.h1 == h1 {
			return s
		}
		if i++; i == uint64(len(m.slots)) {
			i = 0
		}
	}
}
