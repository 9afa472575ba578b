package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/chaos"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// A broker whose Raft store fills (its controller directory on a full
// tmpfs) gives up the controller leadership, another broker leads, and
// the broker says why in its DescribeReplicas
// answer (what `cluster status` prints as `controller store failed on
// broker B`). Root only: it mounts a tmpfs per broker.
func TestFullRaftStoreShowsInDescribeReplicas(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: root only")
	}
	var mu sync.Mutex // Configure runs for the brokers concurrently
	raftDirs := map[int32]string{}
	c := testcluster.Start(t, 3, testcluster.Options{Voters: 3, Configure: func(cfg *broker.Config) {
		dir := filepath.Join(cfg.DataDir, "raft") // broker's raftDir
		if err := chaos.MountTmpfs(dir, 32<<20); err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { _ = chaos.Unmount(dir) })
		mu.Lock()
		raftDirs[cfg.BrokerID] = dir
		mu.Unlock()
	}})
	cl := c.Client()
	ctx := testContext(t)
	d, err := cl.DescribeCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	full := d.ControllerID
	mu.Lock()
	fullDir := raftDirs[full]
	mu.Unlock()
	if res, err := chaos.Fill(filepath.Join(fullDir, "filler"), 1<<30, 30*time.Second); err != nil || !res.Full {
		t.Fatalf("fill broker %d's Raft store: %+v, %v", full, res, err)
	}

	// Metadata writes until the full controller fails one.
	n := 0
	var storeErr error
	poll.Until(t, 30*time.Second, "the full broker to report its controller store failed", func() bool {
		n++
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_ = cl.CreateTopics(wctx, client.TopicSpec{Name: fmt.Sprintf("t%d", n), Partitions: 20, ReplicationFactor: 3})
		cancel()
		brs, err := cl.DescribeReplicas(ctx)
		if err != nil {
			return false
		}
		for _, br := range brs {
			if br.Broker == full && br.ControllerStoreErr != nil {
				storeErr = br.ControllerStoreErr
				return true
			}
		}
		return false
	})
	if !strings.Contains(storeErr.Error(), "no space left on device") {
		t.Fatalf("broker %d reports %v, want the ENOSPC", full, storeErr)
	}
	poll.Until(t, 10*time.Second, "another broker to lead the controller", func() error {
		d, err := cl.DescribeCluster(ctx)
		if err != nil {
			return err
		}
		if d.ControllerID < 0 || d.ControllerID == full {
			return fmt.Errorf("controller %d", d.ControllerID)
		}
		return nil
	})
	// Not checked: a topic with a replica on the full broker is not
	// created in time, since that broker cannot store the Raft log and so
	// never learns of it.
}
