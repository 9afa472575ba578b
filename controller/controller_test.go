package controller

import (
	"errors"
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
