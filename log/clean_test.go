package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// cleanCfg is a compacted log with small segments. Only synced segments
// are cleanable: clean syncs first.
func cleanCfg(clock *fakeClock) Config {
	return Config{
		SegmentBytes:  2048,
		MaxBatchBytes: 2048,
		CleanupPolicy: CleanupCompact,
		Now:           clock.Now,
	}
}

// kv is one record to append; a nil value is a tombstone, a nil key a
// record without a key.
type kv struct {
	key, value []byte
}

// cleanModel is what a compacted log must keep: every appended record
// with its offset, in order.
type cleanModel struct {
	recs []modelRec
}

type modelRec struct {
	offset     int64
	key, value []byte
}

// appendKVs appends one batch of recs (codec, optional producer) at
// timestamp ts and records it in m.
func (m *cleanModel) appendKVs(t testing.TB, l *Log, codec record.Codec, pid int64, seq int32, ts int64, recs ...kv) int64 {
	t.Helper()
	bld := record.NewBuilder(codec)
	if pid >= 0 {
		bld.SetProducer(pid, 0, seq)
	}
	for _, r := range recs {
		bld.Append(ts, r.key, r.value, nil)
	}
	b, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	base, err := l.Append(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		m.recs = append(m.recs, modelRec{offset: base + int64(i), key: r.key, value: r.value})
	}
	return base
}

