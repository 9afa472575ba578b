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

var _ raft.FSM = (*FSM)(nil)

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
	c, v, err := decodeCommandUpTo(l.Data, f.max)
	var resp ApplyResponse
	if err != nil {
		resp.Err = err
	} else {
		cur := f.cur.Load()
		var next *Metadata
		next, resp.Result, resp.Err = Apply(cur, c)
		next = raiseLevel(next, v)
		if next != cur {
			f.publish(next)
		}
	}
	resp.Result.Index = l.Index
	f.advance(l.Index)
	return resp
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
