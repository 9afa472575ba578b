package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

// groupTest is a fake cluster with topic t (4 partitions, broker 1
// leading) holding n records per partition, and a producer client.
func groupTest(t *testing.T, perPart int) (*fakeCluster, *Client) {
	t.Helper()
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 1, 1, 1, 1)
	prod := newTestClient(t, fc, RecordPartitioner(ManualPartitioner()))
	for p := range int32(4) {
		produceN(t, prod, "t", p, perPart)
	}
	return fc, prod
}

// newMember joins group g of topic t with fast fetches; callbacks write
// to the fake's event log.
func newMember(t *testing.T, fc *fakeCluster, opts ...GroupOpt) *Client {
	t.Helper()
	gopts := append([]GroupOpt{GroupTopics("t"), GroupResetOffset(AtStart()),
		OnAssigned(func(tps []TopicPartition) { fc.event("assigned %s", tpString(tps)) }),
		OnRevoked(func(tps []TopicPartition) { fc.event("revoked %s", tpString(tps)) }),
		OnLost(func(tps []TopicPartition) { fc.event("lost %s", tpString(tps)) })}, opts...)
	return newTestClient(t, fc, FetchMaxWait(10*time.Millisecond), ConsumerGroup("g", gopts...))
}

func waitAssignment(t *testing.T, c *Client, want string) {
	t.Helper()
	poll.Until(t, 10*time.Second, "assignment "+want, func() error {
		if got := tpString(c.Assignment()); got != want {
			return fmt.Errorf("assignment %s", got)
		}
		return nil
	})
}

// pollRecords polls until n records arrived, keyed by partition.
func pollRecords(t *testing.T, c *Client, n int) map[int32][]int64 {
	t.Helper()
	out := map[int32][]int64{}
	for _, r := range pollN(t, c, n) {
		out[r.Partition] = append(out[r.Partition], r.Offset)
	}
	return out
}

// index is the position of the first event starting with prefix, or -1.
func index(events []string, prefix string) int {
	return slices.IndexFunc(events, func(e string) bool { return strings.HasPrefix(e, prefix) })
}

// A member joins, gets every partition, starts each at its committed
// offset or, with none, at the reset policy, and auto-commits what it
// consumed.
func TestGroupJoinsAndStartsAtCommittedOffsets(t *testing.T) {
	fc, _ := groupTest(t, 5)
	fc.mu.Lock()
	fc.fgroup("g", true).offsets[TopicPartition{"t", 0}] = 3
	fc.mu.Unlock()
	c := newMember(t, fc, AutoCommit(true, 20*time.Millisecond))
	waitAssignment(t, c, "[t/0 t/1 t/2 t/3]")
	got := pollRecords(t, c, 2+5*3)
	if fmt.Sprint(got[0]) != "[3 4]" || len(got[1]) != 5 || got[1][0] != 0 {
		t.Fatalf("records by partition %v: want t/0 from its commit (3), the others from the start", got)
	}
	if id, epoch := c.GroupMember(); id == "" || epoch <= 0 || fmt.Sprint(fc.memberIDs("g")) != "[m1]" {
		t.Errorf("member %q epoch %d; the group's members %v", id, epoch, fc.memberIDs("g"))
	}
	// Poll again: the records of the last Poll are consumed, and the
	// auto-commit commits them.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, _ = c.Poll(ctx)
	cancel()
	poll.Until(t, 5*time.Second, "auto-commit of the consumed offsets", func() error {
		want := map[TopicPartition]int64{{"t", 0}: 5, {"t", 1}: 5, {"t", 2}: 5, {"t", 3}: 5}
		if got := fc.committed("g"); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("committed %v", got)
		}
		return nil
	})
}

