package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

func TestAdminTopicsAndConfigs(t *testing.T) {
	fc := newFakeCluster(t, 2)
	c := newTestClient(t, fc)
	ctx := context.Background()
	err := c.CreateTopics(ctx,
		TopicSpec{Name: "a", Partitions: 3, ReplicationFactor: 1, Configs: map[string]string{"retention.ms": "1000"}},
		TopicSpec{Name: "b", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = c.CreateTopics(ctx, TopicSpec{Name: "a", Partitions: 1}, TopicSpec{Name: "c", Partitions: 1})
	var te *TopicError
	if !errors.Is(err, protocol.ErrTopicAlreadyExists) || !errors.As(err, &te) || te.Topic != "a" {
		t.Fatalf("re-create: %v, want TOPIC_ALREADY_EXISTS for a", err)
	}
	names, err := c.ListTopics(ctx)
	if err != nil || len(names) != 3 || names[0] != "a" || names[2] != "c" {
		t.Fatalf("ListTopics: %v %v", names, err)
	}
	d, err := c.DescribeTopic(ctx, "a")
	if err != nil || len(d.Partitions) != 3 || d.Partitions[1].Leader != 2 || len(d.Partitions[1].ISR) != 1 {
		t.Fatalf("DescribeTopic: %+v %v", d, err)
	}
	if _, err := c.DescribeTopic(ctx, "nope"); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
		t.Errorf("describe a missing topic: %v", err)
	}
	if err := c.AlterConfigs(ctx, "a", SetConfig("segment.bytes", "4096"), DeleteConfig("retention.ms")); err != nil {
		t.Fatal(err)
	}
	cfgs, err := c.DescribeConfigs(ctx, "a")
	if err != nil || len(cfgs) != 1 || cfgs[0].Key != "segment.bytes" || cfgs[0].Value != "4096" {
		t.Fatalf("DescribeConfigs after alter: %+v %v", cfgs, err)
	}
	if err := c.AlterConfigs(ctx, "nope", SetConfig("x", "y")); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
		t.Errorf("alter a missing topic: %v", err)
	}
	if err := c.DeleteTopics(ctx, "b", "nope"); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
		t.Errorf("delete: %v", err)
	}
	if names, _ := c.ListTopics(ctx); len(names) != 2 {
		t.Errorf("after delete: %v", names)
	}
}

func TestAdminListOffsets(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 1, 2)
	c := newTestClient(t, fc, RecordPartitioner(ManualPartitioner()))
	ctx := context.Background()
	for i := range 4 {
		rec := &Record{Topic: "t", Partition: int32(i % 2), Value: []byte{byte(i)}, Timestamp: time.UnixMilli(int64(100 * (i + 1)))}
		if err := c.ProduceSync(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		at   Offset
		want []int64
	}{
		{AtStart(), []int64{0, 0}},
		{AtEnd(), []int64{2, 2}},
		{AtTime(time.UnixMilli(250)), []int64{1, 1}}, // p0 has ts 100, 300; p1 200, 400
		{AtTime(time.UnixMilli(1000)), []int64{-1, -1}},
	} {
		got, err := c.ListOffsets(ctx, "t", tc.at)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range got {
			if p.Err != nil || p.Offset != tc.want[i] {
				t.Errorf("%v partition %d: offset %d err %v, want %d", tc.at, i, p.Offset, p.Err, tc.want[i])
			}
		}
	}
	if _, err := c.ListOffsets(ctx, "t", At(3)); err == nil {
		t.Error("ListOffsets with an exact offset succeeded")
	}
}

