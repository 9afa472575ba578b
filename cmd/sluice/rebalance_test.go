package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/balance"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// replicaCounts counts the replicas of topic on each broker, and fails
// while a move is in progress.
func replicaCounts(ctx context.Context, cl *client.Client, topic string) (map[int32]int, error) {
	if moves, err := cl.ListReassignments(ctx); err != nil || len(moves) > 0 {
		return nil, fmt.Errorf("moves %+v, %v", moves, err)
	}
	d, err := cl.DescribeTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int{}
	for _, p := range d.Partitions {
		if len(p.ISR) != len(p.Replicas) {
			return nil, fmt.Errorf("partition %d: replicas %v, ISR %v", p.Partition, p.Replicas, p.ISR)
		}
		for _, r := range p.Replicas {
			out[r]++
		}
	}
	return out, nil
}

// startWithBroker4Down starts 4 brokers (3 voters, auto.balance off) and
// stops broker 4, so that topics created next leave it out for a planner
// to fill. The four brokers share the machine's file system, whose use
// the planner counts as theirs: on a shared machine whose disk was 99%
// used, every broker was above the default threshold (85%), no broker had
// room, and the plans moved nothing. The disk goal is balance's to test,
// not these tests': its threshold is 100.
func startWithBroker4Down(t *testing.T) (*testcluster.Cluster, *client.Client) {
	t.Helper()
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3, AutoBalance: controller.AutoBalanceOff})
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := cl.AlterClusterConfigs(ctx, client.SetConfig(controller.ConfigAutoBalanceDiskThreshold, "100")); err != nil {
		t.Fatal(err)
	}
	c.Stop(4)
	testcluster.WaitBrokerState(t, cl, 4, "offline", 15*time.Second)
	return c, cl
}

// A broker that was down when a topic was created gets its share from
// cluster rebalance (the dry run starts nothing), and cluster drain then
// empties another broker: both through the move primitive, ending with
// every replica in sync.
func TestRebalanceAndDrain(t *testing.T) {
	c, cl := startWithBroker4Down(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "rb", Partitions: 8, ReplicationFactor: 2})
	c.Restart(4)
	testcluster.WaitBrokerState(t, cl, 4, "alive", 15*time.Second)

	plan, err := planCluster(ctx, cl, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runPlan(ctx, cl, &out, plan, true); err != nil || !strings.Contains(out.String(), "dry run") {
		t.Fatalf("dry run: %v\n%s", err, out.String())
	}
	if moves, err := cl.ListReassignments(ctx); err != nil || len(moves) != 0 {
		t.Fatalf("the dry run started moves: %+v, %v", moves, err)
	}
	out.Reset()
	if err := runPlan(ctx, cl, &out, plan, false); err != nil {
		t.Fatalf("rebalance: %v\n%s", err, out.String())
	}
	t.Logf("rebalance:\n%s", out.String())
	poll.Until(t, 60*time.Second, "broker 4 holds its share", func() error {
		counts, err := replicaCounts(ctx, cl, "rb")
		if err != nil {
			return err
		}
		if counts[4] != 4 { // 16 replicas over 4 brokers
			return fmt.Errorf("counts %v", counts)
		}
		return nil
	})

	// drain waits until broker 2 holds nothing: the test does not loop.
	// The broker answering its reads may not have applied the rebalance's
	// last move yet; drain's next round plans for what is left.
	addrs := strings.Join(c.Addrs(), ",")
	drainOut, err := runCmd("--brokers", addrs, "cluster", "drain", "2", "--timeout", "60s")
	t.Logf("drain:\n%s", drainOut)
	if err != nil || !strings.Contains(drainOut, "broker 2 drained") {
		t.Fatalf("drain: %v", err)
	}
	d, err := cl.DescribeTopic(ctx, "rb")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Partitions {
		if slices.Contains(p.Replicas, 2) || slices.Contains(p.ISR, 2) || p.Leader == 2 {
			t.Fatalf("drain returned with partition %d on broker 2: %+v", p.Partition, p)
		}
	}
	if n, err := onDisk(ctx, cl, 2); err != nil || n != 0 {
		t.Fatalf("drain returned with %d replicas on broker 2's disk (%v)", n, err)
	}
	poll.Until(t, 60*time.Second, "the others even", func() error {
		counts, err := replicaCounts(ctx, cl, "rb")
		if err != nil {
			return err
		}
		if counts[2] != 0 || slices.Max([]int{counts[1], counts[3], counts[4]})-slices.Min([]int{counts[1], counts[3], counts[4]}) > 1 {
			return fmt.Errorf("counts %v", counts)
		}
		return nil
	})
	if _, err := planCluster(ctx, cl, []int32{9}, 0); err == nil {
		t.Fatal("draining an unknown broker was planned")
	}

	// Then remove it: refused while it runs, done once it is stopped;
	// cluster brokers no longer lists it, the voters are 1 and 3, and its
	// draining mark is gone.
	if out, err := runCmd("--brokers", addrs, "cluster", "remove", "2"); err == nil || !strings.Contains(err.Error(), "alive: stop it first") {
		t.Fatalf("remove a running broker: %v\n%s", err, out)
	}
	c.Stop(2)
	addrs = strings.Join(c.Addrs(), ",")
	testcluster.WaitBrokerState(t, cl, 2, "offline", 15*time.Second)
	if out, err := runCmd("--brokers", addrs, "cluster", "remove", "2"); err != nil || !strings.Contains(out, "broker 2 removed from the cluster") {
		t.Fatalf("remove 2: %v\n%s", err, out)
	}
	poll.Until(t, 5*time.Second, "the mark cleared by the removal", func() error {
		if v, err := readCluster(ctx, cl); err != nil || len(v.draining) != 0 {
			return fmt.Errorf("brokers.draining: %v, %v", v, err)
		}
		return nil
	})
	status, err := runCmd("--brokers", addrs, "cluster", "status")
	if err != nil || strings.Contains(status, "2@") || !strings.Contains(status, "brokers: 3 alive of 3") {
		t.Fatalf("status after removing broker 2: %v\n%s", err, status)
	}
}