// When the coordinator takes a partition away, the member stops fetching
// it at once, and the application's next Poll finishes the revocation —
// commits what was consumed, runs OnRevoked — and the next heartbeat
// reports it released. (This fake gives the new partition at once; the
// real coordinator waits for the release: internal/cluster's
// TestGroupRevokesInsidePoll.)
func TestGroupRevokesInPoll(t *testing.T) {
	fc, prod := groupTest(t, 4)
	fc.setTarget("g", "m1", TopicPartition{"t", 0}, TopicPartition{"t", 1})
	c := newMember(t, fc)
	waitAssignment(t, c, "[t/0 t/1]")
	if got := pollRecords(t, c, 8); len(got[0]) != 4 || len(got[1]) != 4 {
		t.Fatalf("records %v", got)
	}
	fc.setTarget("g", "m1", TopicPartition{"t", 1}, TopicPartition{"t", 2})
	poll.Until(t, 10*time.Second, "the member owning t/2 while t/0 waits for Poll", func() error {
		if index(fc.eventLog(), "heartbeat m1 epoch 2 owned [t/0 t/1 t/2]") < 0 {
			return errors.New(strings.Join(fc.eventLog(), "\n"))
		}
		return nil
	})
	if index(fc.eventLog(), "revoked [t/0]") >= 0 {
		t.Fatalf("t/0 revoked without a Poll: events\n%s", strings.Join(fc.eventLog(), "\n"))
	}
	var seen []*Record
	poll.Until(t, 10*time.Second, "t/0 revoked by Poll and reported released", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		fs, _ := c.Poll(ctx)
		cancel()
		seen = append(seen, fs.Records...)
		if got := tpString(c.Assignment()); got != "[t/1 t/2]" {
			return fmt.Errorf("assignment %s", got)
		}
		if index(fc.eventLog(), "heartbeat m1 epoch 2 owned [t/1 t/2]") < 0 {
			return errors.New(strings.Join(fc.eventLog(), "\n"))
		}
		return nil
	})
	ev := fc.eventLog()
	commit, revoked := index(ev, "commit m1 t/0=4"), index(ev, "revoked [t/0]")
	released := index(ev, "heartbeat m1 epoch 2 owned [t/1 t/2]")
	if commit < 0 || !(commit < revoked && revoked < released) {
		t.Fatalf("want commit of t/0 (everything Poll returned), revoked, then the heartbeat: events\n%s", strings.Join(ev, "\n"))
	}
	// Only t/1 and t/2 records from now on: t/0's new records stay unread.
	produceN(t, prod, "t", 0, 2)
	produceN(t, prod, "t", 2, 1)
	n2 := 0
	for _, r := range seen {
		if r.Partition == 0 {
			t.Fatalf("a record of t/0 after its revocation: %d", r.Offset)
		}
		if r.Partition == 2 {
			n2++
		}
	}
	got := pollRecords(t, c, 5-n2)
	if len(got[0]) != 0 || n2+len(got[2]) != 5 {
		t.Fatalf("after the move, records %v (and %d of t/2 before): want none of t/0 and t/2 from its start", got, n2)
	}
}

// A join whose answer is lost is sent again with the same member id, the
// member's own (KIP-1082): the group has one member, which gets every
// partition. With an id issued by the coordinator, the join sent again
// made a second member, and the first held its partitions, unread, until
// its session timeout.
func TestGroupJoinAnswerLost(t *testing.T) {
	fc, _ := groupTest(t, 1)
	var once sync.Once
	fc.setHook(func(_ *fakeBroker, key protocol.APIKey, m protocol.Message) action {
		var a action
		if req, ok := m.(*protocol.ConsumerGroupHeartbeatRequest); ok && key == protocol.ConsumerGroupHeartbeat && req.MemberEpoch == protocol.MemberEpochJoin {
			once.Do(func() { a.drop = true })
		}
		return a
	})
	c := newMember(t, fc)
	waitAssignment(t, c, "[t/0 t/1 t/2 t/3]")
	ev := fc.eventLog()
	if first := index(ev, "heartbeat m1 epoch 0"); first < 0 || index(ev[first+1:], "heartbeat m1 epoch 0") < 0 {
		t.Fatalf("want the join twice: events\n%s", strings.Join(ev, "\n"))
	}
	if ids := fc.memberIDs("g"); fmt.Sprint(ids) != "[m1]" {
		t.Fatalf("the group's members %v: want one", ids)
	}
}

