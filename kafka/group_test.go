package kafka

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/poll"
)

// groupConsumer is one kgo group member consuming into seen until
// stopped; it commits what it polled (kgo's autocommit, which also
// commits on revocation and before leaving).
type groupConsumer struct {
	cl   *kgo.Client
	stop context.CancelFunc
	done chan struct{}
}

func startGroupConsumer(t *testing.T, addrs []string, groupID, topic string, seen *sync.Map, opts ...kgo.Opt) *groupConsumer {
	t.Helper()
	return startGroupConsumerErr(t, addrs, groupID, topic, seen, func(topic string, p int32, err error) {
		if errors.Is(err, kerr.RebalanceInProgress) {
			// A SyncGroup overtaken by the next rebalance (a member
			// joined meanwhile), as Kafka answers it; kgo joins again.
			t.Logf("consume %s[%d]: %v", topic, p, err)
			return
		}
		t.Errorf("consume %s[%d]: %v", topic, p, err)
	}, opts...)
}

// startGroupConsumerErr is startGroupConsumer with the handling of
// consume errors given.
func startGroupConsumerErr(t *testing.T, addrs []string, groupID, topic string, seen *sync.Map, onErr func(string, int32, error), opts ...kgo.Opt) *groupConsumer {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumerGroup(groupID), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.AutoCommitInterval(200 * time.Millisecond), kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gc := &groupConsumer{cl: cl, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(gc.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachError(func(topic string, p int32, err error) {
				if !errors.Is(err, context.Canceled) {
					onErr(topic, p, err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) { seen.Store(string(r.Value), r.Partition) })
		}
	}()
	t.Cleanup(gc.close)
	return gc
}

// close stops polling and leaves the group (committing first).
func (gc *groupConsumer) close() {
	gc.stop()
	<-gc.done
	gc.cl.Close()
}

// produceSeq produces the records from to to (values their numbers, 50
// keys) with pr, to its default topic, and fails the test on an error.
func produceSeq(t *testing.T, ctx context.Context, pr *kgo.Client, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%50)), Value: []byte(strconv.Itoa(i))})
	}
	if err := pr.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func count(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}

