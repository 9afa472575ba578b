package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// queueJSON reads `sluice queue describe --json`.
func queueJSON(t *testing.T, bin, addr, group string) client.QueueGroupDescription {
	t.Helper()
	var d client.QueueGroupDescription
	out := sluice(t, bin, addr, "", "queue", "describe", group, "--json")
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("queue describe --json: %v\n%s", err, out)
	}
	return d
}

// queue receive settles what it prints (accept, reject); describe shows
// the windows and the dead letters; redrive republishes the dead letters
// once; reset delivers everything again.
func TestCLIQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	addr, _ := startBroker(t, bin, t.TempDir())
	sluice(t, bin, addr, "", "topic", "create", "qt", "--partitions", "2")
	var in strings.Builder
	for i := range 10 {
		fmt.Fprintf(&in, "v%d\n", i)
	}
	sluice(t, bin, addr, in.String(), "produce", "qt")

	accepted := strings.Fields(sluice(t, bin, addr, "", "queue", "receive", "qt", "--group", "w", "--max", "7"))
	rejected := strings.Fields(sluice(t, bin, addr, "", "queue", "receive", "qt", "--group", "w", "--reject", "--reason", "nope", "--timeout", "3s"))
	all := append(append([]string{}, accepted...), rejected...)
	sort.Strings(all)
	if len(accepted) != 7 || len(rejected) != 3 || strings.Join(all, " ") != "v0 v1 v2 v3 v4 v5 v6 v7 v8 v9" {
		t.Fatalf("accepted %v, rejected %v: want every record once", accepted, rejected)
	}
	d := queueJSON(t, bin, addr, "w")
	var dead int64
	for _, p := range d.Partitions {
		dead += p.DeadLettered
		if p.Start != p.End || p.Acquired != 0 {
			t.Fatalf("partition not drained: %+v", p)
		}
	}
	if dead != 3 || len(d.Partitions) != 2 {
		t.Fatalf("describe: %+v", d)
	}
	if out := sluice(t, bin, addr, "", "queue", "describe", "w"); !strings.Contains(out, "DEAD-LETTERED") || !strings.Contains(out, "queue group w:") {
		t.Fatalf("queue describe:\n%s", out)
	}
	dl := sluice(t, bin, addr, "", "consume", "qt.dlq", "--from-beginning", "--timeout", "3s", "--format", "{value}")
	if got := strings.Fields(dl); len(got) != 3 {
		t.Fatalf("dead-letter topic holds %v, want %v", got, rejected)
	}

	// Redrive: the three come back as new records, once.
	if out := sluice(t, bin, addr, "", "queue", "redrive", "w"); !strings.Contains(out, "qt.dlq: 3 dead letters republished") {
		t.Fatalf("redrive:\n%s", out)
	}
	if out := sluice(t, bin, addr, "", "queue", "redrive", "w"); !strings.Contains(out, "qt.dlq: 0 dead letters republished") {
		t.Fatalf("second redrive:\n%s", out)
	}
	again := strings.Fields(sluice(t, bin, addr, "", "queue", "receive", "qt", "--group", "w", "--timeout", "3s"))
	sort.Strings(again)
	sort.Strings(rejected)
	if strings.Join(again, " ") != strings.Join(rejected, " ") {
		t.Fatalf("after redrive received %v, want %v", again, rejected)
	}

	// Per-group settings: set, shown by config and describe, refused
	// with the key and why when out of bounds, reverted.
	out := sluice(t, bin, addr, "", "queue", "config", "w", "--set", "queue.lease.ms=10000", "--set", "queue.backoff.ms=1000,5000")
	for _, want := range []string{"queue.lease.ms               10000        false", "queue.backoff.ms             1000,5000    false",
		"queue.dlq.topic              <topic>.dlq  true"} {
		if !strings.Contains(out, want) {
			t.Fatalf("queue config: want %q in\n%s", want, out)
		}
	}
	if out := sluice(t, bin, addr, "", "queue", "describe", "w"); !strings.Contains(out, "lease 10s") ||
		!strings.Contains(out, "settings: queue.backoff.ms=1000,5000* queue.dlq.topic=<topic>.dlq queue.lease.ms=10000* queue.max.delivery.attempts=5 queue.max.in.flight=2000") {
		t.Fatalf("queue describe with settings:\n%s", out)
	}
	var withSettings struct {
		Group    string `json:"group"`
		Settings struct {
			Lease               time.Duration   `json:"lease_ns"`
			MaxDeliveryAttempts int             `json:"max_delivery_attempts"`
			Backoff             []time.Duration `json:"backoff_ns"`
			MaxInFlight         int             `json:"max_in_flight"`
			DLQTopic            *string         `json:"dlq_topic"`
			Set                 []string        `json:"set"`
		} `json:"settings"`
	}
	out = sluice(t, bin, addr, "", "queue", "describe", "w", "--json")
	if err := json.Unmarshal([]byte(out), &withSettings); err != nil {
		t.Fatalf("queue describe --json: %v\n%s", err, out)
	}
	if s := withSettings.Settings; withSettings.Group != "w" || s.Lease != 10*time.Second || s.MaxDeliveryAttempts != 5 || s.MaxInFlight != 2000 ||
		!slices.Equal(s.Backoff, []time.Duration{time.Second, 5 * time.Second}) || s.DLQTopic == nil || *s.DLQTopic != "" ||
		!slices.Equal(s.Set, []string{"queue.backoff.ms", "queue.lease.ms"}) {
		t.Fatalf("queue describe --json settings: %+v\n%s", s, out)
	}
	if _, stderr, err := sluiceResult(bin, addr, "", "queue", "config", "w", "--set", "queue.max.in.flight=0"); err == nil ||
		!strings.Contains(stderr, "queue.max.in.flight=0: below the minimum 1") {
		t.Fatalf("a cap of 0: %v\n%s", err, stderr)
	}
	if out := sluice(t, bin, addr, "", "queue", "config", "w", "--delete", "queue.lease.ms", "--delete", "queue.backoff.ms", "--json"); strings.Contains(out, `"is_default": false`) {
		t.Fatalf("after --delete:\n%s", out)
	}
	if out := sluice(t, bin, addr, "", "queue", "describe", "w", "--json"); !strings.Contains(out, `"set": []`) || !strings.Contains(out, `"lease_ns": 30000000000`) ||
		!strings.Contains(out, `"backoff_ns": []`) {
		t.Fatalf("queue describe --json after --delete:\n%s", out)
	}

	// Reset to the earliest: all 13 records again.
	if out := sluice(t, bin, addr, "", "queue", "reset", "w", "--to-earliest"); !strings.Contains(out, "NEW-START") {
		t.Fatalf("reset:\n%s", out)
	}
	if got := strings.Fields(sluice(t, bin, addr, "", "queue", "receive", "qt", "--group", "w", "--timeout", "3s", "--format", "{deliveries}")); len(got) != 13 || got[0] != "1" {
		t.Fatalf("after reset: %v", got)
	}
}

