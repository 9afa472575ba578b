package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

func TestGroupPartitionIsKafkas(t *testing.T) {
	for _, tc := range []struct {
		group string
		n     int32
		want  int32
	}{
		{"hello", 50, 99162322 % 50},  // "hello".hashCode() = 99162322
		{"polygenelubricants", 50, 0}, // hashCode() = Integer.MIN_VALUE: Utils.abs gives 0
		{"Aa", 12, 2112 % 12},         // 2112, as "BB"
		{"BB", 12, 2112 % 12},
		{"groupé", 11, 1237460406 % 11}, // -1237460406: negative
		{"𝄞g", 13, 54944317 % 13},       // a surrogate pair: two UTF-16 units
	} {
		if got := GroupPartition(tc.group, tc.n); got != tc.want {
			t.Errorf("GroupPartition(%q, %d) = %d, want %d", tc.group, tc.n, got, tc.want)
		}
	}
}

// groupClient speaks the group APIs to one broker.
type groupClient struct {
	*testClient
}

func (c groupClient) findCoordinator(t *testing.T, g string) protocol.FindCoordinatorResponse {
	t.Helper()
	var resp protocol.FindCoordinatorResponse
	poll.Until(t, 20*time.Second, "a coordinator for "+g, func() bool {
		c.call(&protocol.FindCoordinatorRequest{CoordinatorKey: g}, &resp)
		return resp.ErrorCode == protocol.NoError
	})
	return resp
}

// heartbeat sends a heartbeat, retrying while the coordinator loads.
func (c groupClient) heartbeat(t *testing.T, req *protocol.ConsumerGroupHeartbeatRequest) protocol.ConsumerGroupHeartbeatResponse {
	t.Helper()
	var resp protocol.ConsumerGroupHeartbeatResponse
	poll.Until(t, 20*time.Second, "a heartbeat answered", func() bool {
		c.call(req, &resp)
		return resp.ErrorCode != protocol.ErrCoordinatorLoadInProgress && resp.ErrorCode != protocol.ErrNotCoordinator
	})
	return resp
}

func (c groupClient) commit(t *testing.T, g, member string, epoch int32, topic string, part int32, off int64) protocol.OffsetCommitResponse {
	t.Helper()
	var resp protocol.OffsetCommitResponse
	c.call(&protocol.OffsetCommitRequest{GroupID: g, MemberID: member, MemberEpoch: epoch, Topics: []protocol.OffsetCommitTopic{
		{Name: topic, Partitions: []protocol.OffsetCommitPartition{{Partition: part, Offset: off, LeaderEpoch: -1}}}}}, &resp)
	return resp
}

func (c groupClient) fetchOffsets(t *testing.T, g string) protocol.OffsetFetchResponse {
	t.Helper()
	var resp protocol.OffsetFetchResponse
	poll.Until(t, 20*time.Second, "offsets fetched", func() bool {
		c.call(&protocol.OffsetFetchRequest{GroupID: g, MemberEpoch: -1, AllTopics: true}, &resp)
		return resp.ErrorCode != protocol.ErrCoordinatorLoadInProgress && resp.ErrorCode != protocol.ErrNotCoordinator
	})
	return resp
}

func countAssigned(tps []protocol.TopicPartitions) int {
	n := 0
	for _, t := range tps {
		n += len(t.Partitions)
	}
	return n
}

func TestGroupRoundTripAndRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, func(c *Config) { c.OffsetsTopicPartitions = 3 })
	c := groupClient{dial(t, b.Addr())}
	c.createTopic("orders", 4)

	// Before the offsets topic exists, group requests say NOT_COORDINATOR.
	var hb protocol.ConsumerGroupHeartbeatResponse
	c.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"orders"}}, &hb)
	if hb.ErrorCode != protocol.ErrNotCoordinator {
		t.Fatalf("heartbeat before the offsets topic: %v", hb.ErrorCode)
	}
	fc := c.findCoordinator(t, "g")
	if fc.BrokerID != b.cfg.BrokerID {
		t.Fatalf("coordinator %d", fc.BrokerID)
	}
	md := b.Metadata().Topics[OffsetsTopic]
	if md == nil || len(md.Partitions) != 3 || md.Configs["cleanup.policy"] != "compact" || md.Configs["retention.ms"] != "-1" || md.Configs["retention.bytes"] != "-1" {
		t.Fatalf("offsets topic: %+v", md)
	}

	join := c.heartbeat(t, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"orders"}, RebalanceTimeoutMs: 30000})
	if join.ErrorCode != protocol.NoError || join.MemberID == "" || join.MemberEpoch < 1 || countAssigned(join.Assignment) != 4 {
		t.Fatalf("join: %+v", join)
	}
	if join.HeartbeatIntervalMs != 1000 { // group.DefaultHeartbeatInterval
		t.Fatalf("heartbeat interval %d ms", join.HeartbeatIntervalMs)
	}
	if r := c.commit(t, "g", join.MemberID, join.MemberEpoch, "orders", 2, 77); r.ErrorCode != protocol.NoError || r.Topics[0].Partitions[0].ErrorCode != protocol.NoError {
		t.Fatalf("commit: %+v", r)
	}
	// Refusals: a stale epoch, a member never issued, a bad regex.
	if r := c.commit(t, "g", join.MemberID, join.MemberEpoch-1, "orders", 2, 1); r.ErrorCode != protocol.ErrStaleMemberEpoch {
		t.Fatalf("stale commit: %+v", r)
	}
	if r := c.commit(t, "g", "never-issued", 3, "orders", 2, 1); r.ErrorCode != protocol.ErrUnknownMemberID {
		t.Fatalf("unknown member commit: %+v", r)
	}
	var bad protocol.ConsumerGroupHeartbeatResponse
	c.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopicRegex: "orders[("}, &bad)
	if bad.ErrorCode != protocol.ErrInvalidRegularExpression || bad.ErrorMessage == "" {
		t.Fatalf("bad regex: %+v", bad)
	}
	var desc protocol.ConsumerGroupDescribeResponse
	c.call(&protocol.ConsumerGroupDescribeRequest{GroupIDs: []string{"g", "nope"}}, &desc)
	if g := desc.Groups[0]; g.ErrorCode != protocol.NoError || g.State != "stable" || len(g.Members) != 1 || g.Members[0].ClientID != "test" {
		t.Fatalf("describe: %+v", desc)
	}
	if desc.Groups[1].ErrorCode != protocol.ErrGroupIDNotFound {
		t.Fatalf("describe unknown: %+v", desc.Groups[1])
	}
	var del protocol.DeleteGroupsResponse
	c.call(&protocol.DeleteGroupsRequest{GroupIDs: []string{"g"}}, &del)
	if del.Results[0].ErrorCode != protocol.ErrNonEmptyGroup {
		t.Fatalf("delete a group with members: %+v", del)
	}
	var prod protocol.ProduceResponse
	c.call(produceRequest(OffsetsTopic, 0, -1, makeBatch(t, 0, "x", 1, 0)), &prod)
	if code := prod.Topics[0].Partitions[0].ErrorCode; code != protocol.ErrInvalidTopic {
		t.Fatalf("produce to the offsets topic: %v", code)
	}

	// A restart loads the group from the offsets topic: the member, its
	// epoch and the commit survive.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := startBroker(t, dir, func(c *Config) { c.OffsetsTopicPartitions = 3 })
	c2 := groupClient{dial(t, b2.Addr())}
	off := c2.fetchOffsets(t, "g")
	if off.ErrorCode != protocol.NoError || len(off.Topics) != 1 || off.Topics[0].Partitions[0].Offset != 77 {
		t.Fatalf("offsets after restart: %+v", off)
	}
	again := c2.heartbeat(t, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: join.MemberID, MemberEpoch: join.MemberEpoch,
		SubscribedTopics: []string{"orders"}, OwnedPartitions: join.Assignment})
	if again.ErrorCode != protocol.NoError || again.MemberEpoch != join.MemberEpoch || countAssigned(again.Assignment) != 4 {
		t.Fatalf("heartbeat after restart: %+v", again)
	}
	var leave protocol.ConsumerGroupHeartbeatResponse
	c2.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: join.MemberID, MemberEpoch: -1}, &leave)
	if leave.ErrorCode != protocol.NoError || leave.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", leave)
	}
	var list protocol.ListGroupsResponse
	c2.call(&protocol.ListGroupsRequest{}, &list)
	if len(list.Groups) != 1 || list.Groups[0].GroupID != "g" || list.Groups[0].State != "empty" {
		t.Fatalf("list: %+v", list)
	}
	c2.call(&protocol.DeleteGroupsRequest{GroupIDs: []string{"g"}}, &del)
	if del.Results[0].ErrorCode != protocol.NoError {
		t.Fatalf("delete: %+v", del)
	}
	if off := c2.fetchOffsets(t, "g"); len(off.Topics) != 0 {
		t.Fatalf("offsets after delete: %+v", off)
	}
}

