package bench

import (
	"fmt"
	"testing"
)

// cleanHistory is a run where everything went right: two producers, four
// sends each over two partitions, all acknowledged; the final read has all
// of them, one live consumer read everything and another half of it.
func cleanHistory() History {
	var h History
	next := map[int32]int64{}
	for seq := int64(0); seq < 4; seq++ {
		for p := 0; p < 2; p++ {
			part := int32(seq % 2)
			s := Send{Producer: p, Seq: seq, Value: fmt.Sprintf("r-p%d-s%d", p, seq), Outcome: Acked,
				Partition: part, Offset: next[part]}
			next[part]++
			h.Sends = append(h.Sends, s)
		}
	}
	for part := int32(0); part < 2; part++ {
		for _, s := range h.Sends {
			if s.Partition == part {
				h.Final = append(h.Final, Read{Partition: part, Offset: s.Offset, Value: s.Value})
			}
		}
	}
	h.Live = [][]Read{append([]Read(nil), h.Final...), append([]Read(nil), h.Final[:4]...)}
	return h
}

// anomalies are Result's failure counters by name, and Duplicates.
func anomalies(r Result) map[string]int64 {
	m := map[string]int64{
		"lost": r.Lost, "unexpected": r.Unexpected, "failed_present": r.FailedPresent,
		"duplicates": r.Duplicates, "inconsistent": r.Inconsistent, "vanished": r.Vanished,
		"reordered": r.Reordered, "non_monotonic": r.NonMonotonic,
	}
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
	return m
}

func TestCheckClean(t *testing.T) {
	r := Check(cleanHistory())
	if !r.OK() || len(anomalies(r)) != 0 || len(r.Examples) != 0 {
		t.Fatalf("clean history: %+v", r)
	}
	if r.Sent != 8 || r.Acked != 8 || r.FinalReads != 8 || r.LiveReads != 12 {
		t.Errorf("counts %+v, want 8 sent, 8 acked, 8 final reads, 12 live reads", r)
	}
}

