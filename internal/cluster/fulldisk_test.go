package cluster

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// fullDisk is a 3-broker cluster whose brokers' files go through
// errorfs, with the replica lag limit a minute (so nothing but the
// offline report moves leadership or the ISR within a test), and one
// partition RF 3 under an acks=all verify load.
type fullDisk struct {
	c     *testcluster.Cluster
	cl    *client.Client
	fss   map[int32]*errorfs.FS
	topic string
	wait  func() bench.History
}

func startFullDisk(t *testing.T, topic string, load time.Duration) *fullDisk {
	fd := &fullDisk{fss: map[int32]*errorfs.FS{}, topic: topic}
	for id := int32(1); id <= 3; id++ {
		fd.fss[id] = errorfs.New(vfs.Default)
	}
	fd.c = testcluster.Start(t, 3, testcluster.Options{Voters: 3, Configure: func(cfg *broker.Config) {
		cfg.FS = fd.fss[cfg.BrokerID]
		cfg.ReplicaMaxLag = time.Minute
		cfg.OfflineLogRetryInterval = 200 * time.Millisecond
	}})
	fd.cl = fd.c.Client()
	testcluster.CreateTopic(t, fd.cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 3})
	// Every broker serves the partition before the load starts: the
	// verify client may ask any of them, and one that has not opened it
	// yet ends the run at once (UNKNOWN_TOPIC_OR_PARTITION).
	poll.Until(t, 10*time.Second, "every replica open", func() error {
		for _, id := range fd.c.IDs() {
			rs := fd.c.Broker(id).Replicas([]string{topic}, -1)
			if len(rs) != 1 || rs[0].Err != nil {
				return fmt.Errorf("broker %d: %+v", id, rs)
			}
		}
		return nil
	})
	fd.wait = verifyAsync(t, fd.c, topic, load)
	return fd
}

// fill fills broker id's disk under the partition: every write, truncate
// and create there fails with ENOSPC.
func (fd *fullDisk) fill(id int32) *errorfs.Armed {
	return fd.fss[id].Arm(errorfs.Fault{Ops: errorfs.OpWrite | errorfs.OpTruncate | errorfs.OpCreate,
		Path: filepath.Join(fd.c.Dir(id), fd.topic+"-0"), Err: syscall.ENOSPC})
}

// firstFailedWrite waits until a write on broker id's full disk failed
// and returns when it saw that (within 20 ms of it). The clock of a
// test starts there: a full disk that no append has touched yet is not
// a fault the broker can see, and on a loaded machine the load's first
// append can come seconds after the disk filled.
func (fd *fullDisk) firstFailedWrite(t *testing.T, id int32, full *errorfs.Armed) time.Time {
	t.Helper()
	armed := time.Now()
	poll.Until(t, 10*time.Second, "an append on the full disk", func() error {
		if full.Hits() == 0 {
			return fmt.Errorf("no write under broker %d's partition directory yet", id)
		}
		return nil
	})
	now := time.Now()
	t.Logf("broker %d's disk full: first failed write %v after it filled", id, now.Sub(armed))
	return now
}

// check checks the load's history: nothing acknowledged lost.
func (fd *fullDisk) check(t *testing.T) bench.Result {
	t.Helper()
	res := bench.Check(fd.wait())
	t.Logf("sent %d, acked %d, failed %d, unknown %d (present %d), duplicates %d",
		res.Sent, res.Acked, res.Failed, res.Unknown, res.UnknownPresent, res.Duplicates)
	if !res.OK() || res.Acked == 0 {
		t.Fatalf("history fails the checks: %+v", res)
	}
	return res
}

// recover frees the space, restarts broker id if restart is set, and
// waits for its replica to rejoin the ISR and the replicas to be
// byte-identical.
func (fd *fullDisk) recover(t *testing.T, id int32, full *errorfs.Armed, restart bool) {
	t.Helper()
	full.Disarm()
	start := time.Now()
	if restart {
		fd.c.Kill(id)
		fd.c.Restart(id)
	}
	d := testcluster.WaitFullISR(t, fd.cl, fd.topic, 20*time.Second)
	t.Logf("space back (restart %v): broker %d in the ISR again after %v, offline %v, note %q",
		restart, id, time.Since(start), d.Partitions[0].OfflineReplicas, d.Partitions[0].Note)
	if p := d.Partitions[0]; len(p.OfflineReplicas) != 0 || p.Note != "" {
		t.Errorf("after recovery: offline %v, note %q; want none", p.OfflineReplicas, p.Note)
	}
	waitIdentical(t, fd.cl, fd.topic)
}

