package broker

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

// TestGroupMemberOwningNothing: a member that revoked its only partition
// reports an empty owned list, which reaches the coordinator as "owns
// none", not as "not reported", so the partition moves to its new owner at
// once. The wire has no null array and an empty list decodes as nil: taken
// as "not reported", the member stayed unrevoked until its rebalance
// timeout (5 min by default), and the partition with it.
func TestGroupMemberOwningNothing(t *testing.T) {
	b := startBroker(t, "", func(c *Config) {
		c.OffsetsTopicPartitions = 1
		c.Group = group.Config{HeartbeatInterval: 50 * time.Millisecond}
	})
	c := groupClient{dial(t, b.Addr())}
	c.createTopic("t", 1)
	c.createTopic("u", 1)
	c.findCoordinator(t, "g")
	beat := func(m *protocol.ConsumerGroupHeartbeatResponse, topic string) {
		t.Helper()
		c.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: m.MemberID, MemberEpoch: m.MemberEpoch,
			SubscribedTopics: []string{topic}, RebalanceTimeoutMs: 300_000, OwnedPartitions: m.Assignment}, m)
		if m.ErrorCode != protocol.NoError {
			t.Fatalf("heartbeat: %v %s", m.ErrorCode, m.ErrorMessage)
		}
	}
	owns := func(m *protocol.ConsumerGroupHeartbeatResponse, topic string) bool {
		return len(m.Assignment) == 1 && m.Assignment[0].Topic == topic && len(m.Assignment[0].Partitions) == 1
	}
	a := c.heartbeat(t, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"t"}, RebalanceTimeoutMs: 300_000})
	poll.Until(t, 10*time.Second, "the first member owning t/0", func() bool {
		beat(&a, "t")
		return owns(&a, "t")
	})
	o := c.heartbeat(t, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"t"}, RebalanceTimeoutMs: 300_000})
	beat(&o, "t")
	// The first member moves to topic u: it must give t/0 up, and then
	// owns nothing until it gets u/0, after the other member took t/0.
	beat(&a, "u")
	if countAssigned(a.Assignment) != 0 {
		t.Fatalf("after resubscribing, the first member is assigned %v; want nothing until it revoked t/0", a.Assignment)
	}
	poll.Until(t, 5*time.Second, "t/0 moved to the other member and u/0 to the first", func() bool {
		beat(&a, "u")
		beat(&o, "t")
		return owns(&o, "t") && owns(&a, "u")
	})
}
