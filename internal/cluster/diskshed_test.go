package cluster

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// fakeDisks reports, for each broker, a file system whose used bytes
// are the real sizes of the segment files (*.log) under its data
// directory. A broker given a scale has a disk of scale times the mean
// of those sizes over every broker (the others one of 1 TiB): its usage
// is its share of the cluster's data, which the load grows on every
// broker alike and only moves change. The fault is the reported disk;
// the data and its moves are real.
type fakeDisks struct {
	mu    sync.Mutex
	dirs  []string           // every broker's data directory
	scale map[string]float64 // by data directory
}

const bigDisk = int64(1) << 40

// space is broker.Config.DiskSpace.
func (f *fakeDisks) space(dir string) (free, capacity int64) {
	f.mu.Lock()
	scale, dirs := f.scale[dir], f.dirs
	f.mu.Unlock()
	used := logBytes(dir)
	capacity = bigDisk
	if scale > 0 {
		var total int64
		for _, d := range dirs {
			total += logBytes(d)
		}
		capacity = max(int64(scale*float64(total)/float64(len(dirs))), 1)
	}
	return max(capacity-used, 0), capacity
}

// logBytes sums the sizes of the segment files under dir.
func logBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil // a partition deleted under the walk: skip it
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}

// With auto.balance=continuous, a broker whose disk is reported above
// auto.balance.disk.threshold.percent sheds replicas through real moves
// while an acks=all verified load runs: its usage ends below the
// threshold, every partition keeps 3 in-sync identical replicas, nothing
// acknowledged is lost, and once below the threshold (the load over)
// the controller moves nothing more: no oscillation.
func TestAutoBalanceShedsFromFullDisk(t *testing.T) {
	disks := &fakeDisks{scale: map[string]float64{}}
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3, Configure: func(cfg *broker.Config) {
		cfg.AutoBalanceInterval = 200 * time.Millisecond
		cfg.DiskSpace = disks.space
	}})
	cl := c.Client()
	// Longer than testContext's: the test runs about 20 s, up to a
	// minute on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic, full, threshold = "shed", int32(1), 50
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 8, ReplicationFactor: 3})
	testcluster.WaitFullISR(t, cl, topic, 15*time.Second)
	poll.Until(t, 15*time.Second, "auto.balance=continuous set", func() error {
		return cl.AlterClusterConfigs(ctx, client.SetConfig(controller.ConfigAutoBalance, controller.AutoBalanceContinuous),
			client.SetConfig(controller.ConfigAutoBalanceDiskThreshold, fmt.Sprint(threshold)))
	})
	replicasOn := func(id int32) int {
		return len(controller.HeldBy(c.Broker(1).Metadata(), id))
	}
	before := replicasOn(full)

	wait := verifyAsync(t, c, topic, 6*time.Second)
	waitEnd(t, cl, topic, 300) // data on every broker before the disk fills
	// Broker 1's disk now reports 70% used: above 50%, it must shed
	// about 2 of its 6 replicas (its share of the data is about the
	// mean; the scale is set from the share it has now).
	dir := c.Dir(full)
	var dirs []string
	for _, id := range c.IDs() {
		dirs = append(dirs, c.Dir(id))
	}
	used, total := logBytes(dir), int64(0)
	for _, d := range dirs {
		total += logBytes(d)
	}
	if used == 0 || total == 0 {
		t.Fatalf("setup: no segment bytes under %s", dir)
	}
	share := float64(used) / (float64(total) / float64(len(dirs)))
	disks.mu.Lock()
	disks.dirs = dirs
	disks.scale[dir] = share / 0.7
	disks.mu.Unlock()
	usage := func() float64 {
		free, capacity := disks.space(dir)
		return float64(capacity-free) / float64(capacity) * 100
	}
	t.Logf("broker %d: %d replicas, %d segment bytes (%.2f of the mean), disk at %.0f%%", full, before, used, share, usage())

	// Shedding under load, then the load ends.
	poll.Until(t, 60*time.Second, fmt.Sprintf("broker %d shed replicas, below %d%%", full, threshold), func() error {
		if n, u := replicasOn(full), usage(); n >= before || u > threshold {
			return fmt.Errorf("disk at %.0f%%, %d replicas", u, n)
		}
		return nil
	})
	res := checkHistory(t, wait())
	if res.Failed != 0 {
		t.Errorf("%d produces failed", res.Failed)
	}

	// Settled: no move, every partition at 3 in-sync replicas, the same
	// lists for 3 s (15 rounds; fewer on a loaded machine). Then nothing
	// moves for 3 s more while the disk stays below the threshold.
	signature := func() (string, error) {
		if moves, err := cl.ListReassignments(ctx); err != nil || len(moves) != 0 {
			return "", fmt.Errorf("moves %+v, %v", moves, err)
		}
		d, err := cl.DescribeTopic(ctx, topic)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, p := range d.Partitions {
			if len(p.Replicas) != 3 || len(p.ISR) != 3 {
				return "", fmt.Errorf("partition %d: replicas %v, ISR %v", p.Partition, p.Replicas, p.ISR)
			}
			fmt.Fprintf(&b, "%d:%v ", p.Partition, p.Replicas)
		}
		return b.String(), nil
	}
	var last string
	var since time.Time
	poll.Until(t, 60*time.Second, "moves settled", func() error {
		sig, err := signature()
		if err != nil {
			return err
		}
		if sig != last {
			last, since = sig, time.Now()
		}
		if time.Since(since) < 3*time.Second {
			return fmt.Errorf("replica lists changed %v ago", time.Since(since))
		}
		return nil
	})
	after := replicasOn(full)
	t.Logf("broker %d: %d replicas after shedding (%d before), disk at %.0f%%", full, after, before, usage())
	// Shedding stops once below: about 2 of 6 replicas leave (partition
	// sizes differ a little), not all of them.
	if after >= before || after < before/2 {
		t.Fatalf("broker %d holds %d replicas, %d before: want some shed, at most half", full, after, before)
	}
	// Sampling a window in which nothing may happen: a ticker, not a
	// wait for a condition.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); <-tick.C {
		sig, err := signature()
		if err != nil || sig != last {
			t.Fatalf("after settling below the threshold the replicas moved again: %v\nnow:    %s\nbefore: %s", err, sig, last)
		}
		if u := usage(); u > threshold {
			t.Fatalf("broker %d back above the threshold: %.0f%%", full, u)
		}
	}
	waitIdentical(t, cl, topic)
}
