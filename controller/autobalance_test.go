package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// auto.balance=on-join, the default (no value in the metadata, as in a
// cluster made before it was), plans moves onto a broker holding fewer
// replicas than the others by more than one, but not while anything
// moves, not when counts are within one, and not when set to off.
func TestPlanAutoBalance(t *testing.T) {
	m := applyAll(t, threeBrokers(t),
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2}, {2, 3}, {3, 1}, {1, 2}, {2, 3}, {3, 1}}},
		RegisterBroker{ID: 4, Addr: "d:1", PreviousEpoch: PreviousEpochEmpty})
	if _, set := m.Configs[ConfigAutoBalance]; set || m.ClusterConfig(ConfigAutoBalance) != AutoBalanceOnJoin {
		t.Fatalf("auto.balance %q (set: %v), want the default on-join", m.ClusterConfig(ConfigAutoBalance), set)
	}
	off := applyAll(t, m, AlterClusterConfigs{Set: map[string]string{ConfigAutoBalance: AutoBalanceOff}})
	if moves, _ := PlanAutoBalance(off, Load{}); moves != nil {
		t.Fatalf("auto.balance off planned %+v", moves)
	}
	// Removing the key goes back to the default.
	m = applyAll(t, off, AlterClusterConfigs{Remove: []string{ConfigAutoBalance}})
	moves, _ := PlanAutoBalance(m, Load{})
	onto4 := 0
	for _, mv := range moves {
		if contains(mv.Target, 4) {
			onto4++
		}
	}
	if onto4 != 3 { // 12 replicas over 4 brokers
		t.Fatalf("moves %+v: %d onto broker 4, want 3", moves, onto4)
	}
	next := applyAll(t, m, moves[0])
	if again, _ := PlanAutoBalance(next, Load{}); again != nil {
		t.Fatalf("planned %+v while a move is in progress", again)
	}
	for _, mv := range moves {
		m = applyAll(t, m, mv)
		if p := m.Topics["t"].Partitions[mv.Partition]; p.Moving() {
			m = applyAll(t, m, joinISR(m, mv.Partition, 4))
		}
	}
	if again, _ := PlanAutoBalance(m, Load{}); again != nil {
		t.Fatalf("planned %+v once balanced", again)
	}
	if _, _, err := Apply(m, AlterClusterConfigs{Set: map[string]string{ConfigAutoBalance: "always"}}); err == nil {
		t.Fatal("auto.balance=always accepted")
	}
}

// auto.balance=continuous re-creates the replicas of a broker down
// longer than the setting on the alive brokers, racks apart; on-join
// leaves them; a broker down for less is left alone.
func TestPlanAutoBalanceContinuous(t *testing.T) {
	m := applyAll(t, NewMetadata(),
		RegisterBroker{ID: 1, Addr: "a:1", Rack: "r1", PreviousEpoch: PreviousEpochEmpty},
		RegisterBroker{ID: 2, Addr: "b:1", Rack: "r2", PreviousEpoch: PreviousEpochEmpty},
		RegisterBroker{ID: 3, Addr: "c:1", Rack: "r3", PreviousEpoch: PreviousEpochEmpty},
		RegisterBroker{ID: 4, Addr: "d:1", Rack: "r1", PreviousEpoch: PreviousEpochEmpty},
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}, {2, 3, 4}, {3, 4, 1}, {4, 1, 2}}},
		FenceBroker{ID: 3, Epoch: 1},
		AlterClusterConfigs{Set: map[string]string{ConfigAutoBalance: AutoBalanceContinuous, ConfigAutoBalanceBrokerDown: "60000"}})
	if got := m.AutoBalanceBrokerDown(); got != time.Minute {
		t.Fatalf("down setting %v", got)
	}
	var d DownTracker
	t0 := time.Unix(1000, 0)
	d.Observe(m, t0)
	d.Observe(m, t0.Add(30*time.Second)) // still down: the timer keeps its start
	if got := d.DownLonger(m.AutoBalanceBrokerDown(), t0.Add(59*time.Second)); len(got) != 0 {
		t.Fatalf("down for 59 s: %v, want none", got)
	}
	if moves, _ := PlanAutoBalance(m, Load{}); moves != nil {
		t.Fatalf("nothing down long enough, counts even: planned %+v", moves)
	}
	down := d.DownLonger(m.AutoBalanceBrokerDown(), t0.Add(time.Minute))
	if !slices.Equal(down, []int32{3}) {
		t.Fatalf("down for 60 s: %v, want [3]", down)
	}
	moves, notes := PlanAutoBalance(m, Load{Down: down})
	off3 := 0
	for _, mv := range moves {
		if contains(m.Topics["t"].Partitions[mv.Partition].Replicas, 3) {
			off3++
		}
	}
	if off3 != 3 {
		t.Fatalf("moves %+v (notes %v): want each of the 3 partitions on broker 3 moved off it", moves, notes)
	}
	for _, mv := range moves {
		if contains(mv.Target, 3) || len(mv.Target) != 3 {
			t.Fatalf("move %+v keeps broker 3 or changes the replication factor", mv)
		}
		racks := map[string]bool{}
		for _, r := range mv.Target {
			racks[m.Brokers[r].Rack] = true
		}
		if len(racks) < 2 {
			t.Fatalf("move %+v puts its replicas on one rack", mv)
		}
	}
	m = applyAll(t, m, moves[0])
	if again, _ := PlanAutoBalance(m, Load{Down: down}); again != nil {
		t.Fatalf("planned %+v while a move is in progress", again)
	}
	onJoin := applyAll(t, m, AlterClusterConfigs{Set: map[string]string{ConfigAutoBalance: AutoBalanceOnJoin}})
	onJoin = applyAll(t, onJoin, AlterReassignment{Topic: "t", TopicID: m.Topics["t"].ID, Partition: moves[0].Partition}) // cancel
	if again, _ := PlanAutoBalance(onJoin, Load{Down: down}); again != nil {
		t.Fatalf("on-join evacuated a dead broker: %+v", again)
	}
	// Back alive: its timer ends.
	m = applyAll(t, m, RegisterBroker{ID: 3, Addr: "c:1", Rack: "r3", PreviousEpoch: 1})
	d.Observe(m, t0.Add(2*time.Minute))
	if got := d.DownLonger(0, t0.Add(2*time.Minute)); len(got) != 0 {
		t.Fatalf("broker 3 alive again, still down: %v", got)
	}
}

