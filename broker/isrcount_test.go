package broker

import (
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/vfs"
)

// A leader counts its own ISR changes as the metadata applies them, so a
// change whose controller answer was lost (the write timed out, or the
// controller changed, after the commit) is counted all the same, once;
// and a change the controller made itself (a fenced replica removed) is
// not the leader's. Counting on the answer, as before, left the expansion
// below uncounted: TestISRExpandsCounted (httpapi) then saw 3 of 4 now and
// then under load.
func TestISRChangesCountedWhenApplied(t *testing.T) {
	md := controller.NewMetadata()
	apply := func(c controller.Command) {
		t.Helper()
		next, _, err := controller.Apply(md, c)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		md = next
	}
	for id := int32(1); id <= 3; id++ {
		apply(controller.RegisterBroker{ID: id, Addr: "127.0.0.1:1", PreviousEpoch: controller.PreviousEpochEmpty})
	}
	create, err := controller.PlanCreateTopic(md, controller.TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	apply(create)
	leader := md.Topics["t"].Partitions[0].Leader
	follower := md.Topics["t"].Partitions[0].Replicas[2]

	m := newPartitions(vfs.Default, t.TempDir(), leader, nil, zap.NewNop(), &replication{})
	defer m.closeAll()
	m.reconcile(md)
	p := m.get("t", 0)
	if p == nil || p.role != roleLeader {
		t.Fatalf("broker %d does not lead t-0", leader)
	}
	counts := func() (int64, int64) { return m.isrShrinks.Load(), m.isrExpands.Load() }

	// The controller fences the follower: its ISR change is not counted.
	apply(controller.FenceBroker{ID: follower, Epoch: md.Brokers[follower].Epoch})
	m.reconcile(md)
	if s, e := counts(); s != 0 || e != 0 {
		t.Fatalf("the controller's fence counted as %d shrinks and %d expansions by the leader", s, e)
	}
	// The follower comes back; the leader proposes taking it back, and
	// the answer is lost: the metadata applying it is what counts.
	old := md.Brokers[follower].Epoch
	apply(controller.RegisterBroker{ID: follower, Addr: "127.0.0.1:1", PreviousEpoch: old})
	mp := md.Topics["t"].Partitions[0]
	c := controller.AlterPartition{Topic: "t", Partition: 0, PartitionEpoch: mp.PartitionEpoch, Leader: leader,
		ISR: append(slices.Clone(mp.ISR), follower), BrokerEpochs: make([]int64, len(mp.ISR)+1), TopicID: md.Topics["t"].ID}
	c.BrokerEpochs[len(mp.ISR)] = md.Brokers[follower].Epoch
	p.propose(&c)
	apply(c)
	m.reconcile(md)
	m.reconcile(md) // applied twice: counted once
	if s, e := counts(); s != 0 || e != 1 {
		t.Fatalf("after the leader's expansion: %d shrinks and %d expansions, want 0 and 1", s, e)
	}
	// A shrink the leader proposes is counted as one.
	mp = md.Topics["t"].Partitions[0]
	c = controller.AlterPartition{Topic: "t", Partition: 0, PartitionEpoch: mp.PartitionEpoch, Leader: leader,
		ISR: slices.DeleteFunc(slices.Clone(mp.ISR), func(id int32) bool { return id == follower }), TopicID: md.Topics["t"].ID}
	c.BrokerEpochs = make([]int64, len(c.ISR))
	p.propose(&c)
	apply(c)
	m.reconcile(md)
	if s, e := counts(); s != 1 || e != 1 {
		t.Fatalf("after the leader's shrink: %d shrinks and %d expansions, want 1 and 1", s, e)
	}
}
