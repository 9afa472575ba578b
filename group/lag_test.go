package group

import (
	"reflect"
	"testing"
)

// TestConsumption: a group's consumed topics are its members'
// subscriptions (existing topics only) and the topics it committed to,
// each with one committed offset per partition (-1 for none); a group
// that only committed (no members) is listed too.
func TestConsumption(t *testing.T) {
	h := newHarness(t, map[string]int32{"a": 3, "b": 2, "c": 1})
	// Commits (while the group has no member: a member commits only
	// partitions it holds) to a topic no member subscribes to, and to a
	// partition past what the coordinator knows of the topic.
	if _, err := commit(h, "g", "", -1, "b", 0, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := commit(h, "g", "", -1, "gone", 2, 5); err != nil {
		t.Fatal(err)
	}
	m := &client{names: []string{"a", "missing"}}
	h.settle("g", m)
	if _, err := commit(h, "g", m.id, m.epoch, "a", 1, 40); err != nil {
		t.Fatal(err)
	}
	if _, err := commit(h, "admin", "", -1, "c", 0, 9); err != nil {
		t.Fatal(err)
	}
	want := []Consumption{
		{GroupID: "admin", Topics: []ConsumedTopic{{Topic: "c", Committed: []int64{9}}}},
		{GroupID: "g", Members: 1, Topics: []ConsumedTopic{
			{Topic: "a", Committed: []int64{-1, 40, -1}},
			{Topic: "b", Committed: []int64{7, -1}},
			{Topic: "gone", Committed: []int64{-1, -1, 5}},
		}},
	}
	if got := h.c.Consumption(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Consumption:\n got %+v\nwant %+v", got, want)
	}
}
