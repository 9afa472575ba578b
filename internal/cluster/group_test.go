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

// beat sends m's heartbeat to the group's coordinator (found again when
// the one asked is not it) and applies the answer.
func (m *groupMember) beat(t *testing.T, c *testcluster.Cluster, g string, topics ...string) {
	t.Helper()
	req := &protocol.ConsumerGroupHeartbeatRequest{GroupID: g, MemberID: m.id, MemberEpoch: m.epoch,
		RebalanceTimeoutMs: 30000, SubscribedTopics: topics, OwnedPartitions: m.owned}
	var resp protocol.ConsumerGroupHeartbeatResponse
	poll.Until(t, 30*time.Second, "a heartbeat answered by the coordinator", func() error {
		_, addr := coordinatorOf(t, c, g)
		if err := roundTrip(addr, req, &resp); err != nil {
			return err
		}
		if resp.ErrorCode.Retriable() {
			return fmt.Errorf("%v: %s", resp.ErrorCode, resp.ErrorMessage)
		}
		return nil
	})
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

// The coordinator's broker is killed: the group goes on at the new
// coordinator with the same members and epochs, and every committed
// offset is there.
func TestGroupSurvivesCoordinatorKill(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.OffsetsTopicPartitions = 3
		cfg.Group = group.Config{SessionTimeout: 20 * time.Second, HeartbeatInterval: time.Second}
	}})
	cl := c.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "orders", Partitions: 12, ReplicationFactor: 3})
	coord, _ := coordinatorOf(t, c, "g")
	testcluster.WaitFullISR(t, cl, broker.OffsetsTopic, 20*time.Second)

	members := []*groupMember{{}, {}, {}}
	poll.Until(t, 30*time.Second, "3 members with 4 partitions each", func() bool {
		ok := true
		for _, m := range members {
			m.beat(t, c, "g", "orders")
			ok = ok && assignedCount(m.owned) == 4
		}
		return ok
	})
	// Each member commits its partitions: offset 100 + partition.
	want := map[int32]int64{}
	_, addr := coordinatorOf(t, c, "g")
	for _, m := range members {
		req := &protocol.OffsetCommitRequest{GroupID: "g", MemberID: m.id, MemberEpoch: m.epoch}
		for _, tp := range m.owned {
			ct := protocol.OffsetCommitTopic{Name: tp.Topic}
			for _, p := range tp.Partitions {
				ct.Partitions = append(ct.Partitions, protocol.OffsetCommitPartition{Partition: p, Offset: 100 + int64(p), LeaderEpoch: -1})
				want[p] = 100 + int64(p)
			}
			req.Topics = append(req.Topics, ct)
		}
		var resp protocol.OffsetCommitResponse
		if err := roundTrip(addr, req, &resp); err != nil || resp.ErrorCode != protocol.NoError {
			t.Fatalf("commit: %v %+v", err, resp)
		}
		for _, tr := range resp.Topics {
			for _, pr := range tr.Partitions {
				if pr.ErrorCode != protocol.NoError {
					t.Fatalf("commit of partition %d: %v", pr.Partition, pr.ErrorCode)
				}
			}
		}
	}

	c.Kill(coord)
	start := time.Now()
	newCoord, newAddr := coordinatorOf(t, c, "g")
	for newCoord == coord {
		newCoord, newAddr = coordinatorOf(t, c, "g")
	}
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
	var off protocol.OffsetFetchResponse
	poll.Until(t, 20*time.Second, "the offsets from the new coordinator", func() error {
		if err := roundTrip(newAddr, &protocol.OffsetFetchRequest{GroupID: "g", MemberEpoch: -1, AllTopics: true}, &off); err != nil {
			return err
		}
		if off.ErrorCode != protocol.NoError {
			return fmt.Errorf("%v", off.ErrorCode)
		}
		return nil
	})
	got := map[int32]int64{}
	for _, tr := range off.Topics {
		for _, p := range tr.Partitions {
			got[p.Partition] = p.Offset
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("offsets after the failover %v, want %v", got, want)
	}
}
