package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// readPlan takes Kafka's reassignment JSON and refuses what is not one.
func TestReadPlan(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body, err string
	}{
		{"ok", `{"version":1,"partitions":[{"topic":"t","partition":2,"replicas":[2,3,4]}]}`, ""},
		{"version", `{"version":2,"partitions":[{"topic":"t","partition":2,"replicas":[2,3,4]}]}`, "version 2, want 1"},
		{"empty", `{"version":1,"partitions":[]}`, "no partitions"},
		{"not json", `version: 1`, "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".json")
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := readPlan(path)
			if tc.err == "" {
				if err != nil || len(p.Partitions) != 1 || p.Partitions[0].Topic != "t" || p.Partitions[0].Partition != 2 ||
					len(p.Partitions[0].Replicas) != 3 {
					t.Fatalf("plan %+v, %v", p, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("%v, want %q", err, tc.err)
			}
		})
	}
	if _, err := readPlan(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("a missing file was read")
	}
}

// A move's view: the target without the removing replicas, the ETA from
// the bytes remaining shrinking over the interval, a queued move's
// target, and describe's line for each.
func TestMoveView(t *testing.T) {
	before := client.Move{Topic: "t", Partition: 1, Leader: 1, Replicas: []int32{2, 3, 4, 1}, Adding: []int32{4}, Removing: []int32{1},
		Progress: true, BytesRemaining: 3000}
	now := before
	now.BytesRemaining = 1000
	v := moveView(now, []client.Move{before}, 2*time.Second)
	if !slices.Equal(v.Target, []int32{2, 3, 4}) || v.BytesRemaining != 1000 || v.ETASeconds != 1 || v.Queued {
		t.Fatalf("view %+v", v)
	}
	if v := moveView(before, nil, time.Second); v.ETASeconds != -1 {
		t.Fatalf("ETA %v without an earlier listing", v.ETASeconds)
	}
	q := moveView(client.Move{Topic: "t", Partition: 2, Replicas: []int32{1, 2, 3}, Queued: []int32{2, 3, 4}}, nil, time.Second)
	if !q.Queued || !slices.Equal(q.Target, []int32{2, 3, 4}) || q.BytesRemaining != -1 {
		t.Fatalf("queued view %+v", q)
	}
	tj := topicJSON{Name: "t", Partitions: []partitionJSON{{Partition: 1}, {Partition: 2}, {Partition: 3}}}
	addMoves(&tj, []client.Move{now, {Topic: "t", Partition: 2, Replicas: []int32{1, 2, 3}, Queued: []int32{2, 3, 4}}})
	var b strings.Builder
	if err := printTopic(&b, tj, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"moving: partition 1: to [2 3 4], adding [4], removing [1], 1000 B left",
		"moving: partition 2: queued to [2 3 4]"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("describe lacks %q:\n%s", want, b.String())
		}
	}
	if tj.Partitions[2].Move != nil {
		t.Fatal("a partition not moving got a move")
	}
}
