package kafka

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/poll"
)

// authzExempt lists the keys of the Kafka listener that a caller without
// any ACL may use, each with why. Every other key of Table (and of
// saslTable) must be probed by authzProbe and refused, or hide what the
// caller may not see (authzHides).
var authzExempt = map[int16]string{
	apiVersionsKey:      "version negotiation comes before login and tells nothing about the cluster",
	saslHandshakeKey:    "the login itself",
	saslAuthenticateKey: "the login itself",
	60: "DescribeCluster: Kafka answers it to everyone, as it is the broker list Metadata gives everyone " +
		"(the sluice protocol's DescribeCluster, which shows the Raft voters, needs describe on the cluster)",
}

// authzHides checks the answers of the keys that are not refused but
// show only what the caller may see.
var authzHides = map[int16]func(kmsg.Response) error{
	3: func(r kmsg.Response) error { // Metadata
		for _, tm := range r.(*kmsg.MetadataResponse).Topics {
			if tm.ErrorCode != kerr.TopicAuthorizationFailed.Code || len(tm.Partitions) != 0 {
				return fmt.Errorf("topic %v shown (code %d, %d partitions)", tm.Topic, tm.ErrorCode, len(tm.Partitions))
			}
		}
		return nil
	},
	16: func(r kmsg.Response) error { // ListGroups
		if g := r.(*kmsg.ListGroupsResponse).Groups; len(g) != 0 {
			return fmt.Errorf("groups listed: %+v", g)
		}
		return nil
	},
}

