package controller

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// checkMoveInvariants checks a move in progress as Apply leaves it:
// adding replicas are in the target, removing ones follow it, the two
// are disjoint, and a partition that is not moving has neither.
func checkMoveInvariants(name string, p *Partition) error {
	target := len(p.Replicas) - len(p.Removing)
	if target < 1 || !slices.Equal(p.Replicas[target:], p.Removing) {
		return fmt.Errorf("%s-%d: replicas %v, removing %v", name, p.Index, p.Replicas, p.Removing)
	}
	for _, r := range p.Adding {
		if !contains(p.Replicas[:target], r) || contains(p.Removing, r) {
			return fmt.Errorf("%s-%d: adding %d, replicas %v, removing %v", name, p.Index, r, p.Replicas, p.Removing)
		}
	}
	return nil
}

// fourBrokers returns metadata with brokers 1 to 4 alive and topic "t"
// of two partitions on 1, 2, 3 (partition 0 led by 1).
func fourBrokers(t testing.TB) *Metadata {
	return applyAll(t, threeBrokers(t),
		RegisterBroker{ID: 4, Addr: "d:1", PreviousEpoch: PreviousEpochEmpty},
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}, {2, 3, 1}}})
}

// joinISR is the leader's ISR expansion adding r at broker epoch 1.
func joinISR(m *Metadata, part int32, r int32) AlterPartition {
	p := m.Topics["t"].Partitions[part]
	isr := append(slices.Clone(p.ISR), r)
	epochs := make([]int64, len(isr))
	for i, id := range isr {
		epochs[i] = m.Brokers[id].Epoch
	}
	return AlterPartition{Topic: "t", Partition: part, PartitionEpoch: p.PartitionEpoch, Leader: p.Leader, ISR: isr, BrokerEpochs: epochs}
}

// A move 1,2,3 → 2,3,4: broker 4 is added outside the ISR; when its
// leader adds it to the ISR the move completes in the same change, and
// leadership leaves broker 1 for the first target replica in the ISR.
func TestMoveCompletesWhenAddingReplicaJoinsISR(t *testing.T) {
	m := fourBrokers(t)
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3, 4}})
	p := m.Topics["t"].Partitions[0]
	if !slices.Equal(p.Replicas, []int32{2, 3, 4, 1}) || !slices.Equal(p.Adding, []int32{4}) || !slices.Equal(p.Removing, []int32{1}) ||
		!slices.Equal(p.ISR, []int32{1, 2, 3}) || p.Leader != 1 || p.LeaderEpoch != 0 || p.PartitionEpoch != 1 {
		t.Fatalf("started: %+v", p)
	}
	if rf := m.Topics["t"].ReplicationFactor(); rf != 3 {
		t.Fatalf("replication factor during the move %d, want 3", rf)
	}
	if m.Topics["t"].Partitions[1].Moving() {
		t.Fatal("partition 1 moves too")
	}
	// An ISR change that does not add broker 4 (a shrink) leaves it moving.
	shrink := AlterPartition{Topic: "t", Partition: 0, PartitionEpoch: 1, Leader: 1, ISR: []int32{1, 2}}
	m, _ = applyChecked(t, m, shrink)
	if p := m.Topics["t"].Partitions[0]; !p.Moving() {
		t.Fatalf("a shrink completed the move: %+v", p)
	}
	m, _ = applyChecked(t, m, joinISR(m, 0, 4))
	p = m.Topics["t"].Partitions[0]
	if p.Moving() || !slices.Equal(p.Replicas, []int32{2, 3, 4}) || !slices.Equal(p.ISR, []int32{2, 4}) || p.Leader != 2 || p.LeaderEpoch != 1 {
		t.Fatalf("completed: %+v", p)
	}
}

// A move whose leader stays keeps its leader epoch; a move that only
// reorders the replicas (nothing added) completes at once.
func TestMoveKeepingLeaderAndReorder(t *testing.T) {
	m := fourBrokers(t)
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{1, 2, 4}})
	m, _ = applyChecked(t, m, joinISR(m, 0, 4))
	p := m.Topics["t"].Partitions[0]
	if p.Moving() || !slices.Equal(p.Replicas, []int32{1, 2, 4}) || !slices.Equal(p.ISR, []int32{1, 2, 4}) || p.Leader != 1 || p.LeaderEpoch != 0 {
		t.Fatalf("completed: %+v", p)
	}
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 1, Target: []int32{1, 2, 3}})
	p = m.Topics["t"].Partitions[1]
	if p.Moving() || !slices.Equal(p.Replicas, []int32{1, 2, 3}) || p.Leader != 2 {
		t.Fatalf("reordered: %+v", p)
	}
	// The same list again changes nothing.
	next, _ := applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 1, Target: []int32{1, 2, 3}})
	if next != m {
		t.Fatal("a move to the current list changed the metadata")
	}
}