// FENCED_MEMBER_EPOCH drops every partition without committing (OnLost)
// and the member joins again with epoch 0 and its id.
func TestGroupFencedDropsWithoutCommitAndRejoins(t *testing.T) {
	fc, _ := groupTest(t, 3)
	c := newMember(t, fc, AutoCommit(true, time.Hour))
	waitAssignment(t, c, "[t/0 t/1 t/2 t/3]")
	pollRecords(t, c, 12)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	_, _ = c.Poll(ctx)
	cancel()
	var once sync.Once
	fc.setHook(func(_ *fakeBroker, key protocol.APIKey, _ protocol.Message) action {
		var a action
		if key == protocol.ConsumerGroupHeartbeat {
			once.Do(func() { a.resp = &protocol.ConsumerGroupHeartbeatResponse{ErrorCode: protocol.ErrFencedMemberEpoch} })
		}
		return a
	})
	poll.Until(t, 5*time.Second, "lost and joined again", func() bool {
		ev := fc.eventLog()
		lost := index(ev, "lost [t/0 t/1 t/2 t/3]")
		return lost >= 0 && index(ev[lost:], "heartbeat m1 epoch 0") >= 0 && index(ev[lost:], "assigned [t/0 t/1 t/2 t/3]") >= 0
	})
	if ev := fc.eventLog(); index(ev, "commit") >= 0 {
		t.Fatalf("a commit after the fence: events\n%s", strings.Join(ev, "\n"))
	}
	// Nothing was committed: the member reads from the start again.
	if got := pollRecords(t, c, 12); len(got[0]) != 3 || got[0][0] != 0 {
		t.Fatalf("after rejoining, records %v", got)
	}
}

// A commit that meets STALE_MEMBER_EPOCH is sent again after the next
// heartbeat, and succeeds.
func TestGroupCommitRetriedAfterStaleEpoch(t *testing.T) {
	fc, _ := groupTest(t, 2)
	c := newMember(t, fc, AutoCommit(false, 0))
	waitAssignment(t, c, "[t/0 t/1 t/2 t/3]")
	pollRecords(t, c, 8)
	var once sync.Once
	fc.setHook(func(_ *fakeBroker, key protocol.APIKey, _ protocol.Message) action {
		var a action
		if key == protocol.OffsetCommit {
			once.Do(func() {
				fc.event("commit refused stale")
				a.resp = &protocol.OffsetCommitResponse{ErrorCode: protocol.ErrStaleMemberEpoch}
			})
		}
		return a
	})
	if err := c.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := fc.eventLog()
	stale, commit := index(ev, "commit refused stale"), index(ev, "commit m1 t/0=2")
	if stale < 0 || commit < 0 || index(ev[stale:commit], "heartbeat m1") < 0 {
		t.Fatalf("want the refused commit, a heartbeat, then the commit: events\n%s", strings.Join(ev, "\n"))
	}
	if got := fc.committed("g"); len(got) != 4 || got[TopicPartition{"t", 3}] != 2 {
		t.Fatalf("committed %v", got)
	}
}

