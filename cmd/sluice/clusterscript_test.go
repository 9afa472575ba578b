package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeBase finds a base port for scripts/cluster.sh whose client and raft
// ports (base+10*i+1, +2) are free for n brokers.
func freeBase(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(2000)*10
		ok := true
		for i := 1; i <= n && ok; i++ {
			for _, p := range []int{base + 10*i + 1, base + 10*i + 2} {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
				if err != nil {
					ok = false
					break
				}
				ln.Close()
			}
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range for the cluster")
	return 0
}

// TestClusterScript runs scripts/cluster.sh with the built binary: up 3,
// a topic through the cluster, kill and start a broker (a new epoch),
// status, down.
func TestClusterScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	script, err := filepath.Abs("../../scripts/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "SLUICE_BIN="+bin, fmt.Sprintf("SLUICE_CLUSTER_PORT=%d", freeBase(t, 3)))
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, script, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		cmd := exec.Command(script, "down", dir)
		cmd.Env = env
		cmd.Run()
	})
	out := strings.TrimSpace(run("up", "3", dir))
	lines := strings.Split(out, "\n")
	addrs := lines[len(lines)-1]
	if got := strings.Count(addrs, ",") + 1; got != 3 {
		t.Fatalf("up printed %q as its last line, want 3 addresses", addrs)
	}
	if saved, err := os.ReadFile(filepath.Join(dir, "brokers")); err != nil || strings.TrimSpace(string(saved)) != addrs {
		t.Fatalf("DIR/brokers = %q (%v), want %q", saved, err, addrs)
	}
	sluice(t, bin, addrs, "", "topic", "create", "spread", "--partitions", "3")
	sluice(t, bin, addrs, "a\nb\nc\n", "produce", "spread")

	epochOf := func(id int32) int64 {
		t.Helper()
		var brokers []struct {
			ID    int32  `json:"id"`
			Epoch int64  `json:"epoch"`
			State string `json:"state"`
		}
		if err := json.Unmarshal([]byte(sluice(t, bin, addrs, "", "cluster", "brokers", "--json")), &brokers); err != nil {
			t.Fatal(err)
		}
		for _, b := range brokers {
			if b.ID == id {
				return b.Epoch
			}
		}
		t.Fatalf("broker %d not listed", id)
		return 0
	}
	before := epochOf(2)
	run("kill", "2", dir)
	run("start", "2", dir)
	deadline := time.Now().Add(30 * time.Second)
	for epochOf(2) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("broker 2 restarted but its epoch is still %d", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := sluice(t, bin, addrs, "", "consume", "spread", "--from-beginning", "--max-messages", "3", "--timeout", "10s"); len(strings.Fields(got)) != 3 {
		t.Fatalf("consumed %q after the restart, want 3 records", got)
	}
	if st := run("status", dir); !strings.Contains(st, "3 alive of 3") {
		t.Fatalf("status:\n%s", st)
	}
	run("down", dir)
	for i := 1; i <= 3; i++ {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprint(i), "pid")); !os.IsNotExist(err) {
			t.Errorf("broker %d pid file left after down", i)
		}
	}
}