// Cancel goes back to the original replicas, dropping the adding ones
// from the ISR, and moves leadership off an adding replica that leads.
func TestMoveCancel(t *testing.T) {
	m := fourBrokers(t)
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{4, 3, 2}})
	// Broker 1 fails: leadership goes to the first target replica in the
	// ISR (2 here: 4 is not in it); 4 then joins... but the move needs 1
	// removed, and completes when 4 joins. Cancel before that.
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0})
	p := m.Topics["t"].Partitions[0]
	if p.Moving() || !slices.Equal(p.Replicas, []int32{3, 2, 1}) || !slices.Equal(p.ISR, []int32{1, 2, 3}) || p.Leader != 1 {
		t.Fatalf("cancelled: %+v", p)
	}
	if _, _, err := Apply(m, AlterReassignment{Topic: "t", Partition: 0}); !errors.Is(err, ErrNoReassignment) {
		t.Fatalf("cancel without a move: %v", err)
	}

	// An adding replica that leads (broker 1 and 2 fenced after 4 joined
	// a move that keeps 1... ) loses leadership on cancel.
	m = fourBrokers(t)
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{4, 1, 2}})
	p = m.Topics["t"].Partitions[0]
	// Make 4 lead by hand (as an election after 1 failed would, were 4 first
	// in the ISR) without completing: 3 is removing and still in the ISR,
	// and 4 not yet... so build the state directly.
	nt := m.Topics["t"].clone()
	nt.Partitions[0].ISR, nt.Partitions[0].Leader = []int32{4, 3}, 4
	nt.Partitions[0].Adding = []int32{4}
	m.Topics["t"] = nt
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0})
	p = m.Topics["t"].Partitions[0]
	if p.Moving() || !slices.Equal(p.ISR, []int32{3}) || p.Leader != 3 || p.LeaderEpoch != 1 || slices.Contains(p.Replicas, 4) {
		t.Fatalf("cancelled with an adding leader: %+v", p)
	}

	// A cancel that would leave no original replica in the ISR is refused.
	m = fourBrokers(t)
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{4, 2, 3}})
	nt = m.Topics["t"].clone()
	nt.Partitions[0].ISR, nt.Partitions[0].Leader = []int32{4}, 4
	m.Topics["t"] = nt
	if _, _, err := Apply(m, AlterReassignment{Topic: "t", Partition: 0}); !errors.Is(err, ErrInvalidReassignment) {
		t.Fatalf("cancel with only adding replicas in the ISR: %v", err)
	}
}

// The move waits while no target replica could lead: the leader is
// being removed and the only target replicas in the ISR are on dead
// brokers.
func TestMoveWaitsForALeader(t *testing.T) {
	m := fourBrokers(t)
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3, 4}})
	m, _ = applyChecked(t, m, AlterPartition{Topic: "t", Partition: 0, PartitionEpoch: 1, Leader: 1, ISR: []int32{1}})
	m, _ = applyChecked(t, m, FenceBroker{ID: 4, Epoch: 1})
	// 4 joins the ISR (its epoch was current when it caught up, but it is
	// offline now: refused, R10).
	if _, _, err := Apply(m, joinISR(m, 0, 4)); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Fatalf("an offline broker joined the ISR: %v", err)
	}
	p := m.Topics["t"].Partitions[0]
	if !p.Moving() || p.Leader != 1 {
		t.Fatalf("%+v", p)
	}
}

// Refusals: another replication factor, an unknown broker, a duplicate,
// a new target while moving, an unknown partition, a topic created again.
func TestMoveRefusals(t *testing.T) {
	m := fourBrokers(t)
	moving, _ := applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3, 4}})
	for _, tc := range []struct {
		name string
		m    *Metadata
		c    AlterReassignment
		want error
	}{
		{"fewer replicas", m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3}}, ErrInvalidReassignment},
		{"unknown broker", m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3, 9}}, ErrUnknownBroker},
		{"twice", m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3, 3}}, ErrInvalidReassignment},
		{"moving", moving, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{1, 3, 4}}, ErrReassignmentInProgress},
		{"unknown partition", m, AlterReassignment{Topic: "t", Partition: 2, Target: []int32{2, 3, 4}}, ErrUnknownPartition},
		{"unknown topic", m, AlterReassignment{Topic: "x", Partition: 0, Target: []int32{2, 3, 4}}, ErrUnknownTopic},
		{"other topic id", m, AlterReassignment{Topic: "t", TopicID: 9, Partition: 0, Target: []int32{2, 3, 4}}, ErrStalePartitionEpoch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, _, err := Apply(tc.m, tc.c)
			if !errors.Is(err, tc.want) || next != tc.m {
				t.Fatalf("%v, want %v", err, tc.want)
			}
		})
	}
}

