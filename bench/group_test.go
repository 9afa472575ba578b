package bench

import (
	"strings"
	"testing"
)

// groupHistory is a clean run: two records per partition of two
// partitions, read by consumer 0, which hands partition 1 over to
// consumer 1 after reading it; consumer 1 reads partition 1's second
// record again (a duplicate across the hand-over). Seqs go in tens, to
// leave room for the mutations.
func groupHistory() GroupHistory {
	return GroupHistory{
		Sends: []Send{
			{Producer: 0, Seq: 0, Value: "a", Outcome: Acked, Partition: 0, Offset: 0},
			{Producer: 0, Seq: 1, Value: "b", Outcome: Acked, Partition: 0, Offset: 1},
			{Producer: 0, Seq: 2, Value: "c", Outcome: Acked, Partition: 1, Offset: 0},
			{Producer: 0, Seq: 3, Value: "d", Outcome: Acked, Partition: 1, Offset: 1},
		},
		Reads: []GroupRead{
			{Consumer: 0, Seq: 20, Returned: 30, Partition: 0, Offset: 0, Value: "a"},
			{Consumer: 0, Seq: 20, Returned: 30, Partition: 1, Offset: 0, Value: "c"},
			{Consumer: 0, Seq: 40, Returned: 50, Partition: 1, Offset: 1, Value: "d"},
			{Consumer: 1, Seq: 45, Returned: 80, Partition: 1, Offset: 1, Value: "d"}, // its Poll began before the hand-over
			{Consumer: 0, Seq: 90, Returned: 100, Partition: 0, Offset: 1, Value: "b"},
		},
		Assigns:   []HandOver{{Consumer: 0, Seq: 10, Partition: 0}, {Consumer: 0, Seq: 10, Partition: 1}, {Consumer: 1, Seq: 70, Partition: 1}},
		HandOvers: []HandOver{{Consumer: 0, Seq: 60, Partition: 1}},
		Commits:   [][]int64{{-1, -1}, {1, 1}, {2, 1}, {2, 2}},
		Ends:      []int64{2, 2},
		Final:     []int64{2, 2},
		Kills:     1,
	}
}

