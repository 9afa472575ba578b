package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// TestCompactedReplicasConverge: a compacted topic on RF 3, written with
// keys that repeat; every broker's cleaner compacts its own replica, one
// of them only after failing (its disk refuses the cleaner's files) and
// showing the failure in DescribeReplicas, and in the end every replica
// holds the same latest value per key, with the superseded records gone.
func TestCompactedReplicasConverge(t *testing.T) {
	fs := errorfs.New(vfs.Default)
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.FS = fs
		cfg.CleanerInterval = 20 * time.Millisecond
		cfg.CleanerMaxBackoff = 100 * time.Millisecond
	}})
	cl := c.Client()
	const topic = "table"
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 3, Configs: map[string]string{
		"cleanup.policy": "compact", "segment.bytes": "4096", "max.message.bytes": "4096", "fsync.interval.ms": "50", "min.cleanable.dirty.ratio": "0.1",
	}})
	testcluster.WaitFullISR(t, cl, topic, 20*time.Second)

	// Broker 2's disk refuses the cleaner's rewritten segments.
	const failing = 2
	fault := fs.Arm(errorfs.Fault{Ops: errorfs.OpCreate, Path: filepath.Join(c.Dir(failing), topic+"-0", ".cleaned"), Err: syscall.ENOSPC})

	latest := map[string]string{}
	ctx := context.Background()
	const keys, rounds = 20, 40
	for r := range rounds {
		recs := make([]*client.Record, 0, keys)
		for k := range keys {
			key, val := fmt.Sprintf("k%02d", k), fmt.Sprintf("v%02d-%03d-%s", k, r, strings.Repeat("x", 40))
			latest[key] = val
			recs = append(recs, &client.Record{Topic: topic, Key: []byte(key), Value: []byte(val)})
		}
		if err := cl.ProduceSync(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}

	cleaner := func(id int32) (*client.CleanerInfo, error) {
		brs, err := cl.DescribeReplicas(ctx, topic)
		if err != nil {
			return nil, err
		}
		for _, br := range brs {
			if br.Broker != id {
				continue
			}
			if br.Err != nil {
				return nil, br.Err
			}
			for _, ri := range br.Replicas {
				if ri.Cleaner != nil {
					return ri.Cleaner, nil
				}
			}
		}
		return nil, fmt.Errorf("broker %d shows no cleaner state", id)
	}
	poll.Until(t, 20*time.Second, "broker 2 shows its cleaner failing", func() error {
		ci, err := cleaner(failing)
		if err != nil {
			return err
		}
		if ci.Failures < 2 || !strings.Contains(ci.Err, "no space left") || !ci.LastClean.IsZero() {
			return fmt.Errorf("cleaner state %+v", ci)
		}
		return nil
	})
	fault.Disarm()
	for _, id := range c.IDs() {
		poll.Until(t, 20*time.Second, fmt.Sprintf("broker %d cleaned", id), func() error {
			ci, err := cleaner(id)
			if err != nil {
				return err
			}
			if ci.Failures != 0 || ci.Err != "" || ci.LastClean.IsZero() || ci.CleanBytes == 0 {
				return fmt.Errorf("cleaner state %+v", ci)
			}
			return nil
		})
	}

	// Every replica, read from its files once the brokers stopped, holds
	// the latest value of every key, and far fewer records than written.
	for id, n := range stopAndCheckLatest(t, c, topic, latest) {
		if n >= keys*rounds/2 {
			t.Fatalf("broker %d: %d records (of %d written): not compacted", id, n, keys*rounds)
		}
	}
}

// latestPerKey reads a partition log's directory and returns each key's
// last value and the number of records.
func latestPerKey(t *testing.T, dir string) (map[string]string, int) {
	t.Helper()
	l, err := log.Open(dir, log.Config{CleanupPolicy: log.CleanupCompact})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, n := map[string]string{}, 0
	var rd record.Reader
	for off := l.StartOffset(); off < l.EndOffset(); {
		v, err := l.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Clone(v.Bytes())
		v.Release()
		for len(data) > 0 {
			b, rest, err := record.NextBatch(data, math.MaxInt32)
			if err != nil {
				t.Fatal(err)
			}
			if err := record.Validate(b, record.Limits{}); err != nil {
				t.Fatalf("batch at %d: %v", b.BaseOffset(), err)
			}
			if err := rd.Reset(b); err != nil {
				t.Fatal(err)
			}
			for rd.Next() {
				out[string(rd.Record().Key)] = string(rd.Record().Value)
				n++
			}
			off, data = b.NextOffset(), rest
		}
	}
	if errors.Is(l.Err(), log.ErrOffline) {
		t.Fatal(l.Err())
	}
	return out, n
}