// Close commits everything Poll returned and leaves with epoch -1; a
// static member leaves with -2 and gets its partitions back as it returns.
func TestGroupCloseCommitsAndLeaves(t *testing.T) {
	fc, _ := groupTest(t, 2)
	c := newMember(t, fc)
	waitAssignment(t, c, "[t/0 t/1 t/2 t/3]")
	pollRecords(t, c, 8)
	c.Close()
	ev := fc.eventLog()
	commit, leave := index(ev, "commit m1 t/0=2"), index(ev, "heartbeat m1 epoch -1")
	if commit < 0 || leave < commit {
		t.Fatalf("want the commit then the leave: events\n%s", strings.Join(ev, "\n"))
	}
	if ids := fc.memberIDs("g"); len(ids) != 0 {
		t.Fatalf("members after Close: %v", ids)
	}

	s := newMember(t, fc, GroupInstanceID("i1"))
	waitAssignment(t, s, "[t/0 t/1 t/2 t/3]")
	place := fc.memberIDs("g")
	s.Close()
	if ev := fc.eventLog(); len(place) != 1 || index(ev, "heartbeat "+place[0]+" epoch -2") < 0 {
		t.Fatalf("no static leave: events\n%s", strings.Join(ev, "\n"))
	}
	if ids := fc.memberIDs("g"); len(ids) != 1 {
		t.Fatalf("a static member left for now stays: members %v", ids)
	}
	back := newMember(t, fc, GroupInstanceID("i1"))
	waitAssignment(t, back, "[t/0 t/1 t/2 t/3]")
	if got := fc.memberIDs("g"); fmt.Sprint(got) != fmt.Sprint(place) {
		t.Errorf("static member came back as %v, want its place %v", got, place)
	}
}

// A member whose application stops calling Poll for the rebalance
// timeout leaves (its partitions revoked, so they move at once) and joins
// again on the next Poll.
func TestGroupLeavesWhenPollStops(t *testing.T) {
	fc, _ := groupTest(t, 1)
	c := newMember(t, fc, RebalanceTimeout(300*time.Millisecond))
	waitAssignment(t, c, "[t/0 t/1 t/2 t/3]")
	poll.Until(t, 5*time.Second, "the member leaving", func() bool {
		ev := fc.eventLog()
		return index(ev, "revoked [t/0 t/1 t/2 t/3]") >= 0 && index(ev, "heartbeat m1 epoch -1") >= 0
	})
	if c.Assignment() != nil && len(c.Assignment()) != 0 {
		t.Fatalf("still owns %v", c.Assignment())
	}
	got := pollRecords(t, c, 4) // joins again
	if len(got) != 4 {
		t.Fatalf("records %v", got)
	}
	if ids := fc.memberIDs("g"); fmt.Sprint(ids) != "[m2]" {
		t.Errorf("the group's members after the rejoin: %v, want a new one (m2)", ids)
	}
}

// NOT_COORDINATOR makes the member find the coordinator again and go on
// there.
func TestGroupFollowsTheCoordinator(t *testing.T) {
	fc, _ := groupTest(t, 1)
	c := newMember(t, fc)
	waitAssignment(t, c, "[t/0 t/1 t/2 t/3]")
	before := fc.count(protocol.FindCoordinator)
	fc.mu.Lock()
	fc.coord = 2
	fc.mu.Unlock()
	poll.Until(t, 5*time.Second, "FindCoordinator asked again", func() bool { return fc.count(protocol.FindCoordinator) > before })
	pollRecords(t, c, 4)
	if err := c.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fc.committed("g"); len(got) != 4 {
		t.Fatalf("committed %v", got)
	}
}

// DescribeGroup, whose NOT_COORDINATOR comes per group rather than at the
// top, finds the moved coordinator again too, rather than asking the old
// one until it gives up.
func TestDescribeGroupFollowsTheCoordinator(t *testing.T) {
	fc, admin := groupTest(t, 1)
	c := newMember(t, fc)
	waitAssignment(t, c, "[t/0 t/1 t/2 t/3]")
	if d, err := admin.DescribeGroup(context.Background(), "g"); err != nil || d.Coordinator != 1 {
		t.Fatalf("describe: coordinator %d, %v", d.Coordinator, err)
	}
	fc.mu.Lock()
	fc.coord = 2
	fc.mu.Unlock()
	d, err := admin.DescribeGroup(context.Background(), "g")
	if err != nil || d.Coordinator != 2 || len(d.Members) != 1 {
		t.Fatalf("describe after the coordinator moved: coordinator %d, %d members, %v", d.Coordinator, len(d.Members), err)
	}
}

