package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The frame shared by the client workloads (TestChaosGroup, TestChaosQueue):
// a seeded schedule of GroupKinds over one topic, the workload running
// beside it, every fault healed at the end.

// workload is one run of a client workload: its harness, its schedule
// and its clock.
type workload struct {
	h         *harness
	steps     []Step
	faultTime time.Duration
	rate      int64
	start     time.Time
}

// startWorkload reads the environment (SLUICE_CHAOS_SEED and
// SLUICE_CHAOS_<env>_FAULT_TIME, _RATE), draws the schedule, starts the
// cluster and creates the topic.
func startWorkload(t *testing.T, test, env, topic string, partitions int32) *workload {
	seed := envInt(t, "SLUICE_CHAOS_SEED", 1)
	w := &workload{
		faultTime: envDuration(t, "SLUICE_CHAOS_"+env+"_FAULT_TIME", 60*time.Second),
		rate:      envInt(t, "SLUICE_CHAOS_"+env+"_RATE", 500),
	}
	repro := fmt.Sprintf("SLUICE_CHAOS=1 SLUICE_CHAOS_SEED=%d SLUICE_CHAOS_%s_FAULT_TIME=%v SLUICE_CHAOS_%s_RATE=%d scripts/chaos.sh -run '^%s$'",
		seed, env, w.faultTime, env, w.rate, test)
	t.Logf("seed %d, %v of faults (%v), %d records/s; reproduce: %s", seed, w.faultTime, GroupKinds, w.rate, repro)
	w.steps = Schedule(uint64(seed), GroupKinds, partitions, w.faultTime)
	t.Logf("schedule: %s", FormatSchedule(w.steps))
	w.h = setup(t, repro, 0)
	w.h.createTopic(topic, partitions, nil)
	w.start = time.Now()
	return w
}

func (w *workload) since() time.Duration { return time.Since(w.start) }

// injectFaults runs the schedule against topic and group, heals
// everything and logs each fault.
func (w *workload) injectFaults(ctx context.Context, t *testing.T, topic, group string) {
	in := &Injector{C: w.h.c, Admin: w.h.admin, Topic: topic, Group: group, Clock: w.since, Logf: t.Logf, Recover: 60 * time.Second}
	runErr := in.Run(ctx, w.steps, w.faultTime)
	hctx, hcancel := context.WithTimeout(context.Background(), time.Minute)
	if err := HealAll(hctx, w.h.c); err != nil {
		t.Errorf("heal all: %v", err)
	}
	hcancel()
	if runErr != nil {
		t.Error(runErr)
	}
	t.Logf("%v faults over: %s(%d in all)", w.since().Round(time.Millisecond), FormatCounts(Counts(in.Events)), len(in.Events))
	for i, ev := range in.Events {
		t.Logf("fault %d %s p%d on %s at %v, healed at %v, whole at %v %s",
			i, ev.Kind, ev.Partition, ev.Target, ev.Start.Round(time.Millisecond), ev.Healed.Round(time.Millisecond), ev.Recovered.Round(time.Millisecond), ev.Err)
	}
}
