package log

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// smallConfig rolls every few batches so tests cross segments.
func smallConfig() Config {
	return Config{SegmentBytes: 16 << 10, MaxBatchBytes: 8 << 10, IndexIntervalBytes: 1024, MaxIndexBytes: 4096,
		SegmentAge: -1, RetentionAge: -1}
}

func segmentFiles(t *testing.T, dir string) []int64 {
	t.Helper()
	bases, err := listSegments(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	return bases
}

func TestAppendReadRoll(t *testing.T) {
	for _, fsync := range []FsyncPolicy{FsyncInterval, FsyncAlways} {
		t.Run(fsync.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig()
			cfg.Fsync = fsync
			l := openLog(t, dir, cfg)
			if l.StartOffset() != 0 || l.EndOffset() != 0 {
				t.Fatalf("empty log: start %d end %d", l.StartOffset(), l.EndOffset())
			}
			rnd := rand.New(rand.NewPCG(1, 2))
			want := appendN(t, l, rnd, 60, 4000, 1000)
			if got := l.EndOffset(); got != want[len(want)-1].next() {
				t.Fatalf("EndOffset %d, want %d", got, want[len(want)-1].next())
			}
			sameBatches(t, readAll(t, l), want)
			if n := len(segmentFiles(t, dir)); n < 5 {
				t.Fatalf("%d segments after 60 batches of up to 4 KB in 16 KB segments", n)
			}
			if fsync == FsyncAlways && l.SyncedOffset() != l.EndOffset() {
				t.Fatalf("FsyncAlways: synced %d, end %d", l.SyncedOffset(), l.EndOffset())
			}
			// Every batch is found from every offset inside it.
			for _, s := range want {
				for off := s.base; off < s.next(); off++ {
					v, err := l.Read(off, 1)
					if err != nil {
						t.Fatalf("read at %d: %v", off, err)
					}
					if b := record.Batch(v.Bytes()); v.Len() != len(s.bytes) || b.BaseOffset() != s.base {
						t.Fatalf("read at %d: %d bytes at base %d, want batch %d", off, v.Len(), b.BaseOffset(), s.base)
					}
					v.Release()
				}
			}
			end := l.EndOffset()
			v, err := l.Read(end, 100)
			if err != nil || v.Len() != 0 {
				t.Fatalf("read at the end: %d bytes, %v", v.Len(), err)
			}
			v.Release()
			for _, off := range []int64{-1, end + 1} {
				if _, err := l.Read(off, 100); !errors.Is(err, ErrOffsetOutOfRange) {
					t.Fatalf("read at %d: %v, want ErrOffsetOutOfRange", off, err)
				}
			}
			// ReadUpTo never passes maxOffset.
			hw := want[10].base
			off := int64(0)
			for off < hw {
				v, err := l.ReadUpTo(off, hw, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				bs := v.Bytes()
				for len(bs) > 0 {
					b, _ := record.ParseHeader(bs, 0)
					if b.BaseOffset() >= hw {
						t.Fatalf("ReadUpTo(%d) returned batch %d", hw, b.BaseOffset())
					}
					off = b.NextOffset()
					bs = bs[len(b):]
				}
				v.Release()
			}
		})
	}
}

func TestAppendRejects(t *testing.T) {
	l := openLog(t, t.TempDir(), smallConfig())
	good := func() record.Batch { return makeBatch(nil, 2, 300, 1, nil) }
	tests := []struct {
		name  string
		batch func() []byte
	}{
		{"short", func() []byte { return good()[:40] }},
		{"truncated", func() []byte { return good()[:299] }},
		{"trailing bytes", func() []byte { return append(good(), 0) }},
		{"over MaxBatchBytes", func() []byte { return makeBatch(nil, 1, 9<<10, 1, nil) }},
		{"bad magic", func() []byte { b := good(); b[16] = 1; return b }},
		{"negative lastOffsetDelta", func() []byte { return makeBatch(nil, 0, 300, 1, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if base, err := l.Append(tt.batch()); !errors.Is(err, record.ErrCorrupt) {
				t.Fatalf("Append = %d, %v; want ErrCorrupt", base, err)
			}
			if l.EndOffset() != 0 {
				t.Fatalf("end offset moved to %d", l.EndOffset())
			}
		})
	}
	if _, err := l.Append(good()); err != nil {
		t.Fatalf("good batch after rejects: %v", err)
	}
}

func TestLeaderEpoch(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, smallConfig())
	b := makeBatch(nil, 1, 200, 1, nil)
	l.SetLeaderEpoch(3)
	if _, err := l.Append(b); err != nil {
		t.Fatal(err)
	}
	if b.LeaderEpoch() != 3 {
		t.Fatalf("stamped epoch %d, want 3", b.LeaderEpoch())
	}
	l.SetLeaderEpoch(2)
	if _, err := l.Append(makeBatch(nil, 1, 200, 1, nil)); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("append with a lower epoch: %v, want ErrStaleEpoch", err)
	}
	l.SetLeaderEpoch(5)
	if _, err := l.Append(makeBatch(nil, 1, 200, 1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, smallConfig())
	if got := l2.LeaderEpoch(); got != 5 {
		t.Fatalf("reopened log stamps epoch %d, want the last batch's 5", got)
	}
}

func TestSegmentAgeRoll(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	cfg := Config{SegmentAge: time.Minute, Now: clock.Now}
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	ts := clock.now.UnixMilli()
	for range 3 {
		if _, err := l.Append(makeBatch(nil, 1, 200, ts, nil)); err != nil {
			t.Fatal(err)
		}
	}
	clock.now = clock.now.Add(time.Minute) // not past the age yet
	if _, err := l.Append(makeBatch(nil, 1, 200, ts, nil)); err != nil {
		t.Fatal(err)
	}
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments before the age passed", n)
	}
	clock.now = clock.now.Add(time.Millisecond)
	if _, err := l.Append(makeBatch(nil, 1, 200, clock.now.UnixMilli(), nil)); err != nil {
		t.Fatal(err)
	}
	if got := segmentFiles(t, dir); len(got) != 2 || got[1] != 4 {
		t.Fatalf("segments %v, want a roll at offset 4", got)
	}
}