// A refusal retrying cannot cure comes out of Poll as a *GroupError; a
// regular expression that does not compile is refused by New.
func TestGroupFatalErrors(t *testing.T) {
	fc, _ := groupTest(t, 1)
	fc.setHook(func(_ *fakeBroker, key protocol.APIKey, _ protocol.Message) action {
		if key == protocol.ConsumerGroupHeartbeat {
			return action{resp: &protocol.ConsumerGroupHeartbeatResponse{ErrorCode: protocol.ErrUnsupportedAssignor, ErrorMessage: "no such assignor"}}
		}
		return action{}
	})
	c := newMember(t, fc, GroupAssignor("nope"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Poll(ctx)
	var ge *GroupError
	if !errors.As(err, &ge) || !errors.Is(err, protocol.ErrUnsupportedAssignor) || !strings.Contains(err.Error(), "no such assignor") {
		t.Fatalf("Poll: %v, want a *GroupError with UNSUPPORTED_ASSIGNOR and the server's message", err)
	}

	_, err = New(context.Background(), SeedBrokers(fc.addrs()...), ConsumerGroup("g", GroupTopicRegex("t(")))
	if err == nil || !strings.Contains(err.Error(), "GroupTopicRegex") {
		t.Fatalf("New with a bad regex: %v", err)
	}
	_, err = New(context.Background(), SeedBrokers(fc.addrs()...), ConsumerGroup("g"))
	if err == nil || !strings.Contains(err.Error(), "GroupTopics") {
		t.Fatalf("New with no subscription: %v", err)
	}
}

// DescribeGroup shows members and, per partition, committed offset, end
// offset and lag (also with no commit); ResetOffsets previews, applies,
// and refuses while the group has members; DeleteGroups refuses a group
// with members.
func TestGroupAdmin(t *testing.T) {
	fc, prod := groupTest(t, 5)
	c := newMember(t, fc, AutoCommit(false, 0))
	waitAssignment(t, c, "[t/0 t/1 t/2 t/3]")
	if err := c.CommitOffsets(context.Background(), map[TopicPartition]int64{{"t", 0}: 2}); err != nil {
		t.Fatal(err)
	}
	d, err := prod.DescribeGroup(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Members) != 1 || len(d.Members[0].Assignment) != 4 || len(d.Offsets) != 4 {
		t.Fatalf("description %+v", d)
	}
	if o := d.Offsets[0]; o.Committed != 2 || o.End != 5 || o.Lag != 3 || o.Member != "m1" {
		t.Errorf("t/0: %+v, want committed 2, end 5, lag 3", o)
	}
	if o := d.Offsets[1]; o.Committed != -1 || o.End != 5 || o.Lag != 5 {
		t.Errorf("t/1 (no commit): %+v, want lag 5", o)
	}
	ls, err := prod.ListGroups(context.Background())
	if err != nil || len(ls) != 1 || ls[0].Group != "g" {
		t.Fatalf("list groups: %v %v", ls, err)
	}
	if _, err := prod.ResetOffsets(context.Background(), "g", "t", ResetToEarliest(), true); !errors.Is(err, ErrGroupNotEmpty) {
		t.Fatalf("reset with a member: %v", err)
	}
	if err := prod.DeleteGroups(context.Background(), "g"); !errors.Is(err, protocol.ErrNonEmptyGroup) {
		t.Fatalf("delete with a member: %v", err)
	}
	c.Close()

	plan, err := prod.ResetOffsets(context.Background(), "g", "t", ResetShiftBy(-1), false)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(plan[0]) != "{t 0 2 1}" || fmt.Sprint(plan[1]) != "{t 1 -1 0}" {
		t.Fatalf("plan %v", plan)
	}
	if got := fc.committed("g"); got[TopicPartition{"t", 0}] != 2 {
		t.Fatalf("a preview committed: %v", got)
	}
	if _, err := prod.ResetOffsets(context.Background(), "g", "t", ResetToOffset(4), true); err != nil {
		t.Fatal(err)
	}
	offs, err := prod.CommittedOffsets(context.Background(), "g")
	if err != nil || len(offs) != 4 || offs[TopicPartition{"t", 3}] != 4 {
		t.Fatalf("committed after reset %v %v", offs, err)
	}
	if err := prod.DeleteGroups(context.Background(), "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := prod.DescribeGroup(context.Background(), "g"); !errors.Is(err, protocol.ErrGroupIDNotFound) {
		t.Fatalf("describe a deleted group: %v", err)
	}
}

// OnAssigned returns before the partitions' records come: a Poll while
// it runs gets none of them (Kafka's order: an application sets up a
// partition's state there before it sees its records).
func TestGroupAssignedBeforeRecords(t *testing.T) {
	fc, _ := groupTest(t, 3)
	fc.setTarget("g", "m1", TopicPartition{"t", 0})
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c := newMember(t, fc, OnAssigned(func([]TopicPartition) {
		once.Do(func() { close(entered) })
		<-release
	}))
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("OnAssigned never ran")
	}
	// The fetch of t/0 takes a few ms once started (FetchMaxWait 10ms);
	// 300ms of Poll would have seen its records.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	f, err := c.Poll(ctx)
	cancel()
	close(release)
	if len(f.Records) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll while OnAssigned ran: %d records, err %v; want none", len(f.Records), err)
	}
	if got := pollRecords(t, c, 3); len(got[0]) != 3 {
		t.Fatalf("records after OnAssigned returned: %v", got)
	}
}