// TestCompactedFollowerCatchesUp: a follower stopped while its leader
// compacts the records after its log end comes back, catches up through
// the leader's compacted log (its end may fall inside a gap batch the
// leader's cleaner made), rejoins the ISR and holds the latest value of
// every key.
func TestCompactedFollowerCatchesUp(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.CleanerInterval = 20 * time.Millisecond
	}})
	cl := c.Client()
	const topic = "table"
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 3, Configs: map[string]string{
		"cleanup.policy": "compact", "segment.bytes": "4096", "max.message.bytes": "4096", "fsync.interval.ms": "50",
		"min.cleanable.dirty.ratio": "0.1", "min.insync.replicas": "1",
	}})
	testcluster.WaitFullISR(t, cl, topic, 20*time.Second)
	leader := testcluster.WaitLeader(t, cl, topic, 0, -1, 20*time.Second)
	follower := c.IDs()[0]
	if follower == leader {
		follower = c.IDs()[1]
	}
	latest := map[string]string{}
	ctx := context.Background()
	produce := func(rounds int, tag string) {
		t.Helper()
		for r := range rounds {
			recs := make([]*client.Record, 0, 10)
			for k := range 10 {
				key, val := fmt.Sprintf("k%02d", k), fmt.Sprintf("%s-%03d-%02d", tag, r, k)
				latest[key] = val
				recs = append(recs, &client.Record{Topic: topic, Key: []byte(key), Value: []byte(val)})
			}
			if err := cl.ProduceSync(ctx, recs...); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(5, "a")
	c.Stop(follower)
	produce(60, "b")
	poll.Until(t, 20*time.Second, "the leader compacted what the follower lacks", func() error {
		brs, err := cl.DescribeReplicas(ctx, topic)
		if err != nil {
			return err
		}
		for _, br := range brs {
			for _, ri := range br.Replicas {
				if br.Broker == leader && ri.Cleaner != nil && !ri.Cleaner.LastClean.IsZero() && ri.Cleaner.CleanBytes > 0 {
					return nil
				}
			}
		}
		return errors.New("not yet")
	})
	c.Restart(follower)
	testcluster.WaitFullISR(t, cl, topic, 30*time.Second)
	produce(1, "c")
	poll.Until(t, 20*time.Second, "the follower caught up", func() error {
		brs, err := cl.DescribeReplicas(ctx, topic)
		if err != nil {
			return err
		}
		var ends []int64
		for _, br := range brs {
			for _, ri := range br.Replicas {
				ends = append(ends, ri.EndOffset)
			}
		}
		if len(ends) != 3 || ends[0] != ends[1] || ends[1] != ends[2] {
			return fmt.Errorf("end offsets %v", ends)
		}
		return nil
	})
	stopAndCheckLatest(t, c, topic, latest)
}

// stopAndCheckLatest stops every broker, then checks that each one's
// replica of partition 0, read from its files, holds exactly the keys of
// latest with their values, and returns each replica's record count.
func stopAndCheckLatest(t *testing.T, c *testcluster.Cluster, topic string, latest map[string]string) map[int32]int {
	t.Helper()
	for _, id := range c.IDs() {
		c.Stop(id)
	}
	counts := map[int32]int{}
	for _, id := range c.IDs() {
		got, n := latestPerKey(t, filepath.Join(c.Dir(id), topic+"-0"))
		if len(got) != len(latest) {
			t.Fatalf("broker %d: %d keys, want %d", id, len(got), len(latest))
		}
		for k, v := range latest {
			if got[k] != v {
				t.Fatalf("broker %d: %s=%.16q, want %.16q", id, k, got[k], v)
			}
		}
		counts[id] = n
	}
	return counts
}
