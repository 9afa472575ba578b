package broker

import (
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// mustApply applies c to m.
func mustApply(tb testing.TB, m *controller.Metadata, c controller.Command) *controller.Metadata {
	tb.Helper()
	n, _, err := controller.Apply(m, c)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// A reconcile with metadata older than what was reconciled already is
// ignored. The watcher and the admin handlers each read the metadata and
// then wait for the others: the one that read first may run last, and its
// metadata, from before a topic was created, would close the new topic
// and remove its data.
func TestReconcileIgnoresOlderMetadata(t *testing.T) {
	before := mustApply(t, controller.NewMetadata(), controller.RegisterBroker{ID: 1, Addr: "127.0.0.1:1", PreviousEpoch: controller.PreviousEpochEmpty})
	create, err := controller.PlanCreateTopic(before, controller.TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	after := mustApply(t, before, create)

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

// A metadata change that touches one partition of a topic applies that
// partition's new state and passes over the others (partition.settledAt):
// at 10,000 partitions, visiting every one on every change was a fifth
// of a broker's CPU while a restarted broker rejoined the ISRs. A field
// applyRole always sets (minInsync) is spoilt on an untouched partition
// to see whether the reconcile visited it.
func TestReconcilePassesOverUnchangedPartitions(t *testing.T) {
	md := controller.NewMetadata()
	for id := int32(1); id <= 2; id++ {
		md = mustApply(t, md, controller.RegisterBroker{ID: id, Addr: "127.0.0.1:1", PreviousEpoch: controller.PreviousEpochEmpty})
	}
	create, err := controller.PlanCreateTopic(md, controller.TopicSpec{Name: "t", Partitions: 6, ReplicationFactor: 2})
	if err != nil {
		t.Fatal(err)
	}
	md = mustApply(t, md, create)
	repl := &replication{addr: func(int32) (string, bool) { return "", false }, brokerEpoch: func() int64 { return 1 }}
	m := newPartitions(vfs.Default, t.TempDir(), 1, nil, zap.NewNop(), repl)
	defer m.closeAll()
	m.reconcile(md)

	var led []int32 // partitions broker 1 leads
	for _, p := range md.Topics["t"].Partitions {
		if p.Leader == 1 {
			led = append(led, p.Index)
		}
	}
	if len(led) < 2 {
		t.Fatalf("broker 1 leads %v: want 2 or more", led)
	}
	changed, untouched := led[0], led[1]
	spoil := func(i int32, v int) {
		p := m.get("t", i)
		p.mu.Lock()
		p.minInsync = v
		p.mu.Unlock()
	}
	minInsync := func(i int32) int {
		p := m.get("t", i)
		p.mu.RLock()
		defer p.mu.RUnlock()
		return p.minInsync
	}
	spoil(untouched, 99)

	// A change of no partition (a new broker), then an ISR shrink of one.
	md = mustApply(t, md, controller.RegisterBroker{ID: 3, Addr: "127.0.0.1:1", PreviousEpoch: controller.PreviousEpochEmpty})
	m.reconcile(md)
	cp := md.Topics["t"].Partitions[changed]
	md = mustApply(t, md, controller.AlterPartition{Topic: "t", Partition: changed, PartitionEpoch: cp.PartitionEpoch, Leader: 1, ISR: []int32{1}})
	m.reconcile(md)

	p := m.get("t", changed)
	p.mu.RLock()
	isr, ldISR := slices.Clone(p.isr), p.leader.ISR()
	p.mu.RUnlock()
	if !slices.Equal(isr, []int32{1}) || !slices.Equal(ldISR, []int32{1}) {
		t.Fatalf("partition %d after its ISR shrink: ISR %v, leader's %v; want [1]", changed, isr, ldISR)
	}
	if got := minInsync(untouched); got != 99 {
		t.Fatalf("partition %d, untouched by the changes, was visited (min insync %d)", untouched, got)
	}

	// A config change visits every partition again.
	md = mustApply(t, md, controller.AlterConfigs{Name: "t", Set: map[string]string{"retention.ms": "60000"}})
	m.reconcile(md)
	if got := minInsync(untouched); got != 1 {
		t.Fatalf("partition %d after a config change: min insync %d, want 1 (RF 2)", untouched, got)
	}
}

// Opening the partitions of a new topic syncs the data directory once for
// all the partition directories made, not once per partition (a tenth of
// the CPU of creating 10,000 partitions); and if that sync fails, the
// partitions stay closed and their directories are removed, so the next
// reconcile makes and syncs them again.
func TestReconcileSyncsDataDirOncePerTopic(t *testing.T) {
	md := mustApply(t, controller.NewMetadata(), controller.RegisterBroker{ID: 1, Addr: "127.0.0.1:1", PreviousEpoch: controller.PreviousEpochEmpty})
	for _, name := range []string{"a", "b"} {
		create, err := controller.PlanCreateTopic(md, controller.TopicSpec{Name: name, Partitions: 40, ReplicationFactor: 1})
		if err != nil {
			t.Fatal(err)
		}
		md = mustApply(t, md, create)
	}
	dir := t.TempDir()
	fs := errorfs.New(vfs.Default)
	// The data dir itself, not the partition directories below it.
	only := dir[:len(dir)-1] + "[" + dir[len(dir)-1:] + "]"
	syncs := fs.Arm(errorfs.Fault{Ops: errorfs.OpSyncDir, Path: only})
	m := newPartitions(fs, dir, 1, nil, zap.NewNop(), &replication{})
	defer m.closeAll()
	m.reconcile(md)
	if n := syncs.Hits(); n != 2 {
		t.Fatalf("%d syncs of the data dir for 2 topics of 40 partitions, want 2", n)
	}

	// A failed sync: the topic's partitions stay closed, their
	// directories gone; the next reconcile opens them.
	create, err := controller.PlanCreateTopic(md, controller.TopicSpec{Name: "c", Partitions: 3, ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	md = mustApply(t, md, create)
	syncs.Disarm()
	fail := fs.Arm(errorfs.Fault{Ops: errorfs.OpSyncDir, Path: only, Err: syscall.EIO})
	m.reconcile(md)
	fail.Disarm()
	if fail.Hits() != 1 {
		t.Fatalf("the failing sync ran %d times, want 1", fail.Hits())
	}
	for i := int32(0); i < 3; i++ {
		if m.get("c", i) != nil {
			t.Fatalf("c-%d open after its directory's sync failed", i)
		}
		if _, err := os.Stat(m.partitionDir("c", i)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("c-%d's directory after the failed sync: %v", i, err)
		}
	}
	md = mustApply(t, md, controller.RegisterBroker{ID: 2, Addr: "127.0.0.1:1", PreviousEpoch: controller.PreviousEpochEmpty})
	m.reconcile(md)
	for i := int32(0); i < 3; i++ {
		if p := m.get("c", i); p == nil || p.isClosed() {
			t.Fatalf("c-%d not open after the next reconcile", i)
		}
	}
}
