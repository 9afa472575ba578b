package chaos

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/client"
)

// Issue 5: the leader of a partition cut off from the controller and the
// other replicas (TCP and UDP, both ways; the clients still reach it)
// cannot acknowledge acks=all writes. The other two elect a new leader and
// acknowledge through it; once healed, the old leader follows, truncates
// what it alone appended (R9), and the replicas end byte-identical.
func TestLeaderIsolation(t *testing.T) {
	h := setup(t, "SLUICE_CHAOS=1 go test -count=1 -v -run '^TestLeaderIsolation$' ./internal/chaos/", 0)
	const topic = "isolation"
	h.createTopic(topic, 3, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	pd, err := Describe(ctx, h.admin, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	old := int(pd.Leader)
	// Every connection of direct goes to the old leader, whatever the
	// metadata says: the writes cannot go anywhere else.
	direct, err := h.c.ClientVia(ctx, old, "chaos-direct",
		client.RecordPartitioner(client.ManualPartitioner()), client.DeliveryTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	var others []int
	for i := 1; i <= 3; i++ {
		if i != old {
			others = append(others, i)
		}
	}
	majority, err := h.c.ClientVia(ctx, others[0], "chaos-majority-view")
	if err != nil {
		t.Fatal(err)
	}
	defer majority.Close()

	w, err := StartWorkload(ctx, h.c, WorkloadConfig{Topic: topic, Producers: 2, Rate: 600})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a baseline of acknowledged writes before the cut
	endBefore := replicaEnd(ctx, direct, topic, old)
	t.Logf("%v isolating broker %d, leader of %s-0 (epoch %d, end offset %d)", w.Since().Round(time.Millisecond), old, topic, pd.LeaderEpoch, endBefore)
	if err := h.c.Hosts.Isolate(ctx, old); err != nil {
		t.Fatal(err)
	}
	isolated := w.Since()

	const nDirect = 20
	sends := make([]bench.Send, nDirect)
	var wg sync.WaitGroup
	for i := range sends {
		v := bench.VerifyValue("direct", 2, int64(i), 100)
		sends[i] = bench.Send{Producer: 2, Seq: int64(i), Value: string(v)}
		wg.Add(1)
		direct.Produce(ctx, &client.Record{Topic: topic, Partition: 0, Value: v}, func(r *client.Record, err error) {
			defer wg.Done()
			s := &sends[i]
			switch {
			case err == nil:
				s.Outcome, s.Partition, s.Offset = bench.Acked, r.Partition, r.Offset
			case client.IsIndeterminate(err):
				s.Outcome = bench.Unknown
			default:
				s.Outcome = bench.Failed
			}
			if i == 0 || err == nil {
				t.Logf("%v direct write %d to broker %d: %v", w.Since().Round(time.Millisecond), i, old, err)
			}
		})
		time.Sleep(50 * time.Millisecond)
	}

	var next int32
	err = Poll(ctx, 30*time.Second, "a new leader of "+topic+"-0 seen by the majority", func(ctx context.Context) error {
		pd, err := Describe(ctx, majority, topic, 0)
		if err != nil {
			return err
		}
		if int(pd.Leader) == old {
			return fmt.Errorf("leader still %d", old)
		}
		next = pd.Leader
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	elected := w.Since()
	t.Logf("%v broker %d leads %s-0 (%v after the cut)", elected.Round(time.Millisecond), next, topic, (elected - isolated).Round(time.Millisecond))
	err = Poll(ctx, 30*time.Second, "acknowledged writes to "+topic+"-0 through the new leader", func(context.Context) error {
		if n := w.AcksAfter(0, elected); n < 50 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	wg.Wait() // every direct write has its outcome: the delivery timeout bounds it
	endIsolated := replicaEnd(ctx, direct, topic, old)
	outcomes := map[bench.Outcome]int{}
	for _, s := range sends {
		outcomes[s.Outcome]++
		if s.Outcome == bench.Acked {
			t.Errorf("direct write %d to the isolated leader was acknowledged at %d@%d", s.Seq, s.Partition, s.Offset)
		}
	}
	t.Logf("%v direct writes to the isolated leader: %v; its end offset %d -> %d", w.Since().Round(time.Millisecond), outcomes, endBefore, endIsolated)

	if err := h.c.Hosts.Rejoin(ctx, old); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v rejoined broker %d", w.Since().Round(time.Millisecond), old)
	if err := WaitFullISR(ctx, h.c, topic, 60*time.Second); err != nil {
		t.Error(err)
	}
	t.Logf("%v every replica in sync", w.Since().Round(time.Millisecond))
	time.Sleep(2 * time.Second) // acknowledged writes after the heal, too
	o, err := w.Finish(ctx)
	if err != nil {
		t.Error(err)
	}
	o.History.Sends = append(o.History.Sends, sends...)
	final := map[string]bool{}
	for _, rd := range o.History.Final {
		final[rd.Value] = true
	}
	for _, s := range sends {
		if final[s.Value] {
			t.Errorf("direct write %d (%s) to the isolated leader is in the final read: not truncated", s.Seq, s.Outcome)
		}
	}
	h.report(o)
	h.checkReplicas(topic)
	if brs, err := h.admin.DescribeReplicas(ctx, topic); err == nil {
		for _, br := range brs {
			for _, r := range br.Replicas {
				if br.Broker == int32(old) && r.Partition == 0 {
					t.Logf("old leader %d now: leader=%v epoch %d end %d hw %d", old, r.Leader, r.LeaderEpoch, r.EndOffset, r.HighWatermark)
				}
			}
		}
	}
	h.checkNoCrash()
}

// replicaEnd is broker id's end offset of partition 0 of topic, as cl
// (which must reach it) is told, or -1.
func replicaEnd(ctx context.Context, cl *client.Client, topic string, id int) int64 {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	brs, err := cl.DescribeReplicas(ctx, topic)
	if err != nil {
		return -1
	}
	for _, br := range brs {
		for _, r := range br.Replicas {
			if br.Broker == int32(id) && r.Partition == 0 && br.Err == nil {
				return r.EndOffset
			}
		}
	}
	return -1
}

// livenessGoal is issue 7's: acknowledgements resume within 15 s of a
// heal.
const livenessGoal = 15 * time.Second

// TestChaos is the seeded fault run of issue 7. Environment:
// SLUICE_CHAOS_SEED (default 1), SLUICE_CHAOS_FAULT_TIME (90s),
// SLUICE_CHAOS_FAULTS (short: kill a leader, pause a follower, isolate a
// leader, cut clients, kill every broker; all: every fault; none; or a
// comma-separated list of kinds), SLUICE_CHAOS_FSYNC (interval or
// always), SLUICE_CHAOS_RATE (records/s, 1000).
func TestChaos(t *testing.T) {
	seed := envInt(t, "SLUICE_CHAOS_SEED", 1)
	faultTime := envDuration(t, "SLUICE_CHAOS_FAULT_TIME", 90*time.Second)
	faults := env("SLUICE_CHAOS_FAULTS", "short")
	fsync := env("SLUICE_CHAOS_FSYNC", "interval")
	rate := envInt(t, "SLUICE_CHAOS_RATE", 1000)
	var kinds []Kind
	switch faults {
	case "short":
		kinds = ShortKinds
	case "all":
		kinds = AllKinds
	case "none":
	default:
		// A comma-separated list of kinds, to dwell on some faults.
		for _, k := range strings.Split(faults, ",") {
			if !slices.Contains(AllKinds, Kind(k)) {
				t.Fatalf("SLUICE_CHAOS_FAULTS=%q: want short, all, none or kinds from %v", faults, AllKinds)
			}
			kinds = append(kinds, Kind(k))
		}
	}
	repro := fmt.Sprintf("SLUICE_CHAOS=1 SLUICE_CHAOS_SEED=%d SLUICE_CHAOS_FAULT_TIME=%v SLUICE_CHAOS_FAULTS=%s SLUICE_CHAOS_FSYNC=%s SLUICE_CHAOS_RATE=%d scripts/chaos.sh -run '^TestChaos$'",
		seed, faultTime, faults, fsync, rate)
	t.Logf("seed %d, %v of faults (%s), fsync=%s, %d records/s; reproduce: %s", seed, faultTime, faults, fsync, rate, repro)
	const topic, partitions = "chaos", 3
	steps := Schedule(uint64(seed), kinds, partitions, faultTime)
	var dataFS int64
	for _, s := range steps {
		if s.Kind == DiskFull {
			dataFS = DataFSBytes // a disk that can fill, from the start
		}
	}
	t.Logf("schedule: %s", FormatSchedule(steps))
	h := setup(t, repro, dataFS)
	h.createTopic(topic, partitions, map[string]string{"fsync": fsync})

	ctx, cancel := context.WithTimeout(t.Context(), faultTime+10*time.Minute)
	defer cancel()
	w, err := StartWorkload(ctx, h.c, WorkloadConfig{Topic: topic, Producers: 3, Rate: float64(rate)})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a baseline before the first fault
	in := &Injector{C: h.c, Admin: h.admin, Topic: topic, Clock: w.Since, Logf: t.Logf, Recover: 60 * time.Second}
	faultStart := time.Now()
	runErr := in.Run(ctx, steps, faultTime)
	if d := faultTime - time.Since(faultStart); d > 0 {
		sleep(ctx, d) // no faults (or fewer than the time allows): keep producing
	}
	hctx, hcancel := context.WithTimeout(context.Background(), time.Minute)
	if err := HealAll(hctx, h.c); err != nil {
		t.Errorf("heal all: %v", err)
	}
	hcancel()
	if runErr != nil {
		t.Error(runErr)
	}
	healed := w.Since()
	time.Sleep(5 * time.Second) // acknowledgements after the last heal
	if err := WaitFullISR(ctx, h.c, topic, 60*time.Second); err != nil {
		t.Error(err)
	}
	o, err := w.Finish(ctx)
	if err != nil {
		t.Error(err)
	}
	h.report(o)
	h.checkReplicas(topic)
	h.checkNoCrash()

	t.Logf("faults: %s(%d in all)", FormatCounts(Counts(in.Events)), len(in.Events))
	worstAll := time.Duration(0)
	for i, ev := range in.Events {
		if ev.Healed == 0 {
			t.Logf("fault %d %s p%d on %s: %s", i, ev.Kind, ev.Partition, ev.Target, ev.Err)
			continue
		}
		end := o.Producing
		if i+1 < len(in.Events) {
			end = in.Events[i+1].Start
		}
		gap, p := LongestGap(o.Acks, ev.Healed, end, partitions)
		during, dp := LongestGap(o.Acks, ev.Start, ev.Healed, partitions)
		worstAll = max(worstAll, gap)
		rec := "not whole again: " + ev.Err
		if ev.Recovered > 0 {
			rec = fmt.Sprintf("whole after %v", (ev.Recovered - ev.Healed).Round(time.Millisecond))
		}
		// Before: up to 10 s, after the previous fault's heal.
		from := max(0, ev.Start-10*time.Second)
		if i > 0 {
			from = max(from, in.Events[i-1].Healed)
		}
		latBefore, _ := MedianLatency(o.Acks, from, ev.Start)
		latDuring, nDuring := MedianLatency(o.Acks, ev.Start, ev.Healed)
		changes := "?"
		if ev.LeaderChanges >= 0 {
			changes = strconv.Itoa(ev.LeaderChanges)
		}
		t.Logf("fault %d %s p%d on %s at %v for %v: longest no-ack window during it %v (partition %d), after the heal %v (partition %d, window %v); %s; p50 ack latency during it %v (%d acks), before it %v; leader changes during it %s",
			i, ev.Kind, ev.Partition, ev.Target, ev.Start.Round(time.Millisecond), (ev.Healed - ev.Start).Round(time.Millisecond),
			during.Round(time.Millisecond), dp, gap.Round(time.Millisecond), p, (end - ev.Healed).Round(time.Millisecond), rec,
			latDuring.Round(100*time.Microsecond), nDuring, latBefore.Round(100*time.Microsecond), changes)
		if err := CheckGossipCut(in.Events[:i+1]); err != nil {
			t.Error(err)
		}
		if ev.Kind == SlowPeers && nDuring > 0 {
			if err := CheckSlowed(ev, latDuring); err != nil {
				t.Error(err)
			}
		}
	}
	gap, p := LongestGap(o.Acks, healed, o.Producing, partitions)
	worstAll = max(worstAll, gap)
	t.Logf("after the final heal: longest no-ack window %v (partition %d); worst after any heal %v (goal: 15 s)",
		gap.Round(time.Millisecond), p, worstAll.Round(time.Millisecond))
	if worstAll > livenessGoal {
		// A goal, not a check: reported, and the logs kept to see why.
		t.Logf("LIVENESS GOAL MISSED: acknowledgements took %v to resume after a heal (goal %v)", worstAll.Round(time.Millisecond), livenessGoal)
		h.keep = true
	}
	if h.keep || os.Getenv(keepEnv) != "" {
		h.save("acks.json", o.Acks)
		h.save("faults.json", in.Events)
	}
}