// readRecords reads every record of the log (readAll checks the batches
// chain offset by offset and their CRCs).
func readRecords(t testing.TB, l *Log) ([]modelRec, []stored) {
	t.Helper()
	batches := readAll(t, l)
	var out []modelRec
	var r record.Reader
	for _, s := range batches {
		if err := record.Validate(s.bytes, record.Limits{}); err != nil {
			t.Fatalf("batch at %d: %v", s.base, err)
		}
		if err := r.Reset(s.bytes); err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			rec := r.Record()
			out = append(out, modelRec{offset: rec.Offset, key: bytes.Clone(rec.Key), value: bytes.Clone(rec.Value)})
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out, batches
}

// checkCompacted checks the log against the model: below end (the
// cleanable end of the last clean), each key keeps only its latest record
// among those below end (tombstones as removed says), records without a
// key are gone; from end on nothing changed. Offsets are the original
// ones.
func (m *cleanModel) checkCompacted(t testing.TB, l *Log, end int64, tombstonesRemoved bool) {
	t.Helper()
	latest := map[string]int64{}
	for _, r := range m.recs {
		if r.offset < end && r.key != nil {
			latest[string(r.key)] = r.offset
		}
	}
	var want []modelRec
	for _, r := range m.recs {
		switch {
		case r.offset >= end:
		case r.key == nil, latest[string(r.key)] != r.offset:
			continue
		case r.value == nil && tombstonesRemoved:
			continue
		}
		want = append(want, r)
	}
	got, _ := readRecords(t, l)
	if len(got) != len(want) {
		t.Fatalf("%d records after cleaning, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.offset != w.offset || !bytes.Equal(g.key, w.key) || !bytes.Equal(g.value, w.value) || (g.value == nil) != (w.value == nil) {
			t.Fatalf("record %d: offset %d %q=%q, want offset %d %q=%q", i, g.offset, g.key, g.value, w.offset, w.key, w.value)
		}
	}
}

func key(i int) []byte    { return []byte(fmt.Sprintf("key-%03d", i)) }
func val(i, j int) []byte { return []byte(fmt.Sprintf("value-%03d-%05d", i, j)) }
func clean(t testing.TB, l *Log, opts CleanOptions) CleanResult {
	t.Helper()
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	res, err := l.Clean(context.Background(), opts)
	if err != nil {
		t.Fatalf("Clean: %v", err)
	}
	return res
}

// status syncs the log (only synced segments are cleanable) and returns
// its cleaner status.
func status(t testing.TB, l *Log) CleanerStatus {
	t.Helper()
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	return l.CleanerStatus()
}

func TestCleanLatestPerKey(t *testing.T) {
	for _, codec := range []record.Codec{record.None, record.Gzip, record.Snappy, record.LZ4, record.Zstd} {
		t.Run(codec.String(), func(t *testing.T) {
			clock := &fakeClock{now: time.UnixMilli(1_000_000)}
			l := openLog(t, t.TempDir(), cleanCfg(clock))
			rnd := rand.New(rand.NewPCG(1, uint64(codec)))
			var m cleanModel
			for j := range 300 {
				n := 1 + rnd.IntN(4)
				recs := make([]kv, n)
				for i := range recs {
					k := rnd.IntN(12)
					recs[i] = kv{key(k), val(k, j)}
					if rnd.IntN(25) == 0 {
						recs[i].key = nil
					}
				}
				m.appendKVs(t, l, codec, -1, 0, clock.now.UnixMilli(), recs...)
			}
			before := readAll(t, l)
			st := status(t, l)
			if !st.Due || st.DirtyRatio != 1 || st.CleanBytes != 0 {
				t.Fatalf("status before cleaning: %+v", st)
			}
			res := clean(t, l, CleanOptions{})
			if res.Segments == 0 || res.BytesAfter >= res.BytesBefore || res.Removed == 0 {
				t.Fatalf("clean did nothing: %+v", res)
			}
			end := status(t, l).CleanableEnd
			if res.FirstDirty != end {
				t.Fatalf("first dirty %d after the clean, want the cleanable end %d", res.FirstDirty, end)
			}
			m.checkCompacted(t, l, end, false)
			after := readAll(t, l)
			if after[0].base != before[0].base || after[len(after)-1].next() != before[len(before)-1].next() {
				t.Fatal("the log's offsets moved")
			}
			if st := status(t, l); st.Due || st.DirtyBytes != 0 {
				t.Fatalf("status after cleaning: %+v", st)
			}
			// Cleaning again changes nothing.
			if res := clean(t, l, CleanOptions{}); res.Segments != 0 {
				t.Fatalf("second clean rewrote %d segments", res.Segments)
			}
			sameBatches(t, readAll(t, l), after)
			// And the cleaned log reopens as it was.
			dir := l.Dir()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := openLog(t, dir, cleanCfg(clock))
			sameBatches(t, readAll(t, l2), after)
			if got := status(t, l2).FirstDirty; got != end {
				t.Fatalf("first dirty %d after reopening, want %d", got, end)
			}
		})
	}
}

// fillSegments appends filler batches of a key of their own until the
// log has rolled n more times, so what came before is cleanable.
func (m *cleanModel) fillSegments(t testing.TB, l *Log, n int, ts int64) {
	t.Helper()
	for target := len(l.segs) + n; len(l.segs) < target; {
		m.appendKVs(t, l, record.None, -1, 0, ts, kv{[]byte("filler"), bytes.Repeat([]byte("f"), 200)})
	}
}

func TestCleanTombstones(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	cfg := cleanCfg(clock)
	cfg.DeleteRetention = time.Hour
	l := openLog(t, t.TempDir(), cfg)
	var m cleanModel
	ts := clock.now.UnixMilli()
	m.appendKVs(t, l, record.None, -1, 0, ts, kv{key(1), val(1, 1)}, kv{key(2), val(2, 1)})
	m.appendKVs(t, l, record.None, -1, 0, ts, kv{key(1), nil})
	m.fillSegments(t, l, 2, ts)

	clean(t, l, CleanOptions{})
	end := status(t, l).CleanableEnd
	// The first clean keeps the tombstone (its segment was just cleaned)
	// and removes the value it deletes.
	m.checkCompacted(t, l, end, false)
	if !hasRecord(t, l, key(1), nil) {
		t.Fatal("tombstone removed by the first clean")
	}
	clock.now = clock.now.Add(time.Hour - time.Millisecond)
	if status(t, l).Due {
		t.Fatal("due before delete retention passed")
	}
	clean(t, l, CleanOptions{})
	if !hasRecord(t, l, key(1), nil) {
		t.Fatal("tombstone removed before delete retention passed")
	}
	clock.now = clock.now.Add(time.Millisecond)
	if !status(t, l).Due {
		t.Fatal("not due once a tombstone is past delete retention")
	}
	clean(t, l, CleanOptions{})
	m.checkCompacted(t, l, end, true)
	if hasRecord(t, l, key(1), nil) {
		t.Fatal("tombstone kept after delete retention")
	}
	if !hasRecord(t, l, key(2), val(2, 1)) {
		t.Fatal("key 2 lost")
	}
}

// hasRecord reports whether the log holds key=value (nil: a tombstone).
func hasRecord(t testing.TB, l *Log, k, v []byte) bool {
	got, _ := readRecords(t, l)
	for _, r := range got {
		if bytes.Equal(r.key, k) && bytes.Equal(r.value, v) && (r.value == nil) == (v == nil) {
			return true
		}
	}
	return false
}

func TestCleanMinCompactionLag(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(10_000_000)}
	cfg := cleanCfg(clock)
	cfg.MinCompactionLag = time.Minute
	l := openLog(t, t.TempDir(), cfg)
	var m cleanModel
	ts := clock.now.UnixMilli()
	for j := range 5 {
		m.appendKVs(t, l, record.None, -1, 0, ts, kv{key(1), val(1, j)})
	}
	m.fillSegments(t, l, 2, ts)
	before := readAll(t, l)
	if st := status(t, l); st.Due || st.DirtyBytes != 0 {
		t.Fatalf("records younger than the lag are cleanable: %+v", st)
	}
	if res := clean(t, l, CleanOptions{}); res.Segments != 0 {
		t.Fatalf("clean rewrote %d segments of records younger than the lag", res.Segments)
	}
	sameBatches(t, readAll(t, l), before)
	clock.now = clock.now.Add(time.Minute + time.Millisecond)
	if !status(t, l).Due {
		t.Fatal("not due once the lag passed")
	}
	clean(t, l, CleanOptions{})
	m.checkCompacted(t, l, status(t, l).CleanableEnd, false)
}