// authzProbe returns minimal valid requests of key at version v about
// resources that exist (topic orders, group g), one per branch of the
// handler that checks something different; nil for a key it does not
// know.
func authzProbe(key, v int16, brokerID int32) []kmsg.Request {
	req := kmsg.RequestForKey(key)
	req.SetVersion(v)
	more := []kmsg.Request{} // further probes of the same key
	orders := "orders"
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		r.Acks, r.TimeoutMillis = 1, 10000
		t := kmsg.NewProduceRequestTopic()
		t.Topic = orders
		t.Partitions = []kmsg.ProduceRequestTopicPartition{kmsg.NewProduceRequestTopicPartition()}
		r.Topics = append(r.Topics, t)
	case *kmsg.FetchRequest:
		r.ReplicaID, r.MaxBytes = -1, 1<<20
		t := kmsg.NewFetchRequestTopic()
		t.Topic = orders
		p := kmsg.NewFetchRequestTopicPartition()
		p.PartitionMaxBytes = 1 << 20
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	case *kmsg.ListOffsetsRequest:
		r.ReplicaID = -1
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = orders
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Timestamp = -1
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	case *kmsg.MetadataRequest:
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = &orders
		r.Topics = append(r.Topics, t)
		if v >= 1 {
			all := kmsg.NewPtrMetadataRequest()
			all.SetVersion(v)
			all.Topics = nil // every topic
			more = append(more, all)
		}
	case *kmsg.OffsetCommitRequest:
		r.Group, r.Generation = "g", -1
		t := kmsg.NewOffsetCommitRequestTopic()
		t.Topic = orders
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Offset = 1
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	case *kmsg.OffsetFetchRequest:
		r.Group = "g"
		t := kmsg.NewOffsetFetchRequestTopic()
		t.Topic, t.Partitions = orders, []int32{0}
		r.Topics = append(r.Topics, t)
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = "g"
		r.Groups = append(r.Groups, g)
	case *kmsg.FindCoordinatorRequest:
		r.CoordinatorKey, r.CoordinatorKeys = "g", []string{"g"}
	case *kmsg.JoinGroupRequest:
		r.Group, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis, r.ProtocolType = "g", 10000, 10000, "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 0, 0, 0, 0, 0}
		r.Protocols = append(r.Protocols, p)
	case *kmsg.HeartbeatRequest:
		r.Group, r.MemberID, r.Generation = "g", "m", 1
	case *kmsg.LeaveGroupRequest:
		r.Group, r.MemberID = "g", "m"
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = "m"
		r.Members = append(r.Members, m)
	case *kmsg.SyncGroupRequest:
		r.Group, r.MemberID, r.Generation = "g", "m", 1
		pt, p := "consumer", "range"
		r.ProtocolType, r.Protocol = &pt, &p
	case *kmsg.DescribeGroupsRequest:
		r.Groups = []string{"g"}
	case *kmsg.ListGroupsRequest:
	case *kmsg.CreateTopicsRequest:
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = "bobs", 1, 1
		r.Topics = append(r.Topics, t)
	case *kmsg.DeleteTopicsRequest:
		r.TopicNames = []string{orders}
	case *kmsg.InitProducerIDRequest:
		r.ProducerID, r.ProducerEpoch, r.TransactionTimeoutMillis = -1, -1, 60000
	case *kmsg.OffsetForLeaderEpochRequest:
		r.ReplicaID = -1
		t := kmsg.NewOffsetForLeaderEpochRequestTopic()
		t.Topic = orders
		p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		p.CurrentLeaderEpoch = -1
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
		if v >= 3 { // a follower's: broker-only
			f := kmsg.NewPtrOffsetForLeaderEpochRequest()
			f.SetVersion(v)
			f.ReplicaID, f.Topics = brokerID, r.Topics
			more = append(more, f)
		}
	case *kmsg.DescribeConfigsRequest:
		for _, res := range []struct {
			typ  kmsg.ConfigResourceType
			name string
		}{{resourceTopic, orders}, {resourceBroker, ""}, {resourceBroker, fmt.Sprint(brokerID)}} {
			d := kmsg.NewPtrDescribeConfigsRequest()
			d.SetVersion(v)
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = res.typ, res.name
			d.Resources = append(d.Resources, rr)
			more = append(more, d)
		}
		return more
	case *kmsg.AlterConfigsRequest, *kmsg.IncrementalAlterConfigsRequest:
		more = append(more, alterConfigsProbe(key, v, resourceTopic, orders), alterConfigsProbe(key, v, resourceBroker, ""))
		return more
	case *kmsg.CreatePartitionsRequest:
		t := kmsg.NewCreatePartitionsRequestTopic()
		t.Topic, t.Count = orders, 2
		r.Topics, r.TimeoutMillis = append(r.Topics, t), 10000
	case *kmsg.AlterPartitionAssignmentsRequest:
		t := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		t.Topic = orders
		p := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		p.Replicas = []int32{brokerID}
		t.Partitions = append(t.Partitions, p)
		r.Topics, r.TimeoutMillis = append(r.Topics, t), 10000
	case *kmsg.ListPartitionReassignmentsRequest:
		r.Topics = nil // every move
		named := kmsg.NewPtrListPartitionReassignmentsRequest()
		named.SetVersion(v)
		t := kmsg.NewListPartitionReassignmentsRequestTopic()
		t.Topic, t.Partitions = orders, []int32{0}
		named.Topics = append(named.Topics, t)
		more = append(more, named)
	case *kmsg.DeleteGroupsRequest:
		r.Groups = []string{"g"}
	case *kmsg.ConsumerGroupHeartbeatRequest:
		r.Group, r.MemberID, r.RebalanceTimeoutMillis = "g", "bob-member-0000000000", 10000
		r.SubscribedTopicNames = []string{orders}
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	case *kmsg.ConsumerGroupDescribeRequest:
		r.Groups = []string{"g"}
	case *kmsg.DescribeShareGroupOffsetsRequest:
		g := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
		g.GroupID = "g"
		g.Topics = []kmsg.DescribeShareGroupOffsetsRequestGroupTopic{{Topic: orders, Partitions: []int32{0}}}
		r.Groups = append(r.Groups, g)
	case *kmsg.AlterShareGroupOffsetsRequest:
		r.GroupID = "g"
		r.Topics = []kmsg.AlterShareGroupOffsetsRequestTopic{{Topic: orders, Partitions: []kmsg.AlterShareGroupOffsetsRequestTopicPartition{{StartOffset: 1}}}}
	case *kmsg.DeleteShareGroupOffsetsRequest:
		r.GroupID = "g"
		r.Topics = []kmsg.DeleteShareGroupOffsetsRequestTopic{{Topic: orders}}
	case *kmsg.DeleteRecordsRequest:
		t := kmsg.NewDeleteRecordsRequestTopic()
		t.Topic = orders
		p := kmsg.NewDeleteRecordsRequestTopicPartition()
		p.Offset = 1
		t.Partitions = append(t.Partitions, p)
		r.Topics, r.TimeoutMillis = append(r.Topics, t), 10000
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		r.Users = []kmsg.DescribeUserSCRAMCredentialsRequestUser{{Name: "bob"}}
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
		d.Name, d.Mechanism = "admin", 2
		r.Deletions = append(r.Deletions, d)
	case *kmsg.DescribeACLsRequest:
		r.ResourceType, r.ResourcePatternType, r.Operation, r.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny,
			kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	case *kmsg.CreateACLsRequest:
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, orders, kmsg.ACLResourcePatternTypeLiteral
		c.Principal, c.Host, c.Operation, c.PermissionType = "User:bob", "*", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow
		r.Creations = append(r.Creations, c)
	case *kmsg.DeleteACLsRequest:
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType, f.ResourcePatternType, f.Operation, f.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny,
			kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		r.Filters = append(r.Filters, f)
	case *kmsg.ShareGroupHeartbeatRequest:
		r.GroupID, r.MemberID, r.SubscribedTopicNames = "g", "bob-share-member", []string{orders}
	case *kmsg.ShareGroupDescribeRequest:
		r.GroupIDs = []string{"g"}
	case *kmsg.ShareFetchRequest:
		g, m := "g", "bob-share-member"
		r.GroupID, r.MemberID, r.MaxWaitMillis = &g, &m, 0
		t := kmsg.NewShareFetchRequestTopic()
		t.TopicID = topicID(1)
		t.Partitions = []kmsg.ShareFetchRequestTopicPartition{kmsg.NewShareFetchRequestTopicPartition()}
		r.Topics = append(r.Topics, t)
	case *kmsg.ShareAcknowledgeRequest:
		g, m := "g", "bob-share-member"
		r.GroupID, r.MemberID, r.ShareSessionEpoch = &g, &m, 1
		t := kmsg.NewShareAcknowledgeRequestTopic()
		t.TopicID = topicID(1)
		p := kmsg.NewShareAcknowledgeRequestTopicPartition()
		p.AcknowledgementBatches = []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 0, LastOffset: 0, AcknowledgeTypes: []int8{1}}}
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	default:
		return nil
	}
	return append([]kmsg.Request{req}, more...)
}

