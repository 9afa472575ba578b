package bench

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// Commit's members commit on schedule and every commit lands: each
// partition's committed offset is the number of commits its owner made.
func TestCommitLatency(t *testing.T) {
	addr := groupBroker(t)
	ctx := testCtx(t)
	cfg := Config{
		Client: []client.Opt{client.SeedBrokers(addr), client.RetryBackoff(time.Millisecond, 50*time.Millisecond)},
		Topic:  "offs", Create: true, Partitions: 6, Consumers: 3, Group: "commit-bench",
		Records: 300, Rate: 300, ReadTimeout: 20 * time.Second,
	}
	r, err := Commit(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v latency %+v", r, r.Latency)
	if r.Workload != "commit" || r.Records != 300 || r.Errors != 0 || r.Latency == nil || r.Latency.Count != 300 {
		t.Fatalf("report %+v latency %+v", r, r.Latency)
	}
	// 100 commits per member, 1/300 s apart in all: about a second.
	if r.Seconds < 0.9 {
		t.Fatalf("300 commits at 300/s took %.2fs: not on schedule", r.Seconds)
	}
	cl, err := client.New(ctx, client.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got, err := cl.CommittedOffsets(ctx, "commit-bench")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 {
		t.Fatalf("committed %v, want 6 partitions", got)
	}
	for tp, off := range got {
		if off != 100 {
			t.Errorf("%v committed at %d, want 100 (one per commit of its member)", tp, off)
		}
	}
}

func TestCommitNeedsGroup(t *testing.T) {
	_, err := Commit(testCtx(t), Config{Client: []client.Opt{client.SeedBrokers("127.0.0.1:1")}, Topic: "x"})
	if err == nil {
		t.Fatal("no error without a group")
	}
}
