package httpapi_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/httpapi"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/vfs"
	"github.com/sluicemq/sluice/vfs/errorfs"
)

// TestQueueGroupMetrics runs a queue group on a 3-broker cluster with a
// cap of 6 records in flight: a member receives 6 of 10 records, holds
// two, rejects two, releases one and accepts one. Exactly one broker (the
// group's coordinator) exports the group, with 2 acquired, 1 available,
// 2 dead letters, the oldest lease's age and the partition at its cap,
// the same at the topic level and per partition (debug level), and what
// `sluice queue describe` shows.
func TestQueueGroupMetrics(t *testing.T) {
	o := startObserved(t, 3, httpapi.LevelDebug, true, func(cfg *broker.Config) { cfg.Group.Queue.MaxInFlight = 6 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := o.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "jobs", Partitions: 1, ReplicationFactor: 1})
	var recs []*client.Record
	for i := range 10 {
		recs = append(recs, &client.Record{Topic: "jobs", Value: fmt.Appendf(nil, "job %d", i)})
	}
	if err := cl.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	q := cl.QueueGroup("workers", "jobs")
	var got []*client.Delivery
	for len(got) < 6 {
		ds, err := q.Receive(ctx, 6-len(got))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds...)
	}
	received := time.Now()
	for i, d := range got {
		if d.Offset != int64(i) {
			t.Fatalf("delivery %d is offset %d", i, d.Offset)
		}
	}
	for _, err := range []error{got[1].Reject("bad"), got[2].Reject("bad"), got[3].Release(0), got[5].Accept()} {
		if err != nil {
			t.Fatal(err)
		}
	}

	desc, err := cl.DescribeQueueGroup(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.Partitions) != 1 {
		t.Fatalf("describe: %+v", desc)
	}
	dp := desc.Partitions[0]
	if dp.Acquired != 2 || dp.Available != 1 || dp.DeadLettered != 2 || !dp.AtCap {
		t.Fatalf("describe: %+v, want 2 acquired, 1 available, 2 dead-lettered, at cap", dp)
	}
	poll.Until(t, 20*time.Second, "one broker to export the queue group as describe shows it", func() error {
		var exporters []int32
		for _, id := range o.IDs() {
			fams := scrape(t, o.servers[id].Addr())
			if value(fams, "sluice_queue_records_acquired", "group", "workers", "topic", "jobs") < 0 {
				continue
			}
			exporters = append(exporters, id)
			for _, c := range []struct {
				name string
				want float64
			}{
				{"sluice_queue_records_acquired", float64(dp.Acquired)},
				{"sluice_queue_records_available", float64(dp.Available)},
				{"sluice_queue_dead_letters_total", float64(dp.DeadLettered)},
				{"sluice_queue_partitions_at_cap", 1},
				{"sluice_queue_partition_records_acquired", 2},
				{"sluice_queue_partition_records_available", 1},
				{"sluice_queue_partition_dead_letters_total", 2},
				{"sluice_queue_partition_at_cap", 1},
			} {
				if v := value(fams, c.name, "group", "workers", "topic", "jobs"); v != c.want {
					return fmt.Errorf("broker %d: %s = %v, want %v", id, c.name, v, c.want)
				}
			}
			age := value(fams, "sluice_queue_oldest_unacked_age_seconds", "group", "workers", "topic", "jobs")
			if max := time.Since(received).Seconds() + 1; age <= 0 || age > max {
				return fmt.Errorf("broker %d: oldest unacked age %v, want in (0, %v]", id, age, max)
			}
			if p := value(fams, "sluice_queue_partition_oldest_unacked_age_seconds", "partition", "0"); p != age {
				return fmt.Errorf("broker %d: partition 0's oldest unacked age %v, want the topic's %v", id, p, age)
			}
		}
		if len(exporters) != 1 {
			return fmt.Errorf("brokers %v export the queue group, want one", exporters)
		}
		return nil
	})

	// Settling the held records empties the window: no lease, no cap.
	if err := q.AcceptAll([]*client.Delivery{got[0], got[4]}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the settled window to show in the metrics", func() error {
		for _, id := range o.IDs() {
			fams := scrape(t, o.servers[id].Addr())
			if value(fams, "sluice_queue_records_acquired", "group", "workers") < 0 {
				continue
			}
			if a, age, c := value(fams, "sluice_queue_records_acquired", "group", "workers"),
				value(fams, "sluice_queue_oldest_unacked_age_seconds", "group", "workers"),
				value(fams, "sluice_queue_partitions_at_cap", "group", "workers"); a != 0 || age != 0 || c != 0 {
				return fmt.Errorf("broker %d: acquired %v, oldest age %v, at cap %v; want 0s", id, a, age, c)
			}
			if d := value(fams, "sluice_queue_dead_letters_total", "group", "workers"); d != 2 {
				return fmt.Errorf("broker %d: dead letters %v, want still 2", id, d)
			}
		}
		return nil
	})
}

