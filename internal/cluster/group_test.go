package cluster

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// groupMember is a consumer-group member as a client runs it, speaking
// the raw protocol: it holds its last assignment and reports it.
type groupMember struct {
	id    string
	epoch int32
	owned []protocol.TopicPartitions
}

// roundTrip sends one request to the broker at addr on a fresh connection.
func roundTrip(addr string, req, resp protocol.Message) error {
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	c := protocol.NewConn(context.Background(), nc, "group-test", 0)
	defer c.Close()
	return c.RoundTrip(time.Now().Add(15*time.Second), req, resp, 0)
}

// coordinatorOf asks any running broker for the group's coordinator until
// one answers, and returns its address.
func coordinatorOf(t *testing.T, c *testcluster.Cluster, g string) (int32, string) {
	t.Helper()
	var id int32
	var addr string
	poll.Until(t, 30*time.Second, "a coordinator of "+g, func() error {
		for _, bid := range c.IDs() {
			b := c.Broker(bid)
			if b == nil {
				continue
			}
			var resp protocol.FindCoordinatorResponse
			if err := roundTrip(b.Addr(), &protocol.FindCoordinatorRequest{CoordinatorKey: g}, &resp); err != nil {
				return err
			}
			if resp.ErrorCode != protocol.NoError {
				return fmt.Errorf("%v: %s", resp.ErrorCode, resp.ErrorMessage)
			}
			id, addr = resp.BrokerID, net.JoinHostPort(resp.Host, strconv.Itoa(int(resp.Port)))
			return nil
		}
		return fmt.Errorf("no broker running")
	})
	return id, addr
}

// callCoordinator sends req to the group's coordinator (found again each
// try) until the answer's code, as code reads it, is not retriable.
func callCoordinator(t *testing.T, c *testcluster.Cluster, g string, req, resp protocol.Message, code func() (protocol.ErrorCode, string)) {
	t.Helper()
	poll.Until(t, 30*time.Second, fmt.Sprintf("%v answered by the coordinator", req.Key()), func() error {
		_, addr := coordinatorOf(t, c, g)
		if err := roundTrip(addr, req, resp); err != nil {
			return err
		}
		if ec, msg := code(); ec.Retriable() {
			return fmt.Errorf("%v: %s", ec, msg)
		}
		return nil
	})
}

// groupOffsets fetches every committed offset of g (topic orders).
func groupOffsets(t *testing.T, c *testcluster.Cluster, g string) map[int32]int64 {
	t.Helper()
	var off protocol.OffsetFetchResponse
	callCoordinator(t, c, g, &protocol.OffsetFetchRequest{GroupID: g, MemberEpoch: -1, AllTopics: true}, &off,
		func() (protocol.ErrorCode, string) { return off.ErrorCode, off.ErrorMessage })
	if off.ErrorCode != protocol.NoError {
		t.Fatalf("offset fetch: %v", off.ErrorCode)
	}
	got := map[int32]int64{}
	for _, tr := range off.Topics {
		for _, p := range tr.Partitions {
			got[p.Partition] = p.Offset
		}
	}
	return got
}

// beat sends m's heartbeat to the group's coordinator (found again when
// the one asked is not it) and applies the answer.
func (m *groupMember) beat(t *testing.T, c *testcluster.Cluster, g string, topics ...string) {
	t.Helper()
	req := &protocol.ConsumerGroupHeartbeatRequest{GroupID: g, MemberID: m.id, MemberEpoch: m.epoch,
		RebalanceTimeoutMs: 30000, SubscribedTopics: topics, OwnedPartitions: m.owned}
	var resp protocol.ConsumerGroupHeartbeatResponse
	callCoordinator(t, c, g, req, &resp, func() (protocol.ErrorCode, string) { return resp.ErrorCode, resp.ErrorMessage })
	if resp.ErrorCode != protocol.NoError {
		t.Fatalf("heartbeat of %q: %v: %s", m.id, resp.ErrorCode, resp.ErrorMessage)
	}
	m.id, m.epoch, m.owned = resp.MemberID, resp.MemberEpoch, resp.Assignment
}

