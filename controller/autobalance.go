package controller

import (
	"fmt"
	"slices"
	"time"

	"github.com/sluicemq/sluice/balance"
)

// Load is what the controller leader's broker learned outside the
// metadata for PlanAutoBalance: the brokers down longer than
// auto.balance.broker.down.ms (DownTracker), each broker's disk, and each
// partition's size. Missing entries are unknown: the disk goal skips a
// broker without a disk, a partition without a size counts 0.
type Load struct {
	Down  []int32
	Disks map[int32]Disk
	// Bytes is each partition's log size by topic, indexed by partition.
	Bytes map[string][]int64
}

// Disk is a broker's file system: bytes used and its size.
type Disk struct {
	Used, Capacity int64
}

// over reports whether d is above threshold (a fraction).
func (d Disk) over(threshold float64) bool {
	return d.Capacity > 0 && float64(d.Used) > threshold*float64(d.Capacity)
}

// PlanAutoBalance returns the moves auto.balance makes, as
// AlterReassignment commands (in topic and partition order), and the
// planner's notes. Nothing with auto.balance=off, and nothing while any
// partition is moving or queued (the next round plans on what the moves
// left). Otherwise the balance planner's plan over the registered
// brokers (evacuate, racks apart, disks under the threshold, even
// replica counts, then even preferred leaders by reordering) when:
//   - on-join and continuous: the alive brokers' replica counts differ by
//     more than one (a broker joined, or was down when topics were
//     created);
//   - continuous: a broker in load.Down (down longer than
//     auto.balance.broker.down.ms) holds a replica; it is then evacuated
//     (balance.Broker.Remove): its replicas are re-created on alive
//     brokers, rack rules kept, when the alive brokers can take them
//     (the planner's notes say why not otherwise);
//   - continuous: an alive broker's disk is above
//     auto.balance.disk.threshold.percent; it sheds replicas, smallest
//     first, to brokers that stay below it.
//
// The controller leader runs it now and then; each move then goes
// through the move limits and the throttle like any other. Dead brokers
// are never a target; with on-join they keep their replicas, and disks
// are not looked at.
//
// Brokers being drained (ConfigBrokersDraining) are never a target and,
// in both modes, are emptied: a drained broker holding a replica is
// reason enough to plan, and the counts to even are those of the alive
// brokers not being drained.
func PlanAutoBalance(m *Metadata, load Load) ([]AlterReassignment, []string) {
	mode := m.ClusterConfig(ConfigAutoBalance)
	if mode != AutoBalanceOnJoin && mode != AutoBalanceContinuous {
		return nil, nil
	}
	if mode != AutoBalanceContinuous {
		load = Load{}
	}
	// Brokers being drained take nothing and are emptied, whatever the
	// mode; the counts to even are those of the brokers that stay.
	draining := m.DrainingBrokers()
	alive := m.PlacementBrokers()
	if len(alive) < 1 {
		return nil, nil
	}
	threshold := m.AutoBalanceDiskThreshold()
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
			bp := balance.Partition{Topic: name, Index: p.Index, Replicas: slices.Clone(p.Replicas)}
			if sizes := load.Bytes[name]; int(p.Index) < len(sizes) {
				bp.Bytes = sizes[p.Index]
			}
			parts = append(parts, bp)
		}
	}
	lo, hi := count[alive[0]], count[alive[0]]
	for _, id := range alive {
		lo, hi = min(lo, count[id]), max(hi, count[id])
	}
	var evacuate, drained, full []int32
	for _, id := range load.Down {
		if count[id] > 0 && !slices.Contains(draining, id) {
			evacuate = append(evacuate, id)
		}
	}
	for _, id := range draining {
		if count[id] > 0 {
			drained = append(drained, id)
		}
	}
	for _, id := range alive {
		if load.Disks[id].over(threshold) && count[id] > 0 {
			full = append(full, id)
		}
	}
	if (hi-lo <= 1 || len(alive) < 2) && len(evacuate) == 0 && len(drained) == 0 && len(full) == 0 {
		return nil, nil
	}
	brokers := make([]balance.Broker, 0, len(m.Brokers))
	for _, id := range sortedBrokerIDs(m) {
		b := m.Brokers[id]
		d := load.Disks[id]
		brokers = append(brokers, balance.Broker{ID: id, Rack: b.Rack, Alive: b.State == BrokerAlive, Remove: slices.Contains(load.Down, id) || slices.Contains(draining, id),
			DiskBytes: d.Used, DiskCapacity: d.Capacity})
	}
	plan := balance.Rebalance(brokers, parts, balance.Options{DiskThreshold: threshold})
	out := make([]AlterReassignment, 0, len(plan.Moves))
	for _, mv := range plan.Moves {
		out = append(out, AlterReassignment{Topic: mv.Topic, TopicID: m.Topics[mv.Topic].ID, Partition: mv.Partition, Target: mv.To})
	}
	notes := plan.Notes
	if len(evacuate) > 0 {
		notes = append(notes, fmt.Sprintf("brokers %v down longer than %s: their replicas are re-created on alive brokers", evacuate, ConfigAutoBalanceBrokerDown))
	}
	if len(drained) > 0 {
		notes = append(notes, fmt.Sprintf("brokers %v are being drained (%s): their replicas move away", drained, ConfigBrokersDraining))
	}
	if len(full) > 0 {
		notes = append(notes, fmt.Sprintf("brokers %v above %s: they shed replicas", full, ConfigAutoBalanceDiskThreshold))
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