// TestCleanerMetrics compacts a topic on a broker whose disk first
// refuses the cleaner's files: the cleaner shows the error state, a
// failing partition and failed cleans; once the disk accepts them it
// cleans, reclaims bytes, removes the superseded records and goes back
// to idle with its backlog gone.
func TestCleanerMetrics(t *testing.T) {
	fs := errorfs.New(vfs.Default)
	o := startObserved(t, 1, httpapi.LevelInfo, true, func(cfg *broker.Config) {
		cfg.FS = fs
		cfg.CleanerInterval = 20 * time.Millisecond
		cfg.CleanerMaxBackoff = 100 * time.Millisecond
	})
	id := o.IDs()[0]
	cl := o.Client()
	const topic = "table"
	fault := fs.Arm(errorfs.Fault{Ops: errorfs.OpCreate, Path: filepath.Join(o.Dir(id), topic+"-0", ".cleaned"), Err: syscall.ENOSPC})
	defer fault.Disarm()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{
		"cleanup.policy": "compact", "segment.bytes": "4096", "max.message.bytes": "4096", "fsync.interval.ms": "50", "min.cleanable.dirty.ratio": "0.1",
	}})
	ctx := context.Background()
	const keys, rounds = 20, 40
	for r := range rounds {
		recs := make([]*client.Record, 0, keys)
		for k := range keys {
			recs = append(recs, &client.Record{Topic: topic, Key: fmt.Appendf(nil, "k%02d", k),
				Value: fmt.Appendf(nil, "v%02d-%03d-%s", k, r, strings.Repeat("x", 40))})
		}
		if err := cl.ProduceSync(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 20*time.Second, "the cleaner to show its failure", func() error {
		fams := scrape(t, o.servers[id].Addr())
		if s := value(fams, "sluice_cleaner_state", "state", "error"); s != 1 {
			return fmt.Errorf("error state %v", s)
		}
		if f, c := value(fams, "sluice_cleaner_partitions", "state", "failing"), value(fams, "sluice_cleaner_partitions", "state", "compacted"); f != 1 || c < 1 {
			return fmt.Errorf("failing partitions %v of %v compacted, want 1 of at least 1", f, c)
		}
		if n := value(fams, "sluice_cleaner_cleans_total", "result", "error"); n < 1 {
			return fmt.Errorf("failed cleans %v", n)
		}
		if d := value(fams, "sluice_cleaner_dirty_bytes"); d <= 0 {
			return fmt.Errorf("dirty bytes %v, want a backlog", d)
		}
		return nil
	})
	fams := scrape(t, o.servers[id].Addr())
	if ok := value(fams, "sluice_cleaner_cleans_total", "result", "ok"); ok != 0 {
		t.Fatalf("%v cleans succeeded on a disk refusing the cleaner's files", ok)
	}
	fault.Disarm()
	poll.Until(t, 20*time.Second, "the cleaner to recover and clean", func() error {
		fams := scrape(t, o.servers[id].Addr())
		if s := value(fams, "sluice_cleaner_state", "state", "error"); s != 0 {
			return fmt.Errorf("error state %v", s)
		}
		if f := value(fams, "sluice_cleaner_partitions", "state", "failing"); f != 0 {
			return fmt.Errorf("failing partitions %v", f)
		}
		if n := value(fams, "sluice_cleaner_cleans_total", "result", "ok"); n < 1 {
			return fmt.Errorf("cleans %v", n)
		}
		if b, r := value(fams, "sluice_cleaner_reclaimed_bytes_total"), value(fams, "sluice_cleaner_removed_records_total"); b <= 0 || r <= 0 {
			return fmt.Errorf("reclaimed %v bytes, removed %v records; want both above 0", b, r)
		}
		return nil
	})
}