// alterConfigsProbe is an AlterConfigs or IncrementalAlterConfigs
// request (key) setting retention.ms on one resource.
func alterConfigsProbe(key, v int16, typ kmsg.ConfigResourceType, name string) kmsg.Request {
	value := "1000"
	req := kmsg.RequestForKey(key)
	req.SetVersion(v)
	switch r := req.(type) {
	case *kmsg.AlterConfigsRequest:
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = typ, name
		rr.Configs = []kmsg.AlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: &value}}
		r.Resources = append(r.Resources, rr)
	case *kmsg.IncrementalAlterConfigsRequest:
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = typ, name
		rr.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: &value}}
		r.Resources = append(r.Resources, rr)
	}
	return req
}

// kafkaAuthzCodes are the refusals the coverage test accepts.
var kafkaAuthzCodes = []int16{kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Code}

// kafkaErrorCodes collects every ErrorCode field of a response.
func kafkaErrorCodes(v reflect.Value, out []int16) []int16 {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			out = kafkaErrorCodes(v.Elem(), out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
				out = append(out, int16(v.Field(i).Int()))
				continue
			}
			out = kafkaErrorCodes(v.Field(i), out)
		}
	case reflect.Slice:
		for i := range v.Len() {
			out = kafkaErrorCodes(v.Index(i), out)
		}
	}
	return out
}

