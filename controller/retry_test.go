package controller

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
)

// A write that is safe to run again (retrySafe) survives the leader
// losing its leadership while committing it: the caller gets the write
// applied once the new leader answers, not the indeterminate
// ErrLeadershipLost. The followers' Raft traffic is held so that the
// leader, with a write appended to its log, cannot reach a quorum within
// its lease and steps down; then the traffic flows again.
func TestRetrySafeWriteSurvivesLeadershipLoss(t *testing.T) {
	helds := map[int32]*heldListener{}
	c := startTestClusterWith(t, 3, 0, func(cfg *NodeConfig) {
		helds[cfg.ID] = newHeldListener(cfg.Listener)
		cfg.Listener = helds[cfg.ID]
	})
	for _, h := range helds {
		t.Cleanup(h.release) // before the nodes close
	}
	ctx := testContext(t)
	for try := 1; ; try++ {
		leader := c.leader()
		before := leader.raft.LastIndex()
		for id, h := range helds {
			if id != leader.ID() {
				h.hold()
			}
		}
		want := strconv.Itoa(10 + try)
		done := make(chan error, 1)
		go func() {
			_, err := leader.Propose(ctx, AlterClusterConfigs{Set: map[string]string{ConfigMaxMoves: want}})
			done <- err
		}()
		poll.Until(t, 10*time.Second, "the leader to step down", func() bool { return !leader.IsLeader() })
		appended := leader.raft.LastIndex() > before
		for _, h := range helds {
			h.release()
		}
		if err := <-done; err != nil {
			t.Fatalf("a config change when the leader lost its leadership while committing it: %v (ErrLeadershipLost: %v)",
				err, errors.Is(err, ErrLeadershipLost))
		}
		c.waitConverged()
		if got := c.leader().Metadata().ClusterConfig(ConfigMaxMoves); got != want {
			t.Fatalf("%s = %q after the write, want %q", ConfigMaxMoves, got, want)
		}
		if appended {
			return // the write was in the log of the leader that stepped down: its future failed
		}
		if try == 3 {
			t.Fatalf("in %d tries the leader never stepped down with the write in its log: the test checks nothing", try)
		}
	}
}