// A partition's leadership moves after the client cached its leader: the
// old leader's NOT_LEADER_OR_FOLLOWER comes back for that partition and
// starts a metadata refresh, so that a retry soon reaches the new leader
// (not only after MetadataMaxAge, 5 minutes by default).
func TestAdminListOffsetsAfterLeaderMoved(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc)
	ctx := context.Background()
	if got, err := c.ListOffsets(ctx, "t", AtEnd()); err != nil || got[0].Err != nil {
		t.Fatalf("ListOffsets: %v %+v", err, got)
	}
	fc.setLeader("t", 0, 2)
	got, err := c.ListOffsets(ctx, "t", AtEnd())
	if err != nil || !errors.Is(got[0].Err, protocol.ErrNotLeaderOrFollower) {
		t.Fatalf("ListOffsets after the move: %v %+v, want the old leader's NOT_LEADER_OR_FOLLOWER", err, got)
	}
	poll.Until(t, 10*time.Second, "ListOffsets answered by the new leader", func() bool {
		got, err := c.ListOffsets(ctx, "t", AtEnd())
		return err == nil && got[0].Err == nil
	})
}

// A seed that accepts connections and never answers (a listener nobody
// accepts from, as a SIGSTOPped broker's is) costs an admin request at
// most anyDialTimeout, once: then it is tried after the others.
func TestAdminMovesPastAHungBroker(t *testing.T) {
	fc := newFakeCluster(t, 1)
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	c, err := New(ctx, SeedBrokers(hung.Addr().String(), fc.addrs()[0]), RetryBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 6 { // every candidate is first at least once
		if _, err := c.ListTopics(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el > 2*anyDialTimeout+time.Second {
		t.Fatalf("bootstrap and 6 requests took %v with a hung seed, want under %v", el, 2*anyDialTimeout+time.Second)
	}
}

// A bootstrap bounded by a deadline shorter than anyDialTimeout (the
// CLI's --timeout) still reaches a seed behind hung ones: each broker
// gets a share of the time left, not anyDialTimeout.
func TestBootstrapDeadlineSharedAmongSeeds(t *testing.T) {
	fc := newFakeCluster(t, 1)
	var hung []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		hung = append(hung, ln.Addr().String())
	}
	for _, seeds := range [][]string{
		{hung[0], hung[1], fc.addrs()[0]},
		{fc.addrs()[0], hung[0], hung[1]}, // the seed order rotates from the second
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := New(ctx, SeedBrokers(seeds...))
		cancel()
		if err != nil {
			t.Fatalf("seeds %v: bootstrap within 2 s: %v", seeds, err)
		}
		c.Close()
	}
}

// A broker cut off from the Raft group knows no leader, or names an old
// one: DescribeCluster
// follows the answers to the broker that says it leads, and returns its
// answer whichever broker it asked first (issue 13 item 4: cluster status
// alternated between controller 1 and none).
func TestDescribeClusterAnswersFromTheLeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		says map[int32]int32 // broker → the controller it names
		want int32
	}{
		{"cut broker knows none", map[int32]int32{1: -1, 2: 3, 3: 3}, 3},
		{"stale hint", map[int32]int32{1: 2, 2: 3, 3: 3}, 3},
		{"nobody confirms", map[int32]int32{1: -1, 2: 3, 3: -1}, 3},
		{"no leader at all", map[int32]int32{1: -1, 2: -1, 3: -1}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeCluster(t, 3)
			fc.setHook(func(b *fakeBroker, key protocol.APIKey, _ protocol.Message) action {
				if key != protocol.DescribeCluster {
					return action{}
				}
				r := &protocol.DescribeClusterResponse{ClusterID: fmt.Sprint("from-", b.id), ControllerID: tc.says[b.id]}
				for _, o := range fc.brokers {
					r.Brokers = append(r.Brokers, protocol.ClusterBroker{ID: o.id, Addr: o.ln.Addr().String(), State: protocol.BrokerStateAlive})
				}
				return action{resp: r}
			})
			c := newTestClient(t, fc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range 6 { // every broker is asked first at least once
				d, err := c.DescribeCluster(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if d.ControllerID != tc.want {
					t.Fatalf("call %d: controller %d (answer %s), want %d", i, d.ControllerID, d.ClusterID, tc.want)
				}
				if tc.says[tc.want] == tc.want && tc.want >= 0 && d.ClusterID != fmt.Sprint("from-", tc.want) {
					t.Fatalf("call %d: answer %s, want the leader's own", i, d.ClusterID)
				}
			}
		})
	}
}
