package replica

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// pbatch builds a batch of n records of producer id, epoch, first
// sequence seq, timestamps ts, ts+1, ...
func pbatch(t testing.TB, id int64, epoch int16, seq int32, n int, ts int64) record.Batch {
	t.Helper()
	b := record.NewBuilder(record.None)
	b.SetProducer(id, epoch, seq)
	for i := range n {
		b.Append(ts+int64(i), nil, fmt.Appendf(nil, "p%d-e%d-s%d", id, epoch, int(seq)+i), nil)
	}
	out, err := b.AppendBatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fakeClock is an injected clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testTS is the timestamp batches carry; the clock starts there.
const testTS = int64(1_800_000_000_000)

func newProducers(t testing.TB, l *log.Log, mod func(*ProducersConfig)) *Producers {
	t.Helper()
	cfg := ProducersConfig{Dir: l.Dir(), Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	if mod != nil {
		mod(&cfg)
	}
	ps := NewProducers(cfg)
	t.Cleanup(ps.Wait) // before the log closes: a roll's snapshot is written in the background
	return ps
}

// wantCode fails unless err is a *protocol.Error with code.
func wantCode(t *testing.T, what string, err error, code protocol.ErrorCode) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("%s: got %v, want %v", what, err, code)
	}
	if pe.Code.Indeterminate() {
		t.Fatalf("%s: %v is indeterminate; a refusal before appending must be definite (R14)", what, pe.Code)
	}
}

func TestProducersLeaderChecks(t *testing.T) {
	l := openLog(t)
	ps := newProducers(t, l, nil)
	app := func(id int64, epoch int16, seq int32, n int) (LeaderAppended, error) {
		return ps.AppendLeader(l, pbatch(t, id, epoch, seq, n, testTS))
	}
	type step struct {
		name      string
		id        int64
		epoch     int16
		seq       int32
		n         int
		code      protocol.ErrorCode // NoError: accepted
		dupOf     int64              // >= 0: a duplicate of the batch at this offset
		wantBase  int64              // for an accepted new batch
		wantCount int                // producers after the step
	}
	steps := []step{
		{name: "unknown id, sequence not 0", id: 7, seq: 3, n: 1, code: protocol.ErrUnknownProducerID, dupOf: -1, wantCount: 0},
		{name: "first batch", id: 7, seq: 0, n: 2, dupOf: -1, wantBase: 0, wantCount: 1},
		{name: "retry of the first batch", id: 7, seq: 0, n: 2, dupOf: 0, wantCount: 1},
		{name: "gap", id: 7, seq: 3, n: 1, code: protocol.ErrOutOfOrderSequenceNumber, dupOf: -1, wantCount: 1},
		{name: "overlapping, not equal", id: 7, seq: 1, n: 2, code: protocol.ErrOutOfOrderSequenceNumber, dupOf: -1, wantCount: 1},
		{name: "next batch", id: 7, seq: 2, n: 3, dupOf: -1, wantBase: 2, wantCount: 1},
		{name: "other producer", id: 8, seq: 0, n: 1, dupOf: -1, wantBase: 5, wantCount: 2},
		{name: "new epoch not at 0", id: 7, epoch: 1, seq: 5, n: 1, code: protocol.ErrOutOfOrderSequenceNumber, dupOf: -1, wantCount: 2},
		{name: "new epoch", id: 7, epoch: 1, seq: 0, n: 1, dupOf: -1, wantBase: 6, wantCount: 2},
		{name: "stale epoch", id: 7, epoch: 0, seq: 5, n: 1, code: protocol.ErrInvalidProducerEpoch, dupOf: -1, wantCount: 2},
		{name: "retry from the old epoch", id: 7, epoch: 0, seq: 2, n: 3, code: protocol.ErrInvalidProducerEpoch, dupOf: -1, wantCount: 2},
		{name: "retry in the new epoch", id: 7, epoch: 1, seq: 0, n: 1, dupOf: 6, wantCount: 2},
	}
	for _, s := range steps {
		end := l.EndOffset()
		r, err := app(s.id, s.epoch, s.seq, s.n)
		switch {
		case s.code != protocol.NoError:
			wantCode(t, s.name, err, s.code)
		case err != nil:
			t.Fatalf("%s: %v", s.name, err)
		case s.dupOf >= 0:
			if !r.Duplicate || r.Original.Base != s.dupOf {
				t.Fatalf("%s: got %+v, want a duplicate of the batch at %d", s.name, r, s.dupOf)
			}
		case r.Duplicate || r.Appended.Base != s.wantBase:
			t.Fatalf("%s: got %+v, want appended at %d", s.name, r, s.wantBase)
		}
		if appended := s.code == protocol.NoError && s.dupOf < 0; appended != (l.EndOffset() != end) {
			t.Fatalf("%s: log end %d -> %d; appended should be %v", s.name, end, l.EndOffset(), appended)
		}
		if got := ps.Len(); got != s.wantCount {
			t.Fatalf("%s: %d producers, want %d", s.name, got, s.wantCount)
		}
	}
}