func TestGroupErrorsHaveCodes(t *testing.T) {
	for _, e := range group.Errors {
		code, _ := ErrorCode(fmt.Errorf("wrapped: %w", e))
		if code == protocol.ErrUnknownServerError || code.Retriable() {
			t.Errorf("group error %q maps to %v", e, code)
		}
	}
}

// A member that stops heartbeating is removed by the broker's timers after
// the session timeout; the other member gets its partitions.
func TestGroupSessionTimeoutAtBroker(t *testing.T) {
	b := startBroker(t, "", func(c *Config) {
		c.OffsetsTopicPartitions = 1
		c.Group = group.Config{SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond}
	})
	c := groupClient{dial(t, b.Addr())}
	c.createTopic("t", 4)
	c.findCoordinator(t, "g")
	a := c.heartbeat(t, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"t"}})
	stopped := c.heartbeat(t, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"t"}})
	if a.ErrorCode != protocol.NoError || stopped.ErrorCode != protocol.NoError {
		t.Fatalf("joins: %+v %+v", a, stopped)
	}
	start := time.Now()
	poll.Until(t, 10*time.Second, "the heartbeating member holding all 4 partitions", func() bool {
		c.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch,
			SubscribedTopics: []string{"t"}, OwnedPartitions: a.Assignment}, &a)
		if a.ErrorCode != protocol.NoError {
			t.Fatalf("heartbeat: %v %s", a.ErrorCode, a.ErrorMessage)
		}
		return countAssigned(a.Assignment) == 4
	})
	if took := time.Since(start); took < time.Second {
		t.Fatalf("the stopped member's partitions moved after %v, before its session timeout", took)
	}
	var gone protocol.ConsumerGroupHeartbeatResponse
	c.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: stopped.MemberID, MemberEpoch: stopped.MemberEpoch,
		SubscribedTopics: []string{"t"}}, &gone)
	if gone.ErrorCode != protocol.ErrUnknownMemberID {
		t.Fatalf("the expired member's heartbeat: %v", gone.ErrorCode)
	}
}

// BenchmarkGroupCommit is one commit of one partition through the core at
// a single broker, answered once committed: ns/op is a commit's latency
// (append as leader with acks=all, one replica), and with -cpu N the
// parallel variant commits from N goroutines.
func BenchmarkGroupCommit(b *testing.B) {
	br := startBroker(b, "", func(c *Config) { c.OffsetsTopicPartitions = 1 })
	ctx := context.Background()
	poll.Until(b, 20*time.Second, "a coordinator", func() error {
		if _, err := br.FindCoordinator(ctx, "g"); err != nil {
			return err
		}
		_, err := br.FetchOffsets(group.OffsetFetch{GroupID: "g"})
		return err
	})
	commit := func(off int64) {
		res, err := br.CommitOffsets(ctx, group.OffsetCommit{GroupID: "g", MemberEpoch: -1, Topics: []group.CommitTopic{
			{Topic: "t", Partitions: []group.CommitPartition{{Partition: int32(off % 8), Offset: off, LeaderEpoch: -1}}}}})
		if err != nil || res[0].Partitions[0].Err != nil {
			b.Fatal(err, res)
		}
	}
	b.Run("serial", func(b *testing.B) {
		for i := range b.N {
			commit(int64(i))
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for i := int64(0); pb.Next(); i++ {
				commit(i)
			}
		})
	})
}
