package log

import (
	"math/rand/v2"
	"testing"
)

// A log keeps its inactive segments' indexes mapped only while they are
// read: within two calls of UnmapIdleIndexes without a read, every index
// file but the active segment's is unmapped; a read of old offsets maps
// what it needs again, with the same batches, and those stay mapped for
// the next call. (segment's TestIdleIndexesUnmapped counts the mappings in
// /proc/self/maps.)
func TestLogUnmapsIdleIndexes(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{SegmentBytes: 16 << 10, MaxBatchBytes: 8 << 10})
	want := appendN(t, l, rand.New(rand.NewPCG(1, 2)), 200, 1000, 0)
	inactive := len(l.segs) - 1
	if inactive < 3 {
		t.Fatalf("%d inactive segments: the test needs several", inactive)
	}
	sweep := func() int {
		t.Helper()
		n, err := l.UnmapIdleIndexes()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := sweep() + sweep(); n != 2*inactive {
		t.Fatalf("two idle periods unmapped %d index files, want %d (2 per inactive segment)", n, 2*inactive)
	}
	if n := sweep(); n != 0 {
		t.Fatalf("a third idle period unmapped %d index files, want 0: none left", n)
	}
	sameBatches(t, readAll(t, l), want) // maps the offset indexes again
	if n := sweep(); n != 0 {
		t.Fatalf("the period of the reads unmapped %d index files, want 0", n)
	}
	if n := sweep(); n != inactive {
		t.Fatalf("the next idle period unmapped %d index files, want %d (the offset indexes the reads mapped)", n, inactive)
	}
	appendN(t, l, rand.New(rand.NewPCG(3, 4)), 10, 1000, 1000)
	sameBatches(t, readAll(t, l)[:len(want)], want)
}
