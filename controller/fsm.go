package controller

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// FSM is the Raft state machine of the cluster metadata. Raft calls Apply
// for each committed command in log order, on every replica; readers load
// the published Metadata at any time without locks.
//
// Apply publishes a new immutable Metadata and closes the Changed channel
// only when a command changed something. A refused command leaves the
// metadata as it was, identically on every replica.
type FSM struct {
	cur     atomic.Pointer[Metadata]
	applied atomic.Uint64 // index of the last command applied or restored

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every change
	appliedCh  chan struct{} // closed and replaced whenever applied advances
	controller int32         // Raft leader's broker id, -1 when unknown

	restores atomic.Int64 // snapshots restored, for tests and stats

	// max is the newest command version (and snapshot layout) this
	// replica decodes: CommandVersion, lower for a node standing in for
	// an older build (NodeConfig.MaxCommandVersion).
	max uint8
}

var _ raft.BatchingFSM = (*FSM)(nil)

// ApplyResponse is what FSM.Apply returns to Raft, and so what the leader's
// ApplyFuture.Response holds.
type ApplyResponse struct {
	Result Result
	Err    error
}

// NewFSM returns an FSM holding empty metadata.
func NewFSM() *FSM { return newFSM(CommandVersion) }

// newFSM returns an FSM that decodes command versions up to max.
func newFSM(max uint8) *FSM {
	f := &FSM{changed: make(chan struct{}), appliedCh: make(chan struct{}), controller: -1, max: max}
	f.cur.Store(NewMetadata())
	return f
}

// Metadata returns the current snapshot. Do not modify it.
func (f *FSM) Metadata() *Metadata { return f.cur.Load() }

// Changed returns a channel closed at the next change of the metadata.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// AppliedIndex returns the log index of the last command applied.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// WaitApplied returns once the command at index (or a later one) is
// applied, or when ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		ch := f.appliedCh
		f.mu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for metadata index %d (at %d): %w", index, f.applied.Load(), ctx.Err())
		}
	}
}

// Apply implements raft.FSM. It never panics on a bad command: a command
// that does not decode or is refused yields an ApplyResponse with an error,
// the same on every replica. A command written at a version above the
// finalized level raises the level to it (features.go), refused or not.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: it applies a run of committed
// entries (up to the Raft config's MaxAppendEntries) as Apply would one
// by one, and publishes the metadata once, after the last. A run of
// AlterPartition commands — a broker's ISR changes of one pass, proposed
// back to back — then copies a topic's partitions once per run, not once
// per change: at 10,000 partitions a copy is about 2 MB, and a restarted
// broker's 10,000 ISR expansions copied 20 GB on every controller node.
// The result, versions included, is the same whatever the runs Raft
// hands over, so replicas batching differently agree. Only LogCommand
// entries are applied; the others (configuration changes) get a nil
// response, as Apply is not called for them.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	published := f.cur.Load()
	e := batch{m: published}
	var last uint64
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		out[i] = e.apply(l, f.max)
		last = l.Index
	}
	if e.m != published {
		f.publish(e.m)
	}
	if last > 0 {
		f.advance(last)
	}
	return out
}

// batch is the metadata of an ApplyBatch in progress: m, unpublished once
// a command changed it. When own is set, m's maps are its own (edit) and
// so are the partitions arrays of the topics in topics: an AlterPartition
// changes them in place instead of copying them again.
type batch struct {
	m      *Metadata
	own    bool
	topics map[*Topic]bool
}

// apply applies one command entry to e.m.
func (e *batch) apply(l *raft.Log, max uint8) ApplyResponse {
	var resp ApplyResponse
	c, v, err := decodeCommandUpTo(l.Data, max)
	if err != nil {
		resp.Err = err
		resp.Result.Index = l.Index
		return resp
	}
	if ap, ok := c.(AlterPartition); ok {
		if err := e.alterPartition(ap); err != nil {
			resp.Err = fmt.Errorf("%v: %w", c.Kind(), err)
		}
		e.set(raiseLevel(e.m, v))
	} else {
		var next *Metadata
		next, resp.Result, resp.Err = Apply(e.m, c)
		e.set(raiseLevel(next, v))
	}
	resp.Result.Index = l.Index
	return resp
}

// set makes m the batch's metadata; one made elsewhere (Apply,
// raiseLevel) may share maps with a published metadata, so nothing of it
// is owned.
func (e *batch) set(m *Metadata) {
	if m != e.m {
		e.m, e.own, e.topics = m, false, nil
	}
}

// alterPartition is applyAlterPartition on the batch's metadata, changing
// what the batch owns in place.
func (e *batch) alterPartition(c AlterPartition) error {
	t, err := checkAlterPartition(e.m, c)
	if err != nil {
		return err
	}
	if e.own {
		e.m.Version++ // as edit does for each change
	} else {
		e.m, e.own, e.topics = edit(e.m), true, map[*Topic]bool{}
	}
	nt := t
	if e.topics[t] {
		nt.ownPartition(int(c.Partition))
	} else {
		nt = t.cloneOne(int(c.Partition))
		e.topics[nt] = true
	}
	alterPartition(e.m, nt, c)
	return nil
}

// publish stores m, a metadata nobody else holds yet, as current, with the
// local controller id, and wakes Changed waiters.
func (f *FSM) publish(m *Metadata) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m.ControllerID = f.controller
	f.publishLocked(m)
}

func (f *FSM) publishLocked(m *Metadata) {
	f.cur.Store(m)
	wake(&f.changed)
}

func (f *FSM) advance(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied.Store(index)
	wake(&f.appliedCh)
}

// wake closes *ch, waking everyone waiting on it, and replaces it for the
// next waiters. The caller holds the lock guarding *ch.
func wake(ch *chan struct{}) {
	close(*ch)
	*ch = make(chan struct{})
}

// setController records the Raft leader's broker id (-1 for none) in the
// published metadata. Under mu, so an Apply cannot publish in between and
// be overwritten by an older copy.
func (f *FSM) setController(id int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.controller == id {
		return
	}
	f.controller = id
	m := *f.cur.Load() // shallow: Metadata is immutable, the maps can be shared
	m.ControllerID = id
	f.publishLocked(&m)
}

// Snapshot implements raft.FSM. Raft never calls it concurrently with
// Apply, so the metadata and index it captures belong together.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{m: f.cur.Load(), index: f.applied.Load()}, nil
}

// Restore implements raft.FSM: it replaces the metadata with a snapshot's.
// A snapshot that fails its checks is refused and the metadata kept.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	m, index, err := readSnapshot(rc, f.max)
	if err != nil {
		return fmt.Errorf("restore metadata: %w", err)
	}
	f.publish(m)
	f.advance(index)
	f.restores.Add(1)
	return nil
}

type fsmSnapshot struct {
	m     *Metadata
	index uint64
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(encodeSnapshot(s.m, s.index)); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist metadata snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
