package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/client"
)

// TestChaosQueue is issue 16's queue workload under faults: producers
// write while the workers of one queue group receive, reject a share of
// the records and accept the rest, hang past the lease now and then and
// are stopped at random, under a seeded schedule of GroupKinds (kill a
// partition's leader, isolate it, kill the group's coordinator, isolate
// it). bench.CheckQueue judges the run: every acknowledged record
// accepted exactly once or dead-lettered, never both, never neither; no
// delivery past the limit; dead letters with their record's headers; no
// outcome after its lease applied. The brokers keep the default lease
// (30 s): a stopped worker's records come back after it.
// Environment: SLUICE_CHAOS_SEED (default 1), SLUICE_CHAOS_QUEUE_FAULT_TIME
// (60s), SLUICE_CHAOS_QUEUE_RATE (records/s, 500).
func TestChaosQueue(t *testing.T) {
	seed := envInt(t, "SLUICE_CHAOS_SEED", 1)
	faultTime := envDuration(t, "SLUICE_CHAOS_QUEUE_FAULT_TIME", 60*time.Second)
	rate := envInt(t, "SLUICE_CHAOS_QUEUE_RATE", 500)
	repro := fmt.Sprintf("SLUICE_CHAOS=1 SLUICE_CHAOS_SEED=%d SLUICE_CHAOS_QUEUE_FAULT_TIME=%v SLUICE_CHAOS_QUEUE_RATE=%d scripts/chaos.sh -run '^TestChaosQueue$'",
		seed, faultTime, rate)
	t.Logf("seed %d, %v of faults (%v), %d records/s; reproduce: %s", seed, faultTime, GroupKinds, rate, repro)
	const topic, group, partitions, workers = "chaos-queue", "chaos-queue", 6, 4
	steps := Schedule(uint64(seed), GroupKinds, partitions, faultTime)
	t.Logf("schedule: %s", FormatSchedule(steps))
	h := setup(t, repro, 0)
	h.createTopic(topic, partitions, nil)

	ctx, cancel := context.WithTimeout(t.Context(), faultTime+6*time.Minute)
	defer cancel()
	start := time.Now()
	since := func() time.Duration { return time.Since(start) }
	// The injector finds the coordinator to kill by describing the
	// consumer group of the same id, which has the same coordinator: an
	// administrator's commit makes that group exist.
	if err := Poll(ctx, 60*time.Second, "a commit naming the coordinator", func(ctx context.Context) error {
		_, err := h.admin.ResetOffsets(ctx, group, topic, client.ResetToEarliest(), true)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var (
		qh      bench.QueueHistory
		qerr    error
		verdict = make(chan struct{})
	)
	go func() {
		defer close(verdict)
		qh, qerr = bench.VerifyQueue(ctx, bench.Config{
			Client: h.c.ClientOptions(),
			Topic:  topic, RecordSize: 100, Producers: 2, Consumers: workers, Rate: float64(rate),
			Duration:    queueBaseline + faultTime + queueAfter,
			ReadTimeout: 90 * time.Second, DeliveryTimeout: 30 * time.Second,
		}, bench.QueueVerifyConfig{Group: group, RejectPercent: 5, HangPercent: 1, KillInterval: queueKillInterval, MaxDeliveries: 5})
	}()
	sleep(ctx, queueBaseline)
	in := &Injector{C: h.c, Admin: h.admin, Topic: topic, Group: group, Clock: since, Logf: t.Logf, Recover: 60 * time.Second}
	runErr := in.Run(ctx, steps, faultTime)
	hctx, hcancel := context.WithTimeout(context.Background(), time.Minute)
	if err := HealAll(hctx, h.c); err != nil {
		t.Errorf("heal all: %v", err)
	}
	hcancel()
	if runErr != nil {
		t.Error(runErr)
	}
	t.Logf("%v faults over: %s(%d in all)", since().Round(time.Millisecond), FormatCounts(Counts(in.Events)), len(in.Events))
	for i, ev := range in.Events {
		t.Logf("fault %d %s p%d on %s at %v, healed at %v, whole at %v %s",
			i, ev.Kind, ev.Partition, ev.Target, ev.Start.Round(time.Millisecond), ev.Healed.Round(time.Millisecond), ev.Recovered.Round(time.Millisecond), ev.Err)
	}
	<-verdict
	if qerr != nil {
		t.Errorf("queue verify: %v", qerr)
	}
	r := bench.CheckQueue(qh)
	t.Logf("queue verify: sent %d, acknowledged %d, accepted %d, dead-lettered %d, indeterminate outcomes %d, workers killed %d, late outcomes refused %d",
		r.Sent, r.Acked, r.Accepted, r.DeadLettered, r.Indeterminate, r.Kills, r.LateRefused)
	t.Logf("queue verify: lost %d, accepted twice %d, accepted and dead-lettered %d, over the limit %d, bad headers %d, unexpected %d, late outcomes applied %d",
		r.Lost, r.AcceptedTwice, r.AcceptedAndDead, r.OverLimit, r.BadHeaders, r.Unexpected, r.LateAccepted)
	if r.Violations() != 0 {
		h.save("queue-history.json", qh)
		t.Errorf("queue check failed: %+v", r)
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

// The queue workload's timing: producing before the first fault and
// after the last, and how often a worker is stopped holding its records.
const (
	queueBaseline     = 3 * time.Second
	queueAfter        = 10 * time.Second
	queueKillInterval = 15 * time.Second
)
