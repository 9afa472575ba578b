package httpapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/httpapi"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// TestGroupLagMetric runs a consumer group on a 3-broker cluster over a
// topic of 3 partitions, one on each broker, and follows
// sluice_group_lag as the group commits and the producer writes: only the
// group's coordinator exports it; before any commit it counts every
// record; a commit lowers it; records produced to a partition led by
// another broker raise it (through the high watermark its leader
// reports to the controller). The coordinator exports the group's
// member count beside it.
func TestGroupLagMetric(t *testing.T) {
	o := startObserved(t, 3, httpapi.LevelDebug, true)
	// Each call has its own bound: one context for the whole test ran
	// out while the waits below (up to 110 s in all) took their time on a
	// loaded machine (a commit failed with "context deadline exceeded"
	// 60 s in, at load 27).
	call := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	cl := o.Client(client.RecordPartitioner(client.ManualPartitioner()))
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "t", Partitions: 3, ReplicationFactor: 1})
	produce := func(part int32, n int) {
		t.Helper()
		var recs []*client.Record
		for i := range n {
			recs = append(recs, &client.Record{Topic: "t", Partition: part, Value: fmt.Appendf(nil, "v%d", i)})
		}
		if err := cl.ProduceSync(call(), recs...); err != nil {
			t.Fatal(err)
		}
	}
	for p := range int32(3) {
		produce(p, 10)
	}
	m := o.Client(client.ConsumerGroup("g", client.GroupTopics("t")))
	poll.Until(t, 30*time.Second, "the member to own the 3 partitions", func() error {
		if got := m.Assignment(); len(got) != 3 {
			return fmt.Errorf("assignment %v", got)
		}
		return nil
	})

	// lagIs waits for the cluster to export want as g's lag on t, from
	// one broker only, with per-partition lags that add up to it.
	lagIs := func(want float64, what string) {
		t.Helper()
		poll.Until(t, 20*time.Second, what, func() error {
			var exporters []int32
			var lag, parts float64
			for _, id := range o.IDs() {
				fams := scrape(t, o.servers[id].Addr())
				if v := value(fams, "sluice_group_lag", "group", "g", "topic", "t"); v >= 0 {
					exporters = append(exporters, id)
					lag += v
					if m := value(fams, "sluice_group_members", "group", "g"); m != 1 {
						return fmt.Errorf("broker %d: sluice_group_members of g = %v, want 1", id, m)
					}
					for p := range 3 {
						parts += max(0, value(fams, "sluice_group_partition_lag", "group", "g", "topic", "t", "partition", fmt.Sprint(p)))
					}
				}
			}
			switch {
			case len(exporters) != 1:
				return fmt.Errorf("brokers %v export the lag of g, want one", exporters)
			case lag != want || parts != want:
				return fmt.Errorf("lag %v (partitions sum to %v), want %v", lag, parts, want)
			}
			return nil
		})
	}
	lagIs(30, "the lag before any commit to count every record")
	if err := m.CommitOffsets(call(), map[client.TopicPartition]int64{{Topic: "t", Partition: 0}: 4, {Topic: "t", Partition: 1}: 4, {Topic: "t", Partition: 2}: 4}); err != nil {
		t.Fatal(err)
	}
	lagIs(18, "the commit at 4 of each partition to lower the lag")
	for p := range int32(3) {
		produce(p, 5)
	}
	lagIs(33, "5 more records in each partition to raise the lag")
	if err := m.CommitOffsets(call(), map[client.TopicPartition]int64{{Topic: "t", Partition: 0}: 15, {Topic: "t", Partition: 1}: 15, {Topic: "t", Partition: 2}: 15}); err != nil {
		t.Fatal(err)
	}
	lagIs(0, "a commit at the end to make the lag 0")
}
