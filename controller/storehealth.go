package controller

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/sluicemq/sluice/vfs"
	"go.uber.org/zap"
)

// ErrStoreFailed matches the error Node.StoreErr returns while this node's
// Raft store (raft.db or the snapshot directory) cannot be written: a full
// disk (ENOSPC) or an I/O error (EIO).
var ErrStoreFailed = errors.New("controller store failed")

// storeHealth records whether the node's Raft store takes writes. A write
// that fails marks it failed; only a probe that writes again (Node.probeStore)
// clears the mark, since on a nearly full disk small writes into free pages
// of raft.db succeed while the log appends that need new pages fail: a mark
// cleared by any success would flap.
//
// While the mark is set the node gives up Raft leadership and stands for no
// election (contactTransport.standErr): a candidate that cannot append wins,
// fails its first append, steps down and starts over, and the cluster has no
// stable controller meanwhile.
type storeHealth struct {
	mu      sync.Mutex
	err     error         // nil: healthy; else wraps ErrStoreFailed
	changed chan struct{} // capacity 1: wakes Node.watchStore
}

func newStoreHealth() *storeHealth {
	return &storeHealth{changed: make(chan struct{}, 1)}
}

// get returns the failure, nil when the store is healthy.
func (h *storeHealth) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// note marks the store failed when err is set. The first failure since the
// store was last healthy is the one kept: it says why.
func (h *storeHealth) note(op string, err error) {
	if err == nil || errors.Is(err, raft.ErrLogNotFound) {
		return
	}
	h.mu.Lock()
	first := h.err == nil
	if first {
		h.err = fmt.Errorf("%w: %s: %w", ErrStoreFailed, op, err)
	}
	h.mu.Unlock()
	if first {
		h.wake()
	}
}

// healed clears the mark after a probe wrote again.
func (h *storeHealth) healed() {
	h.mu.Lock()
	was := h.err != nil
	h.err = nil
	h.mu.Unlock()
	if was {
		h.wake()
	}
}

func (h *storeHealth) wake() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// raftStore is what Raft needs of raft.db: its log and its stable store
// (*raftboltdb.BoltStore; tests wrap it to inject failures).
type raftStore interface {
	raft.LogStore
	raft.StableStore
}

var _ raftStore = (*raftboltdb.BoltStore)(nil)

// checkedStore is raft.db as Raft sees it (log store and stable store),
// noting every failed write in its storeHealth, and holding Raft's term
// writes until they succeed (SetUint64).
type checkedStore struct {
	raftStore
	h       *storeHealth
	log     *zap.Logger
	retry   time.Duration   // between attempts at a held term write
	closing <-chan struct{} // closed when the node starts to close
}

// StoreLog stores one entry.
func (s checkedStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries.
func (s checkedStore) StoreLogs(logs []*raft.Log) error {
	err := s.raftStore.StoreLogs(logs)
	s.h.note("store raft log", err)
	return err
}

// DeleteRange deletes entries from min to max, both included.
func (s checkedStore) DeleteRange(min, max uint64) error {
	err := s.raftStore.DeleteRange(min, max)
	s.h.note("delete raft log", err)
	return err
}

// Set stores a key of the stable store.
func (s checkedStore) Set(k, v []byte) error {
	err := s.raftStore.Set(k, v)
	s.h.note("store raft state", err)
	return err
}

// keyCurrentTerm is the stable-store key under which hashicorp/raft keeps
// the current term (raft.go, keyCurrentTerm).
var keyCurrentTerm = []byte("CurrentTerm")

// SetUint64 stores a number of the stable store. A term that cannot be
// saved is held rather than failed (holdTerm).
func (s checkedStore) SetUint64(k []byte, v uint64) error {
	err := s.raftStore.SetUint64(k, v)
	s.h.note("store raft state", err)
	if err != nil && bytes.Equal(k, keyCurrentTerm) {
		return s.holdTerm(v, err)
	}
	return err
}

// holdTerm handles a failed write of the current term. hashicorp/raft
// panics when it cannot save its term (setCurrentTerm: "failed to save
// current term"), which would crash the broker with a Go trace on a full
// disk. Raft calls it before acting in the new term (voting for itself,
// granting a vote, accepting a new leader's entries), in its main
// goroutine or a transport goroutine's heartbeat, never while leading.
// Instead of failing, the write is retried every retry until it
// succeeds: meanwhile the goroutine that called it waits, so this voter
// takes no part in elections or replication (the others see it as
// unresponsive, and two voters of three keep the controller running),
// and it goes on in the new term, saved, once the store takes writes.
// Nothing is claimed durable that is not: the term is returned saved or
// not at all.
//
// A write of the term the store already holds is done (NewRaft writes back
// the term it read at start). If the node closes while the write is held,
// the waiting goroutine ends with runtime.Goexit after logging why: Raft
// is shutting down, nothing after the write runs, and neither a panic
// trace nor a lie about the term is left behind.
func (s checkedStore) holdTerm(v uint64, err error) error {
	if cur, gerr := s.raftStore.GetUint64(keyCurrentTerm); gerr == nil && cur == v {
		return nil
	}
	s.log.Error("controller store cannot save the Raft term: this voter waits, taking no part in elections or replication, until the store takes writes again",
		zap.Uint64("term", v), zap.Error(err))
	t := time.NewTicker(s.retry)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.closing:
			s.log.Error("controller store never saved the Raft term before the node closed; its Raft goroutine ends without it",
				zap.Uint64("term", v), zap.Error(err))
			runtime.Goexit()
		}
		if err = s.raftStore.SetUint64(keyCurrentTerm, v); err == nil {
			s.log.Info("controller store saved the Raft term: this voter takes part again", zap.Uint64("term", v))
			return nil
		}
	}
}