// A move's start is idempotent, so a start retried after the leader lost
// its leadership while committing it (write.go's retrySafe) gets the
// answer the first try would have had: the same target again, while the
// move runs or waits in the queue, is accepted and changes nothing.
func TestMoveStartAgainWithTheSameTarget(t *testing.T) {
	moving, _ := applyChecked(t, fourBrokers(t), AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3, 4}})
	if next, _ := applyChecked(t, moving, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3, 4}}); next != moving {
		t.Fatalf("the same target again changed the move: %+v, was %+v", next.Topics["t"].Partitions[0], moving.Topics["t"].Partitions[0])
	}
	queued := applyAll(t, fourBrokers(t), AlterClusterConfigs{Set: map[string]string{ConfigMaxMoves: "1"}},
		AlterReassignment{Topic: "t", Partition: 1, Target: []int32{4, 3, 2}},
		AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3, 4}})
	if p := queued.Topics["t"].Partitions[0]; !slices.Equal(p.Queued, []int32{2, 3, 4}) {
		t.Fatalf("not queued: %+v", p)
	}
	if next, _ := applyChecked(t, queued, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3, 4}}); next != queued {
		t.Fatalf("the same queued target again changed it: %+v", next.Topics["t"].Partitions[0])
	}
	// Another target is still refused (cancel first).
	if _, _, err := Apply(queued, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{1, 3, 4}}); !errors.Is(err, ErrReassignmentInProgress) {
		t.Fatalf("another target for a queued move: %v", err)
	}
}

// A fenced leader during a move: the election goes through the replica
// list in order, target first, and the move still completes later.
func TestMoveSurvivesLeaderFailure(t *testing.T) {
	m := fourBrokers(t)
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{2, 3, 4}})
	m, _ = applyChecked(t, m, FenceBroker{ID: 1, Epoch: 1})
	p := m.Topics["t"].Partitions[0]
	if !p.Moving() || p.Leader != 2 || !slices.Equal(p.ISR, []int32{2, 3}) {
		t.Fatalf("after the fence: %+v", p)
	}
	m, _ = applyChecked(t, m, joinISR(m, 0, 4))
	p = m.Topics["t"].Partitions[0]
	if p.Moving() || !slices.Equal(p.Replicas, []int32{2, 3, 4}) || !slices.Equal(p.ISR, []int32{2, 3, 4}) || p.Leader != 2 {
		t.Fatalf("completed: %+v", p)
	}
}

// Growing a topic places the new partitions as creation would have, and
// refuses shrinking, a stale count and another replication factor.
func TestCreatePartitions(t *testing.T) {
	m := fourBrokers(t)
	want, err := Place(m.AliveBrokers(), 5, 3, int(m.Topics["t"].ID))
	if err != nil {
		t.Fatal(err)
	}
	c, err := PlanCreatePartitions(m, "t", 5)
	if err != nil {
		t.Fatal(err)
	}
	if c.From != 2 || !reflect.DeepEqual(c.Replicas, want[2:]) {
		t.Fatalf("plan %+v, want replicas %v", c, want[2:])
	}
	next, _ := applyChecked(t, m, c)
	ps := next.Topics["t"].Partitions
	if len(ps) != 5 || ps[4].Index != 4 || !slices.Equal(ps[4].Replicas, want[4]) || ps[4].Leader != want[4][0] || !slices.Equal(ps[4].ISR, want[4]) {
		t.Fatalf("partitions %+v", ps)
	}
	if !reflect.DeepEqual(ps[:2], m.Topics["t"].Partitions) {
		t.Fatal("existing partitions changed")
	}
	if _, _, err := Apply(next, c); !errors.Is(err, ErrStalePartitionEpoch) {
		t.Fatalf("the same plan twice: %v", err)
	}
	for _, n := range []int32{1, 2, MaxPartitions + 1} {
		if _, err := PlanCreatePartitions(m, "t", n); !errors.Is(err, ErrInvalidPartitions) {
			t.Fatalf("grow to %d: %v", n, err)
		}
	}
	if _, err := PlanCreatePartitions(m, "x", 3); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	bad := CreatePartitions{Topic: "t", From: 2, Replicas: [][]int32{{1, 2}}}
	if _, _, err := Apply(m, bad); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Fatalf("another replication factor: %v", err)
	}
	bad = CreatePartitions{Topic: "t", From: 2, Replicas: [][]int32{{1, 2, 9}}}
	if _, _, err := Apply(m, bad); !errors.Is(err, ErrUnknownBroker) {
		t.Fatalf("unknown broker: %v", err)
	}
}

