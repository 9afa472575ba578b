package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicemq/sluice/record"
)

// checkTimestamps compares FindTimestamp with a linear search of the model.
func checkTimestamps(t *testing.T, s *Segment, m *model) {
	t.Helper()
	for ts := int64(900); ts < m.maxTS()+3; ts += 7 {
		var want int64
		wantOK := false
		for _, b := range m.batches {
			if b.MaxTimestamp() >= ts {
				want, wantOK = b.BaseOffset(), true
				break
			}
		}
		if got, ok := s.FindTimestamp(ts); ok != wantOK || got != want {
			t.Fatalf("FindTimestamp(%d) = %d, %v; want %d, %v", ts, got, ok, want, wantOK)
		}
	}
}

// entries copies both indexes' published entries.
func entries(s *Segment) (idx, tidx []byte) {
	idx = bytes.Clone(s.idx.mm()[:s.idx.n.Load()*offsetEntrySize])
	tidx = bytes.Clone(s.tidx.mm()[:s.tidx.n.Load()*timeEntrySize])
	return idx, tidx
}

func mustOpen(t *testing.T, dir string, base int64, cfg Config) *Segment {
	t.Helper()
	s, err := Open(dir, base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustClose(t *testing.T, s *Segment) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReopen(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			dir, cfg := t.TempDir(), testConfig(mode.mmap)
			s := mustCreate(t, dir, 10, cfg)
			m := &model{base: 10}
			fill(t, s, m, specsN(70)...)
			idx, tidx := entries(s)
			mustClose(t, s)
			if got := fileSize(t, IndexPath(dir, 10)); got != int64(len(idx)) {
				t.Fatalf("index file %d bytes, %d used", got, len(idx))
			}
			if got := fileSize(t, LogPath(dir, 10)); got != m.size() {
				t.Fatalf("log file %d bytes, %d used", got, m.size())
			}

			s = mustOpen(t, dir, 10, cfg)
			check(t, s, m)
			checkTimestamps(t, s, m)
			if i2, t2 := entries(s); !bytes.Equal(i2, idx) || !bytes.Equal(t2, tidx) {
				t.Fatal("index entries changed across Close/Open")
			}
			fill(t, s, m, specsN(30)...)
			check(t, s, m)
			idx, tidx = entries(s)
			mustClose(t, s)

			// A fresh segment built from the same batches has the same
			// indexes: a rebuild reproduces what appends wrote.
			fresh := mustCreate(t, t.TempDir(), 10, cfg)
			defer fresh.Close()
			for _, b := range m.batches {
				if err := fresh.Append(b); err != nil {
					t.Fatal(err)
				}
			}
			if i2, t2 := entries(fresh); !bytes.Equal(i2, idx) || !bytes.Equal(t2, tidx) {
				t.Fatal("appending the same batches gave other index entries")
			}
		})
	}
}

func TestOpenMissing(t *testing.T) {
	if _, err := Open(t.TempDir(), 0, Config{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open without a log file: %v", err)
	}
}

func TestSeal(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			dir, cfg := t.TempDir(), testConfig(mode.mmap)
			s := mustCreate(t, dir, 0, cfg)
			defer s.Close()
			m := &model{}
			fill(t, s, m, specsN(40)...)
			if err := s.Seal(); err != nil {
				t.Fatal(err)
			}
			if got, want := fileSize(t, IndexPath(dir, 0)), s.idx.n.Load()*offsetEntrySize; got != want {
				t.Fatalf("sealed index file %d bytes, want %d", got, want)
			}
			if got, want := fileSize(t, TimeIndexPath(dir, 0)), s.tidx.n.Load()*timeEntrySize; got != want {
				t.Fatalf("sealed time index file %d bytes, want %d", got, want)
			}
			if got := fileSize(t, LogPath(dir, 0)); got != m.size() {
				t.Fatalf("sealed log file %d bytes, want %d", got, m.size())
			}
			if err := s.Append(makeBatch(m.next(), spec{count: 1})); !errors.Is(err, ErrSealed) {
				t.Fatalf("Append after Seal: %v", err)
			}
			check(t, s, m)
			// Truncating a sealed segment makes it the active one again; its
			// index files grow back as entries are written.
			if err := s.TruncateTo(m.batches[30].BaseOffset()); err != nil {
				t.Fatal(err)
			}
			m.truncate(m.batches[30].BaseOffset())
			fill(t, s, m, specsN(60)...)
			check(t, s, m)
			checkTimestamps(t, s, m)
		})
	}
}