func TestRetentionBytes(t *testing.T) {
	cfg := smallConfig()
	cfg.RetentionBytes = 40 << 10
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	want := appendN(t, l, rand.New(rand.NewPCG(3, 4)), 100, 4000, 1)
	before := segmentFiles(t, dir)
	n, err := l.EnforceRetention()
	if err != nil {
		t.Fatal(err)
	}
	after := segmentFiles(t, dir)
	if n == 0 || len(after) != len(before)-n {
		t.Fatalf("deleted %d: %d segments before, %d after", n, len(before), len(after))
	}
	var total int64
	l.segMu.RLock()
	for _, s := range l.segs {
		total += s.Size()
	}
	first := l.segs[0]
	l.segMu.RUnlock()
	if total < cfg.RetentionBytes || total-first.Size() >= cfg.RetentionBytes {
		t.Fatalf("kept %d bytes (first segment %d) for a retention of %d", total, first.Size(), cfg.RetentionBytes)
	}
	if l.StartOffset() != after[0] {
		t.Fatalf("start offset %d, first segment %d", l.StartOffset(), after[0])
	}
	if _, err := l.Read(after[0]-1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the start: %v", err)
	}
	got := readAll(t, l)
	sameBatches(t, got, want[len(want)-len(got):])
	if n, err := l.EnforceRetention(); n != 0 || err != nil {
		t.Fatalf("second EnforceRetention = %d, %v", n, err)
	}
}

func TestRetentionAge(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(10_000_000)}
	cfg := smallConfig()
	cfg.RetentionAge = time.Hour
	cfg.Now = clock.Now
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	rnd := rand.New(rand.NewPCG(5, 6))
	old := clock.now.Add(-2 * time.Hour).UnixMilli()
	appendN(t, l, rnd, 20, 4000, old)
	oldEnd := l.EndOffset()
	// A roll, so the old batches sit in closed segments only.
	if err := l.roll(); err != nil {
		t.Fatal(err)
	}
	recent := appendN(t, l, rnd, 20, 4000, clock.now.UnixMilli())
	n, err := l.EnforceRetention()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || l.StartOffset() != oldEnd {
		t.Fatalf("deleted %d segments, start %d; want the old ones gone, start %d", n, l.StartOffset(), oldEnd)
	}
	sameBatches(t, readAll(t, l), recent)
	// Time passes: everything but the active segment goes.
	clock.now = clock.now.Add(3 * time.Hour)
	if _, err := l.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if got := segmentFiles(t, dir); len(got) != 1 {
		t.Fatalf("segments %v: want only the active one", got)
	}
}

