package controller

import (
	"errors"
	"fmt"
)

// Placement errors.
var (
	ErrInvalidPartitions        = errors.New("invalid partition count")
	ErrInvalidReplicationFactor = errors.New("invalid replication factor")
)

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