func TestTruncateTo(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			ref := &model{base: 100}
			for _, sp := range specsN(50) {
				ref.add(makeBatch(ref.next(), sp))
			}
			b := ref.batches
			for _, tc := range []struct {
				name   string
				offset int64
				keep   int // batches kept
			}{
				{"at next offset", ref.next(), 50},
				{"past next offset", ref.next() + 10, 50},
				{"last record", b[49].LastOffset(), 49},
				{"last batch", b[49].BaseOffset(), 49},
				{"inside a batch", b[22].BaseOffset() + 1, 22},
				{"batch boundary", b[21].BaseOffset(), 21},
				{"first index entry", b[s0(t, ref)].BaseOffset(), s0(t, ref)},
				{"second batch", b[1].BaseOffset(), 1},
				{"base", 100, 0},
				{"below base", 3, 0},
			} {
				t.Run(tc.name, func(t *testing.T) {
					dir, cfg := t.TempDir(), testConfig(mode.mmap)
					s := mustCreate(t, dir, 100, cfg)
					defer s.Close()
					m := &model{base: 100}
					for _, bb := range ref.batches {
						if err := s.Append(bb); err != nil {
							t.Fatal(err)
						}
						m.add(bb)
					}
					if err := s.TruncateTo(tc.offset); err != nil {
						t.Fatal(err)
					}
					m.truncate(tc.offset)
					if len(m.batches) != tc.keep {
						t.Fatalf("model kept %d batches, test wants %d", len(m.batches), tc.keep)
					}
					if s.NextOffset() > max(tc.offset, 100) {
						t.Fatalf("NextOffset %d > %d after TruncateTo", s.NextOffset(), tc.offset)
					}
					check(t, s, m)
					checkTimestamps(t, s, m)
					if got := fileSize(t, LogPath(dir, 100)); got != m.size() && (tc.keep < 50 || !mode.mmap) {
						t.Fatalf("log file %d bytes after truncate, want %d", got, m.size())
					}
					fill(t, s, m, specsN(25)...)
					check(t, s, m)
					mustClose(t, s)
					s2 := mustOpen(t, dir, 100, cfg)
					defer s2.Close()
					check(t, s2, m)
					checkTimestamps(t, s2, m)
				})
			}
		})
	}
}

// s0 is the first batch that gets an offset-index entry.
func s0(t *testing.T, m *model) int {
	for i, p := range m.pos {
		if p >= int64(testConfig(false).IndexIntervalBytes) {
			return i
		}
	}
	t.Fatal("no indexed batch")
	return 0
}