// A drain started while a move involving the broker is in flight (slowed
// by the throttle) waits for it and then moves the partition off; a topic
// created during the drain gets no replica on the drained broker; the
// drain returns only when the broker holds nothing, and --cancel clears
// the mark.
func TestDrainWaitsForMovesInFlight(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3, AutoBalance: controller.AutoBalanceOff})
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const victim = 2
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "fl", Partitions: 2, ReplicationFactor: 2})
	testcluster.WaitFullISR(t, cl, "fl", 15*time.Second)
	prod := c.Client(client.Acks(client.AcksAll), client.RecordPartitioner(client.ManualPartitioner()))
	value := bytes.Repeat([]byte("x"), 1000)
	for i := range 300 {
		if err := prod.ProduceSync(ctx, &client.Record{Topic: "fl", Partition: 0, Value: value}); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := cl.AlterClusterConfigs(ctx, client.SetConfig(controller.ConfigReassignmentThrottle, "60000")); err != nil {
		t.Fatal(err)
	}
	// A move of partition 0 that involves the victim: onto it, or (when
	// it holds the partition) onto another broker next to it.
	cur := td.Partitions[0].Replicas
	target := []int32{cur[0], victim}
	if slices.Contains(cur, victim) {
		free := slices.IndexFunc(c.IDs(), func(id int32) bool { return !slices.Contains(cur, id) })
		target = []int32{victim, c.IDs()[free]}
	}
	if rs, err := cl.AlterReassignments(ctx, []client.Reassignment{{Topic: "fl", Partition: 0, Replicas: target}}); err != nil || rs[0].Err != nil {
		t.Fatalf("move to %v: %+v, %v", target, rs, err)
	}
	// The broker answering may not have applied the move yet.
	poll.Until(t, 5*time.Second, "the move in flight", func() error {
		if moves, err := cl.ListReassignments(ctx); err != nil || len(moves) != 1 {
			return fmt.Errorf("moves %+v, %v", moves, err)
		}
		return nil
	})

	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- drainBroker(ctx, cl, &syncWriter{w: &out}, victim, drainOptions{wait: true, timeout: 90 * time.Second, interval: 200 * time.Millisecond, stallRounds: 50})
	}()
	poll.Until(t, 15*time.Second, "broker 2 marked draining", func() error {
		v, err := readCluster(ctx, cl)
		if err != nil {
			return err
		}
		if !slices.Contains(v.draining, victim) {
			return fmt.Errorf("draining %v", v.draining)
		}
		return nil
	})
	late := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "late", Partitions: 6, ReplicationFactor: 2})
	for _, p := range late.Partitions {
		if slices.Contains(p.Replicas, victim) {
			t.Errorf("topic created during the drain: partition %d on %v", p.Partition, p.Replicas)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("drain: %v\n%s", err, out.String())
	}
	t.Logf("drain:\n%s", out.String())
	for _, topic := range []string{"fl", "late"} {
		d, err := cl.DescribeTopic(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Partitions {
			if slices.Contains(p.Replicas, victim) || slices.Contains(p.ISR, victim) {
				t.Fatalf("%s-%d on broker %d after the drain: %+v", topic, p.Partition, victim, p)
			}
		}
	}
	if n, err := onDisk(ctx, cl, victim); err != nil || n != 0 {
		t.Fatalf("%d replicas on broker %d's disk after the drain (%v)", n, victim, err)
	}
	if out, err := runCmd("--brokers", strings.Join(c.Addrs(), ","), "cluster", "drain", "2", "--cancel"); err != nil {
		t.Fatalf("drain --cancel: %v\n%s", err, out)
	}
	// The broker answering may not have applied the change yet.
	poll.Until(t, 5*time.Second, "the mark cleared by --cancel", func() error {
		if v, err := readCluster(ctx, cl); err != nil || slices.Contains(v.draining, victim) {
			return fmt.Errorf("draining: %v, %v", v, err)
		}
		return nil
	})
}

// syncWriter serialises writes to w (a drain's progress, read by the
// test once the drain ended).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// rebalance plans with the partitions' real sizes, as the brokers report
// them: of the two partitions on the broker that must give one up, the
// plan moves the small one, and the dry run says how many bytes the move
// copies. Planned without the sizes, the same cluster moves the big one
// (the check can fail).
func TestRebalancePlansWithPartitionSizes(t *testing.T) {
	c, cl := startWithBroker4Down(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	td := testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "sz", Partitions: 6, ReplicationFactor: 1})
	var on1 []int32 // broker 1's partitions: it gives one up (lowest id among the fullest)
	for _, p := range td.Partitions {
		if p.Replicas[0] == 1 {
			on1 = append(on1, p.Partition)
		}
	}
	if len(on1) != 2 {
		t.Fatalf("setup: broker 1 holds partitions %v, want 2", on1)
	}
	big, small := on1[0], on1[1] // without sizes the planner takes on1[0]
	prod := c.Client(client.Acks(client.AcksAll), client.RecordPartitioner(client.ManualPartitioner()))
	value := bytes.Repeat([]byte("b"), 1000)
	for i := range 200 {
		if err := prod.ProduceSync(ctx, &client.Record{Topic: "sz", Partition: big, Value: value}); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := prod.ProduceSync(ctx, &client.Record{Topic: "sz", Partition: small, Value: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	c.Restart(4)
	var v *clusterView
	poll.Until(t, 15*time.Second, "broker 4 alive, sizes known", func() error {
		var err error
		if v, err = readCluster(ctx, cl); err != nil {
			return err
		}
		if !slices.ContainsFunc(v.brokers, func(b client.BrokerDescription) bool { return b.ID == 4 && b.State == "alive" }) {
			return errors.New("broker 4 not alive")
		}
		for _, p := range v.parts {
			if p.Index == big && p.Bytes < 200_000 {
				return fmt.Errorf("partition %d: %d bytes", big, p.Bytes)
			}
		}
		return nil
	})
	moved := func(plan balance.Plan) []int32 {
		var out []int32
		for _, m := range plan.Moves {
			if !m.Reorder {
				out = append(out, m.Partition)
			}
		}
		return out
	}
	plan, err := v.plan(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := moved(plan); !slices.Equal(got, []int32{small}) {
		t.Fatalf("plan with sizes moves partitions %v, want [%d] (the small one): %+v", got, small, plan)
	}
	for i := range v.parts {
		v.parts[i].Bytes = 0
	}
	if plan, err = v.plan(nil, 0); err != nil {
		t.Fatal(err)
	}
	if got := moved(plan); !slices.Equal(got, []int32{big}) {
		t.Fatalf("plan without sizes moves partitions %v, want [%d]: the test would not tell", got, big)
	}
	out, err := runCmd("--brokers", strings.Join(c.Addrs(), ","), "cluster", "rebalance", "--dry-run")
	if err != nil || !strings.Contains(out, fmt.Sprintf("sz-%d: [1] -> [4] (move ", small)) || strings.Contains(out, "move 0 B") {
		t.Fatalf("rebalance --dry-run: %v\n%s", err, out)
	}
	t.Logf("rebalance --dry-run:\n%s", out)
}

// A drain that cannot finish says so, listing what is left and why: on
// 3 brokers with RF 3 no broker can take broker 3's replicas, so the
// drain ends after its stall rounds (and, with a short timeout, after
// the timeout) with the partitions, "no move yet" and the planner's note.
func TestDrainThatCannotFinishSaysWhy(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "full", Partitions: 2, ReplicationFactor: 3})
	var out bytes.Buffer
	err := drainBroker(ctx, cl, &out, 3, drainOptions{wait: true, timeout: time.Minute, interval: 100 * time.Millisecond, stallRounds: 5})
	t.Logf("drain:\n%s\nerror: %v", out.String(), err)
	if err == nil || !strings.Contains(err.Error(), "stuck") || !strings.Contains(err.Error(), "full-0: replicas") ||
		!strings.Contains(err.Error(), "no move yet") || !strings.Contains(err.Error(), "no broker can take") {
		t.Fatalf("drain without room: %v", err)
	}
	err = drainBroker(ctx, cl, &out, 3, drainOptions{wait: true, timeout: 300 * time.Millisecond, interval: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), "2 partitions still hold it") {
		t.Fatalf("drain with a short timeout: %v", err)
	}
	// The mark keeps new replicas off broker 3: RF 3 no longer fits.
	if err := cl.CreateTopics(ctx, client.TopicSpec{Name: "rf3", Partitions: 1, ReplicationFactor: 3}); err == nil || !strings.Contains(err.Error(), "being drained") {
		t.Fatalf("RF 3 topic while broker 3 drains: %v", err)
	}
}