// TestFranzConsumerGroup runs kgo consumer groups (classic protocol,
// client-side assignors) over the Kafka listener: a member consumes, a
// second joins (rebalance), the first leaves (rebalance), and every
// record is consumed and committed; the commits are the core's, visible
// where `sluice group describe` reads them, and a commit made through the
// core is visible to kadm.
func TestFranzConsumerGroup(t *testing.T) {
	for _, bal := range []struct {
		name    string
		opts    []kgo.Opt
		kip848  bool
		typ     string
		emptyAs string
	}{
		{"cooperative-sticky", nil, false, group.TypeClassic, group.ClassicEmpty}, // kgo's default
		{"range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}, false, group.TypeClassic, group.ClassicEmpty},
		// KIP-848: ConsumerGroupHeartbeat, the server's uniform assignor.
		{"kip-848", []kgo.Opt{kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer()}, true, group.TypeConsumer, group.StateEmpty},
	} {
		t.Run(bal.name, func(t *testing.T) {
			ctx := testContext(t)
			b, addr := single(t, nil)
			adm := kadm.NewClient(newClient(t, []string{addr}))
			topic, groupID := "grp-"+bal.name, "g-"+bal.name
			createTopic(t, ctx, adm, topic, 4, 1, nil)
			const n = 2000
			pr := newClient(t, []string{addr}, kgo.DefaultProduceTopic(topic))
			produce := func(from, to int) { produceSeq(t, ctx, pr, from, to) }
			produce(0, n/2)
			var seen sync.Map
			a := startGroupConsumer(t, []string{addr}, groupID, topic, &seen, bal.opts...)
			poll.Until(t, 30*time.Second, "the first member consumes the first half", func() bool { return count(&seen) == n/2 })
			bm := startGroupConsumer(t, []string{addr}, groupID, topic, &seen, bal.opts...)
			poll.Until(t, 30*time.Second, "two members, each with partitions", func() bool {
				groups, err := adm.DescribeGroups(ctx, groupID)
				if err != nil {
					return false
				}
				g := groups[groupID]
				if g.State != "Stable" || len(g.Members) != 2 {
					return false
				}
				if bal.kip848 { // the classic API shows no KIP-848 assignments: ask the core
					d, err := b.DescribeGroup(groupID)
					if err != nil || len(d.Members) != 2 {
						return false
					}
					for _, m := range d.Members {
						if len(m.Assignment) != 1 || len(m.Assignment[0].Partitions) != 2 {
							return false
						}
					}
					return true
				}
				for _, m := range g.Members {
					if ca, ok := m.Assigned.AsConsumer(); !ok || len(ca.Topics) == 0 || len(ca.Topics[0].Partitions) != 2 {
						return false
					}
					if m.ClientHost != "127.0.0.1" || m.ClientID != "kgo" {
						t.Fatalf("member %s: client %q at %q", m.MemberID, m.ClientID, m.ClientHost)
					}
				}
				return true
			})
			produce(n/2, 3*n/4)
			poll.Until(t, 30*time.Second, "three quarters consumed by two members", func() bool { return count(&seen) == 3*n/4 })
			a.close()
			produce(3*n/4, n)
			poll.Until(t, 30*time.Second, "every record consumed after the first member left", func() bool { return count(&seen) == n })
			for i := range n {
				if _, ok := seen.Load(strconv.Itoa(i)); !ok {
					t.Fatalf("record %d never consumed", i)
				}
			}
			bm.close()

			// Committed: every partition at its end, through kadm and in
			// the core (what `sluice group describe` shows).
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			offs, err := adm.FetchOffsets(ctx, groupID)
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			ends.Each(func(e kadm.ListedOffset) {
				o, ok := offs.Lookup(topic, e.Partition)
				if !ok || o.At != e.Offset {
					t.Errorf("partition %d: committed %+v, end %d", e.Partition, o, e.Offset)
				}
				sum += o.At
			})
			if sum != n {
				t.Fatalf("commits sum to %d, want %d", sum, n)
			}
			listed, err := adm.ListGroups(ctx)
			if l := listed[groupID]; err != nil || l.GroupType != bal.typ || l.ProtocolType != "consumer" || l.State != "Empty" || l.Coordinator != 1 {
				t.Fatalf("kadm ListGroups: %+v %v", listed, err)
			}
			d, err := b.DescribeGroup(groupID)
			if err != nil {
				t.Fatal(err)
			}
			if d.Type != bal.typ || d.State != bal.emptyAs || len(d.Offsets) != 4 {
				t.Fatalf("core describe: %+v", d)
			}
			for _, o := range d.Offsets {
				if e, _ := ends.Lookup(topic, o.Partition); o.Offset != e.Offset {
					t.Fatalf("core offset of partition %d: %d, end %d", o.Partition, o.Offset, e.Offset)
				}
			}
			// What `sluice group describe` shows (the sluice client, over
			// the sluice protocol): the group's type and commits, no lag.
			scl, err := client.New(ctx, client.SeedBrokers(b.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			defer scl.Close()
			sd, err := scl.DescribeGroup(ctx, groupID)
			if err != nil || sd.Type != bal.typ || len(sd.Offsets) != 4 {
				t.Fatalf("sluice describe: %+v %v", sd, err)
			}
			for _, o := range sd.Offsets {
				if o.Lag != 0 || o.Committed != o.End {
					t.Fatalf("sluice describe, partition %d: committed %d, end %d, lag %d", o.Partition, o.Committed, o.End, o.Lag)
				}
			}

			// A commit through the core (as the sluice protocol makes it)
			// is what Kafka clients read, and the empty group is deleted.
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := b.CommitOffsets(cctx, group.OffsetCommit{GroupID: groupID, MemberEpoch: -1,
				Topics: []group.CommitTopic{{Topic: topic, Partitions: []group.CommitPartition{{Partition: 0, Offset: 7, LeaderEpoch: -1}}}}}); err != nil {
				t.Fatal(err)
			}
			offs, err = adm.FetchOffsets(ctx, groupID)
			if o, _ := offs.Lookup(topic, 0); err != nil || o.At != 7 {
				t.Fatalf("offset committed through the core, read by kadm: %+v %v", o, err)
			}
			del, err := adm.DeleteGroups(ctx, groupID)
			if err != nil || del[groupID].Err != nil {
				t.Fatalf("delete group: %v %+v", err, del)
			}
			offs, err = adm.FetchOffsets(ctx, groupID)
			if o, ok := offs.Lookup(topic, 0); err != nil || (ok && o.At != -1) {
				t.Fatalf("offsets after delete: %+v %v", o, err)
			}
		})
	}
}

// TestClassicGroupErrors drives the classic protocol with raw requests:
// MEMBER_ID_REQUIRED, a join that completes at once for a single member,
// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS once a
// second member joins, and a group id that is a consumer (KIP-848) group
// refusing a classic join with INCONSISTENT_GROUP_PROTOCOL.
func TestClassicGroupErrors(t *testing.T) {
	_, addr := single(t, nil)
	classicGroupChecks(t, addr, "")
}

// TestClassicGroupErrorsKafkaRef runs TestClassicGroupErrors' checks
// against Apache Kafka (scripts/kafka-ref.sh; KAFKA_REF_ADDR names its
// bootstrap address), so a difference from Kafka's answers shows as a
// failure here.
func TestClassicGroupErrorsKafkaRef(t *testing.T) {
	addr := os.Getenv("KAFKA_REF_ADDR")
	if addr == "" {
		t.Skip("KAFKA_REF_ADDR not set (start Apache Kafka with make kafka-ref)")
	}
	classicGroupChecks(t, addr, strconv.FormatInt(time.Now().UnixNano(), 36))
}

// classicGroupChecks drives the classic protocol of the Kafka endpoint at
// addr with raw requests; suffix makes its topic and group names new.
func classicGroupChecks(t *testing.T, addr, suffix string) {
	ctx := testContext(t)
	// Both brokers are asked at the versions sluice serves.
	cl := newClient(t, []string{addr}, kgo.MaxVersions(kversion.FromApiVersionsResponse(apiVersionsResponse(3, 0))))
	adm := kadm.NewClient(cl)
	topic, groupID, consumerGroup := "ce"+suffix, "ce-g"+suffix, "ce-new"+suffix
	createTopic(t, ctx, adm, topic, 2, 1, nil)
	req := func(r kmsg.Request) kmsg.Response {
		t.Helper()
		resp, err := cl.Request(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// kgo sends each request at the highest version both sides have
	// (JoinGroup v9 here: MEMBER_ID_REQUIRED applies).
	// Each member has its own client, as members do: Kafka reads a
	// connection's next request only once it answered the last, so a
	// join waiting for the rebalance holds back whatever follows it.
	cl2 := newClient(t, []string{addr}, kgo.MaxVersions(kversion.FromApiVersionsResponse(apiVersionsResponse(3, 0))))
	joinRaw := func(member string, metadata byte) (*kmsg.JoinGroupResponse, error) {
		j := kmsg.NewPtrJoinGroupRequest()
		j.Group, j.MemberID, j.ProtocolType, j.SessionTimeoutMillis, j.RebalanceTimeoutMillis = groupID, member, "consumer", 10000, 3000
		j.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, metadata}}}
		c := cl
		if metadata != 0 {
			c = cl2
		}
		resp, err := c.Request(ctx, j)
		if err != nil {
			return nil, err
		}
		return resp.(*kmsg.JoinGroupResponse), nil
	}
	join := func(member string) *kmsg.JoinGroupResponse {
		t.Helper()
		r, err := joinRaw(member, 0)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := join("")
	if err := kerr.ErrorForCode(r.ErrorCode); !errors.Is(err, kerr.MemberIDRequired) || r.MemberID == "" {
		t.Fatalf("first join: %v, member %q; want MEMBER_ID_REQUIRED with an id", err, r.MemberID)
	}
	id := r.MemberID
	r = join(id)
	if r.ErrorCode != 0 || r.Generation != 1 || r.LeaderID != id || len(r.Members) != 1 || *r.Protocol != "range" {
		t.Fatalf("join with the id: %+v", r)
	}
	hb := func(member string, gen int32) error {
		h := kmsg.NewPtrHeartbeatRequest()
		h.Group, h.MemberID, h.Generation = groupID, member, gen
		return kerr.ErrorForCode(req(h).(*kmsg.HeartbeatResponse).ErrorCode)
	}
	protoType, proto := "consumer", "range"
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = groupID, id, 1
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: id, MemberAssignment: []byte("a1")}}
	// SyncGroup v5 (kgo's) names the protocol: without it Kafka answers
	// INCONSISTENT_GROUP_PROTOCOL, with another name too.
	if s := req(sync).(*kmsg.SyncGroupResponse); !errors.Is(kerr.ErrorForCode(s.ErrorCode), kerr.InconsistentGroupProtocol) {
		t.Fatalf("sync v5 without the protocol: %+v", s)
	}
	other := "roundrobin"
	sync.ProtocolType, sync.Protocol = &protoType, &other
	if s := req(sync).(*kmsg.SyncGroupResponse); !errors.Is(kerr.ErrorForCode(s.ErrorCode), kerr.InconsistentGroupProtocol) {
		t.Fatalf("sync v5 with another protocol: %+v", s)
	}
	sync.Protocol = &proto
	if s := req(sync).(*kmsg.SyncGroupResponse); s.ErrorCode != 0 || string(s.MemberAssignment) != "a1" {
		t.Fatalf("leader sync: %+v", s)
	}
	if err := hb(id, 1); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if err := hb(id, 7); !errors.Is(err, kerr.IllegalGeneration) {
		t.Fatalf("heartbeat at generation 7: %v", err)
	}
	if err := hb("nobody", 1); !errors.Is(err, kerr.UnknownMemberID) {
		t.Fatalf("heartbeat of an unknown member: %v", err)
	}
	// A commit from the member at its generation is taken; one at
	// another generation, or without a member, is not.
	commit := func(member string, gen int32) error {
		c := kmsg.NewPtrOffsetCommitRequest()
		c.SetVersion(7)
		c.Group, c.MemberID, c.Generation = groupID, member, gen
		c.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 3, LeaderEpoch: -1}}}}
		return kerr.ErrorForCode(req(c).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode)
	}
	if err := commit(id, 1); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := commit(id, 2); !errors.Is(err, kerr.IllegalGeneration) {
		t.Fatalf("commit at generation 2: %v", err)
	}
	if err := commit("", -1); !errors.Is(err, kerr.UnknownMemberID) {
		t.Fatalf("commit without a member to a group with members: %v", err)
	}
	// A second member's join starts a rebalance: the first member's
	// heartbeat says so; the join completes when the first rejoins.
	second := make(chan *kmsg.JoinGroupResponse, 1)
	go func() {
		r, err := joinRaw("", 1)
		if err == nil {
			r, err = joinRaw(r.MemberID, 1)
		}
		if err != nil {
			t.Error(err)
		}
		second <- r
	}()
	poll.Until(t, 10*time.Second, "the first member told of the rebalance", func() bool {
		return errors.Is(hb(id, 1), kerr.RebalanceInProgress)
	})
	r = join(id)
	r2 := <-second
	if r.ErrorCode != 0 || r2 == nil || r2.ErrorCode != 0 || r.Generation != 2 || r2.Generation != 2 || r.LeaderID != id || len(r.Members) != 2 || len(r2.Members) != 0 {
		t.Fatalf("rejoin: %+v / %+v", r, r2)
	}
	for _, m := range r.Members {
		if want := byte(0); m.MemberID != id && string(m.ProtocolMetadata) != string([]byte{0, 1}) || m.MemberID == id && string(m.ProtocolMetadata) != string([]byte{0, want}) {
			t.Fatalf("member %s metadata %v", m.MemberID, m.ProtocolMetadata)
		}
	}
	// The follower's sync waits for the leader's.
	followerSync := make(chan *kmsg.SyncGroupResponse, 1)
	go func() {
		s := kmsg.NewPtrSyncGroupRequest()
		s.Group, s.MemberID, s.Generation, s.ProtocolType, s.Protocol = groupID, r2.MemberID, 2, &protoType, &proto
		resp, err := cl2.Request(ctx, s)
		if err != nil {
			t.Error(err)
			followerSync <- nil
			return
		}
		followerSync <- resp.(*kmsg.SyncGroupResponse)
	}()
	select {
	case s := <-followerSync:
		t.Fatalf("the follower's sync answered before the leader's: %+v", s)
	case <-time.After(200 * time.Millisecond):
	}
	sync.Generation = 2
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: id, MemberAssignment: []byte("a2")}, {MemberID: r2.MemberID, MemberAssignment: []byte("b2")}}
	if s := req(sync).(*kmsg.SyncGroupResponse); s.ErrorCode != 0 || string(s.MemberAssignment) != "a2" {
		t.Fatalf("leader sync: %+v", s)
	}
	if s := <-followerSync; s == nil || s.ErrorCode != 0 || string(s.MemberAssignment) != "b2" {
		t.Fatalf("follower sync: %+v", s)
	}

	// A consumer group (KIP-848) refuses classic joins.
	cgh := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	cgh.Group, cgh.MemberID, cgh.SubscribedTopicNames, cgh.RebalanceTimeoutMillis = consumerGroup, "m-"+suffix, []string{topic}, 30000
	cgh.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	if r := req(cgh).(*kmsg.ConsumerGroupHeartbeatResponse); r.ErrorCode != 0 || r.MemberEpoch <= 0 {
		t.Fatalf("KIP-848 join: %v epoch %d", kerr.ErrorForCode(r.ErrorCode), r.MemberEpoch)
	}
	j := kmsg.NewPtrJoinGroupRequest()
	j.Group, j.ProtocolType, j.SessionTimeoutMillis = consumerGroup, "consumer", 10000
	j.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	err := kerr.ErrorForCode(req(j).(*kmsg.JoinGroupResponse).ErrorCode)
	if suffix != "" && errors.Is(err, kerr.MemberIDRequired) {
		// Kafka 4's default group.consumer.migration.policy lets classic
		// members into a consumer group; sluice keeps a group id to one
		// kind (docs/groups.md).
		return
	}
	if !errors.Is(err, kerr.InconsistentGroupProtocol) {
		t.Fatalf("classic join of a consumer group: %v", err)
	}
}

