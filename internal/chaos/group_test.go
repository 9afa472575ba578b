package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/client"
)

// TestChaosGroup is issue 15's group workload under faults: producers
// write while the consumers of one group read and commit, one of them
// closed without committing and replaced every groupKillInterval, under a
// seeded schedule of GroupKinds (kill a partition's leader, isolate it,
// kill the group's coordinator, isolate it). bench.CheckGroup judges the run: every
// acknowledged record read by the group at least once, duplicates only
// across a hand-over of the partition, committed offsets never going
// backwards, and at the end the group's commits equal to the end offsets.
// Environment: SLUICE_CHAOS_SEED (default 1), SLUICE_CHAOS_GROUP_FAULT_TIME
// (60s), SLUICE_CHAOS_GROUP_RATE (records/s, 500).
func TestChaosGroup(t *testing.T) {
	const topic, group, partitions, consumers = "chaos-group", "chaos-group", 6, 3
	w := startWorkload(t, "TestChaosGroup", "GROUP", topic, partitions)
	h := w.h
	ctx, cancel := context.WithTimeout(t.Context(), w.faultTime+5*time.Minute)
	defer cancel()
	var (
		gh      bench.GroupHistory
		gerr    error
		verdict = make(chan struct{})
	)
	go func() {
		defer close(verdict)
		gh, gerr = bench.VerifyGroup(ctx, bench.Config{
			Client:   h.c.ClientOptions(),
			Consumer: []client.Opt{client.FetchMaxWait(100 * time.Millisecond)},
			Topic:    topic, RecordSize: 100, Producers: 2, Consumers: consumers, Rate: float64(w.rate),
			// Producing outlasts the faults: a baseline before the
			// first, acknowledgements after the last heal.
			Duration:    groupBaseline + w.faultTime + groupAfter,
			ReadTimeout: 90 * time.Second, DeliveryTimeout: 30 * time.Second,
		}, bench.GroupConfig{Group: group, KillInterval: groupKillInterval, CommitInterval: 200 * time.Millisecond})
	}()
	// The group exists (and has a coordinator to kill) once it commits.
	err := Poll(ctx, 60*time.Second, "the group committing", func(ctx context.Context) error {
		offs, err := h.admin.CommittedOffsets(ctx, group)
		if err == nil && len(offs) == 0 {
			err = fmt.Errorf("no commits yet")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v the group commits", w.since().Round(time.Millisecond))
	sleep(ctx, groupBaseline)
	w.injectFaults(ctx, t, topic, group)
	<-verdict
	if gerr != nil {
		t.Errorf("group verify: %v", gerr)
	}
	t.Logf("%v group verify done", w.since().Round(time.Millisecond))
	r := bench.CheckGroup(gh)
	t.Logf("group verify: sent %d, acknowledged %d, reads %d, consumers killed %d, duplicates across hand-overs %d, commit samples %d",
		r.Sent, r.Acked, r.Reads, r.Kills, r.Duplicates, len(gh.Commits))
	t.Logf("group verify: lost %d, unexpected %d, unexplained duplicates %d, unowned reads %d, commits backwards %d, partitions not committed to the end %d; end offsets %v, final commits %v",
		r.Lost, r.Unexpected, r.UnexplainedDuplicates, r.Unowned, r.Backwards, r.NotCommitted, gh.Ends, gh.Final)
	if r.Anomalies() != 0 {
		h.save("group-history.json", gh)
		t.Errorf("group check failed: %+v", r)
		for _, e := range r.Examples {
			t.Log("  ", e)
		}
	}
	if r.Acked == 0 {
		t.Error("nothing was acknowledged")
	}
	h.checkReplicas(topic)
	h.checkNoCrash()
}

// The group workload's timing: producing before the first fault and after
// the last, and how often a consumer is closed without committing.
const (
	groupBaseline     = 3 * time.Second
	groupAfter        = 10 * time.Second
	groupKillInterval = 15 * time.Second
)
