package broker

import (
	"os"
	"testing"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/vfs"
)

// A reconcile with metadata older than what was reconciled already is
// ignored. The watcher and the admin handlers each read the metadata and
// then wait for the others: the one that read first may run last, and its
// metadata, from before a topic was created, would close the new topic
// and remove its data.
func TestReconcileIgnoresOlderMetadata(t *testing.T) {
	apply := func(m *controller.Metadata, c controller.Command) *controller.Metadata {
		t.Helper()
		n, _, err := controller.Apply(m, c)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := apply(controller.NewMetadata(), controller.RegisterBroker{ID: 1, Addr: "127.0.0.1:1", PreviousEpoch: controller.PreviousEpochEmpty})
	create, err := controller.PlanCreateTopic(before, controller.TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	after := apply(before, create)

	dir := t.TempDir()
	m := newPartitions(vfs.Default, dir, 1, nil, zap.NewNop(), &replication{})
	defer m.closeAll()
	m.reconcile(after)
	m.reconcile(before) // lost the race: read before the topic was created
	if _, err := os.Stat(m.partitionDir("t", 0)); err != nil {
		t.Fatalf("the topic's data after an older reconcile: %v", err)
	}
	m.mu.RLock()
	tp := m.topics["t"]
	m.mu.RUnlock()
	if tp == nil || tp.parts[0] == nil || tp.parts[0].isClosed() {
		t.Fatal("an older reconcile closed the new topic's partition")
	}
}
