package broker_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// Guards of the acks=all path's latency on RF 3 (issue 13, item 8): what
// an acknowledgement waits for is the followers' fetches, woken by the
// append, and nothing else. Each check is a mechanism with a margin of
// seconds, so a loaded machine does not make it fail.

// ackRF3 starts 3 brokers (configure applied to each), creates topic with
// one partition on all three and the topic configs given, waits for the
// full ISR, and returns a raw connection to the leader.
func ackRF3(t *testing.T, topic string, configure func(*broker.Config), configs map[string]string) (*testcluster.Cluster, int32, *testcluster.RawConn) {
	t.Helper()
	c := testcluster.Start(t, 3, testcluster.Options{Configure: configure})
	cl := c.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 3, Configs: configs})
	testcluster.WaitFullISR(t, cl, topic, 20*time.Second)
	leader := testcluster.WaitLeader(t, cl, topic, 0, -1, 20*time.Second)
	conn := testcluster.DialRaw(t, c.Broker(leader).Addr())
	conn.WaitLeading(topic, 0)
	return c, leader, conn
}

func oneRecord(t *testing.T, i int) []byte {
	t.Helper()
	b := record.NewBuilder(record.None)
	b.Append(time.Now().UnixMilli(), nil, fmt.Appendf(nil, "r%d", i), nil)
	batch, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return batch
}

// produceAll sends n one-record acks=all produces one after another and
// returns how long each took to be acknowledged.
func produceAll(t *testing.T, conn *testcluster.RawConn, topic string, n int) []time.Duration {
	t.Helper()
	took := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		r, err := conn.Produce(topic, 0, int16(broker.AcksAll), oneRecord(t, i))
		if err != nil || r.ErrorCode != protocol.NoError {
			t.Fatalf("produce %d: %v %v %q", i, err, r.ErrorCode, r.ErrorMessage)
		}
		took = append(took, time.Since(start))
	}
	return took
}

// TestAcksAllWakeFollowersLongPoll: with a follower long-poll of 5 s, an
// acks=all produce is acknowledged in a fraction of it. The append wakes
// the followers' waiting fetches, and the fetch that reports their new
// position moves the high watermark at once; an acknowledgement that
// waited for a long-poll to run out (or for the next poll) would take 5 s.
func TestAcksAllWakeFollowersLongPoll(t *testing.T) {
	const wait = 5 * time.Second
	_, _, conn := ackRF3(t, "wake", func(cfg *broker.Config) { cfg.ReplicaFetchWait = wait }, nil)
	took := produceAll(t, conn, "wake", 20)
	slices.Sort(took)
	if worst := took[len(took)-1]; worst >= wait/2 {
		t.Fatalf("slowest acks=all produce took %v (median %v): it waited for a follower long-poll of %v to run out", worst, took[len(took)/2], wait)
	}
	t.Logf("acks=all on RF 3, 20 produces: median %v, slowest %v", took[len(took)/2], took[len(took)-1])
}

// TestAcksAllDoNotWaitForIntervalFsync: with fsync=interval, every fsync
// of the partition's logs on all three brokers is held (the flusher stuck
// in fdatasync, as on a disk busy with writeback), and acks=all produces
// are still acknowledged: the flush runs outside the append lock and the
// acknowledgement needs no fsync (R3 counts positions, not syncs, for
// fsync=interval).
func TestAcksAllDoNotWaitForIntervalFsync(t *testing.T) {
	fs := errorfs.New(vfs.Default)
	c, _, conn := ackRF3(t, "held", func(cfg *broker.Config) { cfg.FS = fs },
		map[string]string{"fsync": "interval", "fsync.interval.ms": "10"})
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the cluster stops: its Close syncs the logs
	held := make(chan struct{}, 16)
	var faults []*errorfs.Armed
	for _, id := range c.IDs() {
		faults = append(faults, fs.Arm(errorfs.Fault{Ops: errorfs.OpSync, Path: filepath.Join(c.Dir(id), "held-0"), Hook: func() {
			select {
			case held <- struct{}{}:
			default:
			}
			<-release
		}}))
	}
	// Some sync of the partition's logs is held before the produces start.
	produceAll(t, conn, "held", 1)
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("no fsync of the partition's logs within 20 s: the fault does not hold the flusher")
	}
	took := produceAll(t, conn, "held", 20)
	hits := int64(0)
	for _, f := range faults {
		hits += f.Hits()
	}
	free()
	slices.Sort(took)
	t.Logf("acks=all on RF 3 with every fsync held (%d held): median %v, slowest %v", hits, took[len(took)/2], took[len(took)-1])
}

// TestAcksAllNewTopicFollowersParked: a new RF 3 topic's first acks=all
// produce is acknowledged well within the followers' fetch long-poll,
// while their fetchers to its leader are parked in that long-poll on
// other partitions. Adding a partition to a fetcher wakes the fetch in
// flight (the follower pipelines an empty replica Fetch, which ends the
// leader's wait on that connection), so the new partition joins the next
// fetch at once. Without it the follower's next fetch goes out only when
// the parked one runs out: here after up to a minute, beyond the
// produce's 10 s timeout.
func TestAcksAllNewTopicFollowersParked(t *testing.T) {
	const wait = time.Minute
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(cfg *broker.Config) { cfg.ReplicaFetchWait = wait }})
	cl := c.Client()
	// Three partitions on three brokers: every broker leads one, so every
	// follower has a fetcher parked on every other broker.
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "warm", Partitions: 3, ReplicationFactor: 3})
	testcluster.WaitFullISR(t, cl, "warm", 20*time.Second)
	for p := range int32(3) {
		testcluster.WaitLeader(t, cl, "warm", p, -1, 20*time.Second)
	}
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "fresh", Partitions: 1, ReplicationFactor: 3})
	leader := testcluster.WaitLeader(t, cl, "fresh", 0, -1, 20*time.Second)
	conn := testcluster.DialRaw(t, c.Broker(leader).Addr())
	conn.WaitLeading("fresh", 0)
	took := produceAll(t, conn, "fresh", 1)[0]
	if took >= 5*time.Second {
		t.Fatalf("first acks=all produce to a new RF 3 topic took %v: the followers waited out a parked fetch of %v", took, wait)
	}
	t.Logf("first acks=all produce to a new RF 3 topic: %v (follower long-poll %v)", took, wait)
}
