package controller

import (
	"slices"

	"github.com/sluicemq/sluice/balance"
)

// PlanAutoBalance returns the moves auto.balance=on-join makes, as
// AlterReassignment commands (in topic and partition order), and the
// planner's notes: when no partition is moving or queued and the alive
// brokers' replica counts differ by more than one (a broker joined, or
// was down when topics were created), the balance planner's plan over
// the alive brokers (racks apart, even replica counts, then even
// preferred leaders by reordering). Nothing otherwise, and nothing with
// auto.balance=off. The controller leader runs it now and then; each
// move then goes through the move limits and the throttle like any
// other. Dead brokers keep their replicas (they are neither a target
// nor evacuated).
func PlanAutoBalance(m *Metadata) ([]AlterReassignment, []string) {
	if m.ClusterConfig(ConfigAutoBalance) != AutoBalanceOnJoin {
		return nil, nil
	}
	alive := m.AliveBrokers()
	if len(alive) < 2 {
		return nil, nil
	}
	count := map[int32]int{}
	var parts []balance.Partition
	for _, name := range m.TopicNames() {
		t := m.Topics[name]
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if p.Moving() || len(p.Queued) > 0 {
				return nil, nil
			}
			for _, r := range p.Replicas {
				count[r]++
			}
			parts = append(parts, balance.Partition{Topic: name, Index: p.Index, Replicas: slices.Clone(p.Replicas)})
		}
	}
	lo, hi := count[alive[0]], count[alive[0]]
	for _, id := range alive {
		lo, hi = min(lo, count[id]), max(hi, count[id])
	}
	if hi-lo <= 1 {
		return nil, nil
	}
	brokers := make([]balance.Broker, 0, len(m.Brokers))
	for _, id := range sortedBrokerIDs(m) {
		b := m.Brokers[id]
		brokers = append(brokers, balance.Broker{ID: id, Rack: b.Rack, Alive: b.State == BrokerAlive})
	}
	plan := balance.Rebalance(brokers, parts, balance.Options{})
	out := make([]AlterReassignment, 0, len(plan.Moves))
	for _, mv := range plan.Moves {
		out = append(out, AlterReassignment{Topic: mv.Topic, TopicID: m.Topics[mv.Topic].ID, Partition: mv.Partition, Target: mv.To})
	}
	return out, plan.Notes
}

// sortedBrokerIDs returns every registered broker's id, ascending.
func sortedBrokerIDs(m *Metadata) []int32 {
	ids := make([]int32, 0, len(m.Brokers))
	for id := range m.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
