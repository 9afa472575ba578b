package log

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// TestRecoveryTruncated checks that Open says whether its recovery
// dropped anything: the broker reports it when it registers, and the
// controller will not elect a replica that may have lost committed
// records (R11).
func TestRecoveryTruncated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, f *corruptFixture)
		want   bool
	}{
		{"clean stop", func(*testing.T, *corruptFixture) {}, false},
		{"unclean stop, nothing damaged", func(t *testing.T, f *corruptFixture) { f.unclean(t) }, false},
		{"torn tail", func(t *testing.T, f *corruptFixture) { cutTail(t, f, 10); f.unclean(t) }, true},
		{"torn tail despite the clean marker", func(t *testing.T, f *corruptFixture) { cutTail(t, f, 1) }, true},
		{"missing middle segment", func(t *testing.T, f *corruptFixture) {
			if err := os.Remove(segment.LogPath(f.dir, f.bases[3])); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCorruptFixture(t)
			tc.damage(t, f)
			l, err := Open(f.dir, f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.RecoveryTruncated(); got != tc.want {
				t.Errorf("RecoveryTruncated %v, want %v", got, tc.want)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// A loss is remembered across reopens (and crashes) until
			// the owner clears it; no loss leaves nothing behind.
			reopen := func() bool {
				t.Helper()
				l, err := Open(f.dir, f.cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				return l.RecoveryTruncated()
			}
			if got := reopen(); got != tc.want {
				t.Errorf("RecoveryTruncated %v after a reopen, want %v until cleared", got, tc.want)
			}
			if err := ClearRecoveryTruncated(vfs.Default, f.dir); err != nil {
				t.Fatal(err)
			}
			if reopen() {
				t.Error("RecoveryTruncated after ClearRecoveryTruncated")
			}
			if _, err := os.Stat(filepath.Join(f.dir, recoveryMarkFile)); !os.IsNotExist(err) {
				t.Errorf("recovery mark left behind: %v", err)
			}
		})
	}
}

// A crash during recovery leaves the mark written before the scan: the
// next Open cannot tell whether the interrupted one cut anything, so it
// says it may have.
// The mark counts by its presence: as an empty checkpoint, and as the
// empty file versions before the checkpoint format wrote.
func TestInterruptedRecoveryCountsAsTruncated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(path string) error
	}{
		{"checkpoint", func(path string) error { return NewCheckpoint(vfs.Default, path).Write(nil) }},
		{"legacy empty file", func(path string) error { return os.WriteFile(path, nil, 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCorruptFixture(t)
			f.unclean(t)
			if err := tc.write(filepath.Join(f.dir, recoveryMarkFile)); err != nil {
				t.Fatal(err)
			}
			l, err := Open(f.dir, f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if !l.RecoveryTruncated() {
				t.Fatal("an interrupted recovery's mark was ignored")
			}
		})
	}
}

// cutTail cuts n bytes from the end of the fixture's last segment.
func cutTail(t *testing.T, f *corruptFixture, n int64) {
	t.Helper()
	last := segment.LogPath(f.dir, f.bases[len(f.bases)-1])
	st, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(last, st.Size()-n); err != nil {
		t.Fatal(err)
	}
}