// A partition leader's disk fills (ENOSPC from the file-system seam under
// its partition directory) while producers write with acks=all: the
// broker reports its offline log to the controller at once, leadership
// moves to an in-sync replica within seconds, the broken replica leaves
// the ISR and the metadata lists it offline with the reason, produces
// succeed on the new leader, and nothing acknowledged is lost. Once space
// is back the broker reopens the log without a restart, its replica
// catches up and rejoins the ISR, and the three replicas are
// byte-identical.
func TestFullDiskMovesLeadership(t *testing.T) {
	fd := startFullDisk(t, "fulldisk", 6*time.Second)
	time.Sleep(700 * time.Millisecond) // let records flow under this leader
	leader := testcluster.WaitLeader(t, fd.cl, fd.topic, 0, -1, 15*time.Second)
	full := fd.fill(leader)
	start := fd.firstFailedWrite(t, leader, full)
	next := testcluster.WaitLeader(t, fd.cl, fd.topic, 0, leader, 15*time.Second)
	moved := time.Since(start)
	t.Logf("broker %d's disk full: broker %d led %v after the first failed write (fault hits %d)", leader, next, moved, full.Hits())
	if moved > 3*time.Second {
		t.Errorf("leadership moved %v after the first failed write, want within 3s", moved)
	}
	p := testcluster.WaitPartition(t, fd.cl, fd.topic, 0, 5*time.Second, "the full replica shown offline", func(p client.PartitionDescription) error {
		if slices.Contains(p.ISR, leader) || !slices.Contains(p.OfflineReplicas, leader) ||
			!strings.Contains(p.Note, fmt.Sprintf("replica %d offline", leader)) || !strings.Contains(p.Note, "no space left on device") {
			return fmt.Errorf("ISR %v, offline %v, note %q", p.ISR, p.OfflineReplicas, p.Note)
		}
		return nil
	})
	t.Logf("after the move: leader %d, ISR %v, offline %v, note %q", p.Leader, p.ISR, p.OfflineReplicas, p.Note)
	fd.check(t)
	// Produces succeed on the new leader.
	if err := fd.cl.ProduceSync(testContext(t), &client.Record{Topic: fd.topic, Partition: 0, Value: []byte("after-the-move")}); err != nil {
		t.Fatalf("produce after the move: %v", err)
	}
	// Space comes back: the broker reopens the log without a restart.
	fd.recover(t, leader, full, false)
}

// A follower's disk fills while producers write with acks=all: the broker
// reports it at once and it leaves the ISR within seconds, instead of
// stalling acknowledgements for the replica lag limit; leadership stays,
// and no produce fails. Space comes back and the broker restarts (the
// restart path clears the mark too).
func TestFullDiskFollowerLeavesISR(t *testing.T) {
	fd := startFullDisk(t, "fullfollower", 3*time.Second)
	time.Sleep(500 * time.Millisecond) // let records flow
	d := testcluster.WaitFullISR(t, fd.cl, fd.topic, 10*time.Second)
	leader := d.Partitions[0].Leader
	follower := d.Partitions[0].ISR[0]
	if follower == leader {
		follower = d.Partitions[0].ISR[1]
	}
	full := fd.fill(follower)
	start := fd.firstFailedWrite(t, follower, full)
	p := testcluster.WaitPartition(t, fd.cl, fd.topic, 0, 15*time.Second, "the full follower out of the ISR", func(p client.PartitionDescription) error {
		if slices.Contains(p.ISR, follower) || !slices.Contains(p.OfflineReplicas, follower) {
			return fmt.Errorf("ISR %v, offline %v", p.ISR, p.OfflineReplicas)
		}
		return nil
	})
	left := time.Since(start)
	t.Logf("broker %d's disk full: out of the ISR after %v (fault hits %d): leader %d, ISR %v, note %q", follower, left, full.Hits(), p.Leader, p.ISR, p.Note)
	if left > 3*time.Second {
		t.Errorf("the full follower left the ISR %v after its first failed write, want within 3s", left)
	}
	if p.Leader != leader {
		t.Errorf("leader %d, want %d still", p.Leader, leader)
	}
	if res := fd.check(t); res.Failed > 0 {
		t.Errorf("%d sends failed, want none: the leader never failed", res.Failed)
	}
	fd.recover(t, follower, full, true)
}
