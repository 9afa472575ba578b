package controller

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A group config change is applied, survives a snapshot, and a group left
// with no key leaves the metadata; Kafka's aliases are stored under
// sluice's keys.
func TestAlterGroupConfigs(t *testing.T) {
	m := applyAll(t, threeBrokers(t),
		AlterGroupConfigs{Group: "workers", Set: map[string]string{"share.record.lock.duration.ms": "1000", ConfigQueueMaxDeliveryAttempts: "2"}},
		AlterGroupConfigs{Group: "other", Set: map[string]string{ConfigQueueBackoffMs: "100,200", ConfigQueueDLQTopic: "dead"}})
	want := map[string]map[string]string{
		"workers": {ConfigQueueLeaseMs: "1000", ConfigQueueMaxDeliveryAttempts: "2"},
		"other":   {ConfigQueueBackoffMs: "100,200", ConfigQueueDLQTopic: "dead"},
	}
	if !reflect.DeepEqual(m.GroupConfigs, want) {
		t.Fatalf("group configs %v, want %v", m.GroupConfigs, want)
	}
	if v, ok := m.GroupConfig("workers", "share.delivery.count.limit"); !ok || v != "2" {
		t.Fatalf("alias read: %q %v", v, ok)
	}
	if _, ok := m.GroupConfig("nobody", ConfigQueueLeaseMs); ok {
		t.Fatal("a group without configs has one")
	}

	m.CommandLevel = CommandVersion
	got, index, err := decodeSnapshot(encodeSnapshot(m, 9))
	if err != nil || index != 9 || !reflect.DeepEqual(got, m) {
		t.Fatalf("snapshot: %+v, %d, %v; want %+v", got.GroupConfigs, index, err, m.GroupConfigs)
	}
	// Clone is deep: changing the copy leaves m alone.
	c := m.Clone()
	c.GroupConfigs["workers"][ConfigQueueLeaseMs] = "9"
	if m.GroupConfigs["workers"][ConfigQueueLeaseMs] != "1000" {
		t.Fatal("Clone shares a group's configs")
	}

	// Removing keys (by either name); the last one takes the group out.
	m2, _ := applyChecked(t, m, AlterGroupConfigs{Group: "workers", Remove: []string{"share.record.lock.duration.ms"}})
	if !reflect.DeepEqual(m2.GroupConfigs["workers"], map[string]string{ConfigQueueMaxDeliveryAttempts: "2"}) {
		t.Fatalf("after removing the lease: %v", m2.GroupConfigs["workers"])
	}
	m2, _ = applyChecked(t, m2, AlterGroupConfigs{Group: "workers", Remove: []string{ConfigQueueMaxDeliveryAttempts}})
	if _, ok := m2.GroupConfigs["workers"]; ok || len(m2.GroupConfigs) != 1 {
		t.Fatalf("a group with no key left stays: %v", m2.GroupConfigs)
	}
	m2, _ = applyChecked(t, m2, AlterGroupConfigs{Group: "other", Remove: []string{ConfigQueueBackoffMs, ConfigQueueDLQTopic}})
	if m2.GroupConfigs != nil {
		t.Fatalf("no group has configs: %v", m2.GroupConfigs)
	}
	// Removing from a group with none changes nothing.
	if m3, _, err := Apply(m2, AlterGroupConfigs{Group: "x", Remove: []string{ConfigQueueLeaseMs}}); err != nil || m3 != m2 {
		t.Fatalf("no-op removal: %v, changed %v", err, m3 != m2)
	}
}

// Every bad change is refused at the write path with the key and the
// reason, and leaves the metadata as it was.
func TestAlterGroupConfigsRefuses(t *testing.T) {
	m := threeBrokers(t)
	for _, tc := range []struct {
		c    AlterGroupConfigs
		want string
	}{
		{AlterGroupConfigs{Group: "", Set: map[string]string{ConfigQueueLeaseMs: "1000"}}, "group id"},
		{AlterGroupConfigs{Group: strings.Repeat("g", 256), Set: map[string]string{ConfigQueueLeaseMs: "1000"}}, "group id"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{"queue.lease": "1000"}}, `unknown key "queue.lease"`},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueLeaseMs: "999"}}, "queue.lease.ms=999: below the minimum 1000"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueLeaseMs: "3600001"}}, "queue.lease.ms=3600001: above the maximum 3600000"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueLeaseMs: "1s"}}, "not an integer"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{"share.delivery.count.limit": "0"}}, "queue.max.delivery.attempts=0: below the minimum 1"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueMaxDeliveryAttempts: "101"}}, "above the maximum 100"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueMaxInFlight: "10001"}}, "queue.max.in.flight=10001: above the maximum 10000"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueBackoffMs: "100,x"}}, `queue.backoff.ms="100,x": delay "x"`},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueBackoffMs: "-1"}}, "from 0 to 3600000"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueBackoffMs: strings.Repeat("1,", 32) + "1"}}, "33 delays, at most 32"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueDLQTopic: "bad name"}}, `queue.dlq.topic="bad name"`},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueDLQTopic: "__consumer_offsets"}}, "internal"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueLeaseMs: "1000", "share.record.lock.duration.ms": "2000"}}, "set twice"},
		{AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueLeaseMs: "1000"}, Remove: []string{"share.record.lock.duration.ms"}}, "both set and removed"},
		{AlterGroupConfigs{Group: "g", Remove: []string{"retention.ms"}}, `unknown key "retention.ms"`},
	} {
		got, _, err := Apply(m, tc.c)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) || got != m {
			t.Errorf("%+v: %v, want ErrInvalidConfig with %q", tc.c, err, tc.want)
		}
	}
}

func TestParseQueueBackoff(t *testing.T) {
	got, err := ParseQueueBackoff(" 0, 1000 ,3600000")
	if err != nil || !reflect.DeepEqual(got, []time.Duration{0, time.Second, time.Hour}) {
		t.Fatalf("%v, %v", got, err)
	}
	if got, err := ParseQueueBackoff(""); got != nil || err != nil {
		t.Fatalf("empty: %v, %v", got, err)
	}
}

// A version 7 snapshot (the build before group configs) restores with
// none: its bytes are a version 9 one's without the last two zero
// counts (group configs, removed brokers).
func TestSnapshotVersion7Restores(t *testing.T) {
	m := busyFSM(t).Metadata().Clone()
	v7 := olderSnapshot(t, m, 7, []byte{0, 0})
	m.CommandLevel = 7
	got, _, err := decodeSnapshot(v7)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("version 7: %v", err)
	}
	// Group ids out of order, or a group with no config, are refused:
	// one encoding per metadata.
	m.GroupConfigs = map[string]map[string]string{"b": {ConfigQueueLeaseMs: "1000"}, "a": {ConfigQueueLeaseMs: "1000"}}
	m.CommandLevel = CommandVersion
	b := encodeSnapshot(m, 1)
	body := b[snapshotHeader : len(b)-4]
	i := strings.Index(string(body), "\x01a")
	j := strings.Index(string(body), "\x01b")
	swapped := []byte(string(body[:i]) + string(body[j:]) + string(body[i:j]))
	if _, _, err := decodeSnapshot(encodeSnapshotRaw(swapped)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("groups out of order: %v, want ErrCorrupt", err)
	}
}