func TestCheckAnomalies(t *testing.T) {
	find := func(h *History, value string) int {
		for i, rd := range h.Final {
			if rd.Value == value {
				return i
			}
		}
		panic("no final read of " + value)
	}
	without := func(rs []Read, value string) []Read {
		var out []Read
		for _, rd := range rs {
			if rd.Value != value {
				out = append(out, rd)
			}
		}
		return out
	}
	for _, c := range []struct {
		name   string
		mutate func(h *History)
		want   map[string]int64
		ok     bool // duplicates only: reported, not failed
	}{
		{"lost", func(h *History) {
			// Acknowledged, then gone: not in any read. The offset it
			// held is simply missing from the final read.
			h.Final = without(h.Final, "r-p1-s2")
			h.Live[0] = without(h.Live[0], "r-p1-s2")
			h.Live[1] = without(h.Live[1], "r-p1-s2")
		}, map[string]int64{"lost": 1}, false},
		{"unexpected", func(h *History) {
			h.Final = append(h.Final, Read{Partition: 1, Offset: 4, Value: "never-sent"})
		}, map[string]int64{"unexpected": 1}, false},
		{"unexpected in a live read only", func(h *History) {
			h.Live[1] = append(h.Live[1], Read{Partition: 0, Offset: 9, Value: "garbage"})
		}, map[string]int64{"unexpected": 1, "vanished": 1}, false},
		{"failed but present", func(h *History) {
			h.Sends[3].Outcome = Failed
		}, map[string]int64{"failed_present": 1}, false},
		{"duplicate", func(h *History) {
			// A retried batch written twice: same value at a new offset.
			h.Final = append(h.Final, Read{Partition: 0, Offset: 4, Value: "r-p1-s2"})
		}, map[string]int64{"duplicates": 1}, true},
		{"duplicate from an idempotent producer", func(h *History) {
			h.Idempotent = true // R13: a retry is never written twice
			h.Final = append(h.Final, Read{Partition: 0, Offset: 4, Value: "r-p1-s2"})
		}, map[string]int64{"duplicates": 1}, false},
		{"inconsistent: two values at one offset", func(h *History) {
			// The acknowledgement of r-p1-s0 names the offset r-p0-s0 holds.
			h.Sends[1].Offset = h.Sends[0].Offset
		}, map[string]int64{"inconsistent": 1}, false},
		{"inconsistent: acknowledged offset missing", func(h *History) {
			h.Sends[7].Offset = 40 // r-p1-s3, read at its real offset
		}, map[string]int64{"inconsistent": 1}, false},
		{"inconsistent: live and final disagree", func(h *History) {
			// The final read has another value (a send of unknown
			// outcome) at the offset a live read and the acknowledgement
			// gave r-p0-s3: the log changed under the reader.
			h.Sends = append(h.Sends, Send{Producer: 0, Seq: 9, Value: "r-p0-s9", Outcome: Unknown})
			h.Final[find(h, "r-p0-s3")].Value = "r-p0-s9"
		}, map[string]int64{"inconsistent": 1, "vanished": 1, "lost": 1}, false},
		{"vanished", func(h *History) {
			// An unknown outcome a live consumer read, then gone.
			h.Sends = append(h.Sends, Send{Producer: 0, Seq: 4, Value: "r-p0-s4", Outcome: Unknown})
			h.Live[0] = append(h.Live[0], Read{Partition: 1, Offset: 4, Value: "r-p0-s4"})
		}, map[string]int64{"vanished": 1}, false},
		{"reordered", func(h *History) {
			// Producer 0's seq 0 and seq 2 (partition 0) swapped in the
			// log, acknowledgements matching the log.
			a, b := find(h, "r-p0-s0"), find(h, "r-p0-s2")
			h.Final[a].Value, h.Final[b].Value = h.Final[b].Value, h.Final[a].Value
			h.Sends[0].Offset, h.Sends[4].Offset = h.Sends[4].Offset, h.Sends[0].Offset
			h.Live = nil
		}, map[string]int64{"reordered": 2}, false},
		{"non-monotonic live read", func(h *History) {
			l := h.Live[1]
			l[0], l[1] = l[1], l[0]
		}, map[string]int64{"non_monotonic": 1}, false},
		{"non-monotonic final read", func(h *History) {
			h.Final = append(h.Final, h.Final[0])
			h.Final[0] = h.Final[1]
		}, map[string]int64{"non_monotonic": 2}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := cleanHistory()
			c.mutate(&h)
			r := Check(h)
			got := anomalies(r)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("anomalies %v, want %v\nexamples: %q", got, c.want, r.Examples)
			}
			if r.OK() != c.ok {
				t.Errorf("OK() = %v, want %v", r.OK(), c.ok)
			}
			if len(r.Examples) == 0 {
				t.Errorf("no examples for %v", got)
			}
		})
	}
}

func TestCheckUnknownOutcomes(t *testing.T) {
	h := cleanHistory()
	h.Sends[2].Outcome = Unknown                                                             // present in the log: fine
	h.Sends = append(h.Sends, Send{Producer: 1, Seq: 4, Value: "r-p1-s4", Outcome: Unknown}) // absent: fine
	r := Check(h)
	if !r.OK() || r.Unknown != 2 || r.UnknownPresent != 1 || r.Acked != 7 {
		t.Fatalf("unknown outcomes: %+v", r)
	}
}

func TestCheckExamplesBounded(t *testing.T) {
	h := cleanHistory()
	for i := range 100 {
		h.Final = append(h.Final, Read{Partition: 5, Offset: int64(i), Value: fmt.Sprint("bogus", i)})
	}
	r := Check(h)
	if r.Unexpected != 100 || len(r.Examples) != maxExamples {
		t.Fatalf("unexpected %d, %d examples; want 100 and %d", r.Unexpected, len(r.Examples), maxExamples)
	}
}