func TestCleanMaxCompactionLag(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(10_000_000)}
	cfg := cleanCfg(clock)
	cfg.MaxCompactionLag = time.Hour
	cfg.MinCleanableDirtyRatio = 1
	l := openLog(t, t.TempDir(), cfg)
	var m cleanModel
	ts := clock.now.UnixMilli()
	m.appendKVs(t, l, record.None, -1, 0, ts, kv{key(1), val(1, 0)})
	m.fillSegments(t, l, 1, ts)
	clean(t, l, CleanOptions{})
	// Dirty again, below the ratio: due only once the oldest dirty record
	// is older than the lag.
	m.appendKVs(t, l, record.None, -1, 0, ts, kv{key(1), val(1, 1)})
	m.fillSegments(t, l, 1, ts)
	if st := status(t, l); st.Due || st.DirtyRatio >= 1 {
		t.Fatalf("due before the max lag: %+v", st)
	}
	clock.now = clock.now.Add(time.Hour + time.Second)
	if !status(t, l).Due {
		t.Fatalf("not due past the max lag: %+v", status(t, l))
	}
	// The active segment rolls once its records pass the lag.
	active := l.EndOffset()
	m.appendKVs(t, l, record.None, -1, 0, ts, kv{key(2), val(2, 0)})
	clock.now = clock.now.Add(time.Hour + time.Second)
	m.appendKVs(t, l, record.None, -1, 0, ts, kv{key(2), val(2, 1)})
	if got := l.segs[len(l.segs)-1].Base(); got <= active {
		t.Fatalf("active segment at %d did not roll past the max lag", got)
	}
}

