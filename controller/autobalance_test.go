package controller

import (
	"testing"
)

// auto.balance=on-join plans moves onto a broker holding fewer replicas
// than the others by more than one, but not while anything moves, not
// when counts are within one, and not when off.
func TestPlanAutoBalance(t *testing.T) {
	m := applyAll(t, threeBrokers(t),
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2}, {2, 3}, {3, 1}, {1, 2}, {2, 3}, {3, 1}}},
		RegisterBroker{ID: 4, Addr: "d:1", PreviousEpoch: PreviousEpochEmpty})
	if moves, _ := PlanAutoBalance(m); moves != nil {
		t.Fatalf("auto.balance off planned %+v", moves)
	}
	m = applyAll(t, m, AlterClusterConfigs{Set: map[string]string{ConfigAutoBalance: AutoBalanceOnJoin}})
	moves, _ := PlanAutoBalance(m)
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
	if again, _ := PlanAutoBalance(next); again != nil {
		t.Fatalf("planned %+v while a move is in progress", again)
	}
	for _, mv := range moves {
		m = applyAll(t, m, mv)
		if p := m.Topics["t"].Partitions[mv.Partition]; p.Moving() {
			m = applyAll(t, m, joinISR(m, mv.Partition, 4))
		}
	}
	if again, _ := PlanAutoBalance(m); again != nil {
		t.Fatalf("planned %+v once balanced", again)
	}
	if _, _, err := Apply(m, AlterClusterConfigs{Set: map[string]string{ConfigAutoBalance: "continuous"}}); err == nil {
		t.Fatal("auto.balance=continuous accepted (not built)")
	}
}