// login runs a SCRAM-SHA-512 login on a raw connection.
func (r *rawConn) login(user, password string, corr *int32) {
	r.t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = string(auth.ScramSHA512)
	*corr++
	var hsr kmsg.SASLHandshakeResponse
	hsr.SetVersion(1)
	if err := hsr.ReadFrom(r.request(hs, *corr)); err != nil || hsr.ErrorCode != 0 {
		r.t.Fatalf("handshake: %v %d", err, hsr.ErrorCode)
	}
	err := auth.Login(auth.ScramSHA512, user, password, func(msg []byte) ([]byte, error) {
		a := kmsg.NewPtrSASLAuthenticateRequest()
		a.SetVersion(1)
		a.SASLAuthBytes = msg
		*corr++
		var ar kmsg.SASLAuthenticateResponse
		ar.SetVersion(1)
		if err := ar.ReadFrom(r.request(a, *corr)); err != nil {
			return nil, err
		}
		if ar.ErrorCode != 0 {
			return nil, kerr.ErrorForCode(ar.ErrorCode)
		}
		return ar.SASLAuthBytes, nil
	})
	if err != nil {
		r.t.Fatalf("login as %s: %v", user, err)
	}
}

// authzBroker starts secureSingle with the authorizer on, with topic
// orders holding two records, and returns an admin client of it.
func authzBroker(t *testing.T) (*broker.Broker, string, *kadm.Client) {
	t.Helper()
	b, addr := secureSingle(t, true)
	admin := scramClient(t, addr, "admin", "admin-pw", true)
	adm := kadm.NewClient(admin)
	createTopic(t, context.Background(), adm, "orders", 1, 1, nil)
	if err := admin.ProduceSync(context.Background(), &kgo.Record{Topic: "orders", Value: []byte("0")}, &kgo.Record{Topic: "orders", Value: []byte("1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return b, addr, adm
}

// commitFor commits offset at of topic's partition 0 for group through
// adm, once the group's coordinator is loaded.
func commitFor(t *testing.T, adm *kadm.Client, group, topic string, at int64) {
	t.Helper()
	poll.Until(t, 20*time.Second, "commit for group "+group, func() error {
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: topic, Partition: 0, At: at, LeaderEpoch: -1})
		r, err := adm.CommitOffsets(context.Background(), group, os)
		if err != nil {
			return err
		}
		return r.Error()
	})
}

// TestKafkaAuthorizationCoversEveryAPI: with the authorizer on and no
// ACLs, bob (authenticated, not a super user) is refused every key the
// Kafka listener serves, at every served version, with an authorization
// code (Metadata and ListGroups: shown nothing), but for the commented
// exemptions; and nothing he sent changed anything. A key added to Table
// later fails here until it is probed (and checked) or exempted.
func TestKafkaAuthorizationCoversEveryAPI(t *testing.T) {
	b, addr, adm := authzBroker(t)
	// Group g exists, with a committed offset.
	commitFor(t, adm, "g", "orders", 1)
	state := func() string {
		md := b.Metadata()
		var s strings.Builder
		// Each partition's high watermark on the broker, which a write
		// bob got through would raise, rather than the controller's
		// CommittedHW: that copy is reported a moment after each write,
		// and lags the setup's writes under load.
		for _, name := range md.TopicNames() {
			tp := md.Topics[name]
			fmt.Fprintf(&s, "topic %s %v\n", name, tp.Configs)
			for _, p := range tp.Partitions {
				hw, err := b.ListOffset(nil, name, p.Index, broker.LatestTimestamp)
				p.CommittedHW = 0
				fmt.Fprintf(&s, "  %+v high watermark %d %v\n", p, hw.Offset, err)
			}
		}
		fmt.Fprintf(&s, "users %d acls %v configs %v\n", len(md.Users), md.ACLs, md.Configs)
		of, err := b.FetchOffsets(group.OffsetFetch{GroupID: "g"})
		fmt.Fprintf(&s, "offsets %+v %v\n", of, err)
		d, classic, err := b.DescribeClassicGroup("g")
		fmt.Fprintf(&s, "group %+v %v %v\n", d, classic, err)
		fmt.Fprintf(&s, "groups %+v\nmoves %+v\n", b.ListGroups(), b.Moves(nil))
		start, err := b.ListOffset(nil, "orders", 0, -2)
		fmt.Fprintf(&s, "orders log start %+v %v\n", start, err)
		return s.String()
	}
	before := state()
	if !strings.Contains(before, "GroupID:g") {
		t.Fatalf("group g is not listed: ListGroups would show nothing anyway\n%s", before)
	}

	bob := dialRaw(t, addr)
	corr := int32(0)
	bob.login("bob", "bob-pw", &corr)
	keys := map[int16]VersionRange{}
	for k, vr := range Table {
		keys[k] = vr
	}
	for k, vr := range saslTable {
		keys[k] = vr
	}
	for key, vr := range keys {
		name := kmsg.NameForKey(key)
		if _, ok := authzExempt[key]; ok {
			continue
		}
		for v := vr.Min; v <= vr.Max; v++ {
			if key == produceKey && v < minProduceServed {
				continue // answered UNSUPPORTED_VERSION
			}
			reqs := authzProbe(key, v, b.ID())
			if reqs == nil {
				t.Errorf("%s: no probe: add a minimal request to authzProbe (and its check), or an exemption with its reason to authzExempt", name)
				break
			}
			for i, req := range reqs {
				corr++
				body := bob.request(req, corr)
				resp := req.ResponseKind()
				resp.SetVersion(v)
				if err := resp.ReadFrom(body); err != nil {
					t.Fatalf("%s v%d request %d: response does not decode: %v", name, v, i, err)
				}
				if hides := authzHides[key]; hides != nil {
					if err := hides(resp); err != nil {
						t.Errorf("%s v%d request %d: shows what bob may not see: %v", name, v, i, err)
					}
					continue
				}
				codes := kafkaErrorCodes(reflect.ValueOf(resp), nil)
				if !slices.ContainsFunc(codes, func(c int16) bool { return slices.Contains(kafkaAuthzCodes, c) }) {
					t.Errorf("%s v%d request %d: not refused: codes %v, response %+v", name, v, i, codes, resp)
				}
			}
		}
	}
	if after := state(); after != before {
		t.Errorf("bob's refused requests changed the cluster:\nbefore %s\nafter  %s", before, after)
	}
}

// The Kafka listener's group and partition checks name the right
// resources: bob, allowed read on group g and topic orders, consumes in a
// kgo consumer group and commits, reads the group's offsets but not those
// of a topic he may not describe, and lists only that group; allowed
// alter on orders, he grows it. Allowed read on group g2, he may not
// subscribe it to a topic he may not describe.
func TestKafkaAuthorizationGrants(t *testing.T) {
	ctx := testContext(t)
	b, addr, adm := authzBroker(t)
	createTopic(t, ctx, adm, "hidden", 1, 1, nil)
	allow := func(rt auth.ResourceType, name string, op auth.Operation) auth.ACL {
		return auth.ACL{Principal: "User:bob", Host: "*", Resource: rt, Name: name, Pattern: auth.PatternLiteral, Op: op, Permission: auth.Allow}
	}
	for _, err := range b.CreateACLs(ctx, []auth.ACL{allow(auth.ResourceGroup, "g", auth.OpRead),
		allow(auth.ResourceTopic, "orders", auth.OpRead), allow(auth.ResourceTopic, "orders", auth.OpAlter)}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Another group, which bob may not see.
	commitFor(t, adm, "other", "hidden", 0)

	var seen sync.Map
	mech := scram.Auth{User: "bob", Pass: "bob-pw"}
	gc := startGroupConsumer(t, []string{addr}, "g", "orders", &seen, kgo.SASL(mech.AsSha512Mechanism()))
	poll.Until(t, 30*time.Second, "bob consumes both records in group g", func() bool { return count(&seen) == 2 })
	gc.close()                          // commits before leaving
	commitFor(t, adm, "g", "hidden", 0) // an offset of a topic bob may not describe
	bobCl := scramClient(t, addr, "bob", "bob-pw", true)
	bobAdm := kadm.NewClient(bobCl)
	offs, err := bobAdm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("orders", 0); !ok || o.Err != nil || o.At != 2 {
		t.Fatalf("bob's committed offset of orders[0]: %+v (%v)", o, ok)
	}
	if o, ok := offs.Lookup("hidden", 0); ok {
		t.Fatalf("bob sees group g's offset of hidden: %+v", o)
	}
	hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	hb.Group, hb.MemberID, hb.RebalanceTimeoutMillis, hb.SubscribedTopicNames = "g2", "bob-member-0000000000", 10000, []string{"hidden"}
	hb.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	for _, err := range b.CreateACLs(ctx, []auth.ACL{allow(auth.ResourceGroup, "g2", auth.OpRead)}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r, err := hb.RequestWith(ctx, bobCl); err != nil || r.ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("bob subscribes to hidden: %v %+v", err, r)
	}
	groups, err := bobAdm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := groups.Groups(); !slices.Equal(names, []string{"g"}) {
		t.Fatalf("bob lists groups %v, want only g", names)
	}
	res, err := bobAdm.CreatePartitions(ctx, 1, "orders")
	if err != nil || res["orders"].Err != nil {
		t.Fatalf("bob grows orders: %v %+v", err, res)
	}
	if r, err := bobAdm.CreatePartitions(ctx, 1, "hidden"); err == nil && r["hidden"].Err == nil {
		t.Fatal("bob grew hidden")
	}
}

// A KIP-848 member subscribed by regex on the Kafka listener is assigned
// only partitions of topics its principal may describe (Kafka's rule):
// bob, with describe on orders.eu, gets orders.eu of orders\..*; an ACL
// added later brings orders.us; admin (a super user) gets both.
func TestKafkaRegexSubscriptionOnlyDescribableTopics(t *testing.T) {
	ctx := testContext(t)
	b, addr, adm := authzBroker(t)
	createTopic(t, ctx, adm, "orders.eu", 2, 1, nil)
	createTopic(t, ctx, adm, "orders.us", 2, 1, nil)
	bobACL := func(rt auth.ResourceType, name string, op auth.Operation) {
		t.Helper()
		acl := auth.ACL{Principal: "User:bob", Host: "*", Resource: rt, Name: name, Pattern: auth.PatternLiteral, Op: op, Permission: auth.Allow}
		for _, err := range b.CreateACLs(ctx, []auth.ACL{acl}) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	bobACL(auth.ResourceGroup, "rg", auth.OpRead)
	bobACL(auth.ResourceTopic, "orders.eu", auth.OpDescribe)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[[16]byte]string{}
	for _, d := range topics {
		names[d.ID] = d.Topic
	}
	bob := scramClient(t, addr, "bob", "bob-pw", true)
	admin := scramClient(t, addr, "admin", "admin-pw", true)

	// beat heartbeats as cl, the one member of group, until it is
	// assigned the topics want (sorted).
	type memberState struct {
		id    string
		epoch int32
		owned []kmsg.ConsumerGroupHeartbeatRequestTopic
	}
	members := map[string]*memberState{}
	beat := func(cl *kgo.Client, group string, want ...string) {
		t.Helper()
		m := members[group]
		if m == nil {
			m = &memberState{id: "member-of-" + group + "-000000", owned: []kmsg.ConsumerGroupHeartbeatRequestTopic{}}
			members[group] = m
		}
		poll.Until(t, 20*time.Second, fmt.Sprintf("assignment %v in %s", want, group), func() error {
			hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
			hb.Group, hb.MemberID, hb.MemberEpoch, hb.RebalanceTimeoutMillis = group, m.id, m.epoch, 10000
			re := `orders\..*`
			hb.SubscribedTopicRegex, hb.Topics = &re, m.owned
			r, err := hb.RequestWith(ctx, cl)
			if err != nil {
				return err
			}
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				m.epoch, m.owned = 0, []kmsg.ConsumerGroupHeartbeatRequestTopic{}
				return err
			}
			m.epoch = r.MemberEpoch
			if r.Assignment == nil {
				return fmt.Errorf("no assignment yet")
			}
			m.owned = m.owned[:0]
			var got []string
			for _, tp := range r.Assignment.Topics {
				m.owned = append(m.owned, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: tp.TopicID, Partitions: tp.Partitions})
				if len(tp.Partitions) > 0 {
					got = append(got, names[tp.TopicID])
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Errorf("assigned %v", got)
			}
			return nil
		})
	}
	beat(bob, "rg", "orders.eu")
	beat(admin, "all", "orders.eu", "orders.us")
	bobACL(auth.ResourceTopic, "orders.us", auth.OpDescribe)
	beat(bob, "rg", "orders.eu", "orders.us")
}