func TestDeleteRecordsBefore(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	l := openLog(t, dir, cfg)
	want := appendN(t, l, rand.New(rand.NewPCG(7, 8)), 60, 4000, 1)
	k := 30
	for want[k].next()-want[k].base < 2 {
		k++
	}
	mid := want[k].base + 1 // inside a batch
	if err := l.DeleteRecordsBefore(mid); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != mid {
		t.Fatalf("start %d, want %d", l.StartOffset(), mid)
	}
	l.segMu.RLock()
	firstNext := l.segs[0].NextOffset()
	l.segMu.RUnlock()
	if firstNext <= mid {
		t.Fatalf("a segment wholly below the start offset survived (ends at %d)", firstNext)
	}
	if _, err := l.Read(mid-1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the start: %v", err)
	}
	v, err := l.Read(mid, 1)
	if err != nil {
		t.Fatalf("read at the start: %v", err)
	}
	gotBase := record.Batch(v.Bytes()).BaseOffset()
	v.Release()
	if gotBase != want[k].base {
		t.Fatalf("read at the start %d: batch %d, want %d", mid, gotBase, want[k].base)
	}
	if err := l.DeleteRecordsBefore(l.EndOffset() + 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("delete past the end: %v", err)
	}
	if err := l.DeleteRecordsBefore(mid - 5); err != nil || l.StartOffset() != mid {
		t.Fatalf("moving the start back: %v, start %d", err, l.StartOffset())
	}
	// The start offset survives a clean and an unclean reopen.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, cfg)
	if l2.StartOffset() != mid {
		t.Fatalf("after reopen: start %d, want %d", l2.StartOffset(), mid)
	}
	l2.crash()
	l3 := openLog(t, dir, cfg)
	if l3.StartOffset() != mid {
		t.Fatalf("after a crash: start %d, want %d", l3.StartOffset(), mid)
	}
	got := readAll(t, l3)
	sameBatches(t, got, want[k:]) // the batch holding the start offset is whole
}

func TestTruncateTo(t *testing.T) {
	rnd := rand.New(rand.NewPCG(9, 10))
	tests := []struct {
		name string
		// at picks the truncation offset from the appended batches.
		at func(w []stored) int64
		// keep is how many batches stay.
		keep func(w []stored, at int64) int
	}{
		{"inside the active segment", func(w []stored) int64 { return w[len(w)-2].base }, nil},
		{"mid-batch", func(w []stored) int64 { return w[40].base + 1 }, nil},
		{"at a segment boundary", nil, nil},
		{"inside the first segment", func(w []stored) int64 { return w[1].base }, nil},
		{"to zero", func(w []stored) int64 { return 0 }, nil},
		{"at the end", func(w []stored) int64 { return w[len(w)-1].next() }, nil},
		{"past the end", func(w []stored) int64 { return w[len(w)-1].next() + 10 }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig()
			cfg.Fsync = FsyncAlways
			l := openLog(t, dir, cfg)
			want := appendN(t, l, rnd, 60, 4000, 1)
			var at int64
			if tt.at != nil {
				at = tt.at(want)
			} else {
				at = segmentFiles(t, dir)[2]
			}
			// Batches wholly below at stay.
			keep := 0
			for keep < len(want) && want[keep].next() <= at {
				keep++
			}
			if err := l.TruncateTo(at); err != nil {
				t.Fatal(err)
			}
			wantEnd := int64(0)
			if keep > 0 {
				wantEnd = want[keep-1].next()
			}
			if at > wantEnd && keep == len(want) {
				wantEnd = want[len(want)-1].next()
			}
			if l.EndOffset() != wantEnd || l.SyncedOffset() > wantEnd {
				t.Fatalf("end %d synced %d, want end %d", l.EndOffset(), l.SyncedOffset(), wantEnd)
			}
			sameBatches(t, readAll(t, l), want[:keep])
			// Appends go on from the new end, and everything survives
			// both kinds of reopen.
			more := appendN(t, l, rnd, 10, 4000, 1)
			if more[0].base != wantEnd {
				t.Fatalf("next append at %d, want %d", more[0].base, wantEnd)
			}
			all := append(want[:keep:keep], more...)
			sameBatches(t, readAll(t, l), all)
			l.crash()
			l2 := openLog(t, dir, cfg)
			sameBatches(t, readAll(t, l2), all)
			if err := l2.Close(); err != nil {
				t.Fatal(err)
			}
			l3 := openLog(t, dir, cfg)
			sameBatches(t, readAll(t, l3), all)
		})
	}
}

