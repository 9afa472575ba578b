package controller

import (
	"fmt"
	"slices"
	"time"

	"github.com/sluicemq/sluice/balance"
)

// PlanAutoBalance returns the moves auto.balance makes, as
// AlterReassignment commands (in topic and partition order), and the
// planner's notes. Nothing with auto.balance=off, and nothing while any
// partition is moving or queued (the next round plans on what the moves
// left). Otherwise the balance planner's plan over the registered
// brokers (racks apart, even replica counts, then even preferred leaders
// by reordering) when:
//   - on-join and continuous: the alive brokers' replica counts differ by
//     more than one (a broker joined, or was down when topics were
//     created);
//   - continuous: a broker in down (down longer than
//     auto.balance.broker.down.ms, as DownTracker saw it) holds a
//     replica; it is then evacuated (balance.Broker.Remove): its
//     replicas are re-created on alive brokers, rack rules kept, when
//     the alive brokers can take them (the planner's notes say why not
//     otherwise).
//
// The controller leader runs it now and then; each move then goes
// through the move limits and the throttle like any other. Dead brokers
// are never a target; with on-join they keep their replicas.
func PlanAutoBalance(m *Metadata, down []int32) ([]AlterReassignment, []string) {
	mode := m.ClusterConfig(ConfigAutoBalance)
	if mode != AutoBalanceOnJoin && mode != AutoBalanceContinuous {
		return nil, nil
	}
	if mode != AutoBalanceContinuous {
		down = nil
	}
	alive := m.AliveBrokers()
	if len(alive) < 1 {
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
	evacuate := false
	for _, id := range down {
		if count[id] > 0 {
			evacuate = true
		}
	}
	if hi-lo <= 1 && !evacuate || len(alive) < 2 && !evacuate {
		return nil, nil
	}
	brokers := make([]balance.Broker, 0, len(m.Brokers))
	for _, id := range sortedBrokerIDs(m) {
		b := m.Brokers[id]
		brokers = append(brokers, balance.Broker{ID: id, Rack: b.Rack, Alive: b.State == BrokerAlive, Remove: slices.Contains(down, id)})
	}
	plan := balance.Rebalance(brokers, parts, balance.Options{})
	out := make([]AlterReassignment, 0, len(plan.Moves))
	for _, mv := range plan.Moves {
		out = append(out, AlterReassignment{Topic: mv.Topic, TopicID: m.Topics[mv.Topic].ID, Partition: mv.Partition, Target: mv.To})
	}
	notes := plan.Notes
	if evacuate {
		notes = append(notes, fmt.Sprintf("brokers %v down longer than %s: their replicas are re-created on alive brokers", down, ConfigAutoBalanceBrokerDown))
	}
	return out, notes
}

// DownTracker remembers since when each registered broker has been seen
// not alive, by the controller leader's clock: the down timer of
// auto.balance=continuous. It lives on the leader only (a new leader
// starts its timers again, so a broker is evacuated at most a down time
// later than it would have been) and is used by one goroutine.
type DownTracker struct {
	since map[int32]time.Time
}

// Observe notes, at now, which brokers of m are not alive: a broker seen
// down for the first time starts its timer, one alive again or no longer
// registered drops it.
func (d *DownTracker) Observe(m *Metadata, now time.Time) {
	if d.since == nil {
		d.since = map[int32]time.Time{}
	}
	for id := range d.since {
		if b, ok := m.Brokers[id]; !ok || b.State == BrokerAlive {
			delete(d.since, id)
		}
	}
	for id, b := range m.Brokers {
		if _, ok := d.since[id]; !ok && b.State != BrokerAlive {
			d.since[id] = now
		}
	}
}

// Reset forgets every timer (this node stopped leading).
func (d *DownTracker) Reset() { d.since = nil }

// DownLonger returns, sorted, the brokers seen down for at least limit
// at now.
func (d *DownTracker) DownLonger(limit time.Duration, now time.Time) []int32 {
	var out []int32
	for id, at := range d.since {
		if now.Sub(at) >= limit {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
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
