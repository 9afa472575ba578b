package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	poll.Until(t, 10*time.Second, "a transfer to the healed node", func() error {
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
