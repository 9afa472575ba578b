package controller

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// applyAll applies cmds to m in order and fails the test on any refusal.
func applyAll(t testing.TB, m *Metadata, cmds ...Command) *Metadata {
	t.Helper()
	for _, c := range cmds {
		var err error
		if m, _, err = Apply(m, c); err != nil {
			t.Fatalf("%#v: %v", c, err)
		}
	}
	return m
}

// threeBrokers returns metadata with brokers 1, 2 and 3 alive at epoch 1.
func threeBrokers(t testing.TB) *Metadata {
	return applyAll(t, NewMetadata(),
		RegisterBroker{ID: 1, Addr: "a:1", PreviousEpoch: PreviousEpochEmpty},
		RegisterBroker{ID: 2, Addr: "b:1", PreviousEpoch: PreviousEpochEmpty},
		RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: PreviousEpochEmpty})
}

// checkInvariants checks what every applied command must keep: an ISR is
// a non-empty subset of the replicas without duplicates, and a leader is
// an alive ISR member whose log is not offline.
func checkInvariants(m *Metadata) error {
	for i, a := range m.ACLs {
		if err := a.Validate(); err != nil {
			return fmt.Errorf("stored ACL %v: %v", a, err)
		}
		if i > 0 && compareACL(m.ACLs[i-1], a) >= 0 {
			return fmt.Errorf("ACL %v not after %v", a, m.ACLs[i-1])
		}
	}
	for u, creds := range m.Users {
		if validUserName(u) != nil || len(creds) == 0 {
			return fmt.Errorf("user %q with %d credentials", u, len(creds))
		}
		for mech, c := range creds {
			if c.Mechanism != mech || c.Validate() != nil {
				return fmt.Errorf("user %q: credential %s invalid", u, mech)
			}
		}
	}
	for _, name := range m.TopicNames() {
		for _, p := range m.Topics[name].Partitions {
			if len(p.ISR) == 0 {
				return fmt.Errorf("%s-%d: empty ISR", name, p.Index)
			}
			for i, r := range p.ISR {
				if !contains(p.Replicas, r) || contains(p.ISR[:i], r) {
					return fmt.Errorf("%s-%d: ISR %v, replicas %v", name, p.Index, p.ISR, p.Replicas)
				}
			}
			if p.Leader != -1 && (!contains(p.ISR, p.Leader) || !m.isAlive(p.Leader)) {
				return fmt.Errorf("%s-%d: leader %d not an alive ISR member of %v", name, p.Index, p.Leader, p.ISR)
			}
			if p.Leader != -1 && p.IsOffline(p.Leader) {
				return fmt.Errorf("%s-%d: leader %d has its log offline (%+v)", name, p.Index, p.Leader, p.Offline)
			}
			if err := checkMoveInvariants(name, &p); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyChecked applies c, which must be accepted, and checks that Apply
// left m alone and kept the invariants.
func applyChecked(t *testing.T, m *Metadata, c Command) (*Metadata, Result) {
	t.Helper()
	enc := appendMetadata(nil, m)
	next, res, err := Apply(m, c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(appendMetadata(nil, m), enc) {
		t.Fatal("Apply modified its input")
	}
	if err := checkInvariants(next); err != nil {
		t.Fatal(err)
	}
	return next, res
}

func TestCheckInvariantsCatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Partition
	}{
		{"empty ISR", Partition{Replicas: []int32{1}, Leader: -1}},
		{"ISR outside replicas", Partition{Replicas: []int32{1}, ISR: []int32{2}, Leader: -1}},
		{"ISR duplicate", Partition{Replicas: []int32{1, 2}, ISR: []int32{1, 1}, Leader: -1}},
		{"leader outside ISR", Partition{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 2}},
		{"offline leader", Partition{Replicas: []int32{1, 3}, ISR: []int32{3}, Leader: 3}},
	} {
		m := applyAll(t, threeBrokers(t), FenceBroker{ID: 3, Epoch: 1})
		m.Topics["x"] = &Topic{Name: "x", Partitions: []Partition{tc.p}}
		if err := checkInvariants(m); err == nil {
			t.Errorf("%s: not caught", tc.name)
		}
	}
}

// Commands that bring partition t-0 (replicas 1, 2, 3) to an ISR of
// broker 3 alone and no leader: brokers 1, 2, 3 stopped in turn.
var stopAllInTurn = []Command{FenceBroker{ID: 1, Epoch: 1}, FenceBroker{ID: 2, Epoch: 1}, FenceBroker{ID: 3, Epoch: 1}}

func TestElections(t *testing.T) {
	topic := func(configs map[string]string, replicas ...int32) Command {
		return CreateTopic{Name: "t", Configs: configs, Replicas: [][]int32{replicas}}
	}
	rf3 := topic(nil, 1, 2, 3)
	always := map[string]string{ConfigFsync: FsyncAlways}
	unclean := map[string]string{ConfigUncleanElection: "true"}
	for _, tc := range []struct {
		name  string
		setup []Command
		cmd   Command
		// Partition t-0 after cmd, and how much its epochs moved.
		leader             int32
		isr                []int32
		leaderEpochDelta   int32
		partitionEpochDiff int32
	}{
		{"fence of the leader elects the next ISR replica in replica order",
			[]Command{rf3, AlterPartition{Topic: "t", Leader: 1, ISR: []int32{1, 3, 2}}},
			FenceBroker{ID: 1, Epoch: 1}, 2, []int32{3, 2}, 1, 1},
		{"fence of a follower takes it out of the ISR",
			[]Command{rf3}, FenceBroker{ID: 2, Epoch: 1}, 1, []int32{1, 3}, 0, 1},
		{"fence of a broker outside the ISR changes nothing",
			[]Command{rf3, AlterPartition{Topic: "t", Leader: 1, ISR: []int32{1, 2}}},
			FenceBroker{ID: 3, Epoch: 1}, 1, []int32{1, 2}, 0, 0},
		{"fence of the last ISR member keeps the ISR, no leader",
			[]Command{rf3, stopAllInTurn[0], stopAllInTurn[1]},
			stopAllInTurn[2], -1, []int32{3}, 1, 1},
		{"fence of the last ISR member with alive replicas outside it: no leader",
			[]Command{rf3, AlterPartition{Topic: "t", Leader: 1, ISR: []int32{1}}},
			FenceBroker{ID: 1, Epoch: 1}, -1, []int32{1}, 1, 1},
		{"unclean election elects an alive replica outside the ISR",
			[]Command{topic(unclean, 1, 2, 3), AlterPartition{Topic: "t", Leader: 1, ISR: []int32{1}}},
			FenceBroker{ID: 1, Epoch: 1}, 2, []int32{2}, 1, 1},
		{"restart of a follower removes its old epoch from the ISR",
			[]Command{rf3}, RegisterBroker{ID: 2, Addr: "b:1", PreviousEpoch: 1}, 1, []int32{1, 3}, 0, 1},
		{"restart of the leader moves leadership",
			[]Command{rf3}, RegisterBroker{ID: 1, Addr: "a:1", PreviousEpoch: 1}, 2, []int32{2, 3}, 1, 1},
		{"restart of an offline follower: no leader change",
			[]Command{rf3, FenceBroker{ID: 3, Epoch: 1}}, RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: 1}, 1, []int32{1, 2}, 0, 0},
		{"last ISR member back after a clean stop leads",
			append([]Command{rf3}, stopAllInTurn...), RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: 1}, 3, []int32{3}, 1, 1},
		{"last ISR member back after a crash, fsync=always: leads",
			append([]Command{topic(always, 1, 2, 3)}, stopAllInTurn...), RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: PreviousEpochUnclean}, 3, []int32{3}, 1, 1},
		{"last ISR member back after a crash, one replica: leads",
			[]Command{topic(nil, 3), FenceBroker{ID: 3, Epoch: 1}}, RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: PreviousEpochUnclean}, 3, []int32{3}, 1, 1},
		{"last ISR member back after a crash, fsync=interval, three replicas: no leader",
			append([]Command{rf3}, stopAllInTurn...), RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: PreviousEpochUnclean}, -1, []int32{3}, 0, 0},
		{"last ISR member back wiped: no leader even with fsync=always",
			append([]Command{topic(always, 1, 2, 3)}, stopAllInTurn...), RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: PreviousEpochEmpty}, -1, []int32{3}, 0, 0},
		{"last ISR member back wiped, one replica: no leader",
			[]Command{topic(nil, 3), FenceBroker{ID: 3, Epoch: 1}}, RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: PreviousEpochEmpty}, -1, []int32{3}, 0, 0},
		{"last ISR member back with an epoch that is not its last: no leader",
			append([]Command{rf3}, stopAllInTurn...), RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: 7}, -1, []int32{3}, 0, 0},
		{"another replica back: not elected from outside the ISR",
			append([]Command{rf3}, stopAllInTurn...), RegisterBroker{ID: 1, Addr: "a:1", PreviousEpoch: 1}, -1, []int32{3}, 0, 0},
		{"another replica back with unclean election: elected alone",
			append([]Command{topic(unclean, 1, 2, 3)}, stopAllInTurn...), RegisterBroker{ID: 2, Addr: "b:1", PreviousEpoch: PreviousEpochEmpty}, 2, []int32{2}, 1, 1},
		{"running last ISR member re-registered (a flap): leads again in a new leader epoch",
			[]Command{rf3, stopAllInTurn[0], stopAllInTurn[1]}, RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: 1}, 3, []int32{3}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := applyAll(t, threeBrokers(t), tc.setup...)
			before := m.Topics["t"].Partitions[0]
			next, _ := applyChecked(t, m, tc.cmd)
			p := next.Topics["t"].Partitions[0]
			if p.Leader != tc.leader || !reflect.DeepEqual(p.ISR, tc.isr) {
				t.Errorf("leader %d, ISR %v; want %d, %v (before: %+v)", p.Leader, p.ISR, tc.leader, tc.isr, before)
			}
			if d := p.LeaderEpoch - before.LeaderEpoch; d != tc.leaderEpochDelta {
				t.Errorf("leader epoch moved by %d, want %d", d, tc.leaderEpochDelta)
			}
			if d := p.PartitionEpoch - before.PartitionEpoch; d != tc.partitionEpochDiff {
				t.Errorf("partition epoch moved by %d, want %d", d, tc.partitionEpochDiff)
			}
			// Every replica applying the same commands agrees.
			again := applyAll(t, threeBrokers(t), append(append([]Command(nil), tc.setup...), tc.cmd)...)
			if !bytes.Equal(appendMetadata(nil, again), appendMetadata(nil, next)) {
				t.Error("the same commands applied twice give different metadata")
			}
		})
	}
}

