package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestValidateTopicName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"orders", true},
		{"a.b_c-D9", true},
		{strings.Repeat("x", MaxTopicNameLen), true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"ü", false},
		{strings.Repeat("x", MaxTopicNameLen+1), false},
	} {
		err := ValidateTopicName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTopicName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("ValidateTopicName(%q) = %v, not ErrInvalidTopic", tc.name, err)
		}
	}
}

func TestValidateConfig(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		ok         bool
	}{
		{ConfigRetentionMs, "-1", true},
		{ConfigRetentionMs, "-2", false},
		{ConfigRetentionMs, "1h", false},
		{ConfigSegmentBytes, "4096", true},
		{ConfigSegmentBytes, "100", false},
		{ConfigFsync, "always", true},
		{ConfigFsync, "sometimes", false},
		{ConfigUncleanElection, "true", true},
		{ConfigUncleanElection, "yes", false},
		{ConfigUncleanRecovery, RecoveryBalanced, true},
		{ConfigUncleanRecovery, RecoveryManual, true},
		{ConfigUncleanRecovery, "proactive", false},
		{"no.such.key", "1", false},
	} {
		err := ValidateConfig(tc.key, tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateConfig(%s=%s) = %v, want ok=%v", tc.key, tc.value, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ValidateConfig(%s=%s) = %v, not ErrInvalidConfig", tc.key, tc.value, err)
		}
	}
	for _, d := range TopicConfigDefs() {
		if err := ValidateConfig(d.Key, d.Default); err != nil {
			t.Errorf("default of %s is invalid: %v", d.Key, err)
		}
	}
}

func TestPlace(t *testing.T) {
	brokers := []int32{1, 2, 3}
	placed, err := Place(brokers, 6, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]int{}
	replicas := map[int32]int{}
	for _, r := range placed {
		if len(r) != 3 {
			t.Fatalf("replicas %v, want 3", r)
		}
		seen := map[int32]bool{}
		for _, b := range r {
			if seen[b] {
				t.Fatalf("broker %d twice in %v", b, r)
			}
			seen[b] = true
			replicas[b]++
		}
		leaders[r[0]]++
	}
	for _, b := range brokers {
		if leaders[b] != 2 || replicas[b] != 6 {
			t.Errorf("broker %d: %d leaders, %d replicas; want 2 and 6", b, leaders[b], replicas[b])
		}
	}
	for _, tc := range []struct {
		n   int32
		rf  int16
		err error
	}{
		{0, 1, ErrInvalidPartitions},
		{-1, 1, ErrInvalidPartitions},
		{1, 0, ErrInvalidReplicationFactor},
		{1, 4, ErrInvalidReplicationFactor},
	} {
		if _, err := Place(brokers, tc.n, tc.rf, 0); !errors.Is(err, tc.err) {
			t.Errorf("Place(n=%d, rf=%d) = %v, want %v", tc.n, tc.rf, err, tc.err)
		}
	}
}

func TestRackAwarePlacement(t *testing.T) {
	racks := map[int32]string{1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
	order := RackOrder([]int32{1, 2, 3, 4, 5, 6}, func(id int32) string { return racks[id] })
	if want := []int32{1, 3, 5, 2, 4, 6}; !slices.Equal(order, want) {
		t.Fatalf("RackOrder = %v, want %v", order, want)
	}
	placed, err := Place(order, 12, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]int{}
	for p, replicas := range placed {
		seen := map[string]bool{}
		for _, b := range replicas {
			if seen[racks[b]] {
				t.Fatalf("partition %d: replicas %v put two on rack %s", p, replicas, racks[b])
			}
			seen[racks[b]] = true
		}
		leaders[replicas[0]]++
	}
	for id := range racks {
		if leaders[id] != 2 {
			t.Errorf("broker %d leads %d partitions, want 2", id, leaders[id])
		}
	}
	// Without racks the order is the brokers' own.
	plain := []int32{1, 2, 3}
	if got := RackOrder(plain, func(int32) string { return "" }); !slices.Equal(got, plain) {
		t.Fatalf("RackOrder without racks = %v", got)
	}
	// Uneven racks: every broker appears once.
	uneven := map[int32]string{1: "a", 2: "a", 3: "a", 4: "b"}
	got := RackOrder([]int32{1, 2, 3, 4}, func(id int32) string { return uneven[id] })
	if want := []int32{1, 4, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("RackOrder uneven = %v, want %v", got, want)
	}
}

// CreateTopic's plan spreads each partition's replicas over the brokers'
// racks.
func TestPlanCreateTopicUsesRacks(t *testing.T) {
	m := NewMetadata()
	for id, rack := range map[int32]string{1: "a", 2: "a", 3: "b", 4: "b"} {
		var err error
		if m, _, err = Apply(m, RegisterBroker{ID: id, Addr: fmt.Sprintf("h:%d", id), Rack: rack, RaftAddr: fmt.Sprintf("h:%d", id+100)}); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := PlanCreateTopic(m, TopicSpec{Name: "t", Partitions: 8, ReplicationFactor: 2})
	if err != nil {
		t.Fatal(err)
	}
	for p, replicas := range plan.Replicas {
		if r0, r1 := m.Brokers[replicas[0]].Rack, m.Brokers[replicas[1]].Rack; r0 == r1 {
			t.Fatalf("partition %d: replicas %v both on rack %s", p, replicas, r0)
		}
	}
}
