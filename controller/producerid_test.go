package controller

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"
)

func TestApplyAllocateProducerIDs(t *testing.T) {
	m := twoBrokers(t)
	if m.NextProducerID != 0 {
		t.Fatalf("new metadata: next producer id %d, want 0", m.NextProducerID)
	}
	m1, res := applyChecked(t, m, AllocateProducerIDs{BrokerID: 1, BrokerEpoch: 1, Count: 1000})
	if res.ProducerIDs != (ProducerIDBlock{First: 0, Count: 1000}) || m1.NextProducerID != 1000 || m1.Version != m.Version+1 {
		t.Fatalf("first block %+v, next %d, version %d", res.ProducerIDs, m1.NextProducerID, m1.Version)
	}
	m2, res := applyChecked(t, m1, AllocateProducerIDs{BrokerID: 2, BrokerEpoch: 1, Count: 7})
	if res.ProducerIDs != (ProducerIDBlock{First: 1000, Count: 7}) || m2.NextProducerID != 1007 {
		t.Fatalf("second block %+v, next %d", res.ProducerIDs, m2.NextProducerID)
	}
	// Nothing but the next producer id (and the version) moved.
	want := m1.Clone()
	want.Version, want.NextProducerID = m2.Version, m2.NextProducerID
	if !bytes.Equal(appendMetadata(nil, m2), appendMetadata(nil, want)) {
		t.Fatal("an allocation changed more than the next producer id")
	}

	fenced, _ := applyChecked(t, m2, FenceBroker{ID: 2, Epoch: 1})
	nearEnd := *m2
	nearEnd.NextProducerID = math.MaxInt64 - 10
	for _, tc := range []struct {
		name string
		m    *Metadata
		cmd  AllocateProducerIDs
		want error
	}{
		{"unknown broker", m2, AllocateProducerIDs{BrokerID: 9, BrokerEpoch: 1, Count: 1}, ErrUnknownBroker},
		{"stale epoch", m2, AllocateProducerIDs{BrokerID: 1, BrokerEpoch: 0, Count: 1}, ErrStaleBrokerEpoch},
		{"offline broker", fenced, AllocateProducerIDs{BrokerID: 2, BrokerEpoch: 1, Count: 1}, ErrStaleBrokerEpoch},
		{"zero count", m2, AllocateProducerIDs{BrokerID: 1, BrokerEpoch: 1, Count: 0}, ErrInvalidProducerIDs},
		{"negative count", m2, AllocateProducerIDs{BrokerID: 1, BrokerEpoch: 1, Count: -5}, ErrInvalidProducerIDs},
		{"count too large", m2, AllocateProducerIDs{BrokerID: 1, BrokerEpoch: 1, Count: MaxProducerIDBlock + 1}, ErrInvalidProducerIDs},
		{"past the last id", &nearEnd, AllocateProducerIDs{BrokerID: 1, BrokerEpoch: 1, Count: 11}, ErrProducerIDsExhausted},
	} {
		got, res, err := Apply(tc.m, tc.cmd)
		if !errors.Is(err, tc.want) || got != tc.m || res.ProducerIDs != (ProducerIDBlock{}) {
			t.Errorf("%s: %v, block %+v, same metadata %v; want %v and no change", tc.name, err, res.ProducerIDs, got == tc.m, tc.want)
		}
	}
	// The last ids can still be taken, exactly.
	last, res := applyChecked(t, &nearEnd, AllocateProducerIDs{BrokerID: 1, BrokerEpoch: 1, Count: 10})
	if res.ProducerIDs.First != math.MaxInt64-10 || last.NextProducerID != math.MaxInt64 {
		t.Fatalf("last block %+v, next %d", res.ProducerIDs, last.NextProducerID)
	}
}

func TestSnapshotKeepsNextProducerID(t *testing.T) {
	src := busyFSM(t)
	resp := applyLog(t, src, 11, AllocateProducerIDs{BrokerID: 1, BrokerEpoch: 1, Count: 1000})
	if resp.Err != nil || resp.Result.ProducerIDs.First != 0 {
		t.Fatalf("allocate: %+v", resp)
	}
	snap := snapshotBytes(t, src)
	dst := NewFSM()
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if got := dst.Metadata().NextProducerID; got != 1000 {
		t.Fatalf("restored next producer id %d, want 1000", got)
	}
	// The restored FSM allocates what the original would, never an id
	// given before the snapshot.
	a := applyLog(t, src, 12, AllocateProducerIDs{BrokerID: 1, BrokerEpoch: 1, Count: 5})
	b := applyLog(t, dst, 12, AllocateProducerIDs{BrokerID: 1, BrokerEpoch: 1, Count: 5})
	if a.Err != nil || b.Err != nil || a.Result.ProducerIDs != b.Result.ProducerIDs || b.Result.ProducerIDs.First != 1000 {
		t.Fatalf("after restore: %+v and %+v, want both at 1000", a, b)
	}

	// A negative next id is refused, not restored.
	m := dst.Metadata().Clone()
	m.NextProducerID = -1
	if _, _, err := decodeSnapshot(encodeSnapshot(m, 3)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("negative next producer id: %v, want ErrCorrupt", err)
	}
}

