package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	s := h.Summary()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"p50", s.P50Ms, 500},
		{"p90", s.P90Ms, 900},
		{"p99", s.P99Ms, 990},
		{"p99.9", s.P999Ms, 999},
		{"max", s.MaxMs, 1000},
		{"mean", s.MeanMs, 500.5},
	} {
		if math.Abs(c.got-c.want) > c.want*0.002 {
			t.Errorf("%s = %v ms, want %v ms within 0.2%%", c.name, c.got, c.want)
		}
	}
	if s.Count != 1000 {
		t.Errorf("count = %d, want 1000", s.Count)
	}
}

func TestHistogramClampsAndMerges(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	a.Record(-time.Second) // a clock stepping back counts as 0
	a.Record(time.Hour)    // above the range: counted at the top
	b.Record(2 * time.Millisecond)
	a.Merge(b)
	a.Merge(a) // merging into itself is a no-op, not a deadlock
	if n := a.Count(); n != 3 {
		t.Fatalf("count = %d, want 3", n)
	}
	s := a.Summary()
	if s.MaxMs < float64(9*time.Minute/time.Millisecond) {
		t.Errorf("max = %v ms, want the 10 min top of the range", s.MaxMs)
	}
	if s.P50Ms < 1.99 || s.P50Ms > 2.01 {
		t.Errorf("p50 = %v ms, want 2", s.P50Ms)
	}
	if empty := NewHistogram().Summary(); empty != (Latency{}) {
		t.Errorf("empty summary = %+v, want zeros", empty)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	h := NewHistogram()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Record(time.Duration(i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if n := h.Count(); n != 4000 {
		t.Fatalf("count = %d, want 4000", n)
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	h := NewHistogram()
	if n := testing.AllocsPerRun(1000, func() { h.Record(1234 * time.Microsecond) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

func TestReport(t *testing.T) {
	for _, c := range []struct {
		name         string
		records      int64
		bytes        int64
		elapsed      time.Duration
		wantRate     float64
		wantMB       float64
		wantInText   []string
		latency      bool
		wantNotInTxt string
	}{
		{"rates", 2000, 4_000_000, 2 * time.Second, 1000, 2, []string{"1000 records/s", "2.00 MB/s", "3 errors"}, false, "latency"},
		{"with latency", 10, 1000, time.Second, 10, 0.001, []string{"p50 ", "p99.9 ", "max "}, true, ""},
		{"zero elapsed", 5, 5, 0, 0, 0, []string{"5 records"}, false, "latency"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tl := newTally(2)
			tl.workers[0].records.Add(c.records)
			tl.workers[1].bytes.Add(c.bytes)
			tl.fail(1, errFirst)
			tl.fail(0, errSecond)
			tl.fail(0, errSecond)
			var lat *Histogram
			if c.latency {
				lat = NewHistogram()
				lat.Record(3 * time.Millisecond)
			}
			r := tl.report("produce", c.elapsed, lat)
			if r.Records != c.records || r.Bytes != c.bytes || r.Errors != 3 {
				t.Fatalf("report %+v: want %d records, %d bytes, 3 errors", r, c.records, c.bytes)
			}
			if math.Abs(r.RecordsPerSec-c.wantRate) > 1e-9 || math.Abs(r.MBPerSec-c.wantMB) > 1e-9 {
				t.Errorf("rates %v rec/s %v MB/s, want %v and %v", r.RecordsPerSec, r.MBPerSec, c.wantRate, c.wantMB)
			}
			if r.FirstError != errFirst.Error() {
				t.Errorf("first error %q, want %q", r.FirstError, errFirst)
			}
			var buf bytes.Buffer
			if err := r.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.wantInText {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("text lacks %q:\n%s", w, buf.String())
				}
			}
			if c.wantNotInTxt != "" && strings.Contains(buf.String(), c.wantNotInTxt) {
				t.Errorf("text has %q:\n%s", c.wantNotInTxt, buf.String())
			}
			js, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(js), `"latency"`) != c.latency {
				t.Errorf("json latency presence wrong: %s", js)
			}
		})
	}
}

type testErr string

func (e testErr) Error() string { return string(e) }

const (
	errFirst  = testErr("first")
	errSecond = testErr("second")
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgress(t *testing.T) {
	var out syncBuffer
	tl := newTally(1)
	tl.workers[0].records.Add(42)
	p := startProgress(&out, "produce", tl, time.Now(), 5*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "42 records") {
		if time.Now().After(deadline) {
			t.Fatalf("no progress line within 10s: %q", out.String())
		}
		time.Sleep(time.Millisecond) // polling the condition, with a deadline
	}
	p.stop()
	p.stop() // idempotent
	s := out.String()
	if !strings.HasPrefix(s, "\rproduce: ") || !strings.HasSuffix(s, "\n") || !strings.Contains(s, "records/s") {
		t.Errorf("progress output %q", s)
	}

	// No writer: nothing runs, stop returns at once.
	startProgress(nil, "x", tl, time.Now(), time.Millisecond).stop()
}