func TestIndexRebuild(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string, idx, tidx []byte) // idx, tidx: the entries
	}{
		{"offset index missing", func(t *testing.T, dir string, idx, tidx []byte) { rm(t, IndexPath(dir, 0)) }},
		{"time index missing", func(t *testing.T, dir string, idx, tidx []byte) { rm(t, TimeIndexPath(dir, 0)) }},
		{"both missing", func(t *testing.T, dir string, idx, tidx []byte) {
			rm(t, IndexPath(dir, 0))
			rm(t, TimeIndexPath(dir, 0))
		}},
		{"offset index empty", func(t *testing.T, dir string, idx, tidx []byte) { cut(t, IndexPath(dir, 0), 0) }},
		{"offset index half", func(t *testing.T, dir string, idx, tidx []byte) {
			cut(t, IndexPath(dir, 0), int64(len(idx)/16*8))
		}},
		{"offset index partial entry", func(t *testing.T, dir string, idx, tidx []byte) {
			cut(t, IndexPath(dir, 0), int64(len(idx)-3))
		}},
		{"time index partial entry", func(t *testing.T, dir string, idx, tidx []byte) {
			cut(t, TimeIndexPath(dir, 0), int64(len(tidx)-1))
		}},
		{"offset index garbage", func(t *testing.T, dir string, idx, tidx []byte) {
			overwrite(t, IndexPath(dir, 0), 0, bytes.Repeat([]byte{0xa5}, 64))
		}},
		{"offset entries out of order", func(t *testing.T, dir string, idx, tidx []byte) {
			overwrite(t, IndexPath(dir, 0), 0, append(bytes.Clone(idx[8:16]), idx[0:8]...))
		}},
		{"last offset entry off by one", func(t *testing.T, dir string, idx, tidx []byte) {
			n := int64(len(idx))
			pos := binary.BigEndian.Uint32(idx[n-4:])
			overwrite(t, IndexPath(dir, 0), n-4, binary.BigEndian.AppendUint32(nil, pos+1))
		}},
		{"offset entry past the log", func(t *testing.T, dir string, idx, tidx []byte) {
			n := int64(len(idx))
			overwrite(t, IndexPath(dir, 0), n, binary.BigEndian.AppendUint32(nil, 1<<30))
			overwrite(t, IndexPath(dir, 0), n+4, binary.BigEndian.AppendUint32(nil, 1<<30))
		}},
		{"time entries decreasing", func(t *testing.T, dir string, idx, tidx []byte) {
			overwrite(t, TimeIndexPath(dir, 0), 12, make([]byte, 8))
		}},
		{"time entry past the offset entries", func(t *testing.T, dir string, idx, tidx []byte) {
			n := int64(len(tidx))
			overwrite(t, TimeIndexPath(dir, 0), n, binary.BigEndian.AppendUint64(nil, 1<<40))
			overwrite(t, TimeIndexPath(dir, 0), n+8, binary.BigEndian.AppendUint32(nil, 1<<20))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, cfg := t.TempDir(), testConfig(false)
			s := mustCreate(t, dir, 0, cfg)
			m := &model{}
			fill(t, s, m, specsN(80)...)
			idx, tidx := entries(s)
			if len(idx) < 32 || len(tidx) < 24 {
				t.Fatalf("too few entries to damage: %d, %d", len(idx), len(tidx))
			}
			mustClose(t, s)
			tc.damage(t, dir, idx, tidx)
			s = mustOpen(t, dir, 0, cfg)
			defer s.Close()
			if i2, t2 := entries(s); !bytes.Equal(i2, idx) || !bytes.Equal(t2, tidx) {
				t.Fatalf("indexes not rebuilt: %d/%d offset, %d/%d time entry bytes", len(i2), len(idx), len(t2), len(tidx))
			}
			check(t, s, m)
			checkTimestamps(t, s, m)
			fill(t, s, m, specsN(10)...)
			check(t, s, m)
		})
	}
}

func rm(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func cut(t *testing.T, p string, n int64) {
	t.Helper()
	if err := os.Truncate(p, n); err != nil {
		t.Fatal(err)
	}
}

func overwrite(t *testing.T, p string, at int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, p string, b []byte) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	overwrite(t, p, st.Size(), b)
}

