package log

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicemq/sluice/record"
)

// TestReadersRaceRetentionAndTruncation runs readers against a writer that
// appends, enforces retention, moves the start offset and truncates. A
// reader may be told its offset is out of range; it must never see a torn
// or invalid batch, nor crash (R8).
func TestReadersRaceRetentionAndTruncation(t *testing.T) {
	cfg := smallConfig()
	cfg.RetentionBytes = 48 << 10
	l := openLog(t, t.TempDir(), cfg)
	var stop atomic.Bool
	var reads, outOfRange atomic.Int64
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(r), 99))
			for !stop.Load() {
				start, end := l.StartOffset(), l.EndOffset()
				if end <= start {
					continue
				}
				off := start + rnd.Int64N(end-start)
				v, err := l.Read(off, 1+rnd.IntN(32<<10))
				if errors.Is(err, ErrOffsetOutOfRange) {
					outOfRange.Add(1)
					continue
				}
				if err != nil {
					t.Errorf("read at %d: %v", off, err)
					return
				}
				bs := v.Bytes()
				for len(bs) > 0 {
					b, err := record.ParseHeader(bs, 0)
					if err == nil {
						err = b.VerifyCRC()
					}
					if err != nil {
						t.Errorf("read at %d: torn batch: %v", off, err)
						break
					}
					bs = bs[len(b):]
				}
				v.Release()
				reads.Add(1)
			}
		}()
	}
	rnd := rand.New(rand.NewPCG(5, 5))
	for i := range 300 {
		appendN(t, l, rnd, 3, 3000, 1)
		switch i % 10 {
		case 3:
			if _, err := l.EnforceRetention(); err != nil {
				t.Fatal(err)
			}
		case 6:
			s, e := l.StartOffset(), l.EndOffset()
			if err := l.DeleteRecordsBefore(s + (e-s)/4); err != nil {
				t.Fatal(err)
			}
		case 9:
			s, e := l.StartOffset(), l.EndOffset()
			if err := l.TruncateTo(s + (e-s)*3/4); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no read succeeded")
	}
	t.Logf("%d reads, %d out of range", reads.Load(), outOfRange.Load())
	readAll(t, l)
}