// Each check passes on a clean history and fails on the anomaly it is
// for.
func TestCheckGroup(t *testing.T) {
	r := CheckGroup(groupHistory())
	if r.Anomalies() != 0 || r.Duplicates != 1 || r.Acked != 4 || r.Kills != 1 {
		t.Fatalf("clean history: %+v", r)
	}
	for _, tc := range []struct {
		name   string
		mutate func(h *GroupHistory)
		count  func(r *GroupResult) int64
		what   string
	}{
		{"lost", func(h *GroupHistory) { h.Reads = h.Reads[1:] },
			func(r *GroupResult) int64 { return r.Lost }, `lost: "a"`},
		{"unexpected", func(h *GroupHistory) {
			h.Reads = append(h.Reads, GroupRead{Consumer: 1, Seq: 90, Returned: 100, Value: "zz"})
		},
			func(r *GroupResult) int64 { return r.Unexpected }, `unexpected: "zz"`},
		{"duplicate with no hand-over", func(h *GroupHistory) { h.HandOvers = nil },
			func(r *GroupResult) int64 { return r.UnexplainedDuplicates }, "unexplained duplicate"},
		{"duplicate by the same consumer while it kept the partition", func(h *GroupHistory) {
			h.Reads[3].Consumer = 0
			h.HandOvers[0].Seq = 110
		},
			func(r *GroupResult) int64 { return r.UnexplainedDuplicates }, "unexplained duplicate"},
		// Consumer 1 read "d" and returned before consumer 0's Poll began;
		// consumer 0 had given partition 1 up before: it read a partition
		// it no longer owned (unowned too) after consumer 1 had.
		{"a read by the first owner after its hand-over", func(h *GroupHistory) {
			h.Reads[2] = GroupRead{Consumer: 0, Seq: 90, Returned: 100, Partition: 1, Offset: 1, Value: "d"}
		},
			func(r *GroupResult) int64 { return r.UnexplainedDuplicates }, "unexplained duplicate"},
		{"a read before the reader's assignment", func(h *GroupHistory) { h.Assigns[2].Seq = 90 },
			func(r *GroupResult) int64 { return r.Unowned }, "unowned: \"d\" at 1@1 read by consumer 1"},
		{"a read after the reader's hand-over", func(h *GroupHistory) {
			h.HandOvers = append(h.HandOvers, HandOver{Consumer: 0, Seq: 85, Partition: 0})
		},
			func(r *GroupResult) int64 { return r.Unowned }, "unowned: \"b\" at 0@1 read by consumer 0"},
		{"the first reader again, without the partition back", func(h *GroupHistory) {
			h.Reads[3] = GroupRead{Consumer: 0, Seq: 75, Returned: 80, Partition: 1, Offset: 1, Value: "d"}
		},
			func(r *GroupResult) int64 { return r.Unowned }, "unowned: \"d\" at 1@1 read by consumer 0"},
		{"hand-over after the second read returned", func(h *GroupHistory) { h.HandOvers[0].Seq = 85 },
			func(r *GroupResult) int64 { return r.UnexplainedDuplicates }, "unexplained duplicate"},
		{"hand-over before the first read's Poll", func(h *GroupHistory) { h.HandOvers[0].Seq = 35 },
			func(r *GroupResult) int64 { return r.UnexplainedDuplicates }, "unexplained duplicate"},
		{"commit backwards", func(h *GroupHistory) { h.Commits = append(h.Commits, []int64{1, 2}) },
			func(r *GroupResult) int64 { return r.Backwards }, "backwards: partition 0"},
		{"final commit short", func(h *GroupHistory) { h.Final[1] = 1 },
			func(r *GroupResult) int64 { return r.NotCommitted }, "not committed: partition 1"},
	} {
		h := groupHistory()
		tc.mutate(&h)
		r := CheckGroup(h)
		if tc.count(&r) != 1 || r.Anomalies() == 0 || !strings.Contains(strings.Join(r.Examples, "\n"), tc.what) {
			t.Errorf("%s: %+v, want one, with an example saying %q", tc.name, r, tc.what)
		}
	}
}

// Duplicates that at-least-once allows are explained whichever reader
// reads again and whichever Poll returned first.
func TestCheckGroupExplainedDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(h *GroupHistory)
	}{
		// The shape of a run that failed before the rule took it:
		// consumer 5 read partition 5 from offset 773 (Poll seq
		// 211-214), handed the partition over (221), another member had
		// it (assigned 233, handed over 256) without committing, and
		// consumer 5, given it back, read from the committed offset 773
		// again (268-270).
		{"the first reader again, once the partition came back to it", func(h *GroupHistory) {
			h.Reads[3] = GroupRead{Consumer: 0, Seq: 75, Returned: 80, Partition: 1, Offset: 1, Value: "d"}
			h.HandOvers = append(h.HandOvers, HandOver{Consumer: 1, Seq: 71, Partition: 1})
			h.Assigns = append(h.Assigns, HandOver{Consumer: 0, Seq: 72, Partition: 1})
		}},
		// Consumer 0's Poll took "d" before its hand-over but returned
		// after consumer 1, the next owner, had read "d" too: sorted by
		// Returned, consumer 1's read comes first.
		{"the first reader's Poll returned last", func(h *GroupHistory) {
			h.Reads[2] = GroupRead{Consumer: 0, Seq: 40, Returned: 90, Partition: 1, Offset: 1, Value: "d"}
			h.Reads[3] = GroupRead{Consumer: 1, Seq: 75, Returned: 80, Partition: 1, Offset: 1, Value: "d"}
		}},
	} {
		h := groupHistory()
		tc.mutate(&h)
		if r := CheckGroup(h); r.Anomalies() != 0 || r.Duplicates != 1 {
			t.Errorf("%s: %+v, want one duplicate, explained", tc.name, r)
		}
	}
}
