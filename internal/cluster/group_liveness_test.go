package cluster

import (
	"context"
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
// first, which is left with none (when the second's id sorts last, the
// first leaves instead, and the second becomes the first).
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
	// Member ids are random: until a new member's id sorts before the
	// owner's, the owner leaves and the new member (whose id sorts later,
	// so the owner's id only grows) takes the partition over.
	first := join()
	poll.Until(t, 30*time.Second, "the first member owning one/0", func() bool { return owns(first) })
	var second *client.Client
	var start time.Time
	for try := 0; second == nil; try++ {
		firstID, _ := first.GroupMember()
		if try == 20 {
			t.Fatalf("20 members joined, none with an id sorting before the owner's (last %q)", firstID)
		}
		start = time.Now()
		m := join()
		if id, _ := m.GroupMember(); id < firstID {
			second = m
			continue
		}
		first.Close()
		first = m
		poll.Until(t, 30*time.Second, "the new member owning one/0", func() bool { return owns(first) })
	}
	poll.Until(t, 10*time.Second, "one/0 moved to the second member", func() error {
		// The first member gives one/0 up inside its Poll.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, _ = first.Poll(ctx)
		cancel()
		if owns(second) && !owns(first) {
			return nil
		}
		return fmt.Errorf("first owns %v, second %v", first.Assignment(), second.Assignment())
	})
	t.Logf("one/0 moved %v after the second member started", time.Since(start).Round(time.Millisecond))
}