func TestProducersRetainFiveBatches(t *testing.T) {
	l := openLog(t)
	ps := newProducers(t, l, nil)
	for seq := range int32(7) {
		if _, err := ps.AppendLeader(l, pbatch(t, 1, 0, seq, 1, testTS)); err != nil {
			t.Fatal(err)
		}
	}
	// Batches 2..6 are retained: their retries are duplicates.
	for seq := int32(2); seq < 7; seq++ {
		r, err := ps.AppendLeader(l, pbatch(t, 1, 0, seq, 1, testTS))
		if err != nil || !r.Duplicate || r.Original.Base != int64(seq) {
			t.Fatalf("retry of seq %d: %+v, %v", seq, r, err)
		}
	}
	// Batch 1 fell out of the window: not answered as a duplicate.
	_, err := ps.AppendLeader(l, pbatch(t, 1, 0, 1, 1, testTS))
	wantCode(t, "retry of a batch no longer retained", err, protocol.ErrOutOfOrderSequenceNumber)
	if e := ps.Entries(); len(e) != 1 || len(e[0].Batches) != ProducerBatches || e[0].Batches[0].FirstSeq != 2 {
		t.Fatalf("entries %+v", e)
	}
}

func TestIncSeqWraps(t *testing.T) {
	for _, c := range []struct{ s, n, want int32 }{
		{0, 1, 1}, {5, 0, 5}, {math.MaxInt32, 1, 0}, {math.MaxInt32 - 1, 3, 1}, {math.MaxInt32 - 2, 2, math.MaxInt32},
	} {
		if got := incSeq(c.s, c.n); got != c.want {
			t.Errorf("incSeq(%d, %d) = %d, want %d", c.s, c.n, got, c.want)
		}
	}
	// A producer whose sequence wraps keeps going at 0.
	l := openLog(t)
	ps := newProducers(t, l, nil)
	ps.lim.mu.Lock()
	pr := &producer{id: 3}
	pr.push(ProducerBatch{FirstSeq: math.MaxInt32 - 1, LastSeq: math.MaxInt32, Base: -2, Last: -1, MaxTimestamp: testTS}, 0)
	ps.addLocked(pr)
	ps.lim.mu.Unlock()
	if _, err := ps.AppendLeader(l, pbatch(t, 3, 0, 0, 2, testTS)); err != nil {
		t.Fatalf("batch after the wrap: %v", err)
	}
}

