package chaos

import (
	"context"
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
	const topic, group, partitions, workers = "chaos-queue", "chaos-queue", 6, 4
	w := startWorkload(t, "TestChaosQueue", "QUEUE", topic, partitions)
	h := w.h
	ctx, cancel := context.WithTimeout(t.Context(), w.faultTime+6*time.Minute)
	defer cancel()
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
			Topic:  topic, RecordSize: 100, Producers: 2, Consumers: workers, Rate: float64(w.rate),
			Duration:    queueBaseline + w.faultTime + queueAfter,
			ReadTimeout: 90 * time.Second, DeliveryTimeout: 30 * time.Second,
		}, bench.QueueVerifyConfig{Group: group, RejectPercent: 5, HangPercent: 1, KillInterval: queueKillInterval, MaxDeliveries: 5})
	}()
	sleep(ctx, queueBaseline)
	w.injectFaults(ctx, t, topic, group)
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