func TestRecover(t *testing.T) {
	const k = 17 // the damaged batch in most cases
	flip := func(off int64) func(t *testing.T, dir string, m *model) {
		return func(t *testing.T, dir string, m *model) {
			f, err := os.OpenFile(LogPath(dir, 0), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, m.pos[k]+off); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x10
			if _, err := f.WriteAt(b, m.pos[k]+off); err != nil {
				t.Fatal(err)
			}
		}
	}
	setU32 := func(field int64, v uint32) func(t *testing.T, dir string, m *model) {
		return func(t *testing.T, dir string, m *model) {
			overwrite(t, LogPath(dir, 0), m.pos[k]+field, binary.BigEndian.AppendUint32(nil, v))
		}
	}
	for _, tc := range []struct {
		name     string
		damage   func(t *testing.T, dir string, m *model)
		minEpoch int32
		keep     int                  // batches kept, of 30
		reason   func(err error) bool // nil: a clean scan
		dirty    bool                 // Open notices (damage after the last index entry)
	}{
		{"clean", func(*testing.T, string, *model) {}, 0, 30, nil, false},
		{"flipped payload bit", flip(record.HeaderSize + 20), 0, k, crc, false},
		{"flipped attribute bit", flip(22), 0, k, crc, false},
		{"flipped last payload bit", flip(-1), 0, k - 1, crc, false},
		{"flipped magic", flip(16), 0, k, failed(record.CheckMagic), false},
		{"batch length too small", setU32(8, 5), 0, k, failed(record.CheckLength), false},
		{"batch length past the file", setU32(8, 1<<30), 0, k, failed(record.CheckShort), false},
		{"offset gap", func(t *testing.T, dir string, m *model) {
			overwrite(t, LogPath(dir, 0), m.pos[k], binary.BigEndian.AppendUint64(nil, uint64(m.batches[k].BaseOffset()+1)))
		}, 0, k, is(ErrNotContiguous), false},
		{"offset repeated", func(t *testing.T, dir string, m *model) {
			overwrite(t, LogPath(dir, 0), m.pos[k], binary.BigEndian.AppendUint64(nil, uint64(m.batches[k-1].BaseOffset())))
		}, 0, k, is(ErrNotContiguous), false},
		{"decreasing epoch", setU32(12, 0), 0, k, is(ErrEpochDecreased), false},
		{"epoch below the previous segment's", func(*testing.T, string, *model) {}, 2, 0, is(ErrEpochDecreased), false},
		{"first batch damaged", func(t *testing.T, dir string, m *model) {
			overwrite(t, LogPath(dir, 0), 100, []byte{0xff})
		}, 0, 0, crc, false},
		{"truncated tail", func(t *testing.T, dir string, m *model) {
			cut(t, LogPath(dir, 0), m.pos[29]+100)
		}, 0, 29, failed(record.CheckShort), true},
		{"truncated header", func(t *testing.T, dir string, m *model) {
			cut(t, LogPath(dir, 0), m.pos[29]+30)
		}, 0, 29, failed(record.CheckShort), true},
		{"garbage appended", func(t *testing.T, dir string, m *model) {
			appendFile(t, LogPath(dir, 0), bytes.Repeat([]byte("garbage!"), 100))
		}, 0, 30, func(err error) bool { return errors.Is(err, record.ErrCorrupt) }, true},
		{"zero-filled tail", func(t *testing.T, dir string, m *model) {
			appendFile(t, LogPath(dir, 0), make([]byte, 8192))
		}, 0, 30, failed(record.CheckLength), true},
		{"short zero-filled tail", func(t *testing.T, dir string, m *model) {
			appendFile(t, LogPath(dir, 0), make([]byte, 20))
		}, 0, 30, failed(record.CheckShort), true},
		{"valid batch after garbage", func(t *testing.T, dir string, m *model) {
			appendFile(t, LogPath(dir, 0), make([]byte, 100))
			appendFile(t, LogPath(dir, 0), makeBatch(m.next(), spec{count: 1, epoch: 9, payload: 10}))
		}, 0, 30, failed(record.CheckLength), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, cfg := t.TempDir(), testConfig(false)
			s := mustCreate(t, dir, 0, cfg)
			m := &model{}
			fill(t, s, m, specsN(30)...)
			mustClose(t, s)
			tc.damage(t, dir, m)
			fileLen := fileSize(t, LogPath(dir, 0))

			s = mustOpen(t, dir, 0, cfg)
			defer s.Close()
			// Open only scans the tail after the last index entry.
			if got := s.tailErr != nil; got != tc.dirty {
				t.Fatalf("Open's tail scan: %v, want an error: %v", s.tailErr, tc.dirty)
			}
			if err := s.Append(makeBatch(s.NextOffset(), spec{count: 1})); tc.dirty && !errors.Is(err, ErrNeedsRecovery) {
				t.Fatalf("Append after Open of a torn log: %v", err)
			} else if err == nil {
				// Undo the probe: Recover must see the damaged log.
				if err := s.TruncateTo(s.NextOffset() - 1); err != nil {
					t.Fatal(err)
				}
			}
			res, err := s.Recover(tc.minEpoch)
			if err != nil {
				t.Fatal(err)
			}
			m.batches, m.pos = m.batches[:tc.keep], m.pos[:tc.keep]
			lastEpoch := int32(-1)
			if tc.keep > 0 {
				lastEpoch = m.batches[tc.keep-1].LeaderEpoch()
			}
			want := RecoverResult{NextOffset: m.next(), LastEpoch: lastEpoch, ValidBytes: m.size(), TruncatedBytes: fileLen - m.size()}
			if res.NextOffset != want.NextOffset || res.LastEpoch != want.LastEpoch || res.ValidBytes != want.ValidBytes || res.TruncatedBytes != want.TruncatedBytes {
				t.Fatalf("Recover = %+v, want %+v", res, want)
			}
			if tc.reason == nil && res.Reason != nil || tc.reason != nil && !tc.reason(res.Reason) {
				t.Fatalf("Reason = %v", res.Reason)
			}
			if got := fileSize(t, LogPath(dir, 0)); got != m.size() {
				t.Fatalf("log file %d bytes after Recover, want %d", got, m.size())
			}
			check(t, s, m)
			checkTimestamps(t, s, m)
			fresh := mustCreate(t, t.TempDir(), 0, cfg)
			defer fresh.Close()
			for _, b := range m.batches {
				if err := fresh.Append(b); err != nil {
					t.Fatal(err)
				}
			}
			i1, t1 := entries(s)
			if i2, t2 := entries(fresh); !bytes.Equal(i1, i2) || !bytes.Equal(t1, t2) {
				t.Fatal("Recover's indexes differ from those appends write")
			}
			b := makeBatch(m.next(), spec{count: 2, epoch: 9, maxTS: 5000, payload: 50})
			if err := s.Append(b); err != nil {
				t.Fatal(err)
			}
			m.add(b)
			mustClose(t, s)
			s2 := mustOpen(t, dir, 0, cfg)
			defer s2.Close()
			check(t, s2, m)
			if err := s2.Append(makeBatch(m.next(), spec{count: 1, epoch: 9})); err != nil {
				t.Fatalf("Append after reopen: %v", err)
			}
		})
	}
}

