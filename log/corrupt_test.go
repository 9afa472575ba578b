package log

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicemq/sluice/segment"
)

// corruptFixture is a closed log of several segments and the batches it
// holds, for damaging and reopening.
type corruptFixture struct {
	dir   string
	cfg   Config
	want  []stored
	bases []int64 // segment base offsets
}

func newCorruptFixture(t *testing.T) *corruptFixture {
	t.Helper()
	f := &corruptFixture{dir: t.TempDir(), cfg: smallConfig()}
	l, err := Open(f.dir, f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.SetLeaderEpoch(5)
	f.want = appendN(t, l, rand.New(rand.NewPCG(21, 22)), 50, 4000, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.bases = segmentFiles(t, f.dir)
	if len(f.bases) < 5 {
		t.Fatalf("fixture has %d segments, want at least 5", len(f.bases))
	}
	return f
}

// locate returns the segment log file holding batch k and its position.
func (f *corruptFixture) locate(k int) (path string, pos int64) {
	seg := f.bases[0]
	for _, b := range f.bases {
		if b <= f.want[k].base {
			seg = b
		}
	}
	for _, s := range f.want[:k] {
		if s.base >= seg {
			pos += int64(len(s.bytes))
		}
	}
	return segment.LogPath(f.dir, seg), pos
}

// firstOf returns the index of the first batch of segment i.
func (f *corruptFixture) firstOf(i int) int {
	for k, s := range f.want {
		if s.base == f.bases[i] {
			return k
		}
	}
	panic("no batch starts a segment")
}

// unclean makes the next Open treat the stop as a crash.
func (f *corruptFixture) unclean(t *testing.T) {
	t.Helper()
	if err := os.Remove(filepath.Join(f.dir, cleanShutdownFile)); err != nil {
		t.Fatal(err)
	}
}

func patchFile(t *testing.T, path string, pos int64, fn func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fn(b[pos:])
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendToFile(t *testing.T, path string, extra []byte) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write(extra); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRecoveryCorruption damages a closed log in each way recovery exists
// to catch and checks that reopening keeps every batch before the damage
// and nothing after it.
func TestRecoveryCorruption(t *testing.T) {
	tests := []struct {
		name string
		// damage breaks the fixture and returns how many batches survive.
		damage func(t *testing.T, f *corruptFixture) int
	}{
		{"bit flip in a record", func(t *testing.T, f *corruptFixture) int {
			k := f.firstOf(2) + 1
			path, pos := f.locate(k)
			patchFile(t, path, pos, func(b []byte) { b[70] ^= 0x10 })
			os.Remove(f.dir + "/" + recoveryPointFile) // scan everything
			f.unclean(t)
			return k
		}},
		{"bit flip in batchLength", func(t *testing.T, f *corruptFixture) int {
			k := f.firstOf(3) + 1
			path, pos := f.locate(k)
			patchFile(t, path, pos, func(b []byte) { b[9] ^= 0x40 })
			os.Remove(f.dir + "/" + recoveryPointFile)
			f.unclean(t)
			return k
		}},
		{"base offset not contiguous", func(t *testing.T, f *corruptFixture) int {
			k := f.firstOf(2) + 2 // baseOffset is outside the CRC
			path, pos := f.locate(k)
			patchFile(t, path, pos, func(b []byte) { binary.BigEndian.PutUint64(b, uint64(f.want[k].base+1)) })
			os.Remove(f.dir + "/" + recoveryPointFile)
			f.unclean(t)
			return k
		}},
		{"leader epoch decreasing", func(t *testing.T, f *corruptFixture) int {
			k := f.firstOf(1) + 1
			path, pos := f.locate(k)
			patchFile(t, path, pos, func(b []byte) { binary.BigEndian.PutUint32(b[12:], 4) })
			os.Remove(f.dir + "/" + recoveryPointFile)
			f.unclean(t)
			return k
		}},
		{"leader epoch decreasing across segments", func(t *testing.T, f *corruptFixture) int {
			k := f.firstOf(3)
			path, pos := f.locate(k)
			patchFile(t, path, pos, func(b []byte) { binary.BigEndian.PutUint32(b[12:], 4) })
			os.Remove(f.dir + "/" + recoveryPointFile)
			f.unclean(t)
			return k
		}},
		{"truncated tail", func(t *testing.T, f *corruptFixture) int {
			last := segment.LogPath(f.dir, f.bases[len(f.bases)-1])
			st, _ := os.Stat(last)
			if err := os.Truncate(last, st.Size()-10); err != nil {
				t.Fatal(err)
			}
			f.unclean(t) // the recovery point is intact: only the tail is scanned
			return len(f.want) - 1
		}},
		{"garbage appended", func(t *testing.T, f *corruptFixture) int {
			garbage := make([]byte, 300)
			for i := range garbage {
				garbage[i] = byte(i*7 + 3)
			}
			appendToFile(t, segment.LogPath(f.dir, f.bases[len(f.bases)-1]), garbage)
			f.unclean(t)
			return len(f.want)
		}},
		{"zero-filled preallocated tail", func(t *testing.T, f *corruptFixture) int {
			appendToFile(t, segment.LogPath(f.dir, f.bases[len(f.bases)-1]), make([]byte, 64<<10))
			f.unclean(t)
			return len(f.want)
		}},
		{"torn tail despite the clean marker", func(t *testing.T, f *corruptFixture) int {
			last := segment.LogPath(f.dir, f.bases[len(f.bases)-1])
			st, _ := os.Stat(last)
			if err := os.Truncate(last, st.Size()-1); err != nil {
				t.Fatal(err)
			}
			return len(f.want) - 1
		}},
		{"garbage after a middle segment", func(t *testing.T, f *corruptFixture) int {
			appendToFile(t, segment.LogPath(f.dir, f.bases[2]), []byte("not a batch at all, but long enough to look at"))
			os.Remove(f.dir + "/" + recoveryPointFile)
			f.unclean(t)
			return f.firstOf(3)
		}},
		{"missing middle segment", func(t *testing.T, f *corruptFixture) int {
			os.Remove(segment.LogPath(f.dir, f.bases[3]))
			return f.firstOf(3)
		}},
		{"overlapping segments", func(t *testing.T, f *corruptFixture) int {
			// A segment named one offset below where its predecessor ends.
			b := f.bases[3]
			for _, p := range [][2]string{
				{segment.LogPath(f.dir, b), segment.LogPath(f.dir, b-1)},
				{segment.IndexPath(f.dir, b), segment.IndexPath(f.dir, b-1)},
				{segment.TimeIndexPath(f.dir, b), segment.TimeIndexPath(f.dir, b-1)},
			} {
				if err := os.Rename(p[0], p[1]); err != nil {
					t.Fatal(err)
				}
			}
			return f.firstOf(3)
		}},
		{"missing index, clean stop", func(t *testing.T, f *corruptFixture) int {
			os.Remove(segment.IndexPath(f.dir, f.bases[1]))
			os.Remove(segment.TimeIndexPath(f.dir, f.bases[2]))
			return len(f.want)
		}},
		{"corrupt index, clean stop", func(t *testing.T, f *corruptFixture) int {
			patchFile(t, segment.IndexPath(f.dir, f.bases[1]), 0, func(b []byte) {
				for i := range b {
					b[i] = 0xff
				}
			})
			return len(f.want)
		}},
		{"corrupt index, unclean stop", func(t *testing.T, f *corruptFixture) int {
			idx := segment.IndexPath(f.dir, f.bases[len(f.bases)-1])
			if err := os.WriteFile(idx, []byte{0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0}, 0o644); err != nil {
				t.Fatal(err)
			}
			f.unclean(t)
			return len(f.want)
		}},
		{"corrupt recovery point and a bad batch before it", func(t *testing.T, f *corruptFixture) int {
			k := f.firstOf(1) + 1
			path, pos := f.locate(k)
			patchFile(t, path, pos, func(b []byte) { b[len(f.want[k].bytes)-1] ^= 1 })
			patchFile(t, filepath.Join(f.dir, recoveryPointFile), 12, func(b []byte) { b[0] ^= 0xff })
			f.unclean(t)
			return k
		}},
		{"corrupt log start offset", func(t *testing.T, f *corruptFixture) int {
			if err := os.WriteFile(filepath.Join(f.dir, startOffsetFile), []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
			f.unclean(t)
			return len(f.want)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCorruptFixture(t)
			keep := tt.damage(t, f)
			l := openLog(t, f.dir, f.cfg)
			if l.StartOffset() != 0 {
				t.Fatalf("start offset %d, want 0", l.StartOffset())
			}
			sameBatches(t, readAll(t, l), f.want[:keep])
			wantEnd := int64(0)
			if keep > 0 {
				wantEnd = f.want[keep-1].next()
			}
			if l.EndOffset() != wantEnd {
				t.Fatalf("end offset %d, want %d", l.EndOffset(), wantEnd)
			}
			for _, b := range segmentFiles(t, f.dir) {
				if b > wantEnd {
					t.Fatalf("segment %d past the end offset %d survived", b, wantEnd)
				}
			}
			// The recovered log takes appends and reopens cleanly.
			more := appendN(t, l, rand.New(rand.NewPCG(1, 1)), 5, 4000, 1)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := openLog(t, f.dir, f.cfg)
			sameBatches(t, readAll(t, l2), append(f.want[:keep:keep], more...))
		})
	}
}
