package kafka

import (
	"context"
	"errors"
	"fmt"
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

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// shareClient sends share-group requests for one member of a group
// through kgo (to the one broker of these tests).
type shareClient struct {
	t       *testing.T
	ctx     context.Context
	cl      *kgo.Client
	group   string
	member  string
	epoch   int32 // member epoch
	session int32 // share session epoch of the next request
}

func (c *shareClient) heartbeat(epoch int32, topics []string) *kmsg.ShareGroupHeartbeatResponse {
	c.t.Helper()
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.MemberEpoch, req.SubscribedTopicNames = c.group, c.member, epoch, topics
	resp, err := req.RequestWith(c.ctx, c.cl)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

// shareAck is one acknowledgement batch.
type shareAck struct {
	first, last int64
	types       []int8
}

func (c *shareClient) fetch(id [16]byte, maxRecords int32, wait time.Duration, acks ...shareAck) *kmsg.ShareFetchResponse {
	c.t.Helper()
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = &c.group, &c.member, c.session
	req.MaxWaitMillis, req.MaxRecords, req.BatchSize = int32(wait.Milliseconds()), maxRecords, maxRecords
	t := kmsg.NewShareFetchRequestTopic()
	t.TopicID = id
	p := kmsg.NewShareFetchRequestTopicPartition()
	p.AcknowledgementBatches = fetchAcks(acks)
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return sent(c, req, func(r *kmsg.ShareFetchResponse) int16 { return r.ErrorCode })
}

func (c *shareClient) ack(id [16]byte, renew bool, acks ...shareAck) *kmsg.ShareAcknowledgeResponse {
	c.t.Helper()
	req := kmsg.NewPtrShareAcknowledgeRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch, req.IsRenewAck = &c.group, &c.member, c.session, renew
	t := kmsg.NewShareAcknowledgeRequestTopic()
	t.TopicID = id
	p := kmsg.NewShareAcknowledgeRequestTopicPartition()
	for _, b := range fetchAcks(acks) {
		p.AcknowledgementBatches = append(p.AcknowledgementBatches, kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch(b))
	}
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return sent(c, req, func(r *kmsg.ShareAcknowledgeResponse) int16 { return r.ErrorCode })
}

func fetchAcks(acks []shareAck) []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch {
	var out []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch
	for _, a := range acks {
		out = append(out, kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{FirstOffset: a.first, LastOffset: a.last, AcknowledgeTypes: a.types})
	}
	return out
}

// sent sends a share request of c's session and moves the session epoch
// on when it was accepted.
func sent[R kmsg.Response](c *shareClient, req kmsg.Request, code func(R) int16) R {
	c.t.Helper()
	resp, err := c.cl.Request(c.ctx, req)
	if err != nil {
		c.t.Fatal(err)
	}
	r := resp.(R)
	if code(r) == 0 {
		c.session++
	}
	return r
}

// acquired decodes a ShareFetch partition: offset → value of each record
// in its batches (CRCs checked), and offset → delivery count of its
// AcquiredRecords ranges.
func acquired(t *testing.T, p kmsg.ShareFetchResponseTopicPartition) (map[int64]string, map[int64]int16) {
	t.Helper()
	if p.ErrorCode != 0 {
		t.Fatalf("partition %d: error %d (%v)", p.Partition, p.ErrorCode, p.ErrorMessage)
	}
	values := map[int64]string{}
	buf := p.Records
	rd := record.NewReader(record.Limits{})
	for len(buf) > 0 {
		b, err := record.ParseHeader(buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if b.ComputeCRC() != b.CRC() {
			t.Fatal("batch CRC does not match")
		}
		buf = buf[b.Size():]
		if err := rd.Reset(b); err != nil {
			t.Fatal(err)
		}
		for rd.Next() {
			values[rd.Record().Offset] = string(rd.Record().Value)
		}
		if err := rd.Err(); err != nil {
			t.Fatal(err)
		}
	}
	counts := map[int64]int16{}
	for _, a := range p.AcquiredRecords {
		for off := a.FirstOffset; off <= a.LastOffset; off++ {
			counts[off] = a.DeliveryCount
		}
	}
	if len(values) != len(counts) {
		t.Fatalf("records %v, acquired %v", values, counts)
	}
	for off := range counts {
		if _, ok := values[off]; !ok {
			t.Fatalf("offset %d acquired without its record (records %v)", off, values)
		}
	}
	return values, counts
}

// shareTopicOf creates topic (replication factor 1) holding values in
// its partition 0 and returns its Kafka topic id.
func shareTopicOf(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, partitions int32, values ...string) [16]byte {
	t.Helper()
	adm := kadm.NewClient(cl)
	createTopic(t, ctx, adm, topic, partitions, 1, nil)
	recs := make([]*kgo.Record, 0, len(values))
	for _, v := range values {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return [16]byte(tds[topic].ID)
}

// numbered is prefix0, prefix1, ... up to n values.
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// onePartition is the only partition of a ShareFetch answer.
func onePartition(t *testing.T, resp *kmsg.ShareFetchResponse) kmsg.ShareFetchResponseTopicPartition {
	t.Helper()
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("share fetch: %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

func sortedKeys[V any](m map[int64]V) []int64 {
	return slices.Sorted(func(yield func(int64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

// TestShareGroupKmsg drives the share-group APIs with kmsg requests over a
// real broker: two members join and are both assigned the one partition;
// each acquires different records; accept, release (delivered again with
// count 2), reject (in jobs.dlq), renew; and the bad inputs.
func TestShareGroupKmsg(t *testing.T) {
	ctx := testContext(t)
	b, addr := single(t, func(c *broker.Config) { c.MaxFetchWait = 2 * time.Second })
	cl := newClient(t, []string{addr})
	adm := kadm.NewClient(cl)
	id := shareTopicOf(t, ctx, cl, "jobs", 1, numbered("v", 10)...)

	m1 := &shareClient{t: t, ctx: ctx, cl: cl, group: "workers", member: "member-one"}
	m2 := &shareClient{t: t, ctx: ctx, cl: cl, group: "workers", member: "member-two"}
	for _, m := range []*shareClient{m1, m2} {
		hb := m.heartbeat(0, []string{"jobs"})
		if hb.ErrorCode != 0 || hb.MemberEpoch <= 0 || hb.Assignment == nil || len(hb.Assignment.TopicPartitions) != 1 ||
			hb.Assignment.TopicPartitions[0].TopicID != id || !slices.Equal(hb.Assignment.TopicPartitions[0].Partitions, []int32{0}) {
			t.Fatalf("%s joins: %+v", m.member, hb)
		}
		m.epoch = hb.MemberEpoch
	}
	// A heartbeat at the member's epoch keeps it, with no new assignment.
	if hb := m1.heartbeat(m1.epoch, nil); hb.ErrorCode != 0 || hb.MemberEpoch != m1.epoch || hb.Assignment != nil {
		t.Fatalf("m1 heartbeat: %+v", hb)
	}
	if hb := m1.heartbeat(m1.epoch+7, nil); hb.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("a wrong member epoch: %+v", hb)
	}
	stranger := &shareClient{t: t, ctx: ctx, cl: cl, group: "workers", member: "stranger"}
	if hb := stranger.heartbeat(3, nil); hb.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("an unknown member: %+v", hb)
	}
	desc := kmsg.NewPtrShareGroupDescribeRequest()
	desc.GroupIDs = []string{"workers"}
	dr, err := desc.RequestWith(ctx, cl)
	if err != nil || len(dr.Groups) != 1 || dr.Groups[0].ErrorCode != 0 || dr.Groups[0].GroupState != "Stable" || len(dr.Groups[0].Members) != 2 {
		t.Fatalf("describe: %v %+v", err, dr)
	}
	for _, m := range dr.Groups[0].Members {
		if a := m.Assignment.TopicPartitions; len(a) != 1 || a[0].Topic != "jobs" || !slices.Equal(a[0].Partitions, []int32{0}) {
			t.Fatalf("member %s assigned %+v", m.MemberID, a)
		}
	}

	// More members than partitions: each acquires its own records.
	v1, c1 := acquired(t, onePartition(t, m1.fetch(id, 4, time.Second)))
	v2, c2 := acquired(t, onePartition(t, m2.fetch(id, 4, time.Second)))
	if !slices.Equal(sortedKeys(v1), []int64{0, 1, 2, 3}) || !slices.Equal(sortedKeys(v2), []int64{4, 5, 6, 7}) || v1[2] != "v2" {
		t.Fatalf("m1 acquired %v, m2 %v", v1, v2)
	}
	for off, c := range c1 {
		if c != 1 {
			t.Fatalf("offset %d first delivered with count %d", off, c)
		}
	}
	_ = c2

	// Accept 0, release 1, reject 2 (one batch, a type per offset); renew 3.
	ar := m1.ack(id, false, shareAck{0, 2, []int8{1, 2, 3}})
	if ar.ErrorCode != 0 || len(ar.Topics) != 1 || ar.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("acknowledge: %+v", ar)
	}
	if ar := m1.ack(id, true, shareAck{3, 3, []int8{4}}); ar.ErrorCode != 0 || ar.Topics[0].Partitions[0].ErrorCode != 0 || ar.AcquisitionLockTimeoutMillis <= 0 {
		t.Fatalf("renew: %+v", ar)
	}
	if ar := m1.ack(id, false, shareAck{3, 3, []int8{4}}); ar.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("renew without IsRenewAck: %+v", ar)
	}
	// Released 1 comes back with count 2 (first: available records go
	// first), then the new 8 and 9.
	p := onePartition(t, m1.fetch(id, 10, time.Second))
	v, c := acquired(t, p)
	if !slices.Equal(sortedKeys(v), []int64{1, 8, 9}) || c[1] != 2 || c[8] != 1 || v[1] != "v1" {
		t.Fatalf("after release: records %v counts %v", v, c)
	}
	// Rejected 2 is in jobs.dlq with the reason.
	dlq := consumeN(t, addr, "jobs.dlq", 1)
	if string(dlq[0].Value) != "v2" || !slices.ContainsFunc(dlq[0].Headers, func(h kgo.RecordHeader) bool {
		return h.Key == protocol.DeadLetterReason && strings.HasSuffix(string(h.Value), shareAckReason)
	}) {
		t.Fatalf("dead letter: %+v", dlq[0])
	}

	// Acknowledgements of offsets never acquired, or held by another
	// member: INVALID_RECORD_STATE for the partition; 1 accepted with them.
	p = onePartition(t, m1.fetch(id, 10, 0, shareAck{1, 1, []int8{1}}, shareAck{500, 501, []int8{1}}))
	if p.AcknowledgeErrorCode != kerr.InvalidRecordState.Code {
		t.Fatalf("acks of offsets never acquired: %+v", p)
	}
	if ar := m1.ack(id, false, shareAck{4, 4, []int8{1}}); ar.Topics[0].Partitions[0].ErrorCode != kerr.InvalidRecordState.Code {
		t.Fatalf("ack of m2's record: %+v", ar)
	}
	if ar := m2.ack(id, false, shareAck{4, 7, []int8{1}}); ar.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("m2 accepts: %+v", ar)
	}
	parts, _, err := b.DescribeQueueGroup(ctx, "workers")
	// 0-2 done (accepted, accepted, dead-lettered), 4-7 accepted, 3, 8, 9 held.
	if err != nil || len(parts) != 1 || parts[0].Start != 3 || parts[0].Accepted != 4 || parts[0].Acquired != 3 || parts[0].DeadLettered != 1 {
		t.Fatalf("the queue group as the core sees it: %v %+v", err, parts)
	}

	// Session epochs: a wrong one, none, and ShareAcknowledge opening one.
	m1.session += 5
	if r := m1.fetch(id, 1, 0); r.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Fatalf("a wrong session epoch: %+v", r)
	}
	m1.session -= 5
	stranger.session = 4
	if r := stranger.fetch(id, 1, 0); r.ErrorCode != kerr.ShareSessionNotFound.Code {
		stranger.t.Fatalf("no session: %+v", r)
	}
	stranger.session = 0
	if r := stranger.ack(id, false, shareAck{1, 1, []int8{1}}); r.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Fatalf("ShareAcknowledge at epoch 0: %+v", r)
	}
	// A topic id no broker knows.
	var unknown [16]byte
	unknown[0] = 9
	r := m1.fetch(unknown, 1, 0)
	if i := slices.IndexFunc(r.Topics, func(rt kmsg.ShareFetchResponseTopic) bool { return rt.TopicID == unknown }); r.ErrorCode != 0 || i < 0 || r.Topics[i].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("unknown topic id: %+v", r)
	}
	// Closing the session (epoch -1) acknowledges and fetches nothing.
	m1.session = -1
	if r := m1.fetch(id, 10, time.Second, shareAck{8, 9, []int8{1}}); r.ErrorCode != 0 || len(r.Topics[0].Partitions[0].Records) != 0 || r.Topics[0].Partitions[0].AcknowledgeErrorCode != 0 {
		t.Fatalf("close the session: %+v", r)
	}
	m1.session = 1
	if r := m1.fetch(id, 1, 0); r.ErrorCode != kerr.ShareSessionNotFound.Code {
		t.Fatalf("after close: %+v", r)
	}
	// A topic that grows: the member's next heartbeat has a new epoch and
	// both partitions.
	if res, err := adm.CreatePartitions(ctx, 1, "jobs"); err != nil || res["jobs"].Err != nil {
		t.Fatalf("grow jobs: %v %+v", err, res)
	}
	poll.Until(t, 10*time.Second, "m2's assignment has partition 1", func() error {
		hb := m2.heartbeat(m2.epoch, nil)
		if hb.ErrorCode != 0 {
			return fmt.Errorf("heartbeat: %+v", hb)
		}
		if hb.Assignment == nil {
			return errors.New("no new assignment yet")
		}
		if hb.MemberEpoch <= m2.epoch || !slices.Equal(hb.Assignment.TopicPartitions[0].Partitions, []int32{0, 1}) {
			t.Fatalf("after growing: %+v", hb)
		}
		m2.epoch = hb.MemberEpoch
		return nil
	})
	// Leaving.
	if hb := m1.heartbeat(-1, nil); hb.ErrorCode != 0 || hb.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", hb)
	}
	if dr, err := desc.RequestWith(ctx, cl); err != nil || len(dr.Groups[0].Members) != 1 {
		t.Fatalf("describe after a leave: %v %+v", err, dr)
	}
}

// TestShareFetchAtLeaderNotCoordinator: a share consumer fetches from a
// partition's leader (KIP-932), which here is not the queue group's
// coordinator: the leader forwards the acquisition and the
// acknowledgements to the coordinator (QueueReceiveVia, QueueAckVia), and
// the coordinator's state records them.
func TestShareFetchAtLeaderNotCoordinator(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-broker cluster")
	}
	ctx := testContext(t)
	kc := startKafkaCluster(t, 3)
	cl := newClient(t, kc.seeds())
	adm := kadm.NewClient(cl)
	createTopic(t, ctx, adm, "fwd", 1, 1, nil)
	var recs []*kgo.Record
	for i := range 5 {
		recs = append(recs, &kgo.Record{Topic: "fwd", Value: []byte("v" + strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	md := kc.Broker(1).Metadata()
	leader := md.Topics["fwd"].Partitions[0].Leader
	id := topicID(md.Topics["fwd"].ID)
	// A group whose coordinator is another broker.
	var groupID string
	var co broker.Coordinator
	for i := 0; groupID == ""; i++ {
		g := "share-fwd-" + strconv.Itoa(i)
		c, err := kc.Broker(leader).FindCoordinator(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if c.BrokerID != leader {
			groupID, co = g, c
		}
	}
	conn := dialRaw(t, kc.addrs[leader])
	// The leader answers a share fetch within its wait plus the group
	// timeout (broker.GroupWriteTimeout) for the coordinator's part.
	conn.wait = 2*time.Second + broker.GroupWriteTimeout + 5*time.Second
	// Heartbeats go to the coordinator; the leader is not it.
	hb := kmsg.NewPtrShareGroupHeartbeatRequest()
	hb.SetVersion(1)
	hb.GroupID, hb.MemberID, hb.SubscribedTopicNames = groupID, "fwd-member", []string{"fwd"}
	hbResp := kmsg.NewPtrShareGroupHeartbeatResponse()
	hbResp.SetVersion(1)
	if err := hbResp.ReadFrom(conn.request(hb, 9)); err != nil || hbResp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("a heartbeat at a broker that is not the coordinator: %v %+v", err, hbResp)
	}
	member := "fwd-member"
	fetch := kmsg.NewPtrShareFetchRequest()
	fetch.SetVersion(2)
	fetch.GroupID, fetch.MemberID, fetch.MaxWaitMillis, fetch.MaxRecords = &groupID, &member, 2000, 10
	ft := kmsg.NewShareFetchRequestTopic()
	ft.TopicID = id
	ft.Partitions = []kmsg.ShareFetchRequestTopicPartition{kmsg.NewShareFetchRequestTopicPartition()}
	fetch.Topics = append(fetch.Topics, ft)
	resp := kmsg.NewPtrShareFetchResponse()
	resp.SetVersion(2)
	var got map[int64]string
	poll.Until(t, 30*time.Second, "records acquired through the leader", func() error {
		resp.Default()
		resp.Topics = nil
		if err := resp.ReadFrom(conn.request(fetch, 1)); err != nil {
			t.Fatal(err)
		}
		fetch.ShareSessionEpoch++
		p := onePartition(t, resp)
		if p.ErrorCode != 0 {
			return fmt.Errorf("partition error %d (%v)", p.ErrorCode, p.ErrorMessage)
		}
		got, _ = acquired(t, p)
		if len(got) != 5 {
			return fmt.Errorf("acquired %v", got)
		}
		return nil
	})
	ack := kmsg.NewPtrShareAcknowledgeRequest()
	ack.SetVersion(2)
	ack.GroupID, ack.MemberID, ack.ShareSessionEpoch = &groupID, &member, fetch.ShareSessionEpoch
	at := kmsg.NewShareAcknowledgeRequestTopic()
	at.TopicID = id
	ap := kmsg.NewShareAcknowledgeRequestTopicPartition()
	ap.AcknowledgementBatches = []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 0, LastOffset: 4, AcknowledgeTypes: []int8{1}}}
	at.Partitions = append(at.Partitions, ap)
	ack.Topics = append(ack.Topics, at)
	aresp := kmsg.NewPtrShareAcknowledgeResponse()
	aresp.SetVersion(2)
	if err := aresp.ReadFrom(conn.request(ack, 2)); err != nil {
		t.Fatal(err)
	}
	if aresp.ErrorCode != 0 || len(aresp.Topics) != 1 || aresp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("acknowledge at the leader: %+v", aresp)
	}
	parts, _, err := kc.Broker(co.BrokerID).DescribeQueueGroup(ctx, groupID)
	if err != nil || len(parts) != 1 || parts[0].Start != 5 || parts[0].Acquired != 0 {
		t.Fatalf("the coordinator's state: %v %+v", err, parts)
	}
	t.Logf("leader %d, coordinator %d: 5 records acquired and accepted through the leader", leader, co.BrokerID)
}

// TestShareBatches: acquired records with gaps and mixed delivery counts
// are one batch per run of consecutive offsets, at those offsets, and one
// AcquiredRecords range per run of equal count.
func TestShareBatches(t *testing.T) {
	var ms []broker.QueueMessage
	for _, m := range []struct {
		off int64
		dc  int
	}{{9, 1}, {3, 2}, {4, 2}, {5, 1}, {8, 1}} { // unsorted, as the core may give them
		ms = append(ms, broker.QueueMessage{Offset: m.off, Deliveries: m.dc, Timestamp: 1000 + m.off, Value: []byte("v" + strconv.FormatInt(m.off, 10))})
	}
	recs, acq, err := shareBatches(ms)
	if err != nil {
		t.Fatal(err)
	}
	p := kmsg.NewShareFetchResponseTopicPartition()
	p.Records, p.AcquiredRecords = recs, acq
	values, counts := acquired(t, p)
	want := map[int64]int16{3: 2, 4: 2, 5: 1, 8: 1, 9: 1}
	for off, dc := range want {
		if counts[off] != dc || values[off] != "v"+strconv.FormatInt(off, 10) {
			t.Fatalf("offset %d: count %d value %q, want %d", off, counts[off], values[off], dc)
		}
	}
	var ranges [][3]int64
	for _, a := range acq {
		ranges = append(ranges, [3]int64{a.FirstOffset, a.LastOffset, int64(a.DeliveryCount)})
	}
	if !slices.Equal(ranges, [][3]int64{{3, 4, 2}, {5, 5, 1}, {8, 9, 1}}) {
		t.Fatalf("acquired ranges %v", ranges)
	}
	batches := 0
	for buf := recs; len(buf) > 0; batches++ {
		b, err := record.ParseHeader(buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		buf = buf[b.Size():]
	}
	if batches != 2 {
		t.Fatalf("%d batches, want 2 (3-5 and 8-9)", batches)
	}
}

// TestShareRenewExtendsLease: a record renewed (AcknowledgeType 4,
// ShareAcknowledge v2's IsRenewAck) before its lease ends stays with its
// member past the first lease's end, and goes to another member only once
// the renewed lease ends (delivery count 2). The group's lease is 2 s
// (share.record.lock.duration.ms).
func TestShareRenewExtendsLease(t *testing.T) {
	const lease = 2 * time.Second
	ctx := testContext(t)
	_, addr := single(t, nil)
	cl := newClient(t, []string{addr})
	alter := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "renewers"
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Value = "share.record.lock.duration.ms", kmsg.StringPtr(strconv.Itoa(int(lease.Milliseconds())))
	r.Configs = append(r.Configs, c)
	alter.Resources = append(alter.Resources, r)
	if resp, err := alter.RequestWith(ctx, cl); err != nil || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("set the lease: %v %+v", err, resp)
	}
	id := shareTopicOf(t, ctx, cl, "renewed", 1, "job")
	m1 := &shareClient{t: t, ctx: ctx, cl: cl, group: "renewers", member: "holder"}
	m2 := &shareClient{t: t, ctx: ctx, cl: cl, group: "renewers", member: "other"}

	acquiredAt := time.Now() // the lease ends no earlier than acquiredAt + lease
	resp := m1.fetch(id, 1, time.Second)
	if v, _ := acquired(t, onePartition(t, resp)); len(v) != 1 || v[0] != "job" || resp.AcquisitionLockTimeoutMillis != int32(lease.Milliseconds()) {
		t.Fatalf("holder acquired %v, lease %d ms", v, resp.AcquisitionLockTimeoutMillis)
	}
	acquiredBy := time.Now() // and no later than acquiredBy + lease
	if v, _ := acquired(t, onePartition(t, m2.fetch(id, 1, 0))); len(v) != 0 {
		t.Fatalf("the other member acquired %v of a held record", v)
	}
	time.Sleep(time.Until(acquiredBy.Add(lease * 6 / 10))) // the test's timeline: renew well inside the first lease
	renewedAt := time.Now()                                // the renewed lease ends no earlier than renewedAt + lease
	if ar := m1.ack(id, true, shareAck{0, 0, []int8{4}}); ar.ErrorCode != 0 || ar.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("renew: %+v", ar)
	}
	if time.Since(acquiredAt) >= lease {
		t.Skip("the machine is too slow for this timeline: the renewal was sent after the first lease could have ended")
	}
	renewedBy := time.Now()
	// Past the first lease's end, before the renewed one's: the other
	// member gets nothing.
	time.Sleep(time.Until(acquiredBy.Add(lease + 200*time.Millisecond)))
	checked := 0
	for time.Now().Add(100 * time.Millisecond).Before(renewedAt.Add(lease)) {
		v, _ := acquired(t, onePartition(t, m2.fetch(id, 1, 0)))
		if len(v) != 0 {
			t.Fatalf("the other member acquired %v %v after the acquisition, past the first lease but before the renewed one (%v after the renewal)",
				v, time.Since(acquiredBy), time.Since(renewedAt))
		}
		checked++
		time.Sleep(50 * time.Millisecond)
	}
	if checked == 0 {
		t.Skip("the machine is too slow for this timeline: no fetch between the two leases' ends")
	}
	// After the renewed lease, the record goes to the other member.
	time.Sleep(time.Until(renewedBy.Add(lease)))
	var got map[int64]string
	var counts map[int64]int16
	poll.Until(t, 10*time.Second, "the record redelivered after the renewed lease", func() bool {
		got, counts = acquired(t, onePartition(t, m2.fetch(id, 1, 200*time.Millisecond)))
		return len(got) == 1
	})
	if got[0] != "job" || counts[0] != 2 {
		t.Fatalf("redelivered %v with counts %v, want offset 0 with delivery count 2", got, counts)
	}
	t.Logf("%d fetches of the other member between the two leases' ends found nothing", checked)
}

