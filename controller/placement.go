package controller

import (
	"fmt"
	"sort"
)

// PlaceNew places n new partitions with replication factor rf as Place
// does, over m's placement brokers (alive and not being drained,
// Metadata.PlacementBrokers) in rack order. Topic creation and partition
// growth, and the broker's checks of them, all place through it.
func PlaceNew(m *Metadata, n int32, rf int16, start int) ([][]int32, error) {
	ids := m.PlacementBrokers()
	placed, err := Place(RackOrder(ids, func(id int32) string { return m.Brokers[id].Rack }), n, rf, start)
	if err != nil && rf >= 1 && int(rf) > len(ids) {
		if draining := m.DrainingBrokers(); len(draining) > 0 {
			return nil, fmt.Errorf("%w (brokers %v are being drained, %s, and take no new replicas)", err, draining, ConfigBrokersDraining)
		}
	}
	return placed, err
}

// MaxPartitions bounds the partitions of one topic.
const MaxPartitions = 100000

// Place assigns replicas for n partitions with replication factor rf over the
// given live brokers (sorted ids). Partition p's replicas are rf consecutive
// brokers starting at (start+p) mod len(brokers), so replicas spread evenly
// and the first replica — the preferred leader — rotates over the brokers.
// start lets successive topics begin on different brokers.
func Place(brokers []int32, n int32, rf int16, start int) ([][]int32, error) {
	if n < 1 || n > MaxPartitions {
		return nil, fmt.Errorf("%w: %d, want 1 to %d", ErrInvalidPartitions, n, MaxPartitions)
	}
	if rf < 1 {
		return nil, fmt.Errorf("%w: %d, want at least 1", ErrInvalidReplicationFactor, rf)
	}
	if int(rf) > len(brokers) {
		return nil, fmt.Errorf("%w: %d, but only %d brokers are alive", ErrInvalidReplicationFactor, rf, len(brokers))
	}
	if start < 0 {
		start = -start
	}
	out := make([][]int32, n)
	for p := range out {
		r := make([]int32, rf)
		for i := range r {
			r[i] = brokers[(start+p+i)%len(brokers)]
		}
		out[p] = r
	}
	return out, nil
}

// RackOrder orders brokers (sorted ids) so that consecutive entries are on
// different racks wherever the racks allow: one broker from each rack in
// turn (racks by name, brokers by id within a rack). Place over this order
// puts the rf replicas of a partition on rf different racks whenever there
// are at least rf racks, as Kafka's rack-aware assignment does. Brokers
// with no rack form one rack named ""; with no racks at all the order is
// unchanged.
func RackOrder(brokers []int32, rackOf func(int32) string) []int32 {
	byRack := map[string][]int32{}
	var racks []string
	for _, id := range brokers {
		r := rackOf(id)
		if _, ok := byRack[r]; !ok {
			racks = append(racks, r)
		}
		byRack[r] = append(byRack[r], id)
	}
	if len(racks) <= 1 {
		return brokers
	}
	sort.Strings(racks)
	out := make([]int32, 0, len(brokers))
	for i := 0; len(out) < len(brokers); i++ {
		for _, r := range racks {
			if ids := byRack[r]; i < len(ids) {
				out = append(out, ids[i])
			}
		}
	}
	return out
}
