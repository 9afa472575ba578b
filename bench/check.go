package bench

import (
	"cmp"
	"fmt"
	"slices"
)

// Outcome is what a producer learned about one record it sent.
type Outcome uint8

// Outcomes of a Send. R14: a failure is definite (not written) or
// indeterminate (maybe written); the checker holds a record failed for
// sure to "never present", and an unknown one to nothing.
const (
	Acked   Outcome = iota + 1 // acknowledged at Partition, Offset
	Failed                     // failed for sure: not written
	Unknown                    // timeout, connection lost after sending: maybe written
)

func (o Outcome) String() string {
	switch o {
	case Acked:
		return "acked"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// MarshalText names the outcome in JSON.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Send is one record a verify producer sent, and what came of it. Value
// is unique across the run; Seq counts up from 0 per producer in the order
// the producer sent.
type Send struct {
	Producer  int     `json:"producer"`
	Seq       int64   `json:"seq"`
	Value     string  `json:"value"`
	Outcome   Outcome `json:"outcome"`
	Partition int32   `json:"partition"` // when Acked
	Offset    int64   `json:"offset"`    // when Acked
}

// Read is one record as a consumer read it.
type Read struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Value     string `json:"value"`
}

// History is everything a verify run observed: every send with its
// outcome, what each consumer read while the producers ran (in the order
// read), and a final read of every partition from its log start once the
// producers were done. Ends holds, per partition, the end offset taken
// once the producers stopped: the offset every reader was asked to reach.
//
// ReadBackError, when set, says why the final read did not complete (the
// end offsets could not be listed, a partition could not be read to its
// end offset in time): Final then holds only part of the log, or nothing,
// and Check judges nothing by its absence from it. Empty means the final
// read reached Ends in every partition.
type History struct {
	Sends         []Send   `json:"sends"`
	Live          [][]Read `json:"live"`
	Final         []Read   `json:"final"`
	Ends          []int64  `json:"ends,omitempty"`
	ReadBackError string   `json:"read_back_error,omitempty"`
	// Idempotent: the producers were idempotent (R13), so a value read at
	// two offsets is a failure, not a retry's expected cost.
	Idempotent bool `json:"idempotent,omitempty"`
	// ResolvedUnknown: records the producers got acknowledged after an
	// attempt whose outcome was unknown (client.ResolvedUnknown): the
	// unknown outcomes idempotent retries turned into acknowledgements.
	ResolvedUnknown int64 `json:"resolved_unknown,omitempty"`
}

// Result is the verdict of Check: counts of what happened and of every
// anomaly, and a few examples of the anomalies found.
//
// Lost and Vanished are absences from the final read, and so is part of
// Inconsistent: they are judged only when the final read completed
// (ReadBack). Otherwise they stay 0, whatever the final read lacks: a
// record is lost only when the final read completed and the record is not
// there. The other checks judge what was read, complete or not.
type Result struct {
	Sent           int64 `json:"sent"`
	Acked          int64 `json:"acked"`
	Failed         int64 `json:"failed"`
	Unknown        int64 `json:"unknown"`
	UnknownPresent int64 `json:"unknown_present"` // unknown outcomes the final read found
	LiveReads      int64 `json:"live_reads"`
	FinalReads     int64 `json:"final_reads"`

	// ReadBack: the final read completed (History.ReadBackError empty).
	ReadBack bool `json:"read_back"`
	// ReadBackError: why the final read did not complete.
	ReadBackError string `json:"read_back_error,omitempty"`
	// NotReadBack: with ReadBack false, acknowledged records the final
	// read did not get to. Neither lost nor kept: not judged.
	NotReadBack int64 `json:"not_read_back"`

	// Lost: acknowledged, absent from the completed final read.
	Lost int64 `json:"lost"`
	// Unexpected: read (live or final) but never sent.
	Unexpected int64 `json:"unexpected"`
	// FailedPresent: failed for sure, yet read (a definite error that
	// was not; R14).
	FailedPresent int64 `json:"failed_present"`
	// Duplicates: extra offsets a value was read at, beyond its first.
	// A failure when the producers were idempotent (Idempotent); otherwise
	// only reported: without idempotence (R13) a retried batch may be
	// written twice.
	Duplicates int64 `json:"duplicates"`
	// Idempotent: the history's producers were idempotent.
	Idempotent bool `json:"idempotent"`
	// ResolvedUnknown: History.ResolvedUnknown, acknowledged records that
	// had an unknown outcome first (counted in Acked, not in Unknown).
	ResolvedUnknown int64 `json:"resolved_unknown"`
	// Inconsistent: offsets seen holding two values across the
	// acknowledgement, live reads and the final read, plus acknowledged
	// records the completed final read has only at another offset.
	Inconsistent int64 `json:"inconsistent"`
	// Vanished: live reads the completed final read does not have at
	// that offset.
	Vanished int64 `json:"vanished"`
	// Reordered: a producer's records in one partition out of its send
	// order, in the final read or in the acknowledged offsets.
	Reordered int64 `json:"reordered"`
	// NonMonotonic: a consumer's offsets in a partition not strictly
	// increasing (the final read counts as a consumer).
	NonMonotonic int64 `json:"non_monotonic"`

	Examples []string `json:"examples,omitempty"`
}

// maxExamples bounds Result.Examples.
const maxExamples = 20

// Anomalies is how many times a check failed: the sum of the failing
// counts. Duplicates count only when the producers were idempotent (see
// Result.Duplicates).
func (r *Result) Anomalies() int64 {
	n := r.Lost + r.Unexpected + r.FailedPresent + r.Inconsistent + r.Vanished + r.Reordered + r.NonMonotonic
	if r.Idempotent {
		n += r.Duplicates
	}
	return n
}

// OK reports whether the final read completed and every check holds.
func (r *Result) OK() bool { return r.ReadBack && r.Anomalies() == 0 }

func (r *Result) example(format string, args ...any) {
	if len(r.Examples) < maxExamples {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

// pos is one offset of one partition.
type pos struct {
	p int32
	o int64
}

func (p pos) String() string { return fmt.Sprintf("%d@%d", p.p, p.o) }

// Check judges a History. It is a pure function of h.
//
// It runs in time linear in the history and allocates per value, not per
// read: each value gets an integer id (its index in h.Sends, or one past
// them for values never sent), and what was seen at each offset is held in
// per-partition tables indexed by offset. A million-record run is judged
// in well under a second (BenchmarkCheck).
func Check(h History) Result {
	r := Result{ReadBack: h.ReadBackError == "", ReadBackError: h.ReadBackError, Idempotent: h.Idempotent,
		ResolvedUnknown: h.ResolvedUnknown}
	ids := newValueIDs(h.Sends)
	for i := range h.Sends {
		switch h.Sends[i].Outcome {
		case Acked:
			r.Acked++
		case Failed:
			r.Failed++
		default:
			r.Unknown++
		}
	}
	r.Sent = int64(len(h.Sends))
	r.FinalReads = int64(len(h.Final))
	for _, l := range h.Live {
		r.LiveReads += int64(len(l))
	}
	finalIDs := ids.of(h.Final)
	liveIDs := make([][]int32, len(h.Live))
	for i, l := range h.Live {
		liveIDs[i] = ids.of(l)
	}
	layout, records := layoutOf(h), len(h.Sends)+len(h.Final)
	at, final := newOffsetTables(layout, records), newOffsetTables(layout, records)

	// One value per offset, across acknowledgements and every read.
	conflicted := map[pos]bool{}
	observe := func(p pos, id int32, source string) {
		prev := at.get(p)
		switch {
		case prev < 0:
			at.set(p, id)
		case prev != id && !conflicted[p]:
			conflicted[p] = true
			r.Inconsistent++
			r.example("inconsistent: offset %v holds %q and %q (%s)", p, ids.value(prev), ids.value(id), source)
		}
	}
	for i, s := range h.Sends {
		if s.Outcome == Acked {
			observe(pos{s.Partition, s.Offset}, int32(i), "ack")
		}
	}
	for k, rd := range h.Final {
		p := pos{rd.Partition, rd.Offset}
		final.set(p, finalIDs[k])
		observe(p, finalIDs[k], "final read")
	}
	for i, l := range h.Live {
		source := fmt.Sprintf("live read %d", i)
		for k, rd := range l {
			observe(pos{rd.Partition, rd.Offset}, liveIDs[i][k], source)
		}
	}

	// Where each value was read, and reads of values never sent.
	w := newWhere(len(h.Sends))
	unexpected := map[int32]bool{}
	noteRead := func(rd Read, id int32) {
		p := pos{rd.Partition, rd.Offset}
		if int(id) >= len(h.Sends) {
			if !unexpected[id] {
				unexpected[id] = true
				r.Unexpected++
				r.example("unexpected: %q at %v was never sent", rd.Value, p)
			}
			return
		}
		w.note(id, p)
	}
	inFinal := make([]bool, len(h.Sends))
	for k, rd := range h.Final {
		noteRead(rd, finalIDs[k])
		if id := finalIDs[k]; int(id) < len(h.Sends) {
			inFinal[id] = true
		}
	}
	for i, l := range h.Live {
		for k, rd := range l {
			noteRead(rd, liveIDs[i][k])
		}
	}
	for id := range h.Sends {
		if !w.seen(int32(id)) {
			continue
		}
		if n := w.count(int32(id)); n > 1 {
			r.Duplicates += int64(n - 1)
			r.example("duplicate: %q read at %v", h.Sends[id].Value, w.all(int32(id)))
		}
		if h.Sends[id].Outcome == Failed {
			r.FailedPresent++
			r.example("failed present: %q failed for sure but was read at %v", h.Sends[id].Value, w.all(int32(id)))
		}
	}

	for id, s := range h.Sends {
		switch {
		case s.Outcome == Unknown && inFinal[id]:
			r.UnknownPresent++
		case s.Outcome != Acked:
		case !inFinal[id] && !r.ReadBack:
			r.NotReadBack++
		case !inFinal[id]:
			r.Lost++
			r.example("lost: %q acknowledged at %v, not in the final read", s.Value, pos{s.Partition, s.Offset})
		case !r.ReadBack:
			// Read elsewhere; the final read may not have reached the
			// acknowledged offset.
		default:
			ack := pos{s.Partition, s.Offset}
			if final.get(ack) < 0 {
				r.Inconsistent++
				r.example("inconsistent: %q acknowledged at %v, read only at %v", s.Value, ack, w.all(int32(id)))
			}
		}
	}

	// Without a completed final read, a live read at an offset the final
	// read holds with another value is still counted inconsistent above.
	if r.ReadBack {
		r.checkVanished(h, liveIDs, final, ids)
	}

	r.checkOrder(h, finalIDs)
	for i, l := range h.Live {
		r.checkMonotonic(fmt.Sprintf("live read %d", i), l)
	}
	r.checkMonotonic("final read", h.Final)
	return r
}

// checkVanished checks that every live read is in the final read, at the
// same offset.
func (r *Result) checkVanished(h History, liveIDs [][]int32, final *offsetTables, ids *valueIDs) {
	for i, l := range h.Live {
		for k, rd := range l {
			p := pos{rd.Partition, rd.Offset}
			if v := final.get(p); v != liveIDs[i][k] {
				r.Vanished++
				r.example("vanished: live read %d saw %q at %v, the final read has %q", i, rd.Value, p, ids.value(v))
			}
		}
	}
}

// checkOrder checks that each producer's records of a partition are in
// its send order, in the final read and in the acknowledged offsets.
func (r *Result) checkOrder(h History, finalIDs []int32) {
	type pp struct {
		producer  int
		partition int32
	}
	// The final read in (partition, offset) order: it usually is already.
	order := make([]int32, len(h.Final))
	for k := range order {
		order[k] = int32(k)
	}
	byPos := func(a, b int32) int {
		x, y := &h.Final[a], &h.Final[b]
		if c := cmp.Compare(x.Partition, y.Partition); c != 0 {
			return c
		}
		return cmp.Compare(x.Offset, y.Offset)
	}
	if !slices.IsSortedFunc(order, byPos) {
		slices.SortStableFunc(order, byPos)
	}
	lastSeq := map[pp]*Send{}
	for _, k := range order {
		id := finalIDs[k]
		if int(id) >= len(h.Sends) {
			continue
		}
		s, rd := &h.Sends[id], &h.Final[k]
		key := pp{s.Producer, rd.Partition}
		if prev := lastSeq[key]; prev != nil && s.Seq < prev.Seq {
			r.Reordered++
			r.example("reordered: producer %d's seq %d after seq %d in partition %d (offset %d)",
				s.Producer, s.Seq, prev.Seq, rd.Partition, rd.Offset)
			continue
		}
		lastSeq[key] = s
	}
	// Sends of a producer are in its send order only if sorted by Seq.
	acked := make([]*Send, 0, len(h.Sends))
	for i := range h.Sends {
		if h.Sends[i].Outcome == Acked {
			acked = append(acked, &h.Sends[i])
		}
	}
	slices.SortStableFunc(acked, func(a, b *Send) int {
		if c := cmp.Compare(a.Producer, b.Producer); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	lastAck := map[pp]*Send{}
	for _, s := range acked {
		k := pp{s.Producer, s.Partition}
		if prev := lastAck[k]; prev != nil && s.Offset < prev.Offset {
			r.Reordered++
			r.example("reordered: producer %d's seq %d acknowledged at offset %d, before seq %d at %d in partition %d",
				s.Producer, s.Seq, s.Offset, prev.Seq, prev.Offset, s.Partition)
		}
		lastAck[k] = s
	}
}

// checkMonotonic checks that reads, in the order one consumer made them,
// have strictly increasing offsets in each partition.
func (r *Result) checkMonotonic(who string, reads []Read) {
	last := map[int32]int64{}
	for _, rd := range reads {
		if prev, ok := last[rd.Partition]; ok && rd.Offset <= prev {
			r.NonMonotonic++
			r.example("non-monotonic: %s read offset %d after %d in partition %d", who, rd.Offset, prev, rd.Partition)
		}
		last[rd.Partition] = rd.Offset
	}
}