func assignedCount(tps []protocol.TopicPartitions) int {
	n := 0
	for _, tp := range tps {
		n += len(tp.Partitions)
	}
	return n
}

// startGroup starts 3 brokers, a topic "orders" of partitions partitions
// (replication factor 3) and n members of group "g" that share it evenly,
// and returns the group's coordinator.
func startGroup(t *testing.T, partitions int32, n int) (*testcluster.Cluster, int32, []*groupMember) {
	t.Helper()
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.OffsetsTopicPartitions = 3
		cfg.Group = group.Config{SessionTimeout: 30 * time.Second, HeartbeatInterval: time.Second}
	}})
	cl := c.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "orders", Partitions: partitions, ReplicationFactor: 3})
	coord, _ := coordinatorOf(t, c, "g")
	testcluster.WaitFullISR(t, cl, broker.OffsetsTopic, 20*time.Second)
	members := make([]*groupMember, n)
	for i := range members {
		members[i] = &groupMember{}
	}
	poll.Until(t, 30*time.Second, fmt.Sprintf("%d members with %d partitions each", n, int(partitions)/n), func() bool {
		ok := true
		for _, m := range members {
			m.beat(t, c, "g", "orders")
			ok = ok && assignedCount(m.owned) == int(partitions)/n
		}
		return ok
	})
	return c, coord, members
}

// The coordinator's broker is killed: the group goes on at the new
// coordinator with the same members and epochs, and every committed
// offset is there.
func TestGroupSurvivesCoordinatorKill(t *testing.T) {
	c, coord, members := startGroup(t, 12, 3)
	// Each member commits its partitions: offset 100 + partition.
	want := map[int32]int64{}
	for _, m := range members {
		m.commitOwned(t, c, "g", func(p int32) int64 { want[p] = 100 + int64(p); return want[p] })
	}

	c.Kill(coord)
	start := time.Now()
	var newCoord int32
	poll.Until(t, 30*time.Second, "another coordinator", func() bool {
		newCoord, _ = coordinatorOf(t, c, "g")
		return newCoord != coord
	})
	// The members go on with their ids and epochs: the new coordinator
	// replayed them.
	for _, m := range members {
		before := m.epoch
		m.beat(t, c, "g", "orders")
		if m.epoch != before || assignedCount(m.owned) != 4 {
			t.Fatalf("member %q after the failover: epoch %d (was %d), %v", m.id, m.epoch, before, m.owned)
		}
	}
	t.Logf("coordinator %d killed; coordinator %d answered the members %v later", coord, newCoord, time.Since(start).Round(time.Millisecond))
	if got := groupOffsets(t, c, "g"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("offsets after the failover %v, want %v", got, want)
	}
}

// A rolling restart of every broker under a group: the members keep their
// ids and partitions throughout, and the last commit of each partition is
// what the group has at the end.
func TestGroupRollingRestart(t *testing.T) {
	c, _, members := startGroup(t, 6, 2)
	ids := []string{members[0].id, members[1].id}
	last := map[int32]int64{}
	offset := int64(0)
	for _, id := range c.IDs() {
		c.Stop(id)
		for _, m := range members {
			m.beat(t, c, "g", "orders")
			offset++
			m.commitOwned(t, c, "g", func(p int32) int64 { last[p] = offset; return offset })
		}
		c.Restart(id)
		// A new client: the restarted broker listens on a new port.
		testcluster.WaitFullISR(t, c.Client(), broker.OffsetsTopic, 30*time.Second)
	}
	for i, m := range members {
		m.beat(t, c, "g", "orders")
		if m.id != ids[i] || assignedCount(m.owned) != 3 {
			t.Fatalf("member %d after the rolling restart: %q (was %q) with %v", i, m.id, ids[i], m.owned)
		}
	}
	if got := groupOffsets(t, c, "g"); fmt.Sprint(got) != fmt.Sprint(last) {
		t.Fatalf("offsets %v, want %v", got, last)
	}
}