// --max-queue-groups (here from the config file, as SLUICE_MAX_QUEUE_GROUPS
// or the flag would) bounds the queue groups a coordinator holds: with
// one offsets partition every group has the same coordinator, and the
// second group's receive is refused while the first goes on.
func TestCLIMaxQueueGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	cfg := writeFile(t, "max-queue-groups: 1\noffsets-topic-partitions: 1\n")
	p := startBrokerProcess(t, bin, t.TempDir(), syscall.SIGTERM, "--config", cfg)
	defer p.stop()
	sluice(t, bin, p.addr, "", "topic", "create", "mq", "--partitions", "1")
	sluice(t, bin, p.addr, "a\nb\n", "produce", "mq")
	if got := strings.Fields(sluice(t, bin, p.addr, "", "queue", "receive", "mq", "--group", "first", "--max", "1")); len(got) != 1 {
		t.Fatalf("first group received %v", got)
	}
	_, stderr, err := sluiceResult(bin, p.addr, "", "queue", "receive", "mq", "--group", "second", "--max", "1", "--timeout", "3s")
	if err == nil || !strings.Contains(stderr, "GROUP_MAX_SIZE_REACHED") {
		t.Fatalf("a second queue group past --max-queue-groups 1: %v\n%s", err, stderr)
	}
	if got := strings.Fields(sluice(t, bin, p.addr, "", "queue", "receive", "mq", "--group", "first", "--max", "1")); len(got) != 1 {
		t.Fatalf("first group again received %v", got)
	}
}