// TestFindCoordinator: v4 answers a batch of group ids, each with the
// coordinator's Kafka address; v2 one; a transactional id and an unknown
// key type are refused.
func TestFindCoordinator(t *testing.T) {
	_, addr := single(t, nil)
	host, port, _ := net.SplitHostPort(addr)
	c := dialRaw(t, addr)
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.SetVersion(4)
	req.CoordinatorKeys = []string{"g1", "g2"}
	resp := kmsg.NewPtrFindCoordinatorResponse()
	resp.SetVersion(4)
	if err := resp.ReadFrom(c.request(req, 1)); err != nil {
		t.Fatal(err)
	}
	if len(resp.Coordinators) != 2 {
		t.Fatalf("v4: %+v", resp)
	}
	for i, co := range resp.Coordinators {
		if co.Key != req.CoordinatorKeys[i] || co.ErrorCode != 0 || co.NodeID != 1 || co.Host != host || strconv.Itoa(int(co.Port)) != port {
			t.Fatalf("v4 key %d: %+v, want node 1 at %s", i, co, addr)
		}
	}
	for _, tc := range []struct {
		typ  int8
		want int16
	}{{0, 0}, {1, kerr.InvalidRequest.Code}, {5, kerr.InvalidRequest.Code}} {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.SetVersion(2)
		req.CoordinatorKey, req.CoordinatorType = "k", tc.typ
		resp := kmsg.NewPtrFindCoordinatorResponse()
		resp.SetVersion(2)
		if err := resp.ReadFrom(c.request(req, 2)); err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != tc.want || (tc.want == 0 && resp.NodeID != 1) {
			t.Fatalf("v2 key type %d: %+v, want error %d", tc.typ, resp, tc.want)
		}
	}
}