func TestCleanProducerLastBatch(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	l := openLog(t, t.TempDir(), cleanCfg(clock))
	var m cleanModel
	ts := clock.now.UnixMilli()
	m.appendKVs(t, l, record.Gzip, 7, 0, ts, kv{key(1), val(1, 0)}, kv{key(2), val(2, 0)})
	last := m.appendKVs(t, l, record.Gzip, 7, 2, ts, kv{key(1), val(1, 1)}, kv{key(2), val(2, 1)})
	// A plain producer supersedes every record of producer 7.
	m.appendKVs(t, l, record.None, -1, 0, ts, kv{key(1), val(1, 2)}, kv{key(2), val(2, 2)})
	m.fillSegments(t, l, 2, ts)
	clean(t, l, CleanOptions{})
	m.checkCompacted(t, l, status(t, l).CleanableEnd, false)
	_, batches := readRecords(t, l)
	var found bool
	for _, s := range batches {
		b := record.Batch(s.bytes)
		if b.ProducerID() != 7 {
			continue
		}
		if b.BaseOffset() != last {
			t.Fatalf("producer 7 keeps a batch at %d, only its last (at %d) should stay", b.BaseOffset(), last)
		}
		if b.RecordCount() != 0 || b.BaseSequence() != 2 || b.LastOffsetDelta() != 1 || b.ProducerEpoch() != 0 || b.Attributes().Codec() != record.None {
			t.Fatalf("producer 7's last batch: count %d seq %d delta %d epoch %d codec %v", b.RecordCount(), b.BaseSequence(), b.LastOffsetDelta(), b.ProducerEpoch(), b.Attributes().Codec())
		}
		found = true
	}
	if !found {
		t.Fatal("producer 7's last batch removed")
	}
}

func TestCleanKeyMapPasses(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	l := openLog(t, t.TempDir(), cleanCfg(clock))
	var m cleanModel
	ts := clock.now.UnixMilli()
	for j := range 3 {
		for k := range 100 {
			m.appendKVs(t, l, record.None, -1, 0, ts, kv{key(k), val(k, j)})
		}
	}
	m.fillSegments(t, l, 1, ts)
	// The smallest map holds 48 keys: 100 keys need several passes.
	res := clean(t, l, CleanOptions{KeyMapBytes: 1})
	if res.Passes < 3 {
		t.Fatalf("%d passes with a 48-key map over 100 keys", res.Passes)
	}
	m.checkCompacted(t, l, status(t, l).CleanableEnd, false)
}

func TestCleanKeyMapTooSmall(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	l := openLog(t, t.TempDir(), cleanCfg(clock))
	var m cleanModel
	recs := make([]kv, 60)
	for i := range recs {
		recs[i] = kv{key(i), []byte("v")}
	}
	m.appendKVs(t, l, record.None, -1, 0, 0, recs...)
	m.fillSegments(t, l, 1, 0)
	status(t, l) // sync
	if _, err := l.Clean(context.Background(), CleanOptions{KeyMapBytes: 1}); !errors.Is(err, ErrKeyMapTooSmall) {
		t.Fatalf("Clean with a map smaller than a batch: %v, want ErrKeyMapTooSmall", err)
	}
}

func TestCleanNotCompacted(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	if _, err := l.Clean(context.Background(), CleanOptions{}); !errors.Is(err, ErrNotCompacted) {
		t.Fatalf("Clean of a delete-policy log: %v", err)
	}
	if status(t, l).Compact {
		t.Fatal("status says compact")
	}
}