func TestNewBrokerChangesNoPartition(t *testing.T) {
	m := applyAll(t, threeBrokers(t),
		CreateTopic{Name: "t", Configs: map[string]string{ConfigUncleanElection: "true"}, Replicas: [][]int32{{1, 2, 3}}})
	m = applyAll(t, m, stopAllInTurn...)
	next := applyAll(t, m, RegisterBroker{ID: 4, Addr: "d:1", PreviousEpoch: 5})
	if !reflect.DeepEqual(next.Topics, m.Topics) {
		t.Fatalf("topics changed: %+v", next.Topics["t"].Partitions)
	}
}

func TestISRExpansionNeedsCurrentBrokerEpoch(t *testing.T) {
	// t-0: replicas 1, 2, 3, ISR shrunk to [1] (partition epoch 1).
	base := func(t *testing.T) *Metadata {
		return applyAll(t, threeBrokers(t),
			CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}}},
			AlterPartition{Topic: "t", Leader: 1, ISR: []int32{1}})
	}
	expand := func(epochs ...int64) AlterPartition {
		return AlterPartition{Topic: "t", PartitionEpoch: 1, Leader: 1, ISR: []int32{1, 2}, BrokerEpochs: epochs}
	}
	for _, tc := range []struct {
		name  string
		setup []Command
		cmd   AlterPartition
		err   error
	}{
		{"current epoch", nil, expand(1, 1), nil},
		{"members already in the ISR need no particular epoch", nil, expand(0, 1), nil},
		{"no epochs", nil, expand(), ErrStaleBrokerEpoch},
		{"stale epoch", nil, expand(1, 0), ErrStaleBrokerEpoch},
		{"epoch of the incarnation before a restart", []Command{RegisterBroker{ID: 2, Addr: "b:1", PreviousEpoch: 1}}, expand(1, 1), ErrStaleBrokerEpoch},
		{"epoch of the restarted incarnation", []Command{RegisterBroker{ID: 2, Addr: "b:1", PreviousEpoch: 1}}, expand(1, 2), nil},
		{"offline broker", []Command{FenceBroker{ID: 2, Epoch: 1}}, AlterPartition{Topic: "t", PartitionEpoch: 1, Leader: 1, ISR: []int32{1, 2}, BrokerEpochs: []int64{1, 1}}, ErrStaleBrokerEpoch},
		{"epochs not parallel to the ISR", nil, expand(1), ErrInvalidPartition},
		{"stale partition epoch", nil, AlterPartition{Topic: "t", PartitionEpoch: 0, Leader: 1, ISR: []int32{1, 2}, BrokerEpochs: []int64{1, 1}}, ErrStalePartitionEpoch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := applyAll(t, base(t), tc.setup...)
			if len(tc.setup) > 0 && m.Topics["t"].Partitions[0].PartitionEpoch != 1 {
				t.Fatalf("setup changed t-0: %+v", m.Topics["t"].Partitions[0])
			}
			next, _, err := Apply(m, tc.cmd)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if p := next.Topics["t"].Partitions[0]; !reflect.DeepEqual(p.ISR, []int32{1, 2}) || p.PartitionEpoch != 2 || p.LeaderEpoch != 0 {
				t.Errorf("partition %+v", p)
			}
		})
	}
}