// TestFranzStaticMember: kgo members with instance ids (static
// membership, KIP-345); a follower that restarts takes its place back
// without a rebalance (same generation, same partitions), and the group
// goes on consuming every record.
func TestFranzStaticMember(t *testing.T) {
	ctx := testContext(t)
	b, addr := single(t, nil)
	adm := kadm.NewClient(newClient(t, []string{addr}))
	createTopic(t, ctx, adm, "st", 4, 1, nil)
	pr := newClient(t, []string{addr}, kgo.DefaultProduceTopic("st"))
	produce := func(from, to int) { produceSeq(t, ctx, pr, from, to) }
	const n = 800
	produce(0, n/2)
	var seen sync.Map
	static := func(inst string) *groupConsumer {
		return startGroupConsumer(t, []string{addr}, "st-g", "st", &seen, kgo.InstanceID(inst), kgo.Balancers(kgo.RangeBalancer()))
	}
	a := static("a")
	poll.Until(t, 30*time.Second, "the leader consumes", func() bool { return count(&seen) == n/2 })
	bm := static("b")
	var before group.ClassicDescription
	poll.Until(t, 30*time.Second, "two static members, stable", func() bool {
		d, _, err := b.DescribeClassicGroup("st-g")
		before = d
		return err == nil && d.State == group.ClassicStable && len(d.Members) == 2 && len(d.Members[0].Assignment) > 0 && len(d.Members[1].Assignment) > 0
	})
	bm.close() // a static member does not leave
	b2 := static("b")
	var after group.ClassicDescription
	poll.Until(t, 30*time.Second, "the restarted instance in b's place", func() bool {
		d, _, err := b.DescribeClassicGroup("st-g")
		after = d
		for _, m := range d.Members {
			if m.InstanceID == "b" && !slices.ContainsFunc(before.Members, func(o group.ClassicMemberDescription) bool { return o.MemberID == m.MemberID }) {
				return err == nil
			}
		}
		return false
	})
	if after.Generation != before.Generation || after.State != group.ClassicStable {
		t.Fatalf("a static follower's restart rebalanced: generation %d → %d, state %s", before.Generation, after.Generation, after.State)
	}
	for _, m := range after.Members {
		if !strings.HasPrefix(m.MemberID, m.InstanceID+"-") {
			t.Fatalf("static member id %q does not start with its instance id %q", m.MemberID, m.InstanceID)
		}
	}
	// The leader's restart keeps the generation too (KIP-814: kgo joins
	// with v9 and is told to skip the assignment).
	if after.Leader == "" || !strings.HasPrefix(after.Leader, "a-") {
		t.Fatalf("leader %q, want instance a's member", after.Leader)
	}
	a.close()
	a2 := static("a")
	poll.Until(t, 30*time.Second, "the restarted leader in a's place", func() bool {
		d, _, err := b.DescribeClassicGroup("st-g")
		after = d
		return err == nil && d.Leader != before.Leader && strings.HasPrefix(d.Leader, "a-")
	})
	if after.Generation != before.Generation || after.State != group.ClassicStable {
		t.Fatalf("a static leader's restart rebalanced: generation %d → %d, state %s", before.Generation, after.Generation, after.State)
	}
	produce(n/2, n)
	poll.Until(t, 30*time.Second, "every record consumed", func() bool { return count(&seen) == n })
	if d, _, _ := b.DescribeClassicGroup("st-g"); d.Generation != before.Generation {
		t.Fatalf("generation %d after consuming, want %d", d.Generation, before.Generation)
	}
	a2.close()
	b2.close()
}

