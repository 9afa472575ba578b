package controller

import (
	"errors"
	"testing"
)

// AlterPartitions through a follower: every change is applied or refused
// on its own, answered in order, and the follower reads its own writes.
func TestClusterAlterPartitionsThroughFollower(t *testing.T) {
	c := newTestCluster(t, 3, 0)
	ctx := testContext(t)
	follower := c.follower()
	const parts = 40
	if _, err := follower.CreateTopic(ctx, TopicSpec{Name: "p", Partitions: parts, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	// Each leader drops one follower from its ISR; partition 5's change
	// is planned on a stale partition epoch.
	var cs []AlterPartition
	for _, p := range follower.Metadata().Topics["p"].Partitions {
		var isr []int32
		for _, r := range p.ISR {
			if r == p.Leader || len(isr) == 0 {
				isr = append(isr, r)
			}
		}
		if !contains(isr, p.Leader) {
			isr = append(isr, p.Leader)
		}
		epoch := p.PartitionEpoch
		if p.Index == 5 {
			epoch--
		}
		cs = append(cs, AlterPartition{Topic: "p", Partition: p.Index, PartitionEpoch: epoch, Leader: p.Leader,
			ISR: isr, BrokerEpochs: make([]int64, len(isr))})
	}
	errs, err := follower.AlterPartitions(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != parts {
		t.Fatalf("%d outcomes for %d changes", len(errs), parts)
	}
	for i, e := range errs {
		if i == 5 {
			if !errors.Is(e, ErrStalePartitionEpoch) {
				t.Errorf("stale change: %v, want ErrStalePartitionEpoch", e)
			}
			continue
		}
		if e != nil {
			t.Errorf("change %d: %v", i, e)
		}
		// Read your writes: the follower that asked sees the change.
		if p := follower.Metadata().Topics["p"].Partitions[i]; len(p.ISR) != len(cs[i].ISR) {
			t.Errorf("follower sees partition %d with ISR %v, want %v", i, p.ISR, cs[i].ISR)
		}
	}
	if _, err := follower.AlterPartitions(ctx, make([]AlterPartition, MaxAlterPartitions+1)); !errors.Is(err, ErrInvalidPartition) {
		t.Fatalf("%d changes in one call: %v", MaxAlterPartitions+1, err)
	}
	c.waitConverged()
}
