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
	for _, id := range c.IDs() {
		c.Stop(id)
	}
	for _, id := range c.IDs() {
		got, n := latestPerKey(t, filepath.Join(c.Dir(id), topic+"-0"))
		for k, v := range latest {
			if got[k] != v {
				t.Fatalf("broker %d: %s=%.12q, want %.12q", id, k, got[k], v)
			}
		}
		if len(got) != keys || n >= keys*rounds/2 {
			t.Fatalf("broker %d: %d keys in %d records (of %d written): not compacted", id, len(got), n, keys*rounds)
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
