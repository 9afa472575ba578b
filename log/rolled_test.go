package log

import (
	"math/rand/v2"
	"testing"
)

// TestAppendedRolled: exactly the appends that start a new segment say
// so (the producer state snapshots there).
func TestAppendedRolled(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, smallConfig())
	rnd := rand.New(rand.NewPCG(3, 4))
	rolls := 0
	for range 40 {
		a, err := l.AppendNoWait(makeBatch(nil, 3, 2000, 0, rnd))
		if err != nil {
			t.Fatal(err)
		}
		if a.Rolled {
			rolls++
			if got := segmentFiles(t, dir); got[len(got)-1] != a.Base {
				t.Fatalf("append at %d says it rolled; the last segment starts at %d", a.Base, got[len(got)-1])
			}
		}
	}
	if n := len(segmentFiles(t, dir)); rolls == 0 || rolls != n-1 {
		t.Fatalf("%d appends said they rolled; %d segments", rolls, n)
	}
}
