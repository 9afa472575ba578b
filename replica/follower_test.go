package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/record"
)

// leaderLog serves a real log as the leader: OffsetForLeaderEpoch and
// fetches. In-process, no network: the transport comes with the broker.
type leaderLog struct{ l *log.Log }

func (s leaderLog) EndOffsetForEpoch(_ context.Context, epoch int32) (int32, int64, error) {
	e, end := s.l.EndOffsetForEpoch(epoch)
	return e, end, nil
}

func (s leaderLog) fetch(t *testing.T, offset int64, maxBytes int) []byte {
	t.Helper()
	if offset >= s.l.EndOffset() {
		return nil
	}
	v, err := s.l.Read(offset, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release()
	return bytes.Clone(v.Bytes())
}

func openLog(t *testing.T) *log.Log {
	t.Helper()
	l, err := log.Open(filepath.Join(t.TempDir(), "p"), log.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendEpoch appends n one-record batches in leader epoch epoch, each
// value tagged so logs can be compared.
func appendEpoch(t *testing.T, l *log.Log, epoch int32, n int, tag string) {
	t.Helper()
	l.SetLeaderEpoch(epoch)
	bld := record.NewBuilder(record.None)
	for i := range n {
		bld.Reset()
		bld.Append(int64(i), nil, []byte(tag), nil)
		b, err := bld.Build()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
}

func logBytes(t *testing.T, l *log.Log) []byte {
	t.Helper()
	return leaderLog{l}.fetch(t, 0, 1<<30)
}

// catchUp fetches from the leader until the follower holds its whole log.
func catchUp(t *testing.T, f *Follower, leader leaderLog) {
	t.Helper()
	for i := 0; f.FetchOffset() < leader.l.EndOffset(); i++ {
		if i > 100 {
			t.Fatal("follower does not catch up")
		}
		// A small fetch size cuts batches: Apply must leave the partial
		// one for the next round.
		if _, err := f.Apply(leader.fetch(t, f.FetchOffset(), 100), leader.l.EndOffset()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFollowerTruncatesByEpochAndConverges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		leader   func(l *log.Log)
		follower func(l *log.Log)
		wantCut  int64
	}{
		{
			// KIP-101: the follower had an unreplicated tail of epoch 1;
			// the new leader (epoch 2) wrote over those offsets.
			name:     "same epoch, longer tail",
			leader:   func(l *log.Log) { appendEpoch(t, l, 1, 1, "a"); appendEpoch(t, l, 2, 2, "b") },
			follower: func(l *log.Log) { appendEpoch(t, l, 1, 2, "a") },
			wantCut:  1,
		},
		{
			// The follower led in epoch 3, which the leader never saw.
			name:     "newer epoch the leader never had",
			leader:   func(l *log.Log) { appendEpoch(t, l, 1, 2, "a"); appendEpoch(t, l, 2, 3, "b") },
			follower: func(l *log.Log) { appendEpoch(t, l, 1, 2, "a"); appendEpoch(t, l, 3, 2, "c") },
			wantCut:  2,
		},
		{
			name:     "follower behind, nothing diverged",
			leader:   func(l *log.Log) { appendEpoch(t, l, 1, 5, "a") },
			follower: func(l *log.Log) { appendEpoch(t, l, 1, 3, "a") },
			wantCut:  3,
		},
		{
			name:     "no common epoch",
			leader:   func(l *log.Log) { appendEpoch(t, l, 4, 2, "d") },
			follower: func(l *log.Log) { appendEpoch(t, l, 2, 3, "x") },
			wantCut:  0,
		},
		{
			name:     "empty follower",
			leader:   func(l *log.Log) { appendEpoch(t, l, 1, 3, "a") },
			follower: func(*log.Log) {},
			wantCut:  0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ll, fl := openLog(t), openLog(t)
			tc.leader(ll)
			tc.follower(fl)
			f := NewFollower(fl, 0, nil)
			end, err := f.Truncate(context.Background(), leaderLog{ll})
			if err != nil {
				t.Fatal(err)
			}
			if end != tc.wantCut {
				t.Fatalf("truncated to %d, want %d", end, tc.wantCut)
			}
			catchUp(t, f, leaderLog{ll})
			if !bytes.Equal(logBytes(t, ll), logBytes(t, fl)) {
				t.Fatal("logs differ after truncation and catch-up")
			}
			if f.HighWatermark() != ll.EndOffset() {
				t.Fatalf("follower HW %d, want %d", f.HighWatermark(), ll.EndOffset())
			}
		})
	}
}

func TestFollowerApplyRefusesBadBatches(t *testing.T) {
	ll, fl := openLog(t), openLog(t)
	appendEpoch(t, ll, 1, 3, "a")
	f := NewFollower(fl, 0, nil)
	data := leaderLog{ll}.fetch(t, 0, 1<<20)

	bad := bytes.Clone(data)
	bad[len(bad)-1] ^= 0x40 // a bit of the last batch's last record
	n, err := f.Apply(bad, 3)
	if !errors.Is(err, record.ErrCorrupt) || n != 2 {
		t.Fatalf("corrupt third batch: %d applied, err %v; want 2 and ErrCorrupt", n, err)
	}
	if f.HighWatermark() != 0 {
		t.Fatalf("HW %d moved on a failed apply", f.HighWatermark())
	}

	// A batch that does not continue the log.
	gap := bytes.Clone(data[:record.Batch(data).Size()])
	binary.BigEndian.PutUint64(gap, 7)
	if _, err := f.Apply(gap, 3); !errors.Is(err, ErrNotContiguous) {
		t.Fatalf("gap: %v, want ErrNotContiguous", err)
	}

	// The leader's HW is capped by what the follower holds, and never
	// goes back.
	rest := data[2*record.Batch(data).Size():]
	if _, err := f.Apply(rest, 100); err != nil {
		t.Fatal(err)
	}
	if f.HighWatermark() != 3 {
		t.Fatalf("HW %d, want min(100, 3)", f.HighWatermark())
	}
	if _, err := f.Apply(nil, 1); err != nil || f.HighWatermark() != 3 {
		t.Fatalf("HW %d after a lower leader HW, want 3 (err %v)", f.HighWatermark(), err)
	}
}

// A follower whose whole log lies below the leader's log start (retention
// on the leader) restarts its log there and copies on from it.
func TestFollowerResetToLeaderStart(t *testing.T) {
	leader := openLog(t)
	appendEpoch(t, leader, 1, 10, "a")
	if err := leader.DeleteRecordsBefore(6); err != nil {
		t.Fatal(err)
	}
	fl := openLog(t)
	appendEpoch(t, fl, 1, 3, "a")
	f := NewFollower(fl, 3, nil)
	if err := f.ResetTo(2); err != nil || fl.EndOffset() != 3 {
		t.Fatalf("reset below the end: %v, end %d: want no change", err, fl.EndOffset())
	}
	if err := f.ResetTo(leader.StartOffset()); err != nil {
		t.Fatal(err)
	}
	if fl.StartOffset() != 6 || f.FetchOffset() != 6 || f.HighWatermark() != 6 {
		t.Fatalf("after reset: start %d, fetch offset %d, HW %d; want 6", fl.StartOffset(), f.FetchOffset(), f.HighWatermark())
	}
	if _, err := f.Apply(leaderLog{leader}.fetch(t, 6, 1<<20), leader.EndOffset()); err != nil {
		t.Fatal(err)
	}
	if fl.EndOffset() != leader.EndOffset() {
		t.Fatalf("follower ends at %d, leader at %d", fl.EndOffset(), leader.EndOffset())
	}
}

// TestFollowerApplyTrimsGap: a follower whose log ends inside a gap the
// leader's cleaner made takes the rest of the gap and goes on.
func TestFollowerApplyTrimsGap(t *testing.T) {
	ll, fl := openLog(t), openLog(t)
	appendEpoch(t, ll, 1, 3, "a")
	f := NewFollower(fl, 0, nil)
	if _, err := f.Apply(leaderLog{ll}.fetch(t, 0, 1<<20), 3); err != nil {
		t.Fatal(err)
	}
	// The leader's view: a gap over 1..5 (its cleaner merged removed
	// batches), then a batch at 6.
	data := record.AppendGap(nil, 1, 6, 1, 0)
	bld := record.NewBuilder(record.None)
	bld.Append(0, []byte("k"), []byte("v"), nil)
	b, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	b.SetBaseOffset(6)
	b.SetLeaderEpoch(1)
	data = append(data, b...)
	if n, err := f.Apply(data, 7); err != nil || n != 2 {
		t.Fatalf("applied %d, %v", n, err)
	}
	if fl.EndOffset() != 7 {
		t.Fatalf("follower ends at %d, want 7", fl.EndOffset())
	}
	// A batch with records that starts before the end is still refused.
	b.SetBaseOffset(5)
	if _, err := f.Apply(b, 7); !errors.Is(err, ErrNotContiguous) {
		t.Fatalf("a record batch before the end: %v, want ErrNotContiguous", err)
	}
}
