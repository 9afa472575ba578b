package broker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
)

// Cancelling Serve's context answers the requests in flight — a parked
// long-poll gets its answer — closes the connections and the logs
// cleanly, records the clean shutdown, and Serve returns.
func TestServeShutdownOnCancel(t *testing.T) {
	dir := t.TempDir()
	b, err := New(Config{ListenAddr: "127.0.0.1:0", DataDir: dir, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.Serve(ctx) }()
	poll.Until(t, 10*time.Second, "the listener", func() bool { return b.Addr() != "" })
	c := dial(t, b.Addr())
	c.createTopic("s", 1)
	c.produce("s", 0, protocol.AcksLeader, makeBatch(t, record.None, "s", 2, 0))
	corr := c.send(fetchRequest("s", 0, 2, 60000, 1))
	poll.Until(t, 10*time.Second, "the long-poll", func() bool {
		p := b.parts.get("s", 0)
		p.wmu.Lock()
		defer p.wmu.Unlock()
		return len(p.waiters) == 1
	})
	cancel()
	var fr protocol.FetchResponse
	c.recv(corr, &fr)
	// The controlled shutdown moved leadership away first; the only
	// replica leaves no one to lead, which the answer says (retriable).
	if p := onlyFetchPartition(t, &fr); p.ErrorCode != protocol.ErrLeaderNotAvailable || len(p.Records) != 0 {
		t.Fatalf("long-poll answered at shutdown: %+v", p)
	}
	closedByBroker(t, c.nc)
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "s-0", ".clean-shutdown")); err != nil {
		t.Fatalf("log not closed cleanly: %v", err)
	}
	if got, err := previousEpoch(vfs.Default, dir); err != nil || got != b.Epoch() {
		t.Fatalf("previous epoch after a clean shutdown: %d, %v; want %d", got, err, b.Epoch())
	}
	found := false
	for k, hw := range loadHighWatermarks(vfs.Default, dir, zap.NewNop()) {
		if k.topic == "s" && k.index == 0 {
			found = true
			if hw != 2 {
				t.Fatalf("checkpointed high watermark %d, want 2", hw)
			}
		}
	}
	if !found {
		t.Fatal("no high watermark checkpointed for s-0")
	}
}

// Shutdown in the middle of a burst of pipelined produces loses none that
// were acknowledged.
func TestShutdownFinishesPipelinedProduces(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, nil)
	c := dial(t, b.Addr())
	c.createTopic("burst", 1)
	batch := makeBatch(t, record.None, "b", 1, 0)
	const n = 50
	var corrs []int32
	for range n {
		corrs = append(corrs, c.send(produceRequest("burst", 0, protocol.AcksLeader, batch)))
	}
	// Shut down while the burst is being handled. Every produce
	// acknowledged must be in the log after a restart (the controlled
	// shutdown refuses the later ones: NOT_LEADER_OR_FOLLOWER once
	// leadership moved, BROKER_NOT_AVAILABLE for the whole request once
	// the connections drain).
	var pr protocol.ProduceResponse
	c.recv(corrs[0], &pr)
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	answered := 1
	for _, corr := range corrs[1:] {
		if err := c.tryRecv(corr, &pr); err != nil {
			break
		}
		if pr.ErrorCode != protocol.NoError {
			// Read once the connections drain: refused as a whole, not run.
			if pr.ErrorCode != protocol.ErrBrokerNotAvailable {
				t.Fatalf("produce during shutdown: request refused with %v", pr.ErrorCode)
			}
			continue
		}
		if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
			t.Fatalf("produce during shutdown: answer %+v, want one partition's outcome", pr)
		}
		if code := pr.Topics[0].Partitions[0].ErrorCode; code != protocol.NoError {
			if code != protocol.ErrNotLeaderOrFollower {
				t.Fatalf("produce during shutdown: %v", code)
			}
			continue
		}
		answered++
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	b2 := startBroker(t, dir, nil)
	c2 := dial(t, b2.Addr())
	if end := c2.listOffset("burst", 0, protocol.LatestTimestamp).Offset; end < int64(answered) {
		t.Fatalf("%d produces answered, log ends at %d", answered, end)
	}
}

func TestStartTwiceAndDataDirLock(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, nil)
	if err := b.Start(context.Background()); err != ErrStarted {
		t.Fatalf("second Start: %v", err)
	}
	other, err := New(Config{ListenAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(context.Background()); err == nil {
		other.Close()
		t.Fatal("a second broker started on the same data dir")
	}
}

func TestRetentionRuns(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.RetentionCheckInterval = 10 * time.Millisecond })
	c := dial(t, b.Addr())
	c.createTopic("short", 1,
		protocol.Config{Name: "segment.bytes", Value: "4096"},
		protocol.Config{Name: "max.message.bytes", Value: "4096"},
		protocol.Config{Name: "retention.bytes", Value: "8192"})
	value := string(make([]byte, 900))
	for range 20 {
		c.produce("short", 0, protocol.AcksLeader, makeBatch(t, record.None, value, 1, 0))
	}
	poll.Until(t, 10*time.Second, "retention to move the start offset", func() bool {
		return c.listOffset("short", 0, protocol.EarliestTimestamp).Offset > 0
	})
	start := c.listOffset("short", 0, protocol.EarliestTimestamp).Offset
	if got := c.fetch("short", 0, 0); got.ErrorCode != protocol.ErrOffsetOutOfRange {
		t.Fatalf("fetch below the start offset %d: %v", start, got.ErrorCode)
	}
}