// checkedSnapshots is the snapshot store, noting failed writes.
type checkedSnapshots struct {
	raft.SnapshotStore
	h *storeHealth
}

// Create starts a snapshot.
func (s checkedSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		s.h.note("create snapshot", err)
		return nil, err
	}
	return checkedSink{SnapshotSink: sink, h: s.h}, nil
}

type checkedSink struct {
	raft.SnapshotSink
	h *storeHealth
}

func (s checkedSink) Write(p []byte) (int, error) {
	n, err := s.SnapshotSink.Write(p)
	s.h.note("write snapshot", err)
	return n, err
}

func (s checkedSink) Close() error {
	err := s.SnapshotSink.Close()
	s.h.note("write snapshot", err)
	return err
}

// probeSize is what a probe writes into raft.db: enough that raft.db needs pages it does not have free on a full disk.
const probeSize = 64 << 10

var keyProbe = []byte("sluice_store_probe")

// probeStore writes probeSize bytes into raft.db and removes them, and
// writes a synced file in the store's directory (vfs.Probe).
func (n *Node) probeStore() error {
	if err := n.store.Set(keyProbe, make([]byte, probeSize)); err != nil {
		return fmt.Errorf("raft.db: %w", err)
	}
	if err := n.store.Set(keyProbe, []byte{}); err != nil {
		return fmt.Errorf("raft.db: %w", err)
	}
	return vfs.Probe(vfs.Default, n.cfg.Dir)
}

// StoreErr returns why this node's Raft store cannot be written (it
// matches ErrStoreFailed), nil while it can. While it is set the node does
// not lead the controller and stands for no election; it still follows,
// and is a voter again as soon as a probe (every StoreProbeInterval)
// writes.
func (n *Node) StoreErr() error { return n.health.get() }

// watchStore acts on the store's health: on a failure it logs why and
// hands controller leadership to another voter, and probes the store until
// it takes writes again.
func (n *Node) watchStore() {
	defer close(n.storeDone)
	var probe <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	for {
		select {
		case <-n.health.changed:
			if err := n.health.get(); err != nil {
				n.log.Error("controller store failed: this node gives up controller leadership and stands for no election until the store takes writes again", zap.Error(err))
				n.stepDown()
				if ticker == nil {
					ticker = time.NewTicker(n.cfg.StoreProbeInterval)
					probe = ticker.C
				}
			} else {
				n.log.Info("controller store takes writes again: this node stands for election again")
				if ticker != nil {
					ticker.Stop()
					ticker, probe = nil, nil
				}
			}
		case <-probe:
			if err := n.probeStore(); err != nil {
				n.log.Debug("controller store probe failed", zap.Error(err))
				n.stepDown() // in case a transfer failed
				continue
			}
			n.health.healed()
		case <-n.storeStop:
			return
		}
	}
}

// stepDown hands leadership to another voter when this node leads. Raft
// answers the transfer within its election timeout while it runs; Close
// stops watchStore before it shuts Raft down.
func (n *Node) stepDown() {
	if !n.IsLeader() {
		return
	}
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		n.log.Warn("controller store failed: leadership transfer failed; trying again at the next probe", zap.Error(err))
		return
	}
	n.log.Info("controller store failed: leadership handed over")
}
