package bench

import (
	"context"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/group"
)

// groupBroker runs an in-process broker whose group coordinators beat
// fast, so a run's rebalances take milliseconds.
func groupBroker(t *testing.T) string {
	t.Helper()
	b, err := broker.New(broker.Config{ListenAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Group: group.Config{HeartbeatInterval: 50 * time.Millisecond, SessionTimeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addr()
}

// A group verify with consumers killed (closed without committing) and
// replaced while the producers run passes every check, and the kills
// show: duplicates across hand-overs, all explained.
func TestVerifyGroupWithKills(t *testing.T) {
	addr := groupBroker(t)
	ctx := testCtx(t)
	h, err := VerifyGroup(ctx, Config{
		Client:   []client.Opt{client.SeedBrokers(addr), client.RetryBackoff(time.Millisecond, 50*time.Millisecond)},
		Consumer: []client.Opt{client.FetchMaxWait(20 * time.Millisecond)},
		Topic:    "vg", Create: true, Partitions: 6, Records: 6000, RecordSize: 40, Producers: 2, Consumers: 3,
		Rate: 3000, ReadTimeout: 20 * time.Second,
	}, GroupConfig{Group: "vg-group", KillInterval: 300 * time.Millisecond, CommitInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := CheckGroup(h)
	t.Logf("%+v", r)
	if r.Anomalies() != 0 || r.Acked != 6000 || r.Kills == 0 {
		t.Fatalf("group verify: %+v", r)
	}
	if len(h.Commits) == 0 || len(h.HandOvers) == 0 {
		t.Fatalf("no commit samples (%d) or hand-overs (%d)", len(h.Commits), len(h.HandOvers))
	}
}
