package log

import (
	"os"
	"testing"

	"github.com/sluicemq/sluice/segment"
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
			// It describes one Open: the next finds nothing to drop.
			l, err = Open(f.dir, f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.RecoveryTruncated() {
				t.Error("RecoveryTruncated after a reopen of the recovered log")
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