func TestMinInsync(t *testing.T) {
	withRF := func(rf int, configs map[string]string) *Topic {
		return &Topic{Name: "t", Configs: configs, Partitions: []Partition{{Replicas: make([]int32, rf)}}}
	}
	set := func(v string) map[string]string { return map[string]string{ConfigMinInsyncReplica: v} }
	for _, tc := range []struct {
		name string
		t    *Topic
		want int
	}{
		{"rf 1", withRF(1, nil), 1},
		{"rf 2", withRF(2, nil), 1},
		{"rf 3", withRF(3, nil), 2},
		{"rf 5", withRF(5, nil), 2},
		{"explicit 1 on rf 3", withRF(3, set("1")), 1},
		{"explicit 3 on rf 3", withRF(3, set("3")), 3},
		{"explicit above rf", withRF(3, set("5")), 3},
		{"explicit 2 on rf 1", withRF(1, set("2")), 1},
		{"no partitions", &Topic{Name: "t"}, 1},
		{"nil topic", nil, 1},
	} {
		if got := MinInsync(tc.t); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	// What DescribeConfigs reports: the topic's own default, or what it set.
	if got := withRF(3, nil).Config(ConfigMinInsyncReplica); got != "2" {
		t.Errorf("rf 3 default reported as %q, want 2", got)
	}
	if got := withRF(3, set("3")).Config(ConfigMinInsyncReplica); got != "3" {
		t.Errorf("explicit value reported as %q, want 3", got)
	}
	if got := withRF(2, nil).Config(ConfigMinInsyncReplica); got != "1" {
		t.Errorf("rf 2 default reported as %q, want 1", got)
	}
}

func TestPlanPreferredLeaders(t *testing.T) {
	m := applyAll(t, threeBrokers(t),
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}, {2, 3, 1}}},
		CreateTopic{Name: "u", Replicas: [][]int32{{1, 3, 2}}},
		FenceBroker{ID: 1, Epoch: 1}) // t-0 and u-0 move to 2 and 3
	if plan := PlanPreferredLeaders(m, nil); len(plan) != 0 {
		t.Fatalf("preferred replica offline: planned %+v", plan)
	}
	m = applyAll(t, m, RegisterBroker{ID: 1, Addr: "a:1", PreviousEpoch: 1})
	if plan := PlanPreferredLeaders(m, nil); len(plan) != 0 {
		t.Fatalf("preferred replica outside the ISR: planned %+v", plan)
	}
	// Broker 1 catches up in its new epoch and rejoins both ISRs.
	t0, u0 := m.Topics["t"].Partitions[0], m.Topics["u"].Partitions[0]
	m = applyAll(t, m,
		AlterPartition{Topic: "t", PartitionEpoch: t0.PartitionEpoch, Leader: t0.Leader, ISR: append(t0.ISR, 1), BrokerEpochs: []int64{2, 2, 2}},
		AlterPartition{Topic: "u", PartitionEpoch: u0.PartitionEpoch, Leader: u0.Leader, ISR: append(u0.ISR, 1), BrokerEpochs: []int64{2, 2, 2}})
	t0 = m.Topics["t"].Partitions[0]
	want := []AlterPartition{
		{Topic: "t", Partition: 0, PartitionEpoch: t0.PartitionEpoch, Leader: 1, ISR: t0.ISR, TopicID: m.Topics["t"].ID},
		{Topic: "u", Partition: 0, PartitionEpoch: m.Topics["u"].Partitions[0].PartitionEpoch, Leader: 1, ISR: m.Topics["u"].Partitions[0].ISR,
			TopicID: m.Topics["u"].ID},
	}
	if plan := PlanPreferredLeaders(m, nil); !reflect.DeepEqual(plan, want) {
		t.Fatalf("all topics: planned %+v, want %+v", plan, want)
	}
	if plan := PlanPreferredLeaders(m, []string{"t", "nope", "t"}); !reflect.DeepEqual(plan, want[:1]) {
		t.Fatalf("topic t: planned %+v, want %+v", plan, want[:1])
	}
	// Applying the plan moves leadership; planning again finds nothing.
	next := applyAll(t, m, want[0], want[1])
	if p := next.Topics["t"].Partitions[0]; p.Leader != 1 || p.LeaderEpoch != t0.LeaderEpoch+1 || !reflect.DeepEqual(p.ISR, t0.ISR) {
		t.Fatalf("after the election: %+v", p)
	}
	if plan := PlanPreferredLeaders(next, nil); len(plan) != 0 {
		t.Fatalf("planned again: %+v", plan)
	}
	// A plan made stale by a change in between is refused.
	shrunk := applyAll(t, m, AlterPartition{Topic: "t", PartitionEpoch: t0.PartitionEpoch, Leader: t0.Leader, ISR: t0.ISR})
	if _, _, err := Apply(shrunk, want[0]); !errors.Is(err, ErrStalePartitionEpoch) {
		t.Fatalf("stale plan: %v, want ErrStalePartitionEpoch", err)
	}
}