// A version 4 snapshot, without the next producer id, restores with 0.
// Its bytes are a version 9 one's without the last fields: version 4
// appended nothing after the topics, and no users, ACLs, moves, cluster
// configs, group configs or removed brokers encode as zero counts.
func TestSnapshotVersion4Restores(t *testing.T) {
	m := busyFSM(t).Metadata().Clone()
	v4 := olderSnapshot(t, m, 4, []byte{0, 0, 0, 0, 0, 0, 0})
	got, index, err := decodeSnapshot(v4)
	if err != nil || index != 10 || got.NextProducerID != 0 || !bytes.Equal(appendMetadata(nil, got), appendMetadata(nil, m)) {
		t.Fatalf("version 4: %v, index %d, next producer id %d", err, index, got.NextProducerID)
	}
}

func TestResponseCarriesProducerIDs(t *testing.T) {
	want := Result{Index: 8, ProducerIDs: ProducerIDBlock{First: 1 << 40, Count: 1000}}
	b := appendResponse(nil, response{res: want})
	if b[0] != responseVersion2 {
		t.Fatalf("response with a block: version %d, want %d", b[0], responseVersion2)
	}
	got, err := decodeResponse(b)
	if err != nil || !reflect.DeepEqual(got.res, want) || got.err != nil {
		t.Fatalf("decoded %+v, %v; want %+v", got.res, err, want)
	}
	for i := range b {
		if _, err := decodeResponse(b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
	}
	// Other responses keep version 1, which earlier builds read.
	if v1 := appendResponse(nil, response{res: Result{Index: 8}}); v1[0] != forwardVersion {
		t.Fatalf("response without a block: version %d, want %d", v1[0], forwardVersion)
	}
	// One encoding: a version 2 response with an empty block is refused.
	// version, index, broker epoch, topic id, first, count (0), error
	// code and message, leader id and address, no elections.
	empty := []byte{responseVersion2, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if _, err := decodeResponse(empty); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("empty block: %v, want ErrCorrupt", err)
	}
	if _, err := decodeResponse(append([]byte{3}, b[1:]...)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("response version 3: %v, want ErrCorrupt", err)
	}
}

// Blocks are allocated through followers and non-voters, across a
// controller leader's stop, a snapshot that compacts the log and the old
// leader's restart from it: no id is ever given twice.
func TestClusterProducerIDsUniqueAcrossFailover(t *testing.T) {
	c := newTestCluster(t, 3, 1)
	ctx := testContext(t)
	seen := map[int64]int32{} // first id of a block → broker
	var total int64
	allocate := func(via *Node, broker int32) {
		t.Helper()
		epoch := via.Metadata().Brokers[broker].Epoch
		blk, err := via.AllocateProducerIDs(ctx, broker, epoch, 100)
		if err != nil {
			t.Fatalf("allocate for %d through %d: %v", broker, via.ID(), err)
		}
		if blk.Count != 100 || blk.First < 0 || blk.First%100 != 0 {
			t.Fatalf("block %+v", blk)
		}
		if other, dup := seen[blk.First]; dup {
			t.Fatalf("block at %d given to %d and again to %d", blk.First, other, broker)
		}
		seen[blk.First] = broker
		total += int64(blk.Count)
		// Read your writes: the node that asked sees the allocation.
		if next := via.Metadata().NextProducerID; next < blk.First+int64(blk.Count) {
			t.Fatalf("node %d sees next producer id %d after block %+v", via.ID(), next, blk)
		}
	}
	for _, n := range c.running() {
		allocate(n, n.ID())
	}
	old := c.leader()
	oldID := old.ID()
	for range 3 {
		allocate(old, oldID)
	}
	c.stop(oldID)
	leader := c.leader()
	for range 4 {
		for _, n := range c.running() {
			allocate(n, n.ID())
		}
	}
	// Compact the new leader's log past what the stopped node has: it
	// catches up from a snapshot, which must carry the next producer id.
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	back := c.restart(oldID)
	c.waitConverged()
	if back.fsm.restores.Load() == 0 {
		t.Error("restarted node caught up without installing a snapshot")
	}
	allocate(back, oldID)
	allocate(c.node(4), 4)
	c.waitConverged()
	for _, n := range c.running() {
		if got := n.Metadata().NextProducerID; got != total {
			t.Errorf("node %d: next producer id %d, want %d (every block taken, none twice)", n.ID(), got, total)
		}
	}
}