func TestTruncateBelowStart(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, smallConfig())
	want := appendN(t, l, rand.New(rand.NewPCG(1, 1)), 30, 4000, 1)
	if err := l.DeleteRecordsBefore(want[20].base); err != nil {
		t.Fatal(err)
	}
	at := want[5].base
	if err := l.TruncateTo(at); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != at || l.EndOffset() != at {
		t.Fatalf("start %d end %d, want both %d", l.StartOffset(), l.EndOffset(), at)
	}
	more := appendN(t, l, rand.New(rand.NewPCG(1, 2)), 3, 4000, 1)
	if more[0].base != at {
		t.Fatalf("append at %d, want %d", more[0].base, at)
	}
	if got := segmentFiles(t, dir); len(got) != 1 || got[0] != at {
		t.Fatalf("segments %v, want one at %d", got, at)
	}
}

func TestReopen(t *testing.T) {
	for _, clean := range []bool{true, false} {
		name := map[bool]string{true: "clean", false: "crash"}[clean]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig()
			cfg.Fsync = FsyncAlways
			l := openLog(t, dir, cfg)
			rnd := rand.New(rand.NewPCG(11, 12))
			want := appendN(t, l, rnd, 40, 4000, 1)
			if clean {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); err != nil {
					t.Fatalf("no clean-shutdown marker after Close: %v", err)
				}
			} else {
				l.crash()
			}
			l2 := openLog(t, dir, cfg)
			if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("marker still there after Open: %v", err)
			}
			sameBatches(t, readAll(t, l2), want)
			want = append(want, appendN(t, l2, rnd, 10, 4000, 1)...)
			sameBatches(t, readAll(t, l2), want)
			if l2.SyncedOffset() != l2.EndOffset() {
				t.Fatalf("synced %d end %d", l2.SyncedOffset(), l2.EndOffset())
			}
		})
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	l := openLog(t, t.TempDir(), smallConfig())
	var bases []int64
	for i := range 50 {
		b := makeBatch(nil, 2, 1000, int64(100+10*i), nil)
		base, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, base)
	}
	tests := []struct {
		ts   int64
		want int64
	}{
		{0, 0},
		{100, 0},
		{101, bases[1]},
		{110, bases[1]},
		{345, bases[25]},
		{590, bases[49]},
		{591, l.EndOffset()},
	}
	for _, tt := range tests {
		if got, err := l.OffsetForTimestamp(tt.ts); err != nil || got != tt.want {
			t.Errorf("OffsetForTimestamp(%d) = %d, %v; want %d", tt.ts, got, err, tt.want)
		}
	}
	if err := l.DeleteRecordsBefore(bases[10] + 1); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.OffsetForTimestamp(0); got != bases[10]+1 {
		t.Errorf("below the start offset: %d, want %d", got, bases[10]+1)
	}
}

func TestChanged(t *testing.T) {
	l := openLog(t, t.TempDir(), smallConfig())
	ch := l.Changed()
	if l.Changed() != ch {
		t.Fatal("two Changed calls without a change gave different channels")
	}
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	appendN(t, l, rand.New(rand.NewPCG(1, 3)), 3, 500, 1)
	<-ch // closed by the append; a hang here fails by timeout
	ch = l.Changed()
	if err := l.TruncateTo(1); err != nil {
		t.Fatal(err)
	}
	<-ch
	ch = l.Changed()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	<-ch
	<-l.Changed() // after Close, already closed
}

