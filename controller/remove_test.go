package controller

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// A broker is unregistered only when stopped and drained; the refusal
// names what it still holds. Its data directory is then refused
// registration, while a new directory joins with a higher epoch.
func TestUnregisterBroker(t *testing.T) {
	m := applyAll(t, threeBrokers(t),
		RegisterBroker{ID: 4, Addr: "d:1", DirID: "dir-d", PreviousEpoch: PreviousEpochEmpty},
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 4}, {2, 3, 1}}})
	if _, _, err := Apply(m, UnregisterBroker{ID: 4, Epoch: 1}); !errors.Is(err, ErrMembershipChange) || !strings.Contains(err.Error(), "alive") {
		t.Fatalf("alive broker: %v, want ErrMembershipChange naming alive", err)
	}
	m = applyAll(t, m, FenceBroker{ID: 4, Epoch: 1})
	_, _, err := Apply(m, UnregisterBroker{ID: 4, Epoch: 1})
	if !errors.Is(err, ErrMembershipChange) || !strings.Contains(err.Error(), "t-0") || strings.Contains(err.Error(), "t-1") {
		t.Fatalf("broker holding t-0: %v, want ErrMembershipChange naming t-0 only", err)
	}
	if _, _, err := Apply(m, UnregisterBroker{ID: 5, Epoch: 1}); !errors.Is(err, ErrUnknownBroker) {
		t.Fatalf("unknown broker: %v", err)
	}
	// Drained: move t-0 off 4 and finish the move.
	m = applyAll(t, m, AlterReassignment{Topic: "t", TopicID: m.Topics["t"].ID, Partition: 0, Target: []int32{1, 2, 3}})
	if _, _, err := Apply(m, UnregisterBroker{ID: 4, Epoch: 1}); !errors.Is(err, ErrMembershipChange) {
		t.Fatalf("broker still being removed from t-0: %v, want ErrMembershipChange", err)
	}
	m = applyAll(t, m, joinISR(m, 0, 3))
	if held := HeldBy(m, 4); len(held) != 0 {
		t.Fatalf("setup: broker 4 still holds %v", held)
	}
	if _, _, err := Apply(m, UnregisterBroker{ID: 4, Epoch: 0}); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Fatalf("stale epoch: %v", err)
	}
	m = applyAll(t, m, UnregisterBroker{ID: 4, Epoch: 1})
	if _, ok := m.Brokers[4]; ok || m.Removed[4] != (RemovedBroker{DirID: "dir-d", Epoch: 1}) {
		t.Fatalf("after removal: broker %+v, removed %+v", m.Brokers[4], m.Removed)
	}
	if got := m.AliveBrokers(); !reflect.DeepEqual(got, []int32{1, 2, 3}) {
		t.Fatalf("alive brokers %v", got)
	}
	// Placement never picks it.
	spec := TopicSpec{Name: "u", Partitions: 6, ReplicationFactor: 3}
	c, err := PlanCreateTopic(m, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range c.Replicas {
		if contains(rs, 4) {
			t.Fatalf("placement picked the removed broker: %v", c.Replicas)
		}
	}
	// Its old data directory is refused; a new one joins above its epoch.
	if _, _, err := Apply(m, RegisterBroker{ID: 4, Addr: "d:1", DirID: "dir-d", PreviousEpoch: 1}); !errors.Is(err, ErrBrokerRemoved) {
		t.Fatalf("old directory: %v, want ErrBrokerRemoved", err)
	}
	n, res, err := Apply(m, RegisterBroker{ID: 4, Addr: "d:1", DirID: "dir-e", PreviousEpoch: PreviousEpochEmpty})
	if err != nil || res.BrokerEpoch != 2 || len(n.Removed) != 0 || len(m.Removed) != 1 {
		t.Fatalf("new directory: epoch %d, removed %v (before %v), %v; want epoch 2 and the entry gone", res.BrokerEpoch, n.Removed, m.Removed, err)
	}
	// Removed survives a snapshot and a clone.
	got, _, err := decodeSnapshot(encodeSnapshot(m, 3))
	if err != nil || !reflect.DeepEqual(got.Removed, m.Removed) {
		t.Fatalf("snapshot: %+v, %v", got.Removed, err)
	}
	if c := m.Clone(); !reflect.DeepEqual(c.Removed, m.Removed) {
		t.Fatalf("clone: %+v", c.Removed)
	}
}

// A version 8 snapshot (before removals) restores with none removed: its
// bytes are a version 9 one's without the last zero count.
func TestSnapshotVersion8Restores(t *testing.T) {
	m := busyFSM(t).Metadata().Clone()
	v8 := olderSnapshot(t, m, 8, []byte{0})
	m.CommandLevel = 8
	got, _, err := decodeSnapshot(v8)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("version 8: %v", err)
	}
}

func TestUnregisterBrokerEncoding(t *testing.T) {
	c := UnregisterBroker{ID: 7, Epoch: 12}
	got, err := DecodeCommand(AppendCommand(nil, c))
	if err != nil || got != c {
		t.Fatalf("decoded %#v, %v", got, err)
	}
	old := AppendCommand(nil, c)
	old[0] = commandVersion8
	if _, err := DecodeCommand(old); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version 7 UnregisterBroker: %v, want ErrCorrupt", err)
	}
	for _, op := range []requestOp{opRemoveBroker, opPromoteVoter, opDemoteVoter} {
		r, err := decodeRequest(appendRequest(nil, request{op: op, broker: 3}))
		if err != nil || r.op != op || r.broker != 3 {
			t.Fatalf("op %d: %+v, %v", op, r, err)
		}
	}
}

func TestCheckVoterChange(t *testing.T) {
	three := []Server{{ID: 1, Voter: true}, {ID: 2, Voter: true}, {ID: 3, Voter: true}, {ID: 4}}
	upExcept := func(down ...int32) func(int32) bool {
		return func(id int32) bool { return !contains(down, id) }
	}
	for _, tc := range []struct {
		name    string
		servers []Server
		live    func(int32) bool
		id      int32
		voter   bool
		ok      bool
	}{
		{"remove a down voter of three", three, upExcept(3), 3, false, true},
		{"remove a live voter while another is down", three, upExcept(3), 2, false, false},
		{"remove a live voter, all up", three, upExcept(), 2, false, true},
		{"promote a live non-voter while a voter is down", three, upExcept(3), 4, true, true},
		{"promote while two voters are down", three, upExcept(2, 3), 4, true, false},
		{"promote a non-voter that is down", three, upExcept(4), 4, true, true}, // 3 of 4 live: the caller checks the node itself
		{"remove the last voter", []Server{{ID: 1, Voter: true}, {ID: 2}}, upExcept(), 1, false, false},
		{"remove one of two, the other live", []Server{{ID: 1, Voter: true}, {ID: 2, Voter: true}}, upExcept(2), 2, false, true},
	} {
		err := CheckVoterChange(tc.servers, tc.live, tc.id, tc.voter)
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrMembershipChange) {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