// A snapshot keeps a move in progress, and refuses one that Apply could
// not have left.
func TestSnapshotKeepsMove(t *testing.T) {
	m := applyAll(t, fourBrokers(t), AlterReassignment{Topic: "t", Partition: 1, Target: []int32{4, 3, 1}})
	m.CommandLevel = CommandVersion
	got, index, err := decodeSnapshot(encodeSnapshot(m, 5))
	if err != nil || index != 5 || !reflect.DeepEqual(got, m) {
		t.Fatalf("restored %+v, %d, %v; want %+v", got, index, err, m)
	}
	nt := m.Topics["t"].clone()
	nt.Partitions[1].Removing = []int32{3}
	m.Topics["t"] = nt
	if _, _, err := decodeSnapshot(encodeSnapshot(m, 5)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("removing replica inside the target: %v, want ErrCorrupt", err)
	}
}

// A version 6 snapshot (the build before moves) restores with nothing
// moving. Its bytes are a version 9 one's without the last four bytes:
// no moves, no cluster configs, no group configs and no removed brokers
// encode as four zero counts.
func TestSnapshotVersion6Restores(t *testing.T) {
	m := busyFSM(t).Metadata().Clone()
	v6 := olderSnapshot(t, m, 6, []byte{0, 0, 0, 0})
	m.CommandLevel = 6
	got, index, err := decodeSnapshot(v6)
	if err != nil || index != 10 || !reflect.DeepEqual(got, m) {
		t.Fatalf("version 6: %v, index %d", err, index)
	}
	// The same body as the current version lacks the moves: refused.
	if _, _, err := decodeSnapshot(encodeSnapshotRaw(v6[snapshotHeader : len(v6)-4])); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version %d without moves: %v, want ErrCorrupt", snapshotVersion, err)
	}
}

// olderSnapshot returns m's snapshot at index 10 in the layout of an
// earlier version: the current encoding, which must end with tail (the
// fields that version lacks, all empty), without it.
func olderSnapshot(t *testing.T, m *Metadata, version byte, tail []byte) []byte {
	t.Helper()
	cur := encodeSnapshot(m, 10)
	body := cur[snapshotHeader : len(cur)-4]
	if !bytes.HasSuffix(body, tail) {
		t.Fatalf("setup: the snapshot ends with %x, want %x", body[max(0, len(body)-len(tail)):], tail)
	}
	body = body[:len(body)-len(tail)]
	b := append([]byte(snapshotMagic), version, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(snapshotMagic)+1:], uint32(len(body)))
	b = append(b, body...)
	b = binary.BigEndian.AppendUint32(b, crc32c(b[len(snapshotMagic):]))
	// The encoder writes the same bytes at that level (features.go).
	at := *m
	at.CommandLevel = version
	if got := encodeSnapshot(&at, 10); !bytes.Equal(got, b) {
		t.Errorf("snapshot at command level %d:\n%x\nwant the version %d layout\n%x", version, got, version, b)
	}
	return b
}