func TestIntervalFlush(t *testing.T) {
	t.Run("interval", func(t *testing.T) {
		cfg := smallConfig()
		cfg.FlushInterval = 5 * time.Millisecond
		l := openLog(t, t.TempDir(), cfg)
		appendN(t, l, rand.New(rand.NewPCG(1, 4)), 5, 500, 1)
		poll.Until(t, 10*time.Second, "background flush", func() bool { return l.SyncedOffset() == l.EndOffset() })
		poll.Until(t, 10*time.Second, "recovery point", func() bool {
			v, err := l.rpFile.ReadInt64()
			return err == nil && v == l.EndOffset()
		})
	})
	t.Run("bytes", func(t *testing.T) {
		cfg := smallConfig()
		cfg.FlushInterval = time.Hour
		cfg.FlushBytes = 2000
		l := openLog(t, t.TempDir(), cfg)
		appendN(t, l, rand.New(rand.NewPCG(1, 4)), 1, 500, 1)
		if l.SyncedOffset() != 0 {
			t.Fatal("synced without reason")
		}
		appendN(t, l, rand.New(rand.NewPCG(1, 5)), 10, 1000, 1)
		poll.Until(t, 10*time.Second, "flush after FlushBytes", func() bool { return l.SyncedOffset() > 1 })
	})
}