// A final read that did not complete judges nothing by absence: what it
// did not get to is neither lost nor vanished, only counted as not read
// back. What was read is still judged.
func TestCheckIncompleteReadBack(t *testing.T) {
	partial := func(h *History) {
		// The final read got partition 0 only; the live reads had more.
		var p0 []Read
		for _, rd := range h.Final {
			if rd.Partition == 0 {
				p0 = append(p0, rd)
			}
		}
		h.Final = p0
		h.ReadBackError = "final read: at offsets [4 0], short of the end offsets [4 4]"
	}
	for _, c := range []struct {
		name   string
		mutate func(h *History)
		want   map[string]int64
	}{
		{"nothing judged by absence", func(h *History) {}, map[string]int64{}},
		{"acknowledged past where it was read", func(h *History) {
			// r-p1-s2, read at 0@3, acknowledged at 0@5 (written twice):
			// the final read may not have got to 5.
			h.Sends[5].Offset = 5
		}, map[string]int64{}},
		{"failed but present", func(h *History) {
			h.Sends[0].Outcome = Failed // r-p0-s0, read in partition 0
		}, map[string]int64{"failed_present": 1}},
		{"unexpected", func(h *History) {
			h.Final = append(h.Final, Read{Partition: 0, Offset: 4, Value: "never-sent"})
		}, map[string]int64{"unexpected": 1}},
		{"two values at one offset", func(h *History) {
			h.Live[0][0].Value = h.Live[0][1].Value
		}, map[string]int64{"inconsistent": 1, "duplicates": 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := cleanHistory()
			partial(&h)
			c.mutate(&h)
			r := Check(h)
			if got := anomalies(r); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("anomalies %v, want %v\nexamples: %q", got, c.want, r.Examples)
			}
			if r.ReadBack || r.ReadBackError != h.ReadBackError || r.OK() {
				t.Errorf("ReadBack %v (%q), OK %v: want an incomplete read back, not OK", r.ReadBack, r.ReadBackError, r.OK())
			}
			// Partition 1's four acknowledged records were not read back.
			if r.Lost != 0 || r.NotReadBack != 4 {
				t.Errorf("lost %d, not read back %d: want 0 lost, 4 not read back", r.Lost, r.NotReadBack)
			}
		})
	}

	// Nothing read back at all (the end offsets could not be listed).
	h := cleanHistory()
	h.Final, h.Live = nil, nil
	h.ReadBackError = "end offsets after the producers: NOT_LEADER_OR_FOLLOWER"
	if r := Check(h); r.Lost != 0 || r.NotReadBack != 8 || r.Anomalies() != 0 || r.OK() {
		t.Fatalf("no read back: %+v, want 8 not read back, none lost, not OK", r)
	}
}

// bigHistory is a clean run of n records over 4 partitions from 2
// producers, read in full by 2 live consumers and the final read: the
// shape of a long verify run.
func bigHistory(n int) History {
	var h History
	next := make([]int64, 4)
	h.Sends = make([]Send, 0, n)
	for i := range n {
		part := int32(i % 4)
		h.Sends = append(h.Sends, Send{Producer: i % 2, Seq: int64(i / 2), Value: string(VerifyValue("run", i%2, int64(i/2), 64)),
			Outcome: Acked, Partition: part, Offset: next[part]})
		next[part]++
	}
	h.Final = make([]Read, 0, n)
	for part := int32(0); part < 4; part++ {
		for _, s := range h.Sends {
			if s.Partition == part {
				h.Final = append(h.Final, Read{Partition: part, Offset: s.Offset, Value: s.Value})
			}
		}
	}
	h.Live = [][]Read{h.Final, h.Final}
	h.Ends = next
	return h
}

// go test -run '^$' -bench BenchmarkCheck -benchtime 3x ./bench
func BenchmarkCheck(b *testing.B) {
	h := bigHistory(1_000_000)
	b.ReportAllocs()
	for b.Loop() {
		if r := Check(h); !r.OK() {
			b.Fatalf("%+v", r)
		}
	}
}

// Reads at far-off offsets or odd partitions (a corrupt history, a
// misbehaving broker) are judged like any other, through the map the
// dense tables fall back to, without allocating for the offsets between.
func TestCheckSparseOffsets(t *testing.T) {
	h := cleanHistory()
	h.Final = append(h.Final, Read{Partition: 0, Offset: 1 << 50, Value: "far"}, Read{Partition: -1, Offset: 3, Value: "odd"})
	h.Live[0] = append(h.Live[0], Read{Partition: 1, Offset: 1 << 40, Value: "r-p0-s1"})
	r := Check(h)
	want := map[string]int64{"unexpected": 2, "vanished": 1, "duplicates": 1}
	if got := anomalies(r); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("anomalies %v, want %v\nexamples: %q", got, want, r.Examples)
	}
	if a := testing.AllocsPerRun(1, func() { Check(h) }); a > 200 {
		t.Errorf("%v allocations", a)
	}
}