// A registration from another data directory is refused while the id is
// registered alive (two brokers given one id); the same directory (a
// restart) is not, and another one is once the id was fenced.
func TestRegisterRefusesAnotherDirectoryWhileAlive(t *testing.T) {
	m := applyAll(t, NewMetadata(), RegisterBroker{ID: 1, Addr: "a:1", DirID: "dir-a", PreviousEpoch: PreviousEpochEmpty})
	if _, _, err := Apply(m, RegisterBroker{ID: 1, Addr: "b:1", DirID: "dir-b", PreviousEpoch: PreviousEpochEmpty}); !errors.Is(err, ErrBrokerIDInUse) {
		t.Fatalf("another directory while alive: %v, want ErrBrokerIDInUse", err)
	}
	m = applyAll(t, m, RegisterBroker{ID: 1, Addr: "a:2", DirID: "dir-a", PreviousEpoch: PreviousEpochUnclean}) // a restart
	if b := m.Brokers[1]; b.Epoch != 2 || b.Addr != "a:2" {
		t.Fatalf("restart: %+v", b)
	}
	m = applyAll(t, m, FenceBroker{ID: 1, Epoch: 2},
		RegisterBroker{ID: 1, Addr: "b:1", DirID: "dir-b", PreviousEpoch: PreviousEpochEmpty}) // wiped, after the fence
	if b := m.Brokers[1]; b.DirID != "dir-b" || b.State != BrokerAlive {
		t.Fatalf("after the fence: %+v", b)
	}
}