// Moves beyond the limits wait in a queue and start, in topic and
// partition order, as moves end or the limits rise; a queued move is
// cancelled without starting.
func TestMoveQueue(t *testing.T) {
	m := applyAll(t, threeBrokers(t),
		RegisterBroker{ID: 4, Addr: "d:1", PreviousEpoch: PreviousEpochEmpty},
		RegisterBroker{ID: 5, Addr: "e:1", PreviousEpoch: PreviousEpochEmpty},
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2}, {1, 3}, {2, 3}, {2, 1}}},
		AlterClusterConfigs{Set: map[string]string{ConfigMaxMoves: "2", ConfigMaxMovesPerBroker: "1"}})
	queued := func(m *Metadata) []int32 {
		var out []int32
		for _, p := range m.Topics["t"].Partitions {
			if len(p.Queued) > 0 {
				out = append(out, p.Index)
			}
		}
		return out
	}
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{4, 2}}) // 4 and 1: starts
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 1, Target: []int32{5, 3}}) // 1 is busy: queued
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 2, Target: []int32{5, 3}}) // 5 and 2: starts
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 3, Target: []int32{3, 1}}) // 3 at the cluster limit: queued
	ps := m.Topics["t"].Partitions
	if !ps[0].Moving() || !ps[2].Moving() || !slices.Equal(queued(m), []int32{1, 3}) || !slices.Equal(ps[1].Replicas, []int32{1, 3}) {
		t.Fatalf("partitions %+v", ps)
	}
	if _, _, err := Apply(m, AlterReassignment{Topic: "t", Partition: 1, Target: []int32{4, 3}}); !errors.Is(err, ErrReassignmentInProgress) {
		t.Fatalf("a new target for a queued move: %v", err)
	}
	got, err := decodeSnapshotOf(m)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("snapshot with queued moves: %v", err)
	}
	// Partition 0 completes (1 and 4 free): partition 1 still waits for
	// 5, partition 3 for 2 (both in partition 2's move).
	m, _ = applyChecked(t, m, joinISR(m, 0, 4))
	if ps := m.Topics["t"].Partitions; ps[0].Moving() || !slices.Equal(queued(m), []int32{1, 3}) {
		t.Fatalf("after partition 0 completed: %+v", ps)
	}
	// Partition 2 completes (5 and 2 free): partitions 1 (5, 1) and 3
	// (3, 2) both fit.
	m, _ = applyChecked(t, m, joinISR(m, 2, 5))
	ps = m.Topics["t"].Partitions
	if !ps[1].Moving() || !slices.Equal(ps[1].Adding, []int32{5}) || !ps[3].Moving() || len(queued(m)) != 0 {
		t.Fatalf("after partition 2 completed: %+v", ps)
	}
	// Cancelling a queued move needs no revert.
	m = applyAll(t, m, AlterClusterConfigs{Set: map[string]string{ConfigMaxMoves: "1"}}, AlterReassignment{Topic: "t", Partition: 0, Target: []int32{4, 3}})
	if p := m.Topics["t"].Partitions[0]; !slices.Equal(p.Queued, []int32{4, 3}) {
		t.Fatalf("not queued: %+v", p)
	}
	m, _ = applyChecked(t, m, AlterReassignment{Topic: "t", Partition: 0, Target: nil})
	if p := m.Topics["t"].Partitions[0]; len(p.Queued) != 0 || p.Moving() {
		t.Fatalf("cancelled queued move: %+v", p)
	}
}

// Raising the limits starts queued moves at once.
func TestRaisingMoveLimitsStartsQueued(t *testing.T) {
	m := applyAll(t, fourBrokers(t), AlterClusterConfigs{Set: map[string]string{ConfigMaxMoves: "1"}},
		AlterReassignment{Topic: "t", Partition: 0, Target: []int32{4, 2, 3}},
		AlterReassignment{Topic: "t", Partition: 1, Target: []int32{2, 3, 4}})
	if p := m.Topics["t"].Partitions[1]; !slices.Equal(p.Queued, []int32{2, 3, 4}) {
		t.Fatalf("not queued: %+v", p)
	}
	m, _ = applyChecked(t, m, AlterClusterConfigs{Remove: []string{ConfigMaxMoves}})
	if p := m.Topics["t"].Partitions[1]; len(p.Queued) != 0 || !slices.Equal(p.Adding, []int32{4}) {
		t.Fatalf("not started: %+v", p)
	}
	if m.Configs != nil || m.ClusterConfig(ConfigMaxMoves) != "50" || m.ReassignmentThrottle() != 50<<20 {
		t.Fatalf("configs %v", m.Configs)
	}
	for _, bad := range []AlterClusterConfigs{
		{Set: map[string]string{ConfigMaxMoves: "0"}},
		{Set: map[string]string{ConfigReassignmentThrottle: "x"}},
		{Set: map[string]string{"retention.ms": "1"}},
		{Remove: []string{"nope"}},
	} {
		if _, _, err := Apply(m, bad); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%+v: %v, want ErrInvalidConfig", bad, err)
		}
	}
}

func decodeSnapshotOf(m *Metadata) (*Metadata, error) {
	got, _, err := decodeSnapshot(encodeSnapshot(m, 1))
	if err == nil && m.CommandLevel == 0 {
		// Metadata no command was applied to restores at the newest
		// level (TestSnapshotLayoutFollowsLevel).
		got.CommandLevel = 0
	}
	return got, err
}