// commitOwned commits offset(p) for every partition p m owns, at the
// group's coordinator, retrying while the coordinator moves.
func (m *groupMember) commitOwned(t *testing.T, c *testcluster.Cluster, g string, offset func(int32) int64) {
	t.Helper()
	req := &protocol.OffsetCommitRequest{GroupID: g, MemberID: m.id, MemberEpoch: m.epoch}
	for _, tp := range m.owned {
		ct := protocol.OffsetCommitTopic{Name: tp.Topic}
		for _, p := range tp.Partitions {
			ct.Partitions = append(ct.Partitions, protocol.OffsetCommitPartition{Partition: p, Offset: offset(p), LeaderEpoch: -1})
		}
		req.Topics = append(req.Topics, ct)
	}
	var resp protocol.OffsetCommitResponse
	callCoordinator(t, c, g, req, &resp, func() (protocol.ErrorCode, string) { return resp.ErrorCode, resp.ErrorMessage })
	if resp.ErrorCode != protocol.NoError {
		t.Fatalf("commit of %q at epoch %d: %v: %s", m.id, m.epoch, resp.ErrorCode, resp.ErrorMessage)
	}
	for _, tr := range resp.Topics {
		for _, pr := range tr.Partitions {
			if pr.ErrorCode != protocol.NoError {
				t.Fatalf("commit of partition %d: %v", pr.Partition, pr.ErrorCode)
			}
		}
	}
}

// A coordinator that cannot commit (both followers of its offsets
// partition killed, and with them the Raft quorum, so its high watermark
// stays put) does not tell a commit it appended but could not commit:
// an offset fetch waits for it and fails, rather than answering an offset
// that a failover would take back (the chaos suite saw every partition's
// committed offset go backwards after the coordinator was isolated).
func TestGroupFetchOffsetsOnlyCommitted(t *testing.T) {
	c, coord, members := startGroup(t, 3, 1)
	m := members[0]
	m.commitOwned(t, c, "g", func(int32) int64 { return 10 })
	for _, id := range c.IDs() {
		if id != coord {
			c.Kill(id)
		}
	}
	b := c.Broker(coord)
	done, over := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(over)
		_, err := b.CommitOffsets(context.Background(), group.OffsetCommit{GroupID: "g", MemberID: m.id, MemberEpoch: m.epoch,
			Topics: []group.CommitTopic{{Topic: "orders", Partitions: []group.CommitPartition{{Partition: 0, Offset: 20, LeaderEpoch: -1}}}}})
		done <- err
	}()
	// Meanwhile ListGroups: a list that had to wait (the commit pending)
	// leaves the group out.
	listDone := make(chan string, 1)
	go func() {
		for {
			select {
			case <-over:
				listDone <- ""
				return
			default:
			}
			start := time.Now()
			listed := b.ListGroups()
			if took := time.Since(start); took > time.Second && len(listed) > 0 {
				listDone <- fmt.Sprintf("after waiting %v for the pending commit, ListGroups listed %v", took.Round(time.Millisecond), listed)
				return
			}
		}
	}()
	defer func() {
		if msg := <-listDone; msg != "" {
			t.Error(msg)
		}
	}()
	fetches := 0
	for {
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("a commit with no follower alive was acknowledged")
			}
			t.Logf("the commit: %v; %d fetches, none told it", err, fetches)
			return
		default:
		}
		offs, err := b.FetchOffsets(group.OffsetFetch{GroupID: "g", MemberEpoch: -1})
		fetches++
		for _, o := range offs {
			if o.Partition == 0 && o.Offset == 20 {
				t.Fatalf("fetch %d told the uncommitted offset 20 (error %v)", fetches, err)
			}
		}
	}
}