// TestCleanReadersAcrossSwap: a View taken before a clean keeps the old
// bytes (R8); a read after it gets the new ones.
func TestCleanReadersAcrossSwap(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	l := openLog(t, t.TempDir(), cleanCfg(clock))
	var m cleanModel
	for j := range 60 {
		m.appendKVs(t, l, record.None, -1, 0, 0, kv{key(j % 3), val(j%3, j)})
	}
	m.fillSegments(t, l, 1, 0)
	v, err := l.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	old := bytes.Clone(v.Bytes())
	clean(t, l, CleanOptions{})
	if !bytes.Equal(v.Bytes(), old) {
		t.Fatal("a View taken before the clean changed")
	}
	v.Release()
	v2, err := l.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(v2.Bytes(), old) {
		t.Fatal("a read after the clean returned the old bytes")
	}
	v2.Release()
	end := status(t, l).CleanableEnd
	m.checkCompacted(t, l, end, false)
	// The old segments went without touching the files swapped in.
	dir := l.Dir()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	m.checkCompacted(t, openLog(t, dir, cleanCfg(clock)), end, false)
}

// TestCleanSwapCrash fails the clean at each step of the swap and checks
// that reopening gives the old log (before the commit point) or the
// cleaned one (after it), whole.
func TestCleanSwapCrash(t *testing.T) {
	cases := []struct {
		name    string
		fault   func(dir string) errorfs.Fault
		cleaned bool // the reopened log is the cleaned one
	}{
		{"write of a cleaned file", func(dir string) errorfs.Fault {
			return errorfs.Fault{Ops: errorfs.OpWrite, Path: filepath.Join(dir, cleanedDir), Err: syscall.ENOSPC}
		}, false},
		{"commit rename", func(dir string) errorfs.Fault {
			return errorfs.Fault{Ops: errorfs.OpRename, Path: filepath.Join(dir, cleanedDir), Err: syscall.EIO}
		}, false},
		{"rename of a swapped file", func(dir string) errorfs.Fault {
			return errorfs.Fault{Ops: errorfs.OpRename, Path: filepath.Join(dir, swapDir, "*.index"), Err: syscall.EIO}
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: time.UnixMilli(1_000_000)}
			dir := t.TempDir()
			fs := errorfs.New(vfs.Default)
			cfg := cleanCfg(clock)
			cfg.FS = fs
			l, err := Open(dir, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var m cleanModel
			for j := range 80 {
				m.appendKVs(t, l, record.Snappy, -1, 0, 0, kv{key(j % 5), val(j%5, j)}, kv{key(j%7 + 10), val(j%7+10, j)})
			}
			m.fillSegments(t, l, 1, 0)
			before := readAll(t, l)
			end := status(t, l).CleanableEnd
			a := fs.Arm(tc.fault(dir))
			if _, err := l.Clean(context.Background(), CleanOptions{}); err == nil {
				t.Fatal("Clean succeeded through the fault")
			}
			a.Disarm()
			if a.Hits() == 0 {
				t.Fatal("the fault never fired")
			}
			l.crash()
			l2 := openLog(t, dir, cfg)
			if tc.cleaned {
				m.checkCompacted(t, l2, end, false)
			} else {
				sameBatches(t, readAll(t, l2), before)
			}
			for _, d := range []string{cleanedDir, swapDir} {
				if _, err := os.Stat(filepath.Join(dir, d)); err == nil {
					t.Fatalf("%s left after reopening", d)
				}
			}
			// And a clean now finishes the job.
			clean(t, l2, CleanOptions{})
			m.checkCompacted(t, l2, end, false)
		})
	}
}

// TestCleanTruncateDuringClean: a truncation between the passes' start
// and the swap makes the clean give up without changing the log.
func TestCleanAbandonedByTruncation(t *testing.T) {
	l, fs, m := faultyCleanLog(t, 80, 5, 2)
	dir := l.Dir()
	cut := l.segs[len(l.segs)-2].Base() + 1
	var once bool
	fs.Arm(errorfs.Fault{Ops: errorfs.OpCreate, Path: filepath.Join(dir, cleanedDir), Hook: func() {
		if !once {
			once = true
			if err := l.TruncateTo(cut); err != nil {
				t.Error(err)
			}
		}
	}})
	res := clean(t, l, CleanOptions{})
	if res.Segments != 0 {
		t.Fatalf("a clean raced by a truncation swapped %d segments", res.Segments)
	}
	if got := status(t, l).FirstDirty; got > cut {
		t.Fatalf("first dirty %d above the truncation at %d", got, cut)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanedDir)); err == nil {
		t.Fatal(".cleaned left behind")
	}
	clean(t, l, CleanOptions{})
	m.recs = slicesFilter(m.recs, func(r modelRec) bool { return r.offset < cut })
	m.checkCompacted(t, l, status(t, l).CleanableEnd, false)
}

