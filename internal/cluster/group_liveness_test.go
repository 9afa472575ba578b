package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// A member whose new target takes away every partition it owns revokes
// them and reports that it owns none, and its partition moves at once.
// The client's empty owned list reached the coordinator as "not
// reported", so the member stayed unrevoked, holding the partition, until
// its rebalance timeout (5 min): bench commit's 10 members over 10
// partitions owned 8 of them 30 s after joining. With the range assignor
// a second member whose id sorts first takes the only partition from the
// first, which is left with none (a second member whose id sorts last
// takes nothing: it leaves, and another joins).
func TestGroupMemberRevokingAllItsPartitions(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.Group.HeartbeatInterval = groupHeartbeat
		cfg.Group.SessionTimeout = groupSession
	}})
	testcluster.CreateTopic(t, c.Client(), client.TopicSpec{Name: "one", Partitions: 1, ReplicationFactor: 1})
	join := func() *client.Client {
		m := c.Client(client.ConsumerGroup("all", client.GroupTopics("one"), client.GroupAssignor(group.AssignorRange)))
		poll.Until(t, 30*time.Second, "a member joining", func() bool { _, epoch := m.GroupMember(); return epoch > 0 })
		return m
	}
	owns := func(m *client.Client) bool { return len(m.Assignment()) == 1 }
	first := join()
	poll.Until(t, 30*time.Second, "the first member owning one/0", func() bool { return owns(first) })
	firstID, _ := first.GroupMember()
	var second *client.Client
	var start time.Time
	for try := 0; second == nil; try++ {
		if try == 20 {
			t.Fatalf("20 members joined after %q, none with an id sorting before it", firstID)
		}
		start = time.Now()
		m := join()
		if id, _ := m.GroupMember(); id < firstID {
			second = m
		} else {
			m.Close()
		}
	}
	poll.Until(t, 10*time.Second, "one/0 moved to the second member", func() error {
		if owns(second) && !owns(first) {
			return nil
		}
		return fmt.Errorf("first owns %v, second %v", first.Assignment(), second.Assignment())
	})
	t.Logf("one/0 moved %v after the second member started", time.Since(start).Round(time.Millisecond))
}