// auto.balance=continuous moves replicas, smallest first, off a broker
// whose disk is above the threshold to brokers that stay below it;
// on-join does not look at disks.
func TestPlanAutoBalanceDiskThreshold(t *testing.T) {
	m := applyAll(t, threeBrokers(t),
		RegisterBroker{ID: 4, Addr: "d:1", PreviousEpoch: PreviousEpochEmpty},
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2}, {1, 3}, {1, 4}, {2, 3}, {4, 2}, {3, 4}}},
		AlterClusterConfigs{Set: map[string]string{ConfigAutoBalance: AutoBalanceOnJoin, ConfigAutoBalanceDiskThreshold: "80"}})
	const gib = 1 << 30
	load := Load{
		Disks: map[int32]Disk{1: {Used: 90 * gib, Capacity: 100 * gib}, 2: {Used: 20 * gib, Capacity: 100 * gib},
			3: {Used: 20 * gib, Capacity: 100 * gib}, 4: {Used: 20 * gib, Capacity: 100 * gib}},
		Bytes: map[string][]int64{"t": {30 * gib, 5 * gib, 20 * gib, 1, 1, 1}},
	}
	if moves, _ := PlanAutoBalance(m, load); moves != nil {
		t.Fatalf("on-join planned %+v for a full disk", moves)
	}
	m = applyAll(t, m, AlterClusterConfigs{Set: map[string]string{ConfigAutoBalance: AutoBalanceContinuous}})
	if got := m.AutoBalanceDiskThreshold(); got != 0.8 {
		t.Fatalf("threshold %v", got)
	}
	moves, notes := PlanAutoBalance(m, load)
	shed := int64(0)
	for _, mv := range moves {
		if contains(m.Topics["t"].Partitions[mv.Partition].Replicas, 1) && !contains(mv.Target, 1) {
			shed += load.Bytes["t"][mv.Partition]
		}
	}
	if 90*gib-shed > 80*gib {
		t.Fatalf("moves %+v (notes %v) shed %d bytes off broker 1, not enough to go under 80%%", moves, notes, shed)
	}
	// Under the threshold everywhere, counts even: nothing.
	load.Disks[1] = Disk{Used: 70 * gib, Capacity: 100 * gib}
	if moves, _ := PlanAutoBalance(m, load); moves != nil {
		t.Fatalf("planned %+v with every disk under the threshold", moves)
	}
}