// An idle log's flusher sleeps without its ticker once everything is
// synced and checkpointed, and the next append wakes it: that append is
// flushed and checkpointed within the interval as before, and so is a
// truncation's lowered recovery point raised again.
func TestIdleFlusherSleepsAndWakes(t *testing.T) {
	cfg := smallConfig()
	cfg.FlushInterval = 5 * time.Millisecond
	l := openLog(t, t.TempDir(), cfg)
	poll.Until(t, 10*time.Second, "flusher idle after open", l.flusherIdle.Load)
	rng := rand.New(rand.NewPCG(1, 7))
	for round := range 3 {
		appendN(t, l, rng, 3, 200, 1)
		poll.Until(t, 10*time.Second, "flush after waking", func() bool { return l.SyncedOffset() == l.EndOffset() })
		poll.Until(t, 10*time.Second, "recovery point after waking", func() bool {
			v, err := l.rpFile.ReadInt64()
			return err == nil && v == l.EndOffset()
		})
		poll.Until(t, 10*time.Second, "flusher idle again", l.flusherIdle.Load)
		if round == 1 {
			if err := l.TruncateTo(l.EndOffset() - 1); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCloseIdempotent(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, rand.New(rand.NewPCG(1, 6)), 3, 500, 1)
	for range 2 {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Append(makeBatch(nil, 1, 100, 1, nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := l.Read(0, 100); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	l2, err := Open(dir, smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory left after Delete: %v", err)
	}
}

var _ = segment.LogPath

// AppendNoWait leaves the batch unsynced until WaitDurable, and a sync
// closes Changed so that waiters on SyncedOffset wake.
func TestAppendNoWaitAndSyncNotifies(t *testing.T) {
	dir := t.TempDir()
	fs := errorfs.New(vfs.Default)
	cfg := Config{Fsync: FsyncAlways, FlushInterval: time.Hour, FS: fs}
	// A probe: it counts the fsyncs of segment log files, failing none.
	syncs := fs.Arm(errorfs.Fault{Ops: errorfs.OpSync, Path: filepath.Join(dir, "*.log")})
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before := syncs.Hits()
	a, err := l.AppendNoWait(makeBatch(nil, 3, 200, 1, nil))
	if err != nil {
		t.Fatal(err)
	}
	if a.Base != 0 || a.Next != 3 || l.EndOffset() != 3 {
		t.Fatalf("appended %+v, end %d; want base 0 next 3", a, l.EndOffset())
	}
	if got := l.SyncedOffset(); got != 0 {
		t.Fatalf("SyncedOffset %d before WaitDurable, want 0", got)
	}
	if syncs.Hits() != before {
		t.Fatal("AppendNoWait synced")
	}
	changed := l.Changed()
	if err := l.WaitDurable(a); err != nil {
		t.Fatal(err)
	}
	if got := l.SyncedOffset(); got != 3 {
		t.Fatalf("SyncedOffset %d after WaitDurable, want 3", got)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed when SyncedOffset advanced")
	}
}

// Records with old timestamps (a producer replaying history) do not make
// every batch roll a segment: the age is wall-clock time in the segment.
func TestSegmentAgeIgnoresRecordTimestamps(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{SegmentAge: time.Hour})
	for range 5 {
		if _, err := l.Append(makeBatch(nil, 1, 200, 1, nil)); err != nil { // 1970
			t.Fatal(err)
		}
	}
	if got := segmentFiles(t, dir); len(got) != 1 {
		t.Fatalf("segments %v, want one", got)
	}
}

// Opening a log that shut down cleanly writes none of its checkpoints
// again (they are durable and hold the values): one directory sync, for
// the removal of the clean-shutdown marker. A broker opening thousands of
// logs at a start pays that, not five syncs each. After an unclean stop
// the recovery point is written again.
func TestCleanOpenSyncsOnce(t *testing.T) {
	dir := t.TempDir()
	fs := errorfs.New(vfs.Default)
	cfg := Config{FS: fs}
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(makeBatch(nil, 3, 100, 1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	probe := fs.Arm(errorfs.Fault{Ops: errorfs.OpSync | errorfs.OpSyncDir | errorfs.OpRename})
	if l, err = Open(dir, cfg); err != nil {
		t.Fatal(err)
	}
	if n := probe.Hits(); n != 1 {
		t.Errorf("clean open: %d renames and syncs, want 1 (the marker's removal)", n)
	}
	if l.StartOffset() != 0 || l.EndOffset() != 3 {
		t.Errorf("reopened at [%d, %d), want [0, 3)", l.StartOffset(), l.EndOffset())
	}
	probe.Disarm()
	// Abandoned without Close: the next open recovers and writes the
	// recovery point.
	l.crash()
	probe = fs.Arm(errorfs.Fault{Ops: errorfs.OpRename, Path: filepath.Join(dir, recoveryPointFile)})
	if l, err = Open(dir, cfg); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if probe.Hits() == 0 {
		t.Error("open after an unclean stop did not write the recovery point")
	}
}

// Opening a new log writes no checkpoint: each would say what its
// absence says. Thousands of partitions of a new topic cost no
// checkpoint syncs. The log reads back as a new log after a crash, and
// the first sync after its first batch writes the leader-epoch
// checkpoint (the append itself leaves it to the sync: noteEpoch).
func TestNewLogWritesNoCheckpoint(t *testing.T) {
	dir := t.TempDir()
	fs := errorfs.New(vfs.Default)
	probe := fs.Arm(errorfs.Fault{Ops: errorfs.OpRename})
	l, err := Open(dir, Config{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if n := probe.Hits(); n != 0 {
		t.Errorf("a new log wrote %d checkpoints", n)
	}
	l.crash()
	if l, err = Open(dir, Config{FS: fs}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.StartOffset() != 0 || l.EndOffset() != 0 || l.LatestEpoch() != -1 {
		t.Fatalf("reopened: [%d, %d) epoch %d", l.StartOffset(), l.EndOffset(), l.LatestEpoch())
	}
	if _, err := l.Append(makeBatch(nil, 2, 100, 1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, epochCheckpointFile)); err != nil {
		t.Fatalf("first batch, synced: %v", err)
	}
}

// A log never appended to closes without a sync, a directory sync or a
// truncation: its index files were never allocated, its recovery point
// did not move, and the clean-shutdown marker needs no sync (touchMarker).
// A broker stopping with 10,000 such partitions made 6 of these file
// system calls for each before (issue 13 item 6), and 2 more for its
// producer-state snapshot (replica). It still opens clean.
func TestCloseOfUnusedLogSyncsNothing(t *testing.T) {
	dir := t.TempDir()
	fs := errorfs.New(vfs.Default)
	cfg := smallConfig()
	cfg.FS = fs
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	probe := fs.Arm(errorfs.Fault{Ops: errorfs.OpSync | errorfs.OpSyncDir | errorfs.OpTruncate, Path: dir})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := probe.Hits(); n != 0 {
		t.Fatalf("Close of an unused log: %d syncs and truncations, want 0", n)
	}
	probe.Disarm()
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); err != nil {
		t.Fatalf("no clean-shutdown marker after Close: %v", err)
	}
	l = openLog(t, dir, cfg)
	if l.EndOffset() != 0 {
		t.Fatalf("end offset %d after reopening, want 0", l.EndOffset())
	}
}
