package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

// A rolling upgrade on a real cluster (four in-process brokers over
// loopback TCP, Raft and gossip): every broker starts as a build whose
// newest controller command version is 8 (--max-command-version 8), so
// the cluster is finalized at 8. Brokers 1, 2 and 4 move to this build;
// with broker 3 still old, records and metadata flow and every broker
// holds the same metadata, while cluster remove (a version 9 command) and
// features upgrade are refused, naming broker 3. Once broker 3 runs this
// build, the upgrade and the remove go through.
func TestCLIRollingUpgradeFeatures(t *testing.T) {
	newest := fmt.Sprintf("3-%d", controller.CommandVersion) // this build's range
	var mu sync.Mutex
	old := map[int32]uint8{1: 8, 2: 8, 3: 8, 4: 8}
	build := func(id int32, max uint8) {
		mu.Lock()
		defer mu.Unlock()
		old[id] = max
	}
	var c *testcluster.Cluster
	c = testcluster.Start(t, 4, testcluster.Options{Voters: 3, Configure: func(cfg *broker.Config) {
		mu.Lock()
		cfg.MaxCommandVersion = old[cfg.BrokerID]
		mu.Unlock()
		if cfg.Join == "" || c == nil {
			return
		}
		// Broker 4 joins through a voter that runs now: a restarted
		// broker's client address is new.
		for _, id := range []int32{1, 2, 3} {
			if b := c.Broker(id); b != nil {
				cfg.Join = b.Addr()
				break
			}
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	features := func(want string) {
		t.Helper()
		poll.Until(t, 20*time.Second, "features: "+want, func() error {
			out, err := runCmd("--brokers", strings.Join(c.Addrs(), ","), "cluster", "features")
			if err != nil {
				return err
			}
			for _, w := range strings.Split(want, "|") {
				if !containsFields(out, w) {
					return fmt.Errorf("no %q in\n%s", w, out)
				}
			}
			return nil
		})
	}
	features("finalized command version: 8|1 voter alive 3-8|4 non-voter alive 3-8")

	for _, id := range []int32{1, 2, 4} {
		build(id, 0)
		c.Stop(id)
		c.Restart(id)
	}
	features("finalized command version: 8|1 voter alive " + newest + "|2 voter alive " + newest + "|3 voter alive 3-8|4 non-voter alive " + newest)

	cl := c.Client(client.Acks(client.AcksAll))
	c.Stop(4) // to be removed: it holds nothing
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "up", Partitions: 1, ReplicationFactor: 3})
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &client.Record{Topic: "up", Value: []byte(fmt.Sprintf("r-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAll(t, c.Client(), "up", 20); got[19] != "r-19" {
		t.Fatalf("read %v", got)
	}
	if _, err := runCmd("--brokers", strings.Join(c.Addrs(), ","), "topic", "alter-config", "up", "--set", "retention.ms=3600000"); err != nil {
		t.Fatal(err)
	}
	inStep := func() {
		t.Helper()
		poll.Until(t, 20*time.Second, "the same metadata on every broker", func() error {
			var want []byte
			for _, id := range []int32{1, 2, 3} {
				m := *c.Broker(id).Metadata()
				m.ControllerID = 0
				got, err := json.Marshal(&m)
				if err != nil {
					return err
				}
				if want != nil && !bytes.Equal(got, want) {
					return fmt.Errorf("broker %d: %s\nbroker 1: %s", id, got, want)
				}
				want = got
			}
			return nil
		})
	}
	inStep()

	addrs := strings.Join(c.Addrs(), ",")
	out, err := runCmd("--brokers", addrs, "cluster", "remove", "4")
	if err == nil || !strings.Contains(err.Error(), "UnregisterBroker needs command version 9; the cluster's finalized command version is 8") ||
		!strings.Contains(err.Error(), "broker 3 (supports 3-8)") {
		t.Fatalf("remove at 8: %v\n%s", err, out)
	}
	out, err = runCmd("--brokers", addrs, "cluster", "features", "upgrade")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("command version %d not supported by broker 3 (supports 3-8)", controller.CommandVersion)) {
		t.Fatalf("upgrade with broker 3 old: %v\n%s", err, out)
	}

	build(3, 0)
	c.Stop(3)
	c.Restart(3)
	c.Restart(4) // its range must be known for the upgrade
	features("3 voter alive " + newest + "|4 non-voter alive " + newest)
	if out, err := runCmd("--brokers", strings.Join(c.Addrs(), ","), "cluster", "features", "upgrade"); err != nil || !strings.Contains(out, fmt.Sprintf("finalized command version: %d", controller.CommandVersion)) {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	c.Stop(4)
	poll.Until(t, 20*time.Second, "broker 4 removed", func() error {
		out, err := runCmd("--brokers", strings.Join(c.Addrs(), ","), "cluster", "remove", "4")
		if err != nil {
			return fmt.Errorf("%w\n%s", err, out) // still alive to the controller
		}
		return nil
	})
	inStep()
	for _, id := range []int32{1, 2, 3} {
		if m := c.Broker(id).Metadata(); m.CommandLevel != controller.CommandVersion || m.Brokers[4] != nil {
			t.Fatalf("broker %d: level %d, broker 4 %+v", id, m.CommandLevel, m.Brokers[4])
		}
	}
}

// containsFields says whether a line of out holds the fields of want in
// order (columns are padded).
func containsFields(out, want string) bool {
	w := strings.Join(strings.Fields(want), " ")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(strings.Join(strings.Fields(line), " "), w) {
			return true
		}
	}
	return false
}