// A broker in brokers.draining takes no replica of a new topic or of a
// topic's new partitions (creation fails with a clear error when the
// others are too few), and auto.balance, in either mode, empties it and
// never moves a replica onto it, even when it is the emptiest broker.
func TestDrainingBrokerTakesNothing(t *testing.T) {
	m := applyAll(t, threeBrokers(t),
		RegisterBroker{ID: 4, Addr: "d:1", PreviousEpoch: PreviousEpochEmpty},
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2}, {2, 3}, {3, 1}, {1, 2}}},
		AlterClusterConfigs{Set: map[string]string{ConfigBrokersDraining: "2, 4,2"}})
	if got := m.DrainingBrokers(); !slices.Equal(got, []int32{2, 4}) {
		t.Fatalf("draining %v, want [2 4]", got)
	}
	if got := m.PlacementBrokers(); !slices.Equal(got, []int32{1, 3}) {
		t.Fatalf("placement brokers %v, want [1 3]", got)
	}
	c, err := PlanCreateTopic(m, TopicSpec{Name: "new", Partitions: 6, ReplicationFactor: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Replicas {
		if contains(r, 2) || contains(r, 4) {
			t.Fatalf("new topic placed %v on a draining broker", c.Replicas)
		}
	}
	if _, err := PlanCreateTopic(m, TopicSpec{Name: "rf3", Partitions: 1, ReplicationFactor: 3}); err == nil || !errors.Is(err, ErrInvalidReplicationFactor) ||
		!strings.Contains(err.Error(), "being drained") {
		t.Fatalf("RF 3 over 2 non-draining brokers: %v", err)
	}
	grow, err := PlanCreatePartitions(m, "t", 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range grow.Replicas {
		if contains(r, 2) || contains(r, 4) {
			t.Fatalf("new partitions placed %v on a draining broker", grow.Replicas)
		}
	}
	off := applyAll(t, m, AlterClusterConfigs{Set: map[string]string{ConfigAutoBalance: AutoBalanceOff}})
	if moves, _ := PlanAutoBalance(off, Load{}); moves != nil {
		t.Fatalf("auto.balance off planned %+v", moves)
	}
	for _, mode := range []string{AutoBalanceOnJoin, AutoBalanceContinuous} {
		m := applyAll(t, m, AlterClusterConfigs{Set: map[string]string{ConfigAutoBalance: mode}})
		moves, notes := PlanAutoBalance(m, Load{})
		off2 := 0
		for _, mv := range moves {
			if contains(mv.Target, 2) || contains(mv.Target, 4) {
				t.Fatalf("%s: move %+v onto a draining broker", mode, mv)
			}
			if contains(m.Topics["t"].Partitions[mv.Partition].Replicas, 2) {
				off2++
			}
		}
		if off2 != 3 {
			t.Fatalf("%s: moves %+v (notes %v) take %d partitions off broker 2, want 3", mode, moves, notes, off2)
		}
	}
	if _, _, err := Apply(m, AlterClusterConfigs{Set: map[string]string{ConfigBrokersDraining: "2,x"}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("brokers.draining=2,x: %v", err)
	}
}

// Under the default on-join, a balanced cluster plans nothing: 3 brokers
// with RF 3 topics (every broker holds every partition), through broker
// restarts with their data (a rolling restart: each broker fenced, the
// others leading, then back with its replicas; the last on a wiped
// disk, its replicas still assigned to it), and 4 brokers whose
// topics were placed while all were up. A broker that comes back keeps
// its replicas in the metadata while it is down, so it is never short
// of its share and nothing moves.
func TestPlanAutoBalanceQuietWhenBalanced(t *testing.T) {
	m := applyAll(t, threeBrokers(t),
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}}},
		CreateTopic{Name: "u", Replicas: [][]int32{{2, 3, 1}}})
	quiet := func(what string, m *Metadata) {
		t.Helper()
		if moves, notes := PlanAutoBalance(m, Load{}); moves != nil || notes != nil {
			t.Fatalf("%s: planned %+v (notes %v)", what, moves, notes)
		}
	}
	quiet("3 brokers, RF 3", m)
	for id := int32(1); id <= 3; id++ {
		epoch := m.Brokers[id].Epoch
		m = applyAll(t, m, FenceBroker{ID: id, Epoch: epoch})
		quiet(fmt.Sprintf("broker %d down", id), m)
		prev := epoch
		if id == 3 {
			prev = PreviousEpochEmpty // back on a wiped disk: its replicas stay assigned and refetch
		}
		m = applyAll(t, m, RegisterBroker{ID: id, Addr: m.Brokers[id].Addr, PreviousEpoch: prev})
		quiet(fmt.Sprintf("broker %d back (previous epoch %d)", id, prev), m)
	}
	m = applyAll(t, m, RegisterBroker{ID: 4, Addr: "d:1", PreviousEpoch: PreviousEpochEmpty})
	c, err := PlanCreateTopic(m, TopicSpec{Name: "v", Partitions: 8, ReplicationFactor: 2})
	if err != nil {
		t.Fatal(err)
	}
	four := applyAll(t, NewMetadata(), RegisterBroker{ID: 1, Addr: "a:1", PreviousEpoch: PreviousEpochEmpty},
		RegisterBroker{ID: 2, Addr: "b:1", PreviousEpoch: PreviousEpochEmpty}, RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: PreviousEpochEmpty},
		RegisterBroker{ID: 4, Addr: "d:1", PreviousEpoch: PreviousEpochEmpty}, c)
	quiet("4 brokers, RF 2 placed over all four", four)
}