// TestProducersConcurrentRetries sends one batch from many goroutines at
// once: exactly one copy is appended, every answer names its offset.
func TestProducersConcurrentRetries(t *testing.T) {
	l := openLog(t)
	ps := newProducers(t, l, nil)
	const n = 16
	var wg sync.WaitGroup
	bases := make([]int64, n)
	errs := make([]error, n)
	for i := range n {
		b := pbatch(t, 42, 0, 0, 3, testTS)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := ps.AppendLeader(l, b)
			bases[i], errs[i] = r.Appended.Base, err
			if r.Duplicate {
				bases[i] = r.Original.Base
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || bases[i] != 0 {
			t.Fatalf("append %d: base %d, %v", i, bases[i], errs[i])
		}
	}
	if end := l.EndOffset(); end != 3 {
		t.Fatalf("log end %d, want 3: the batch was appended more than once", end)
	}
}

// replicate copies src's batches from offset on into dst through ps, as
// a follower's fetcher does.
func replicate(t *testing.T, src, dst *log.Log, ps *Producers) {
	t.Helper()
	f := NewFollower(dst, 0, ps)
	for off := dst.EndOffset(); off < src.EndOffset(); off = dst.EndOffset() {
		v, err := src.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		b := append([]byte(nil), v.Bytes()...)
		v.Release()
		if _, err := f.Apply(b, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// fill appends, through ps, k batches for each of producers ids 0..m-1,
// interleaved, plus a batch with no producer id between rounds.
func fill(t *testing.T, l *log.Log, ps *Producers, m, k int, seq0 int32) {
	t.Helper()
	for j := range k {
		for id := range m {
			if _, err := ps.AppendLeader(l, pbatch(t, int64(id), 0, seq0+int32(2*j), 2, testTS+int64(j))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.AppendNoWait(pbatch(t, -1, -1, -1, 1, testTS)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProducersFollowerRebuildsLeaderState(t *testing.T) {
	leader, follower := openLog(t), openLog(t)
	lps, fps := newProducers(t, leader, nil), newProducers(t, follower, nil)
	fill(t, leader, lps, 4, 7, 0)
	replicate(t, leader, follower, fps)
	if got, want := fps.Entries(), lps.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("follower state\n%+v\nleader state\n%+v", got, want)
	}
	if len(lps.Entries()) != 4 {
		t.Fatalf("%d producers, want 4", len(lps.Entries()))
	}
}

func TestProducersTruncateAndCutBelow(t *testing.T) {
	l := openLog(t)
	ps := newProducers(t, l, nil)
	fill(t, l, ps, 2, 3, 0)                                                      // rounds of 2+2+1 offsets: producer 0 at 0, 5, 10; producer 1 at 2, 7, 12
	if _, err := ps.AppendLeader(l, pbatch(t, 9, 0, 0, 1, testTS)); err != nil { // producer 9 at 15
		t.Fatal(err)
	}
	if err := ps.Snapshot(l); err != nil { // at 16
		t.Fatal(err)
	}
	if err := ps.Truncate(l, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), snapshotName(16))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the snapshot above the truncation is still there: %v", err)
	}
	got := ps.Entries()
	if len(got) != 2 || got[0].ID != 0 || len(got[0].Batches) != 2 || got[1].ID != 1 || len(got[1].Batches) != 1 {
		t.Fatalf("after truncation to 7: %+v", got)
	}
	// The producer goes on from its last batch below the cut.
	r, err := ps.AppendLeader(l, pbatch(t, 1, 0, 2, 2, testTS))
	if err != nil || r.Duplicate || r.Appended.Base != 7 {
		t.Fatalf("resend of the truncated batch: %+v, %v", r, err)
	}
	_, err = ps.AppendLeader(l, pbatch(t, 9, 0, 1, 1, testTS))
	wantCode(t, "producer whose only batch was truncated", err, protocol.ErrUnknownProducerID)

	ps.CutBelow(5)
	got = ps.Entries()
	if len(got) != 2 || got[0].ID != 0 || len(got[0].Batches) != 1 || got[0].Batches[0].Base != 5 {
		t.Fatalf("after the start moved to 5: %+v", got)
	}
	ps.CutBelow(8)
	if got = ps.Entries(); len(got) != 1 || got[0].ID != 1 {
		t.Fatalf("after the start moved to 8: %+v", got)
	}

	// A reset (a follower behind the leader's log start) empties both.
	if err := ps.Snapshot(l); err != nil {
		t.Fatal(err)
	}
	if err := ps.Reset(l, 100); err != nil {
		t.Fatal(err)
	}
	offs, err := ps.files.list(false)
	if ps.Len() != 0 || err != nil || len(offs) != 0 || l.StartOffset() != 100 || l.EndOffset() != 100 {
		t.Fatalf("after a reset to 100: %d producers, snapshots %v (%v), log %d-%d", ps.Len(), offs, err, l.StartOffset(), l.EndOffset())
	}
}

// A log never appended to gets no snapshot at shutdown (two fsyncs saved
// per partition of a broker with thousands); once appended to, it does.
func TestProducersSnapshotOfEmptyLogWritesNothing(t *testing.T) {
	l := openLog(t)
	ps := newProducers(t, l, nil)
	if err := ps.Snapshot(l); err != nil {
		t.Fatal(err)
	}
	if offs, err := ps.files.list(false); err != nil || len(offs) != 0 {
		t.Fatalf("empty log: snapshots %v (%v), want none", offs, err)
	}
	fill(t, l, ps, 1, 1, 0)
	if err := ps.Snapshot(l); err != nil {
		t.Fatal(err)
	}
	if offs, err := ps.files.list(false); err != nil || len(offs) != 1 || offs[0] != l.EndOffset() {
		t.Fatalf("after an append: snapshots %v (%v), want one at %d", offs, err, l.EndOffset())
	}
}

func TestProducersExpire(t *testing.T) {
	clk := &fakeClock{now: time.UnixMilli(testTS)}
	l := openLog(t)
	ps := newProducers(t, l, func(c *ProducersConfig) { c.Now, c.Expiration = clk.Now, time.Hour })
	if _, err := ps.AppendLeader(l, pbatch(t, 1, 0, 0, 1, testTS)); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Minute)
	if _, err := ps.AppendLeader(l, pbatch(t, 2, 0, 0, 1, testTS+30*60*1000)); err != nil {
		t.Fatal(err)
	}
	if n := ps.Expire(); n != 0 {
		t.Fatalf("expired %d at 30 min", n)
	}
	clk.Add(31 * time.Minute)
	if n := ps.Expire(); n != 1 || ps.Expired() != 1 {
		t.Fatalf("expired %d (total %d) at 61 min, want producer 1", n, ps.Expired())
	}
	_, err := ps.AppendLeader(l, pbatch(t, 1, 0, 1, 1, testTS))
	wantCode(t, "expired producer", err, protocol.ErrUnknownProducerID)
	if _, err := ps.AppendLeader(l, pbatch(t, 2, 0, 1, 1, testTS)); err != nil {
		t.Fatalf("live producer: %v", err)
	}
}

func TestProducersEvictPastCap(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	clk := &fakeClock{now: time.UnixMilli(testTS)}
	l := openLog(t)
	ps := newProducers(t, l, func(c *ProducersConfig) { c.MaxProducers, c.Logger, c.Now = 10, zap.New(core), clk.Now })
	for id := range int64(25) {
		if _, err := ps.AppendLeader(l, pbatch(t, id, 0, 0, 1, testTS)); err != nil {
			t.Fatal(err)
		}
	}
	if ps.Len() != 10 || ps.Evicted() != 15 {
		t.Fatalf("%d producers, %d evicted; want 10 and 15", ps.Len(), ps.Evicted())
	}
	if n := logs.FilterMessageSnippet("evicted").Len(); n != 1 {
		t.Fatalf("%d eviction log lines, want 1 (rate-limited)", n)
	}
	// The 10 most recent stay and deduplicate; an evicted one that comes
	// back past sequence 0 is unknown.
	for id := int64(15); id < 25; id++ {
		r, err := ps.AppendLeader(l, pbatch(t, id, 0, 0, 1, testTS))
		if err != nil || !r.Duplicate {
			t.Fatalf("producer %d kept: retry %+v, %v", id, r, err)
		}
	}
	_, err := ps.AppendLeader(l, pbatch(t, 3, 0, 1, 1, testTS))
	wantCode(t, "evicted producer", err, protocol.ErrUnknownProducerID)
	if ps.Len() != 10 {
		t.Fatalf("%d producers after the refusal, want 10", ps.Len())
	}
}

// TestProducerLimitEvictsAcrossPartitions: partitions sharing a limit
// evict the least recently written producers of any of them, not of the
// partition that grew: B's new producers cost A's stale ones their state
// and leave A's recently written ones alone.
func TestProducerLimitEvictsAcrossPartitions(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	clk := &fakeClock{now: time.UnixMilli(testTS)}
	lim := NewProducerLimit(10, clk.Now, zap.New(core))
	la, lb := openLog(t), openLog(t)
	pa := newProducers(t, la, func(c *ProducersConfig) { c.Limit = lim })
	pb := newProducers(t, lb, func(c *ProducersConfig) { c.Limit = lim })
	appendOK := func(ps *Producers, l *log.Log, id int64, seq int32) {
		t.Helper()
		if r, err := ps.AppendLeader(l, pbatch(t, id, 0, seq, 1, testTS)); err != nil || r.Duplicate {
			t.Fatalf("producer %d seq %d: %+v, %v", id, seq, r, err)
		}
	}
	for id := range int64(6) { // A: 0..5
		appendOK(pa, la, id, 0)
	}
	for id := int64(100); id < 104; id++ { // B: 100..103, the cap reached
		appendOK(pb, lb, id, 0)
	}
	for id := int64(3); id < 6; id++ { // A's 3..5 written again: recent
		appendOK(pa, la, id, 1)
	}
	for id := int64(104); id < 107; id++ { // three more in B
		appendOK(pb, lb, id, 0)
	}
	if lim.Len() != 10 || lim.Evicted() != 3 || pa.Evicted() != 3 || pb.Evicted() != 0 {
		t.Fatalf("limit holds %d, evicted %d (A %d, B %d); want 10, 3 (3, 0)", lim.Len(), lim.Evicted(), pa.Evicted(), pb.Evicted())
	}
	if pa.Len() != 3 || pb.Len() != 7 {
		t.Fatalf("A holds %d, B %d; want 3 and 7", pa.Len(), pb.Len())
	}
	for id := range int64(3) {
		_, err := pa.AppendLeader(la, pbatch(t, id, 0, 1, 1, testTS))
		wantCode(t, fmt.Sprintf("A's evicted producer %d", id), err, protocol.ErrUnknownProducerID)
	}
	for id := int64(3); id < 6; id++ {
		if r, err := pa.AppendLeader(la, pbatch(t, id, 0, 1, 1, testTS)); err != nil || !r.Duplicate {
			t.Fatalf("A's kept producer %d: retry %+v, %v", id, r, err)
		}
	}
	if n := logs.FilterMessageSnippet("evicted").Len(); n != 1 {
		t.Fatalf("%d eviction log lines, want 1", n)
	}
	// A producer whose partition is busy (its snap held for writing, as
	// by a snapshot) is passed over for the next least recent.
	pa.snap.Lock()
	appendOK(pb, lb, 107, 0)
	pa.snap.Unlock()
	if pa.Len() != 3 || pb.Len() != 7 || lim.Len() != 10 {
		t.Fatalf("A holds %d, B %d, limit %d; want 3, 7, 10", pa.Len(), pb.Len(), lim.Len())
	}
	if _, err := pb.AppendLeader(lb, pbatch(t, 100, 0, 1, 1, testTS)); err == nil {
		t.Fatal("B's least recent producer 100 was kept while A was busy")
	}
}

// TestProducerLimitRelease: a released partition's producers no longer
// count against the limit, and it fills again from its log on Load.
func TestProducerLimitRelease(t *testing.T) {
	lim := NewProducerLimit(100, nil, nil)
	la, lb := openLog(t), openLog(t)
	pa := newProducers(t, la, func(c *ProducersConfig) { c.Limit = lim })
	pb := newProducers(t, lb, func(c *ProducersConfig) { c.Limit = lim })
	for id := range int64(4) {
		for _, p := range []struct {
			ps *Producers
			l  *log.Log
		}{{pa, la}, {pb, lb}} {
			if _, err := p.ps.AppendLeader(p.l, pbatch(t, id, 0, 0, 1, testTS)); err != nil {
				t.Fatal(err)
			}
		}
	}
	pa.Release()
	if lim.Len() != 4 || pa.Len() != 0 || pb.Len() != 4 {
		t.Fatalf("after releasing A: limit %d, A %d, B %d; want 4, 0, 4", lim.Len(), pa.Len(), pb.Len())
	}
	if _, err := pa.Load(la); err != nil {
		t.Fatal(err)
	}
	if lim.Len() != 8 || pa.Len() != 4 {
		t.Fatalf("after reloading A: limit %d, A %d; want 8 and 4", lim.Len(), pa.Len())
	}
}

// TestProducerLimitConcurrent appends, snapshots, truncates and expires
// on partitions sharing a small limit at once (run with -race): the
// limit's count stays equal to what the partitions hold, and never above
// the cap once the appends are done.
func TestProducerLimitConcurrent(t *testing.T) {
	const parts, writers, perWriter, max = 4, 4, 300, 50
	lim := NewProducerLimit(max, nil, nil)
	logs := make([]*log.Log, parts)
	pss := make([]*Producers, parts)
	for i := range parts {
		logs[i] = openLog(t)
		pss[i] = newProducers(t, logs[i], func(c *ProducersConfig) { c.Limit = lim })
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				p := (w + i) % parts
				id := int64(w*perWriter + i)
				if _, err := pss[p].AppendLeader(logs[p], pbatch(t, id, 0, 0, 1, testTS)); err != nil {
					t.Errorf("producer %d: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 40 {
			p := i % parts
			if err := pss[p].Snapshot(logs[p]); err != nil {
				t.Errorf("snapshot: %v", err)
			}
			pss[p].Expire()
			pss[p].CutBelow(0)
		}
	}()
	wg.Wait()
	total := 0
	for _, ps := range pss {
		total += ps.Len()
	}
	if n := lim.Len(); n != total || n > max {
		t.Fatalf("limit counts %d, partitions hold %d; cap %d", n, total, max)
	}
	if got, want := lim.Evicted(), uint64(writers*perWriter-total); got != want {
		t.Fatalf("evicted %d, want %d", got, want)
	}
}

// reopenLoad opens the log in dir and loads its producer state; it
// returns both and the offset the load replayed from.
func reopenLoad(t *testing.T, dir string) (*log.Log, *Producers, int64) {
	t.Helper()
	l, err := log.Open(dir, log.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ps := newProducers(t, l, nil)
	from, err := ps.Load(l)
	if err != nil {
		t.Fatal(err)
	}
	return l, ps, from
}

func TestProducersSnapshotLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	l, err := log.Open(dir, log.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ps := newProducers(t, l, nil)
	fill(t, l, ps, 3, 4, 0)
	if err := ps.Snapshot(l); err != nil {
		t.Fatal(err)
	}
	snapAt := l.EndOffset()
	fill(t, l, ps, 3, 2, 8)
	want := ps.Entries()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, ps2, from := reopenLoad(t, dir)
	if from != snapAt {
		t.Fatalf("replayed from %d, want the snapshot's offset %d", from, snapAt)
	}
	if got := ps2.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded\n%+v\nwant\n%+v", got, want)
	}
	// A second snapshot; then damage it: the older one and a longer
	// replay give the same state.
	if err := ps2.Snapshot(l2); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	newest := filepath.Join(dir, snapshotName(l2.EndOffset()))
	b, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(newest, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, ps3, from := reopenLoad(t, dir)
	if from != snapAt {
		t.Fatalf("with the newest snapshot damaged, replayed from %d, want the older one's %d", from, snapAt)
	}
	if got := ps3.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded past a damaged snapshot\n%+v\nwant\n%+v", got, want)
	}
}

func TestProducersLoadDropsSnapshotAboveEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	l, err := log.Open(dir, log.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ps := newProducers(t, l, nil)
	fill(t, l, ps, 2, 2, 0)
	end := l.EndOffset()
	if err := ps.Snapshot(l); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// A snapshot above the end: written before a crash cost the log its
	// tail. It must not be used, and must go (new batches will take its
	// offsets).
	ps.lim.mu.Lock()
	stale := ps.appendSnapshot(nil, end+100)
	ps.lim.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, snapshotName(end+100)), stale, 0o644); err != nil {
		t.Fatal(err)
	}
	// And the temp file of a write a crash interrupted.
	temp := filepath.Join(dir, snapshotName(end+200)+".tmp")
	if err := os.WriteFile(temp, stale[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, from := reopenLoad(t, dir); from != end {
		t.Fatalf("load: from %d, want %d", from, end)
	}
	if _, err := os.Stat(filepath.Join(dir, snapshotName(end+100))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot above the log end kept: %v", err)
	}
	if _, err := os.Stat(temp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file of an interrupted write kept: %v", err)
	}
}

func TestProducersSnapshotAtRoll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	l, err := log.Open(dir, log.Config{SegmentBytes: 4096, MaxBatchBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ps := newProducers(t, l, nil)
	src := openLog(t)
	sps := newProducers(t, src, nil)
	fill(t, src, sps, 3, 40, 0)
	replicate(t, src, l, ps)
	ps.Wait() // written in the background
	offs, err := ps.files.list(false)
	if err != nil || len(offs) == 0 || len(offs) > keepSnapshots {
		t.Fatalf("snapshots after the follower's log rolled: %v, %v", offs, err)
	}
}

func TestDecodeSnapshotRefusesDamage(t *testing.T) {
	l := openLog(t)
	ps := newProducers(t, l, nil)
	fill(t, l, ps, 2, 3, 0)
	ps.lim.mu.Lock()
	good := ps.appendSnapshot(nil, l.EndOffset())
	ps.lim.mu.Unlock()
	if _, e, err := decodeSnapshot(good); err != nil || len(e) != 2 {
		t.Fatalf("good snapshot: %d producers, %v", len(e), err)
	}
	for i := range good {
		b := append([]byte(nil), good...)
		b[i] ^= 0x40
		if _, _, err := decodeSnapshot(b); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for n := range len(good) {
		if _, _, err := decodeSnapshot(good[:n]); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("cut to %d bytes: %v", n, err)
		}
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	l, err := log.Open(filepath.Join(f.TempDir(), "p"), log.Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	ps := NewProducers(ProducersConfig{Dir: l.Dir()})
	for id := range int64(3) {
		for seq := range int32(6) {
			if _, err := ps.AppendLeader(l, pbatch(f, id, 0, seq, 1, testTS)); err != nil {
				f.Fatal(err)
			}
		}
	}
	ps.lim.mu.Lock()
	f.Add(ps.appendSnapshot(nil, l.EndOffset()))
	ps.lim.mu.Unlock()
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		off, entries, err := decodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("error %v does not match ErrCorruptSnapshot", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes.
		q := NewProducers(ProducersConfig{MaxProducers: math.MaxInt32})
		q.lim.mu.Lock()
		for _, e := range entries {
			pr := &producer{id: e.ID, epoch: e.Epoch, lastWrite: e.LastWrite, n: len(e.Batches)}
			copy(pr.batches[:], e.Batches)
			q.addLocked(pr)
		}
		again := q.appendSnapshot(nil, off)
		q.lim.mu.Unlock()
		if string(again) != string(b) {
			t.Fatalf("decoded snapshot re-encodes differently")
		}
	})
}

// BenchmarkAppendLeader appends one 10-record batch per op to a log:
// without a producer id (the log alone), through the producer state (the
// check, the append and the update), and a retry of a retained batch
// (the check alone: nothing appended). Allocations are per batch.
func BenchmarkAppendLeader(b *testing.B) {
	for _, mode := range []string{"plain", "idempotent", "duplicate"} {
		b.Run(mode, func(b *testing.B) {
			l, ps := benchPartition(b)
			id := int64(1)
			if mode == "plain" {
				id = -1
			}
			// The sequence is rewritten in place for each op: the CRC
			// covers it, but neither the log nor the state checks the CRC
			// (the broker validated the batch before).
			batch := pbatch(b, id, 0, 0, 10, testTS)
			if mode == "duplicate" {
				if _, err := ps.AppendLeader(l, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(batch)))
			b.ResetTimer()
			var err error
			for i := range b.N {
				switch mode {
				case "plain":
					_, err = l.AppendNoWait(batch)
				case "idempotent":
					setSequence(batch, int32(i*10))
					_, err = ps.AppendLeader(l, batch)
				case "duplicate":
					var r LeaderAppended
					if r, err = ps.AppendLeader(l, batch); err == nil && !r.Duplicate {
						err = fmt.Errorf("op %d: not a duplicate", i)
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// setSequence rewrites a batch's base sequence (header offset 53).
func setSequence(b record.Batch, seq int32) {
	b[53], b[54], b[55], b[56] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
}

// TestProducersFollowerTruncation: a replica that led epoch 1 and
// appended batches the new leader never got truncates them (R9) and its
// producer state with them, so after catching up it holds the new
// leader's state, not its own lost batches'.
func TestProducersFollowerTruncation(t *testing.T) {
	old, next := openLog(t), openLog(t)
	ops, nps := newProducers(t, old, nil), newProducers(t, next, nil)
	old.SetLeaderEpoch(1)
	for seq := range int32(5) {
		if _, err := ops.AppendLeader(old, pbatch(t, 1, 0, seq, 1, testTS)); err != nil {
			t.Fatal(err)
		}
	}
	// The next leader got the first 3 before the old one failed.
	f := NewFollower(next, 0, nps)
	v, err := old.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	first3 := record.Batch(v.Bytes())
	cut := 0
	for rest, k := []byte(first3), 0; k < 3; k++ {
		b, r, err := record.NextBatch(rest, 0)
		if err != nil {
			t.Fatal(err)
		}
		cut += len(b)
		rest = r
	}
	if _, err := f.Apply(append([]byte(nil), first3[:cut]...), 0); err != nil {
		t.Fatal(err)
	}
	v.Release()
	// It leads epoch 2: the producer resends seq 3 and 4 (different
	// content), another producer starts.
	next.SetLeaderEpoch(2)
	for _, seq := range []int32{3, 5} {
		if _, err := nps.AppendLeader(next, pbatch(t, 1, 0, seq, 2, testTS+100)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nps.AppendLeader(next, pbatch(t, 2, 0, 0, 1, testTS)); err != nil {
		t.Fatal(err)
	}
	// The old leader follows: truncates where the logs part, then fetches.
	of := NewFollower(old, 0, ops)
	if end, err := of.Truncate(context.Background(), leaderLog{next}); err != nil || end != 3 {
		t.Fatalf("truncate: end %d, %v; want 3", end, err)
	}
	replicate(t, next, old, ops)
	if got, want := ops.Entries(), nps.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("old leader's state after truncation and catch-up\n%+v\nnew leader's\n%+v", got, want)
	}
}

// TestProducersSnapshotWriteFails: a snapshot that cannot be written (EIO
// on its fsync) at a roll is a warning, not an append error; the older
// snapshot stays, and the state still comes back whole from it and the
// log after it.
func TestProducersSnapshotWriteFails(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	dir, fs, l, ps := faultyPartition(t, zap.New(core))
	fill(t, l, ps, 2, 2, 0)
	if err := ps.Snapshot(l); err != nil {
		t.Fatal(err)
	}
	older := l.EndOffset()
	fill(t, l, ps, 2, 2, 4)
	fault := fs.Arm(errorfs.Fault{Ops: errorfs.OpSync, Path: snapshotTemps(dir), Err: syscall.EIO})
	if err := ps.Snapshot(l); !errors.Is(err, syscall.EIO) {
		t.Fatalf("snapshot on a failing disk: %v, want EIO", err)
	}
	ps.Rolled(l)
	ps.Wait()
	if n := logs.FilterMessageSnippet("snapshot at segment roll failed").Len(); n != 1 {
		t.Fatalf("%d warnings for the failed snapshot at roll, want 1", n)
	}
	fault.Disarm()
	if offs, err := ps.files.list(false); err != nil || !reflect.DeepEqual(offs, []int64{older}) {
		t.Fatalf("snapshots %v (%v), want only the older one at %d", offs, err, older)
	}
	want := ps.Entries()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, ps2, from := reopenLoad(t, dir)
	if from != older {
		t.Fatalf("load: from %d, want the older snapshot's %d", from, older)
	}
	if got := ps2.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded\n%+v\nwant\n%+v", got, want)
	}
}

// TestProducersRandomModel drives a leader's producer state with random
// appends, retries, gaps and epoch bumps, and checks each answer against
// a model (every batch a producer appended); along the way a follower
// replays the log and the state is reloaded from its snapshots: both
// must equal the leader's.
func TestProducersRandomModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(14, 13))
	dir := filepath.Join(t.TempDir(), "p")
	l, err := log.Open(dir, log.Config{SegmentBytes: 8192, MaxBatchBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ps := newProducers(t, l, nil)
	follower := openLog(t)
	fps := newProducers(t, follower, nil)
	type sent struct {
		first, last int32
		base        int64
	}
	type model struct {
		epoch int16
		next  int32
		sent  []sent // this epoch's batches
	}
	models := make([]model, 6)
	for op := range 3000 {
		id := rnd.IntN(len(models))
		m := &models[id]
		switch k := rnd.IntN(10); {
		case k < 6 || len(m.sent) == 0: // the next batch
			n := 1 + rnd.IntN(3)
			r, err := ps.AppendLeader(l, pbatch(t, int64(id), m.epoch, m.next, n, testTS+int64(op)))
			if err != nil || r.Duplicate {
				t.Fatalf("op %d: producer %d seq %d: %+v, %v", op, id, m.next, r, err)
			}
			m.sent = append(m.sent, sent{m.next, m.next + int32(n) - 1, r.Appended.Base})
			m.next += int32(n)
		case k < 8: // a retry of one of its batches
			i := rnd.IntN(len(m.sent))
			s := m.sent[i]
			end := l.EndOffset()
			r, err := ps.AppendLeader(l, pbatch(t, int64(id), m.epoch, s.first, int(s.last-s.first+1), testTS))
			if i >= len(m.sent)-ProducerBatches {
				if err != nil || !r.Duplicate || r.Original.Base != s.base || l.EndOffset() != end {
					t.Fatalf("op %d: retry of producer %d's batch at %d: %+v, %v", op, id, s.base, r, err)
				}
			} else if !isCode(err, protocol.ErrOutOfOrderSequenceNumber) {
				t.Fatalf("op %d: retry of producer %d's batch at %d, no longer retained: %+v, %v", op, id, s.base, r, err)
			}
		case k < 9: // a gap
			_, err := ps.AppendLeader(l, pbatch(t, int64(id), m.epoch, m.next+1+int32(rnd.IntN(3)), 1, testTS))
			if !isCode(err, protocol.ErrOutOfOrderSequenceNumber) {
				t.Fatalf("op %d: gap: %v", op, err)
			}
		default: // a new epoch
			m.epoch++
			m.next, m.sent = 0, nil
		}
		if op%500 == 499 {
			replicate(t, l, follower, fps)
			if got, want := fps.Entries(), ps.Entries(); !reflect.DeepEqual(got, want) {
				t.Fatalf("op %d: follower state differs", op)
			}
			q := newProducers(t, l, nil)
			if _, err := q.Load(l); err != nil {
				t.Fatal(err)
			}
			if got, want := q.Entries(), ps.Entries(); !reflect.DeepEqual(got, want) {
				t.Fatalf("op %d: state loaded from the snapshots and the log differs\n%+v\nwant\n%+v", op, got, want)
			}
		}
	}
}

// isCode reports whether err is a *protocol.Error with code.
func isCode(err error, code protocol.ErrorCode) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code == code
}

// A segment roll's snapshot is written in the background: Rolled returns
// while the snapshot's fsync is held up, appends go on, a second roll
// meanwhile queues behind it, and both files are there once the writer is
// done (Wait).
func TestProducersRolledDoesNotWaitForFsync(t *testing.T) {
	dir, fs, l, ps := faultyPartition(t, nil)
	syncing, release := holdSnapshotSync(t, fs, dir)
	fill(t, l, ps, 2, 2, 0)
	first := l.EndOffset()
	rollsWithin(t, ps, l, release, "Rolled waits for the snapshot's fsync")
	select {
	case <-syncing:
	case <-time.After(10 * time.Second):
		t.Fatal("the snapshot's fsync never started")
	}
	// The writer is in the fsync: appends and another roll go on.
	fill(t, l, ps, 2, 2, 4)
	second := l.EndOffset()
	rollsWithin(t, ps, l, release, "a second Rolled waits for the first snapshot's fsync")
	release()
	ps.Wait()
	if offs, err := ps.files.list(false); err != nil || !reflect.DeepEqual(offs, []int64{first, second}) {
		t.Fatalf("snapshots %v (%v), want %d and %d", offs, err, first, second)
	}
}

// A crash between a roll and its snapshot's fsync (the file written, not
// synced or renamed) loses only that snapshot: the state comes back whole
// from the older one and the log after it, and a producer's retry of a
// batch written before the crash is still answered as a duplicate with
// its original offsets. A truncation below a snapshot still waiting for
// the writer drops it, so no snapshot of a cut log survives.
func TestProducersCrashBeforeRolledSnapshotSynced(t *testing.T) {
	dir, fs, l, ps := faultyPartition(t, nil)
	fill(t, l, ps, 2, 2, 0)
	ps.Rolled(l)
	ps.Wait()
	older := l.EndOffset()
	fill(t, l, ps, 2, 2, 4)
	retry := pbatch(t, 1, 0, 6, 2, testTS+1) // producer 1's last batch
	orig := ps.Entries()[1].Batches
	// The crash: the fsync of the roll's snapshot never completes.
	fault := fs.Arm(errorfs.Fault{Ops: errorfs.OpSync, Path: snapshotTemps(dir), Err: syscall.EIO})
	ps.Rolled(l)
	ps.Wait()
	fault.Disarm()
	want := ps.Entries()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(dir); err == nil {
		temps := 0
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), snapshotSuffix+vfs.TempSuffix) {
				temps++
			}
		}
		if temps != 1 {
			t.Fatalf("%d unsynced snapshot files left by the crash, want 1", temps)
		}
	}
	l2, ps2, from := reopenLoad(t, dir)
	if from != older {
		t.Fatalf("load: from %d, want the older snapshot's %d", from, older)
	}
	if got := ps2.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded\n%+v\nwant\n%+v", got, want)
	}
	r, err := ps2.AppendLeader(l2, retry)
	if err != nil {
		t.Fatal(err)
	}
	last := orig[len(orig)-1]
	if !r.Duplicate || r.Original.Base != last.Base || r.Original.Last != last.Last {
		t.Fatalf("retry after the crash: %+v, want a duplicate of the batch at %d-%d", r, last.Base, last.Last)
	}

}

// A truncation while a roll's snapshot is being written and a newer one
// is queued (a follower truncating after a leader change): whichever of
// the writer and the truncation goes first, no snapshot above the cut is
// left — recovery must never take a snapshot of a log that was cut.
func TestProducersTruncateDropsQueuedSnapshot(t *testing.T) {
	dir, fs, l, ps := faultyPartition(t, nil)
	syncing, release := holdSnapshotSync(t, fs, dir)
	fill(t, l, ps, 2, 2, 0)
	cut := l.EndOffset()
	fill(t, l, ps, 2, 1, 4)
	go ps.Rolled(l) // written: its fsync held up
	select {
	case <-syncing:
	case <-time.After(10 * time.Second):
		t.Fatal("the snapshot's fsync never started")
	}
	fill(t, l, ps, 2, 1, 6)
	ps.Rolled(l) // queued
	truncated := make(chan error, 1)
	go func() { truncated <- ps.Truncate(l, cut) }()
	release()
	if err := <-truncated; err != nil {
		t.Fatal(err)
	}
	ps.Wait()
	offs, err := ps.files.list(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range offs {
		if o > cut {
			t.Fatalf("snapshots %v after the log was cut to %d", offs, cut)
		}
	}
}

// faultyPartition opens a log and its producer state in a new directory,
// on an errorfs over the real file system; logger nil logs nothing.
func faultyPartition(t *testing.T, logger *zap.Logger) (string, *errorfs.FS, *log.Log, *Producers) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "p")
	fs := errorfs.New(vfs.Default)
	l, err := log.Open(dir, log.Config{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if logger == nil {
		logger = zap.NewNop()
	}
	ps := NewProducers(ProducersConfig{Dir: dir, FS: fs, Logger: logger})
	t.Cleanup(ps.Wait)
	return dir, fs, l, ps
}

// snapshotTemps matches the temp files of snapshot writes in dir: their
// fsync is the snapshot's.
func snapshotTemps(dir string) string { return filepath.Join(dir, "*"+snapshotSuffix+vfs.TempSuffix) }

// holdSnapshotSync holds up the first fsync of a snapshot in dir: syncing
// receives when it starts; release lets it finish (called again at the
// test's end, harmlessly).
func holdSnapshotSync(t *testing.T, fs *errorfs.FS, dir string) (syncing <-chan struct{}, release func()) {
	started := make(chan struct{}, 1)
	gate := make(chan struct{})
	var held atomic.Bool
	fault := fs.Arm(errorfs.Fault{Ops: errorfs.OpSync, Path: snapshotTemps(dir), Hook: func() {
		if held.CompareAndSwap(false, true) {
			started <- struct{}{}
			<-gate
		}
	}})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() {
		release()
		fault.Disarm()
	})
	return started, release
}

// rollsWithin fails the test, releasing the held fsync, unless Rolled
// returns within 10 s.
func rollsWithin(t *testing.T, ps *Producers, l *log.Log, release func(), failure string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		ps.Rolled(l)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		release()
		t.Fatal(failure)
	}
}
