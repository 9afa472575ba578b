package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/sluicemq/sluice/internal/chaos"
	"github.com/sluicemq/sluice/internal/poll"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// A voter whose Raft store is full gives up controller leadership, says
// why (StoreErr), refuses leadership handed to it without disturbing the
// others' term, and stands again once the store takes writes. Root only:
// it mounts a tmpfs per node.
func TestFullRaftStoreGivesUpLeadership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: root only")
	}
	dirs := map[int32]string{}
	c := startTestClusterWith(t, 3, 0, func(cfg *NodeConfig) {
		dir := filepath.Join(t.TempDir(), "fs")
		if err := chaos.MountTmpfs(dir, 32<<20); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = chaos.Unmount(dir) })
		dirs[cfg.ID] = dir
		cfg.Dir = dir
		cfg.StoreProbeInterval = 100 * time.Millisecond
		cfg.Logger = zaptest.NewLogger(t).With(zap.Int32("broker", cfg.ID))
	})
	ctx := testContext(t)
	for _, n := range c.running() {
		if _, err := n.RegisterBroker(ctx, Broker{ID: n.ID(), Addr: fmt.Sprintf("127.0.0.1:%d", 9000+n.ID()), RaftAddr: n.RaftAddr()}, PreviousEpochEmpty); err != nil {
			t.Fatalf("register %d: %v", n.ID(), err)
		}
	}
	full := c.leader()
	filler := filepath.Join(dirs[full.ID()], "filler")
	if res, err := chaos.Fill(filler, 1<<30, 30*time.Second); err != nil || !res.Full {
		t.Fatalf("fill: %+v, %v", res, err)
	}

	// Write through another node until the full leader fails an append.
	var other *Node
	for _, n := range c.running() {
		if n != full {
			other = n
		}
	}
	topics := 0
	write := func() error {
		topics++
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := other.CreateTopic(wctx, TopicSpec{Name: fmt.Sprintf("t%d", topics), Partitions: 100, ReplicationFactor: 1})
		return err
	}
	poll.Until(t, 10*time.Second, "the full leader's store to fail", func() bool {
		_ = write()
		return full.StoreErr() != nil
	})
	if err := full.StoreErr(); !errors.Is(err, ErrStoreFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("StoreErr = %v, want ErrStoreFailed and ENOSPC", err)
	}
	var leader *Node
	poll.Until(t, 10*time.Second, "another node to lead", func() bool {
		leader = c.leader()
		return leader != full
	})
	if err := write(); err != nil {
		t.Fatalf("write after the handover: %v", err)
	}

	// Leadership handed to it is refused, and nobody's term moves.
	term := leader.Term()
	fullServer := raft.ServerID(fmt.Sprint(full.ID()))
	if err := leader.raft.LeadershipTransferToServer(fullServer, raft.ServerAddress(full.RaftAddr())).Error(); err == nil {
		t.Fatal("leadership transfer to the node with a full store succeeded")
	}
	// The leader refuses writes for a moment after a transfer it began
	// (ErrLeadershipTransferInProgress): count successes, not attempts.
	ok := 0
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if write() == nil {
			ok++
		}
		if full.IsLeader() {
			t.Fatal("the full node became leader")
		}
	}
	if ok < 5 {
		t.Fatalf("%d writes succeeded in 2 s while the full node waited", ok)
	}
	if got := c.leader(); got != leader || got.Term() != term {
		t.Fatalf("leader %d term %d after the refused transfer, want %d term %d", got.ID(), got.Term(), leader.ID(), term)
	}

	// Space comes back: it stands again, and can lead.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the store to heal", func() bool { return full.StoreErr() == nil })
	// It may still be catching up: a transfer times out until it has.
	poll.Until(t, 30*time.Second, "a transfer to the healed node", func() error {
		if full.IsLeader() {
			return nil
		}
		return c.leader().raft.LeadershipTransferToServer(fullServer, raft.ServerAddress(full.RaftAddr())).Error()
	})
	if c.leader() != full {
		t.Fatal("the healed node does not lead after the transfer")
	}
	if err := write(); err != nil {
		t.Fatalf("write with the healed node leading: %v", err)
	}
}

// termFaults fails writes of the Raft term while fail is set.
type termFaults struct {
	raftStore
	fail   atomic.Bool
	failed atomic.Int64
}

func (f *termFaults) SetUint64(k []byte, v uint64) error {
	if f.fail.Load() && bytes.Equal(k, keyCurrentTerm) {
		f.failed.Add(1)
		return fmt.Errorf("injected: %w", syscall.ENOSPC)
	}
	return f.raftStore.SetUint64(k, v)
}

// holdAfterLeaderStops starts 3 voters whose term writes can be failed,
// fails a follower's, stops the leader and returns once the follower
// failed to save a term: the cluster, the follower and its injector.
func holdAfterLeaderStops(t *testing.T) (*testCluster, *Node, *termFaults) {
	faults := map[int32]*termFaults{}
	c := startTestClusterWith(t, 3, 0, func(cfg *NodeConfig) {
		f := &termFaults{}
		faults[cfg.ID] = f
		cfg.StoreProbeInterval = 50 * time.Millisecond
		cfg.wrapStore = func(s raftStore) raftStore { f.raftStore = s; return f }
	})
	leader := c.leader()
	held := c.follower()
	fault := faults[held.ID()]
	fault.fail.Store(true)
	c.stop(leader.ID())
	poll.Until(t, 10*time.Second, "a term write of the held voter to fail", func() bool {
		return fault.failed.Load() > 0
	})
	return c, held, fault
}

// A voter that cannot save a new Raft term (hashicorp/raft panics on
// that) waits instead: with the leader gone it takes no part in the
// election, so the last healthy voter cannot win alone; once its store
// takes writes it saves the term and the two elect a leader. Without the
// hold, the test binary dies of raft's panic ("failed to save current
// term").
func TestUnsavableTermHoldsTheVoter(t *testing.T) {
	c, held, fault := holdAfterLeaderStops(t)
	ctx := testContext(t)
	if !errors.Is(held.StoreErr(), ErrStoreFailed) {
		t.Fatalf("StoreErr = %v, want ErrStoreFailed", held.StoreErr())
	}
	for _, n := range c.running() {
		if n.IsLeader() {
			t.Fatalf("node %d leads with one of the two voters left unable to save its term", n.ID())
		}
	}
	fault.fail.Store(false)
	var now *Node
	poll.Until(t, 10*time.Second, "a leader once the held voter saves its term", func() bool {
		for _, n := range c.running() {
			if n.IsLeader() {
				now = n
				return true
			}
		}
		return false
	})
	if _, err := now.RegisterBroker(ctx, Broker{ID: 7, Addr: "127.0.0.1:9007"}, PreviousEpochEmpty); err != nil {
		t.Fatalf("write after the held voter came back: %v", err)
	}
	if term, err := held.store.GetUint64(keyCurrentTerm); err != nil || term != held.Term() {
		t.Fatalf("held voter's saved term %d (%v), its term %d", term, err, held.Term())
	}
}

// A voter closed while it waits to save its term closes: its Raft
// goroutine ends (TestMain's goleak checks), with no panic.
func TestClosingWhileTermHeld(t *testing.T) {
	_, held, _ := holdAfterLeaderStops(t)
	done := make(chan error, 1)
	go func() { done <- held.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close of a node holding a term write did not return")
	}
}