func slicesFilter[T any](s []T, keep func(T) bool) []T {
	var out []T
	for _, v := range s {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

func TestCleanerStateRoundTrip(t *testing.T) {
	st := cleanerState{firstDirty: 42, segs: []cleanedSeg{{base: 0, firstCleanedMs: 5, tombstones: 2}, {base: 10, firstCleanedMs: 7}}}
	got, err := decodeCleanerState(st.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.firstDirty != 42 || len(got.segs) != 2 || got.segs[0] != st.segs[0] || got.segs[1] != st.segs[1] {
		t.Fatalf("round trip: %+v", got)
	}
	bad := [][]byte{
		nil,
		st.encode()[:11],
		st.encode()[:len(st.encode())-1],
		(&cleanerState{firstDirty: -1}).encode(),
		(&cleanerState{segs: []cleanedSeg{{base: 5}, {base: 5}}}).encode(),
	}
	for i, b := range bad {
		if _, err := decodeCleanerState(b); !errors.Is(err, errCleanerState) {
			t.Fatalf("bad payload %d: %v", i, err)
		}
	}
}

func FuzzCleanerState(f *testing.F) {
	f.Add((&cleanerState{firstDirty: 42, segs: []cleanedSeg{{base: 0, firstCleanedMs: 5, tombstones: 2}}}).encode())
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeCleanerState(b)
		if err != nil {
			return
		}
		if !bytes.Equal(st.encode(), b) {
			t.Fatal("decode then encode changed the payload")
		}
	})
}

// TestCleanExpiredProducer: the last batch of a producer the owner says
// is no longer active goes like any other.
func TestCleanExpiredProducer(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	l := openLog(t, t.TempDir(), cleanCfg(clock))
	var m cleanModel
	m.appendKVs(t, l, record.None, 7, 0, 0, kv{key(1), val(1, 0)})
	m.appendKVs(t, l, record.None, 8, 0, 0, kv{key(1), val(1, 1)})
	m.appendKVs(t, l, record.None, -1, 0, 0, kv{key(1), val(1, 2)})
	m.fillSegments(t, l, 1, 0)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Clean(context.Background(), CleanOptions{ActiveProducer: func(id int64) bool { return id == 8 }}); err != nil {
		t.Fatal(err)
	}
	_, batches := readRecords(t, l)
	var ids []int64
	for _, s := range batches {
		if id := record.Batch(s.bytes).ProducerID(); id >= 0 {
			ids = append(ids, id)
		}
	}
	if fmt.Sprint(ids) != "[8]" {
		t.Fatalf("producers with a batch left: %v, want [8] (7 expired)", ids)
	}
}

// TestCleanMergesSegments: segments that cleaning shrank are merged by
// the next clean, so a compacted log does not keep one small segment per
// segment ever rolled; the merged log reads the same and reopens.
func TestCleanMergesSegments(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	dir := t.TempDir()
	l := openLog(t, dir, cleanCfg(clock))
	var m cleanModel
	for j := range 200 {
		m.appendKVs(t, l, record.None, -1, 0, 0, kv{key(j % 4), val(j%4, j)})
	}
	m.fillSegments(t, l, 1, 0)
	before := len(l.segs)
	clean(t, l, CleanOptions{})
	// The first clean shrinks every segment; the second merges them.
	m.appendKVs(t, l, record.None, -1, 0, 0, kv{key(1), val(1, 999)})
	m.fillSegments(t, l, 1, 0)
	res := clean(t, l, CleanOptions{})
	if len(l.segs) >= before || res.Segments < 2 {
		t.Fatalf("%d segments after two cleans, %d before; %d rewritten", len(l.segs), before, res.Segments)
	}
	end := status(t, l).CleanableEnd
	m.checkCompacted(t, l, end, false)
	batches := readAll(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, cleanCfg(clock))
	sameBatches(t, readAll(t, l2), batches)
	if bases, _ := listSegments(vfs.Default, dir); len(bases) != len(l2.segs) {
		t.Fatalf("%d segment files, %d segments open", len(bases), len(l2.segs))
	}
}

// TestCleanMergeSwapCrash: a swap that merged segments, interrupted after
// its commit point while deleting the merged members, is finished by Open.
func TestCleanMergeSwapCrash(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	dir := t.TempDir()
	fs := errorfs.New(vfs.Default)
	cfg := cleanCfg(clock)
	cfg.FS = fs
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var m cleanModel
	for j := range 200 {
		m.appendKVs(t, l, record.None, -1, 0, 0, kv{key(j % 4), val(j%4, j)})
	}
	m.fillSegments(t, l, 1, 0)
	clean(t, l, CleanOptions{})
	m.appendKVs(t, l, record.None, -1, 0, 0, kv{key(1), val(1, 999)})
	m.fillSegments(t, l, 1, 0)
	end := status(t, l).CleanableEnd
	a := fs.Arm(errorfs.Fault{Ops: errorfs.OpRemove, Path: filepath.Join(dir, "*.timeindex"), Err: syscall.EIO})
	if _, err := l.Clean(context.Background(), CleanOptions{}); err == nil {
		t.Fatal("Clean succeeded through the fault")
	}
	a.Disarm()
	if a.Hits() == 0 {
		t.Fatal("the fault never fired: nothing was merged")
	}
	if !errors.Is(l.Err(), ErrOffline) {
		t.Fatalf("log not offline after a failed swap: %v", l.Err())
	}
	l.crash()
	l2 := openLog(t, dir, cfg)
	m.checkCompacted(t, l2, end, false)
	if _, err := os.Stat(filepath.Join(dir, swapDir)); err == nil {
		t.Fatal(".swap left after reopening")
	}
}

// TestCleanOfflineLog: a log taken offline by a storage error is not
// cleaned (R5: nothing more changes on disk until it is reopened).
func TestCleanOfflineLog(t *testing.T) {
	l, fs, m := faultyCleanLog(t, 60, 3, 1)
	dir := l.Dir()
	status(t, l)
	a := fs.Arm(errorfs.Fault{Ops: errorfs.OpSync, Path: dir, Err: syscall.EIO})
	m.appendKVs(t, l, record.None, -1, 0, 0, kv{key(1), val(1, 1)})
	if err := l.Sync(); err == nil {
		t.Fatal("sync succeeded through the fault")
	}
	a.Disarm()
	before := readAll(t, l)
	if _, err := l.Clean(context.Background(), CleanOptions{}); !errors.Is(err, ErrOffline) {
		t.Fatalf("Clean of an offline log: %v, want ErrOffline", err)
	}
	sameBatches(t, readAll(t, l), before)
}

// faultyCleanLog opens a compacted log on an errorfs, appends n one-record
// batches over keys keys and rolls past them rolls times.
func faultyCleanLog(t *testing.T, n, keys, rolls int) (*Log, *errorfs.FS, *cleanModel) {
	t.Helper()
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	fs := errorfs.New(vfs.Default)
	cfg := cleanCfg(clock)
	cfg.FS = fs
	l := openLog(t, t.TempDir(), cfg)
	m := &cleanModel{}
	for j := range n {
		m.appendKVs(t, l, record.None, -1, 0, 0, kv{key(j % keys), val(j%keys, j)})
	}
	m.fillSegments(t, l, rolls, 0)
	return l, fs, m
}