func crc(err error) bool { return isCorrupt(err, record.CheckCRC) }

func failed(c record.Check) func(error) bool {
	return func(err error) bool { return isCorrupt(err, c) }
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// TestRecoverMmapCrash copies the files of a segment appending through the
// mapping while it is still open, as a crash would leave them: the log file
// preallocated, its tail zero. Open notices, Recover cuts the zeros.
func TestRecoverMmapCrash(t *testing.T) {
	dir, cfg := t.TempDir(), testConfig(true)
	s := mustCreate(t, dir, 0, cfg)
	m := &model{}
	fill(t, s, m, specsN(30)...)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	for _, p := range []string{LogPath(dir, 0), IndexPath(dir, 0), TimeIndexPath(dir, 0)} {
		copyFile(t, p, filepath.Join(crashed, filepath.Base(p)))
	}
	mustClose(t, s)
	if got := fileSize(t, LogPath(crashed, 0)); got != cfg.MaxLogBytes {
		t.Fatalf("crashed log file is %d bytes, want the preallocated %d", got, cfg.MaxLogBytes)
	}
	s = mustOpen(t, crashed, 0, cfg)
	defer s.Close()
	if err := s.Append(makeBatch(m.next(), spec{count: 1})); !errors.Is(err, ErrNeedsRecovery) {
		t.Fatalf("Append on a zero-tailed log: %v", err)
	}
	res, err := s.Recover(0)
	if err != nil {
		t.Fatal(err)
	}
	if res.ValidBytes != m.size() || res.TruncatedBytes != cfg.MaxLogBytes-m.size() || !isCorrupt(res.Reason, record.CheckLength) {
		t.Fatalf("Recover = %+v", res)
	}
	check(t, s, m)
	fill(t, s, m, specsN(5)...)
	check(t, s, m)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
}

// TestTruncateTornTail: a TruncateTo below the end Open found cuts the torn
// tail with the rest, so the segment takes appends again without Recover.
func TestTruncateTornTail(t *testing.T) {
	dir, cfg := t.TempDir(), testConfig(false)
	s := mustCreate(t, dir, 0, cfg)
	m := &model{}
	fill(t, s, m, specsN(20)...)
	mustClose(t, s)
	appendFile(t, LogPath(dir, 0), []byte("torn"))
	s = mustOpen(t, dir, 0, cfg)
	defer s.Close()
	check(t, s, m)
	if err := s.Append(makeBatch(m.next(), spec{count: 1})); !errors.Is(err, ErrNeedsRecovery) {
		t.Fatalf("Append on a torn tail: %v", err)
	}
	if err := s.TruncateTo(m.next()); err != nil { // at the end: nothing to cut
		t.Fatal(err)
	}
	if err := s.Append(makeBatch(m.next(), spec{count: 1})); !errors.Is(err, ErrNeedsRecovery) {
		t.Fatalf("Append on a torn tail after a no-op TruncateTo: %v", err)
	}
	cut := m.batches[15].BaseOffset()
	if err := s.TruncateTo(cut); err != nil {
		t.Fatal(err)
	}
	m.truncate(cut)
	if got := fileSize(t, LogPath(dir, 0)); got != m.size() {
		t.Fatalf("log file %d bytes, want %d", got, m.size())
	}
	fill(t, s, m, specsN(5)...)
	check(t, s, m)
}
