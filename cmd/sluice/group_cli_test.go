package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
)

// groupJSON reads `sluice group describe --json`.
func groupJSON(t *testing.T, bin, addr, group string) client.GroupDescription {
	t.Helper()
	var d client.GroupDescription
	out := sluice(t, bin, addr, "", "group", "describe", group, "--json")
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("describe --json: %v\n%s", err, out)
	}
	return d
}

// sumOffsets sums committed offsets and lags of a description.
func sumOffsets(d client.GroupDescription) (committed, lag int64) {
	for _, o := range d.Offsets {
		committed += max(o.Committed, 0)
		lag += o.Lag
	}
	return committed, lag
}

// consume --group goes on where the group stopped; group list, describe
// (committed offsets and lag, also of partitions with no commit),
// reset-offsets (preview, then --execute) and delete work on it.
func TestCLIConsumeGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	addr, _ := startBroker(t, bin, t.TempDir())
	sluice(t, bin, addr, "", "topic", "create", "gt", "--partitions", "3")
	var in strings.Builder
	for i := range 10 {
		fmt.Fprintf(&in, "v%d\n", i)
	}
	sluice(t, bin, addr, in.String(), "produce", "gt")

	first := strings.Fields(sluice(t, bin, addr, "", "consume", "gt", "--group", "cg", "--from", "earliest", "--max-messages", "4"))
	if len(first) != 4 {
		t.Fatalf("first consumer printed %v", first)
	}
	d := groupJSON(t, bin, addr, "cg")
	if c, lag := sumOffsets(d); c != 4 || lag != 6 || len(d.Members) != 0 || len(d.Offsets) != 3 {
		t.Fatalf("after 4 of 10 records: committed %d, lag %d, %d members, offsets %+v", c, lag, len(d.Members), d.Offsets)
	}
	rest := strings.Fields(sluice(t, bin, addr, "", "consume", "gt", "--group", "cg", "--timeout", "3s"))
	seen := map[string]int{}
	for _, v := range append(first, rest...) {
		seen[v]++
	}
	if len(seen) != 10 || len(first)+len(rest) != 10 {
		t.Fatalf("the two consumers printed %v and %v: want every record once", first, rest)
	}
	if c, lag := sumOffsets(groupJSON(t, bin, addr, "cg")); c != 10 || lag != 0 {
		t.Fatalf("after all: committed %d, lag %d", c, lag)
	}
	if out := sluice(t, bin, addr, "", "group", "list"); !strings.Contains(out, "cg ") {
		t.Fatalf("group list:\n%s", out)
	}
	if out := sluice(t, bin, addr, "", "group", "describe", "cg"); !strings.Contains(out, "COMMITTED") || !strings.Contains(out, "group cg:") {
		t.Fatalf("group describe:\n%s", out)
	}

	plan := sluice(t, bin, addr, "", "group", "reset-offsets", "cg", "--topic", "gt", "--to-earliest")
	if !strings.Contains(plan, "preview only") {
		t.Fatalf("reset preview:\n%s", plan)
	}
	if c, _ := sumOffsets(groupJSON(t, bin, addr, "cg")); c != 10 {
		t.Fatalf("a preview moved the offsets: committed %d", c)
	}
	sluice(t, bin, addr, "", "group", "reset-offsets", "cg", "--topic", "gt", "--to-earliest", "--execute")
	if c, lag := sumOffsets(groupJSON(t, bin, addr, "cg")); c != 0 || lag != 10 {
		t.Fatalf("after reset to earliest: committed %d, lag %d", c, lag)
	}
	again := strings.Fields(sluice(t, bin, addr, "", "consume", "gt", "--group", "cg", "--timeout", "3s"))
	if len(again) != 10 {
		t.Fatalf("after the reset the group read %d records, want all 10", len(again))
	}
	sluice(t, bin, addr, "", "group", "delete", "cg")
	if _, errOut, err := sluiceResult(bin, addr, "", "group", "describe", "cg"); err == nil || !strings.Contains(errOut, "GROUP_ID_NOT_FOUND") {
		t.Fatalf("describe a deleted group: %v %s", err, errOut)
	}
}

// A consumer SIGKILLed in a group loses nothing: a static member started
// again with its instance id takes its partitions back at once and reads
// on from the group's last commit; what was printed after that commit is
// printed again (at least once), nothing is missing.
func TestCLIConsumeGroupKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	addr, _ := startBroker(t, bin, t.TempDir())
	sluice(t, bin, addr, "", "topic", "create", "gk", "--partitions", "2")
	const n = 1000
	produce := func(from int) {
		var in strings.Builder
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&in, "v%d\n", i)
		}
		sluice(t, bin, addr, in.String(), "produce", "gk")
	}
	produce(0)

	cmd := exec.Command(bin, "--brokers", addr, "consume", "gk", "--group", "kg", "--from", "earliest", "--instance-id", "k1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	sc := bufio.NewScanner(stdout)
	var first []string
	for len(first) < n && sc.Scan() {
		first = append(first, sc.Text())
	}
	// The first auto-commit (5 s in) covers the first n records; then n
	// more arrive and the member is killed somewhere in them.
	poll.Until(t, 20*time.Second, "the first records committed", func() error {
		if c, _ := sumOffsets(groupJSON(t, bin, addr, "kg")); c != n {
			return fmt.Errorf("committed %d", c)
		}
		return nil
	})
	produce(n)
	for len(first) < n+n/2 && sc.Scan() {
		first = append(first, sc.Text())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	_ = cmd.Wait()
	start := time.Now()
	// --from earliest: the second records may have gone to the partition
	// that had none, so no commit yet.
	rest := strings.Fields(sluice(t, bin, addr, "", "consume", "gk", "--group", "kg", "--instance-id", "k1",
		"--from", "earliest", "--timeout", "3s"))
	seen := map[string]bool{}
	for _, v := range append(first, rest...) {
		seen[v] = true
	}
	if len(seen) != 2*n {
		t.Fatalf("printed %d distinct records across the kill, want %d", len(seen), 2*n)
	}
	if len(rest) > n {
		t.Fatalf("the restarted member printed %d records: it did not start at the group's commit (%d)", len(rest), n)
	}
	if c, lag := sumOffsets(groupJSON(t, bin, addr, "kg")); c != 2*n || lag != 0 {
		t.Fatalf("after the restarted member: committed %d, lag %d", c, lag)
	}
	t.Logf("killed after printing %d records; the restarted member printed %d (%d again) in %v",
		len(first), len(rest), len(first)+len(rest)-2*n, time.Since(start).Round(time.Millisecond))
}