// timings is an Observer that keeps the Kafka listener's request timings.
type timings struct {
	mu sync.Mutex
	ts []broker.RequestTiming
}

func (o *timings) Request(t broker.RequestTiming) {
	if t.Listener == "kafka" {
		o.mu.Lock()
		o.ts = append(o.ts, t)
		o.mu.Unlock()
	}
}
func (o *timings) Sync(time.Duration, error) {}
func (o *timings) Commit(time.Duration)      {}

// TestShareFetchWaitObserved: a ShareFetch that long-polls (nothing to
// acquire, 400 ms max wait) is timed as a Fetch's long-poll is: the wait
// is its wait stage, not its send stage. Before the change its reply was
// completed without FrontConn.Finish, so the observer took the wait as
// sending.
func TestShareFetchWaitObserved(t *testing.T) {
	ctx := testContext(t)
	obs := &timings{}
	_, addr := single(t, func(c *broker.Config) { c.Observer = obs })
	cl := newClient(t, []string{addr})
	id := shareTopicOf(t, ctx, cl, "idle", 1)
	m := &shareClient{t: t, ctx: ctx, cl: cl, group: "waiters", member: "member-one"}
	hb := m.heartbeat(0, []string{"idle"})
	if hb.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(hb.ErrorCode))
	}
	m.epoch = hb.MemberEpoch
	const wait = 400 * time.Millisecond
	start := time.Now()
	if p := onePartition(t, m.fetch(id, 10, wait)); p.ErrorCode != 0 || len(p.AcquiredRecords) != 0 {
		t.Fatalf("a share fetch of an empty partition: %v, %d acquired", kerr.ErrorForCode(p.ErrorCode), len(p.AcquiredRecords))
	}
	if took := time.Since(start); took < wait {
		t.Fatalf("the share fetch answered after %v, before its max wait %v", took, wait)
	}
	var st broker.RequestTiming
	poll.Until(t, 5*time.Second, "the share fetch observed", func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		for _, t := range obs.ts {
			if t.APIName == "ShareFetch" {
				st = t
				return true
			}
		}
		return false
	})
	if _, _, waited, send := st.Stages(); waited < wait*3/4 || send > wait/2 {
		t.Fatalf("the share fetch's wait stage %v, send stage %v; want the wait (%v) in the wait stage", waited, send, wait)
	}
}
