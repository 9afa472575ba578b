package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
