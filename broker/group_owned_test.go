package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

// fastGroupBroker starts a broker with one offsets partition and a fast
// heartbeat, and dials it.
func fastGroupBroker(t *testing.T) groupClient {
	t.Helper()
	b := startBroker(t, "", func(c *Config) {
		c.OffsetsTopicPartitions = 1
		c.Group = group.Config{HeartbeatInterval: 50 * time.Millisecond}
	})
	return groupClient{dial(t, b.Addr())}
}

// beat sends member m's heartbeat in group "g", subscribed to topic and
// reporting its assignment owned, into m.
func (c groupClient) beat(t *testing.T, m *protocol.ConsumerGroupHeartbeatResponse, topic string) {
	t.Helper()
	c.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", MemberID: m.MemberID, MemberEpoch: m.MemberEpoch,
		SubscribedTopics: []string{topic}, RebalanceTimeoutMs: 300_000, OwnedPartitions: m.Assignment}, m)
	if m.ErrorCode != protocol.NoError {
		t.Fatalf("heartbeat: %v %s", m.ErrorCode, m.ErrorMessage)
	}
}

// TestGroupMemberOwningNothing: a member that revoked its only partition
// reports an empty owned list, which reaches the coordinator as "owns
// none", not as "not reported", so the partition moves to its new owner at
// once. The wire has no null array and an empty list decodes as nil: taken
// as "not reported", the member stayed unrevoked until its rebalance
// timeout (5 min by default), and the partition with it.
func TestGroupMemberOwningNothing(t *testing.T) {
	c := fastGroupBroker(t)
	c.createTopic("t", 1)
	c.createTopic("u", 1)
	c.findCoordinator(t, "g")
	beat := func(m *protocol.ConsumerGroupHeartbeatResponse, topic string) { t.Helper(); c.beat(t, m, topic) }
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

// TestGroupLateCommitOfRevokedPartition: a member that gave a partition
// up cannot move its committed offset once the coordinator heard it
// released (KIP-1251's rule, Kafka 4.3: a commit's partition must be held
// by the member; before it, Kafka fenced by the member epoch alone, which
// let this commit through). While it is still revoking, its commit is
// accepted: its new owner has not read the offset yet.
func TestGroupLateCommitOfRevokedPartition(t *testing.T) {
	c := fastGroupBroker(t)
	c.createTopic("t", 2)
	c.findCoordinator(t, "g")
	beat := func(m *protocol.ConsumerGroupHeartbeatResponse) { t.Helper(); c.beat(t, m, "t") }
	commit := func(m *protocol.ConsumerGroupHeartbeatResponse, epoch, part int32, off int64) protocol.ErrorCode {
		t.Helper()
		resp := c.commit(t, "g", m.MemberID, epoch, "t", part, off)
		if resp.ErrorCode != protocol.NoError {
			return resp.ErrorCode
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	committed := func(part int32) int64 {
		t.Helper()
		for _, tp := range c.fetchOffsets(t, "g").Topics {
			for _, p := range tp.Partitions {
				if tp.Name == "t" && p.Partition == part {
					return p.Offset
				}
			}
		}
		return -1
	}
	a := c.heartbeat(t, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"t"}, RebalanceTimeoutMs: 300_000})
	poll.Until(t, 10*time.Second, "the first member owning t/0 and t/1", func() bool {
		beat(&a)
		return countAssigned(a.Assignment) == 2
	})
	o := c.heartbeat(t, &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"t"}, RebalanceTimeoutMs: 300_000})
	// The first member is told to give one partition up; its epoch stays
	// until it reports it gone.
	before := a.MemberEpoch
	beat(&a) // still owning both
	if countAssigned(a.Assignment) != 1 || a.MemberEpoch != before {
		t.Fatalf("heartbeat after the second member joined: assignment %v, epoch %d (was %d)", a.Assignment, a.MemberEpoch, before)
	}
	kept := a.Assignment[0].Partitions[0]
	moved := 1 - kept
	if code := commit(&a, a.MemberEpoch, moved, 5); code != protocol.NoError {
		t.Fatalf("commit of t/%d while revoking it: %v; want it accepted", moved, code)
	}
	beat(&a) // reports t/moved released: a moves to a new epoch
	if a.MemberEpoch <= before {
		t.Fatalf("epoch %d after releasing t/%d, want more than %d", a.MemberEpoch, moved, before)
	}
	poll.Until(t, 5*time.Second, fmt.Sprintf("t/%d at the second member", moved), func() bool {
		beat(&o)
		return countAssigned(o.Assignment) == 1 && o.Assignment[0].Partitions[0] == moved
	})
	if code := commit(&o, o.MemberEpoch, moved, 10); code != protocol.NoError {
		t.Fatalf("the new owner's commit: %v", code)
	}
	// (b) the old owner's late commit at the epoch it revoked at.
	if code := commit(&a, before, moved, 3); code != protocol.ErrStaleMemberEpoch {
		t.Errorf("late commit of t/%d at the old epoch %d: %v, want STALE_MEMBER_EPOCH", moved, before, code)
	}
	// (a) the same at its current epoch: the partition is not its own.
	if code := commit(&a, a.MemberEpoch, moved, 3); code != protocol.ErrStaleMemberEpoch {
		t.Errorf("late commit of t/%d at the current epoch %d: %v, want STALE_MEMBER_EPOCH for the partition", moved, a.MemberEpoch, code)
	}
	if got := committed(moved); got != 10 {
		t.Errorf("t/%d committed at %d after the old owner's late commits, want the new owner's 10", moved, got)
	}
	if code := commit(&a, a.MemberEpoch, kept, 7); code != protocol.NoError || committed(kept) != 7 {
		t.Errorf("commit of its own t/%d: %v, committed %d", kept, code, committed(kept))
	}
}