// A Commit inside OnRevoked (run by Poll) that meets STALE_MEMBER_EPOCH
// waits for the next heartbeat; when that heartbeat fences the member,
// the Commit ends at once with ErrNotMember. The member dropped its
// partitions (which waits for the running OnRevoked) before it stopped
// being a member, and the Commit waited for its whole context.
func TestGroupCommitInOnRevokedEndsWhenFenced(t *testing.T) {
	fc, _ := groupTest(t, 2)
	fc.setTarget("g", "m1", TopicPartition{"t", 0}, TopicPartition{"t", 1})
	var (
		c       *Client
		mu      sync.Mutex
		elapsed time.Duration
		cerr    error
	)
	c = newMember(t, fc, AutoCommit(false, 0), OnRevoked(func(tps []TopicPartition) {
		if len(tps) != 1 || tps[0] != (TopicPartition{"t", 0}) {
			return // Close's
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		err := c.Commit(ctx)
		mu.Lock()
		elapsed, cerr = time.Since(start), err
		mu.Unlock()
	}))
	waitAssignment(t, c, "[t/0 t/1]")
	pollRecords(t, c, 4)
	var stale, fenced atomic.Bool
	fc.setHook(func(_ *fakeBroker, key protocol.APIKey, _ protocol.Message) action {
		var a action
		switch {
		case key == protocol.OffsetCommit:
			stale.Store(true)
			a.resp = &protocol.OffsetCommitResponse{ErrorCode: protocol.ErrStaleMemberEpoch}
		case key == protocol.ConsumerGroupHeartbeat && stale.Load() && fenced.CompareAndSwap(false, true):
			a.resp = &protocol.ConsumerGroupHeartbeatResponse{ErrorCode: protocol.ErrFencedMemberEpoch}
		}
		return a
	})
	fc.setTarget("g", "m1", TopicPartition{"t", 1})
	poll.Until(t, 30*time.Second, "OnRevoked's commit done", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, _ = c.Poll(ctx)
		cancel()
		mu.Lock()
		defer mu.Unlock()
		if elapsed == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if !errors.Is(cerr, ErrNotMember) || elapsed > 10*time.Second {
		t.Fatalf("Commit in OnRevoked after a fence: %v after %v; want ErrNotMember at once", cerr, elapsed)
	}
}