// TestFailedGroupResponses: the UNSUPPORTED_VERSION answers of the
// per-group requests name each group with the code.
func TestFailedGroupResponses(t *testing.T) {
	for _, req := range []kmsg.Request{
		&kmsg.DescribeGroupsRequest{Groups: []string{"a", "b"}},
		&kmsg.DeleteGroupsRequest{Groups: []string{"a", "b"}},
		&kmsg.ConsumerGroupDescribeRequest{Groups: []string{"a", "b"}},
	} {
		resp := failed(req, kerrUnsupportedVersion)
		var got []string
		switch r := resp.(type) {
		case *kmsg.DescribeGroupsResponse:
			for _, g := range r.Groups {
				got = append(got, g.Group+":"+strconv.Itoa(int(g.ErrorCode))+":"+strconv.Itoa(int(g.AuthorizedOperations)))
			}
		case *kmsg.DeleteGroupsResponse:
			for _, g := range r.Groups {
				got = append(got, g.Group+":"+strconv.Itoa(int(g.ErrorCode)))
			}
		case *kmsg.ConsumerGroupDescribeResponse:
			for _, g := range r.Groups {
				got = append(got, g.Group+":"+strconv.Itoa(int(g.ErrorCode))+":"+strconv.Itoa(int(g.AuthorizedOperations)))
			}
		}
		want := []string{"a:35", "b:35"}
		if _, ok := resp.(*kmsg.DeleteGroupsResponse); !ok {
			want = []string{"a:35:-2147483648", "b:35:-2147483648"}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %v, want %v", kmsg.NameForKey(req.Key()), got, want)
		}
	}
}
