package broker

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// authzExempt lists the keys a caller without any ACL may use: each
// entry says why. Every other key of the protocol's table must have a
// request in authzProbes and be refused (or hide what it may not see).
var authzExempt = map[protocol.APIKey]string{
	protocol.APIVersions:      "version negotiation comes before login and tells nothing about the cluster",
	protocol.SaslHandshake:    "the login itself",
	protocol.SaslAuthenticate: "the login itself",
}

// authzProbes are, per key, minimal valid requests about resources that
// exist (topic orders, consumer group g, queue group q), each of which a
// principal without ACLs must be refused; one per branch of a handler
// that checks something different (a topic's configs and the cluster's).
func authzProbes(brokerID int32) map[protocol.APIKey][]protocol.Message {
	topicPart := []protocol.TopicPartitions{{Topic: "orders", Partitions: []int32{0}}}
	return map[protocol.APIKey][]protocol.Message{
		protocol.Produce:  {produceRequest("orders", 0, protocol.AcksLeader, nil)},
		protocol.Fetch:    {fetchRequest("orders", 0, 0, 0, 0)},
		protocol.Metadata: {&protocol.MetadataRequest{Topics: []string{"orders"}}, &protocol.MetadataRequest{AllTopics: true}},
		protocol.ListOffsets: {&protocol.ListOffsetsRequest{ReplicaID: -1, Topics: []protocol.ListOffsetsTopic{
			{Name: "orders", Partitions: []protocol.ListOffsetsPartition{{Partition: 0, CurrentLeaderEpoch: -1, Timestamp: protocol.LatestTimestamp}}}}}},
		protocol.CreateTopics: {&protocol.CreateTopicsRequest{Topics: []protocol.CreatableTopic{{Name: "bobs", Partitions: 1, ReplicationFactor: 1}}}},
		protocol.DeleteTopics: {&protocol.DeleteTopicsRequest{Topics: []string{"orders"}}},
		protocol.DeleteRecords: {&protocol.DeleteRecordsRequest{Topics: []protocol.DeleteRecordsTopic{{Name: "orders",
			Partitions: []protocol.DeleteRecordsPartition{{Partition: 0, Offset: 1}}}}}},
		protocol.InitProducerID: {&protocol.InitProducerIDRequest{ProducerID: -1, ProducerEpoch: -1}},
		protocol.OffsetForLeaderEpoch: {
			&protocol.OffsetForLeaderEpochRequest{ReplicaID: -1, Topics: []protocol.OffsetForLeaderEpochTopic{{Name: "orders",
				Partitions: []protocol.OffsetForLeaderEpochPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}},
			&protocol.OffsetForLeaderEpochRequest{ReplicaID: brokerID, Topics: []protocol.OffsetForLeaderEpochTopic{{Name: "orders",
				Partitions: []protocol.OffsetForLeaderEpochPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}},
		},
		protocol.DescribeConfigs: {
			&protocol.DescribeConfigsRequest{Resources: []protocol.DescribeConfigsResource{{Type: protocol.ResourceTopic, Name: "orders"}}},
			&protocol.DescribeConfigsRequest{Resources: []protocol.DescribeConfigsResource{{Type: protocol.ResourceBroker, Name: ""}}},
			&protocol.DescribeConfigsRequest{Resources: []protocol.DescribeConfigsResource{{Type: protocol.ResourceGroup, Name: "q"}}},
		},
		protocol.AlterConfigs: {
			&protocol.AlterConfigsRequest{Resources: []protocol.AlterConfigsResource{{Type: protocol.ResourceTopic, Name: "orders",
				Configs: []protocol.AlterableConfig{{Name: "retention.ms", Op: protocol.ConfigSet, Value: "1000"}}}}},
			&protocol.AlterConfigsRequest{Resources: []protocol.AlterConfigsResource{{Type: protocol.ResourceBroker, Name: "",
				Configs: []protocol.AlterableConfig{{Name: "auto.create.topics.enable", Op: protocol.ConfigSet, Value: "false"}}}}},
			&protocol.AlterConfigsRequest{Resources: []protocol.AlterConfigsResource{{Type: protocol.ResourceGroup, Name: "q",
				Configs: []protocol.AlterableConfig{{Name: "queue.lease.ms", Op: protocol.ConfigSet, Value: "1000"}}}}},
		},
		protocol.ElectLeaders:                {&protocol.ElectLeadersRequest{Topics: []string{"orders"}}},
		protocol.CreatePartitions:            {&protocol.CreatePartitionsRequest{Topics: []protocol.PartitionCount{{Name: "orders", Count: 2}}}},
		protocol.AlterPartitionReassignments: {&protocol.AlterPartitionReassignmentsRequest{Partitions: []protocol.Reassignment{{Topic: "orders", Partition: 0, Replicas: []int32{brokerID}}}}},
		protocol.ListPartitionReassignments:  {&protocol.ListPartitionReassignmentsRequest{}, &protocol.ListPartitionReassignmentsRequest{Topics: []string{"orders"}}},
		protocol.OffsetCommit: {&protocol.OffsetCommitRequest{GroupID: "g", MemberEpoch: -1, Topics: []protocol.OffsetCommitTopic{
			{Name: "orders", Partitions: []protocol.OffsetCommitPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}}},
		protocol.OffsetFetch: {&protocol.OffsetFetchRequest{GroupID: "g", MemberEpoch: -1, AllTopics: true},
			&protocol.OffsetFetchRequest{GroupID: "g", MemberEpoch: -1, Topics: topicPart}},
		protocol.FindCoordinator:              {&protocol.FindCoordinatorRequest{CoordinatorKey: "g"}},
		protocol.ListGroups:                   {&protocol.ListGroupsRequest{}},
		protocol.DeleteGroups:                 {&protocol.DeleteGroupsRequest{GroupIDs: []string{"g"}}},
		protocol.ConsumerGroupHeartbeat:       {&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"orders"}, RebalanceTimeoutMs: 30000}},
		protocol.ConsumerGroupDescribe:        {&protocol.ConsumerGroupDescribeRequest{GroupIDs: []string{"g"}}},
		protocol.DescribeAcls:                 {&protocol.DescribeAclsRequest{Filter: protocol.ACLBinding{ResourceType: int8(auth.ResourceAny), PatternType: int8(auth.PatternAny), Operation: int8(auth.OpAny), Permission: int8(auth.PermissionAny)}}},
		protocol.CreateAcls:                   {&protocol.CreateAclsRequest{ACLs: []protocol.ACLBinding{aclToWire(allow("User:bob", auth.ResourceTopic, "*", auth.OpAll))}}},
		protocol.DeleteAcls:                   {&protocol.DeleteAclsRequest{Filters: []protocol.ACLBinding{{ResourceType: int8(auth.ResourceAny), PatternType: int8(auth.PatternAny), Operation: int8(auth.OpAny), Permission: int8(auth.PermissionAny)}}}},
		protocol.DescribeUserScramCredentials: {&protocol.DescribeUserScramCredentialsRequest{}},
		protocol.AlterUserScramCredentials:    {&protocol.AlterUserScramCredentialsRequest{Deletions: []protocol.ScramDeletion{{User: "alice", Mechanism: string(auth.ScramSHA512)}}}},
		protocol.ControllerForward:            {&protocol.ControllerForwardRequest{Payload: []byte{1, 2, 3}}},
		protocol.DescribeCluster:              {&protocol.DescribeClusterRequest{}},
		protocol.AlterClusterMembership:       {&protocol.AlterClusterMembershipRequest{Op: protocol.MembershipRemoveVoter, BrokerID: brokerID}},
		protocol.DescribeReplicas:             {&protocol.DescribeReplicasRequest{ChecksumUpTo: -1}},
		protocol.QueueReceive:                 {&protocol.QueueReceiveRequest{GroupID: "q", MemberID: "bob-1", Topics: []string{"orders"}, MaxRecords: 10}},
		protocol.QueueAck: {&protocol.QueueAckRequest{GroupID: "q", MemberID: "admin-1", Acks: []protocol.QueueAckRange{
			{Topic: "orders", Partition: 0, FirstOffset: 0, LastOffset: 0, Outcome: protocol.QueueAccept}}}},
		protocol.DescribeQueueGroup: {&protocol.DescribeQueueGroupRequest{GroupID: "q"}},
		protocol.ResetQueueGroup:    {&protocol.ResetQueueGroupRequest{GroupID: "q", Partitions: []protocol.QueueResetPartition{{Topic: "orders", Partition: 0, Offset: 2}}}},
	}
}

// authzHides checks the answers of the keys that are not refused but
// answer only what the caller may see.
var authzHides = map[protocol.APIKey]func(protocol.Message) error{
	protocol.Metadata: func(m protocol.Message) error {
		for _, tm := range m.(*protocol.MetadataResponse).Topics {
			if tm.ErrorCode != protocol.ErrTopicAuthorizationFailed || len(tm.Partitions) != 0 {
				return fmt.Errorf("topic %s shown (code %v, %d partitions)", tm.Name, tm.ErrorCode, len(tm.Partitions))
			}
		}
		return nil
	},
	protocol.ListGroups: func(m protocol.Message) error {
		if g := m.(*protocol.ListGroupsResponse).Groups; len(g) != 0 {
			return fmt.Errorf("groups listed: %+v", g)
		}
		return nil
	},
}

// authzCodes are the refusals the coverage test accepts.
var authzCodes = []protocol.ErrorCode{protocol.ErrTopicAuthorizationFailed, protocol.ErrGroupAuthorizationFailed, protocol.ErrClusterAuthorizationFailed}

// errorCodes collects every ErrorCode field of a decoded response.
func errorCodes(v reflect.Value, out []protocol.ErrorCode) []protocol.ErrorCode {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			out = errorCodes(v.Elem(), out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			out = errorCodes(v.Field(i), out)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return out
		}
		for i := range v.Len() {
			out = errorCodes(v.Index(i), out)
		}
	case reflect.Int16:
		if v.Type() == reflect.TypeFor[protocol.ErrorCode]() {
			out = append(out, protocol.ErrorCode(v.Int()))
		}
	}
	return out
}

// loggedIn dials b and logs in as one of secureBroker's users.
func loggedIn(t *testing.T, b *Broker, user string) *testClient {
	t.Helper()
	c := dial(t, b.Addr())
	if code, _ := c.loginAs(auth.ScramSHA512, user, user+"-pw"); code != protocol.NoError {
		t.Fatalf("%s login: %v", user, code)
	}
	return c
}

// waitCoordinator waits until group's coordinator is loaded (the
// offsets topic is made on the first FindCoordinator).
func waitCoordinator(t *testing.T, c *testClient, group string) {
	t.Helper()
	poll.Until(t, 20*time.Second, "the coordinator of "+group, func() error {
		var co protocol.FindCoordinatorResponse
		c.call(&protocol.FindCoordinatorRequest{CoordinatorKey: group}, &co)
		return co.ErrorCode.Err()
	})
}

// callVersion sends req at version v and decodes the answer into resp.
func (c *testClient) callVersion(req protocol.Message, v int16, resp protocol.Message) error {
	c.t.Helper()
	c.corr++
	h := protocol.RequestHeader{Key: req.Key(), Version: v, CorrelationID: c.corr, ClientID: "test"}
	var err error
	if c.buf, err = protocol.AppendRequest(c.buf[:0], &h, req); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	c.write(c.buf)
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	frame, err := c.fr.Next()
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	got, body, err := protocol.ParseResponse(frame)
	if err != nil {
		return err
	}
	if got != c.corr {
		return fmt.Errorf("correlation id %d, want %d", got, c.corr)
	}
	return protocol.Decode(resp, body, v)
}

// TestAuthorizationCoversEveryAPI: with the authorizer on and no ACLs, an
// authenticated user who is not a super user is refused every API of the
// sluice protocol's table, at every version, with an authorization code
// (or, for Metadata and ListGroups, is shown nothing), but for the
// commented exemptions; and nothing he sent changed anything. A key added
// to the table later fails here until it has a probe (and a check) or an
// exemption.
func TestAuthorizationCoversEveryAPI(t *testing.T) {
	b := secureBroker(t, true)
	admin := loggedIn(t, b, "admin")
	admin.createTopic("orders", 1)
	admin.produce("orders", 0, protocol.AcksLeader, makeBatch(t, record.None, "a", 3, 0))
	// A consumer group g with a member and a commit, and a queue group q
	// holding a record: the resources bob's requests are about exist.
	var hb protocol.ConsumerGroupHeartbeatResponse
	waitCoordinator(t, admin, "g")
	poll.Until(t, 20*time.Second, "admin joins group g", func() error {
		admin.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"orders"}, RebalanceTimeoutMs: 30000}, &hb)
		return hb.ErrorCode.Err()
	})
	var oc protocol.OffsetCommitResponse
	admin.call(&protocol.OffsetCommitRequest{GroupID: "g", MemberID: hb.MemberID, MemberEpoch: hb.MemberEpoch, Topics: []protocol.OffsetCommitTopic{
		{Name: "orders", Partitions: []protocol.OffsetCommitPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}}, &oc)
	if codes := errorCodes(reflect.ValueOf(&oc), nil); slices.ContainsFunc(codes, func(c protocol.ErrorCode) bool { return c != protocol.NoError }) {
		t.Fatalf("admin commit: %+v", oc)
	}
	var qr protocol.QueueReceiveResponse
	poll.Until(t, 20*time.Second, "admin receives from queue group q", func() error {
		admin.call(&protocol.QueueReceiveRequest{GroupID: "q", MemberID: "admin-1", Topics: []string{"orders"}, MaxRecords: 1}, &qr)
		if qr.ErrorCode != protocol.NoError {
			return qr.ErrorCode.Err()
		}
		if len(qr.Partitions) == 0 {
			return fmt.Errorf("no record")
		}
		return nil
	})
	state := func() string {
		md := b.Metadata()
		var desc protocol.ConsumerGroupDescribeResponse
		admin.call(&protocol.ConsumerGroupDescribeRequest{GroupIDs: []string{"g"}}, &desc)
		var of protocol.OffsetFetchResponse
		admin.call(&protocol.OffsetFetchRequest{GroupID: "g", MemberEpoch: -1, AllTopics: true}, &of)
		var dq protocol.DescribeQueueGroupResponse
		admin.call(&protocol.DescribeQueueGroupRequest{GroupID: "q"}, &dq)
		for i := range dq.Partitions {
			dq.Partitions[i].OldestAcquiredMs = 0 // ages
		}
		var lr protocol.ListPartitionReassignmentsResponse
		admin.call(&protocol.ListPartitionReassignmentsRequest{}, &lr)
		topics := map[string]string{}
		for name, tp := range md.Topics {
			parts := slices.Clone(tp.Partitions)
			for i := range parts {
				// The leader reports its high watermarks to the
				// controller on its own schedule (R11), whoever asks.
				parts[i].CommittedHW = 0
			}
			topics[name] = fmt.Sprintf("%+v %v", parts, tp.Configs)
		}
		start, err := b.ListOffset(nil, "orders", 0, EarliestTimestamp)
		return fmt.Sprintf("topics %v\nusers %d acls %v configs %v\ngroup %+v\noffsets %+v\nqueue %+v\nmoves %+v\norders start %+v %v",
			topics, len(md.Users), md.ACLs, md.Configs, desc, of, dq, lr, start, err)
	}
	before := state()

	bob := loggedIn(t, b, "bob")
	probes := authzProbes(b.cfg.BrokerID)
	for _, api := range protocol.SupportedAPIs() {
		k := api.Key
		if why, ok := authzExempt[k]; ok {
			if _, probed := probes[k]; probed {
				t.Errorf("%v: both exempt (%s) and probed", k, why)
			}
			continue
		}
		reqs := probes[k]
		if len(reqs) == 0 {
			t.Errorf("%v: no probe: add a minimal request to authzProbes (and its check), or an exemption with its reason to authzExempt", k)
			continue
		}
		for v := api.Min; v <= api.Max; v++ {
			for i, req := range reqs {
				resp := protocol.NewResponse(k)
				if err := bob.callVersion(req, v, resp); err != nil {
					t.Fatalf("%v v%d request %d: %v", k, v, i, err)
				}
				if hides := authzHides[k]; hides != nil {
					if err := hides(resp); err != nil {
						t.Errorf("%v v%d request %d: shows what bob may not see: %v", k, v, i, err)
					}
					continue
				}
				codes := errorCodes(reflect.ValueOf(resp), nil)
				if !slices.ContainsFunc(codes, func(c protocol.ErrorCode) bool { return slices.Contains(authzCodes, c) }) {
					t.Errorf("%v v%d request %d: not refused: codes %v, response %+v", k, v, i, codes, resp)
				}
			}
		}
	}
	for k := range probes {
		if _, _, ok := k.Versions(); !ok {
			t.Errorf("probe for %v, a key not in the table", k)
		}
	}
	if after := state(); after != before {
		t.Errorf("bob's refused requests changed the cluster:\nbefore %s\nafter  %s", before, after)
	}
}

// The checks added for the newest APIs name the right resource and
// operation: each ACL below lets bob through the check of its request
// (what the request then answers does not matter here).
func TestAuthorizationGrantsNewestAPIs(t *testing.T) {
	b := secureBroker(t, true)
	admin := loggedIn(t, b, "admin")
	admin.createTopic("orders", 1)
	bob := loggedIn(t, b, "bob")
	cluster := func(op auth.Operation) auth.ACL { return allow("User:bob", auth.ResourceCluster, auth.ClusterName, op) }
	cases := []struct {
		acls []auth.ACL
		req  protocol.Message
	}{
		{[]auth.ACL{cluster(auth.OpAlterConfigs)}, &protocol.AlterConfigsRequest{ValidateOnly: true, Resources: []protocol.AlterConfigsResource{
			{Type: protocol.ResourceBroker, Configs: []protocol.AlterableConfig{{Name: "auto.create.topics.enable", Op: protocol.ConfigSet, Value: "false"}}}}}},
		{[]auth.ACL{cluster(auth.OpDescribeConfigs)}, &protocol.DescribeConfigsRequest{Resources: []protocol.DescribeConfigsResource{{Type: protocol.ResourceBroker}}}},
		{[]auth.ACL{allow("User:bob", auth.ResourceTopic, "orders", auth.OpAlter)},
			&protocol.CreatePartitionsRequest{ValidateOnly: true, Topics: []protocol.PartitionCount{{Name: "orders", Count: 2}}}},
		{[]auth.ACL{cluster(auth.OpAlter)}, &protocol.AlterPartitionReassignmentsRequest{Partitions: []protocol.Reassignment{{Topic: "orders", Partition: 0}}}},
		{[]auth.ACL{cluster(auth.OpDescribe)}, &protocol.ListPartitionReassignmentsRequest{}},
		{[]auth.ACL{allow("User:bob", auth.ResourceGroup, "q", auth.OpRead), allow("User:bob", auth.ResourceTopic, "orders", auth.OpRead)},
			&protocol.QueueReceiveRequest{GroupID: "q", MemberID: "bob-1", Topics: []string{"orders"}, MaxRecords: 1}},
		{[]auth.ACL{allow("User:bob", auth.ResourceGroup, "q", auth.OpDescribe)}, &protocol.DescribeQueueGroupRequest{GroupID: "q"}},
		{[]auth.ACL{allow("User:bob", auth.ResourceGroup, "q", auth.OpAlterConfigs)}, &protocol.AlterConfigsRequest{ValidateOnly: true, Resources: []protocol.AlterConfigsResource{
			{Type: protocol.ResourceGroup, Name: "q", Configs: []protocol.AlterableConfig{{Name: "queue.lease.ms", Op: protocol.ConfigSet, Value: "1000"}}}}}},
		{[]auth.ACL{allow("User:bob", auth.ResourceGroup, "q2", auth.OpDescribeConfigs)}, &protocol.DescribeConfigsRequest{Resources: []protocol.DescribeConfigsResource{{Type: protocol.ResourceGroup, Name: "q2"}}}},
	}
	for _, tc := range cases {
		for _, acl := range tc.acls {
			addACL(t, admin, acl)
		}
		resp := protocol.NewResponse(tc.req.Key())
		if err := bob.callVersion(tc.req, 0, resp); err != nil {
			t.Fatalf("%v: %v", tc.req.Key(), err)
		}
		if codes := errorCodes(reflect.ValueOf(resp), nil); slices.ContainsFunc(codes, func(c protocol.ErrorCode) bool { return slices.Contains(authzCodes, c) }) {
			t.Errorf("%v with %v: refused: %+v", tc.req.Key(), tc.acls, resp)
		}
	}
}

// OffsetFetch answers a group's offsets only of the topics the caller
// may describe: left out when all are asked for, refused when named.
func TestOffsetFetchHidesTopics(t *testing.T) {
	b := secureBroker(t, true)
	admin := loggedIn(t, b, "admin")
	admin.createTopic("orders", 1)
	waitCoordinator(t, admin, "g")
	poll.Until(t, 20*time.Second, "admin commits for group g", func() error {
		var oc protocol.OffsetCommitResponse
		admin.call(&protocol.OffsetCommitRequest{GroupID: "g", MemberEpoch: -1, Topics: []protocol.OffsetCommitTopic{
			{Name: "orders", Partitions: []protocol.OffsetCommitPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}}, &oc)
		if oc.ErrorCode != protocol.NoError {
			return oc.ErrorCode.Err()
		}
		return oc.Topics[0].Partitions[0].ErrorCode.Err()
	})
	addACL(t, admin, allow("User:bob", auth.ResourceGroup, "g", auth.OpDescribe))
	bob := loggedIn(t, b, "bob")
	var all protocol.OffsetFetchResponse
	bob.call(&protocol.OffsetFetchRequest{GroupID: "g", MemberEpoch: -1, AllTopics: true}, &all)
	if all.ErrorCode != protocol.NoError || len(all.Topics) != 0 {
		t.Fatalf("bob's offsets of g, all topics: %+v", all)
	}
	var named protocol.OffsetFetchResponse
	bob.call(&protocol.OffsetFetchRequest{GroupID: "g", MemberEpoch: -1, Topics: []protocol.TopicPartitions{{Topic: "orders", Partitions: []int32{0}}}}, &named)
	if len(named.Topics) != 1 || named.Topics[0].Partitions[0].ErrorCode != protocol.ErrTopicAuthorizationFailed || named.Topics[0].Partitions[0].Offset != -1 {
		t.Fatalf("bob's offsets of g, orders named: %+v", named)
	}
}

// A consumer group member needs describe on every topic its subscription
// names, besides read on the group.
func TestHeartbeatNeedsDescribeOnSubscribedTopics(t *testing.T) {
	b := secureBroker(t, true)
	admin := loggedIn(t, b, "admin")
	admin.createTopic("orders", 1)
	waitCoordinator(t, admin, "g")
	addACL(t, admin, allow("User:bob", auth.ResourceGroup, "g", auth.OpRead))
	bob := loggedIn(t, b, "bob")
	join := &protocol.ConsumerGroupHeartbeatRequest{GroupID: "g", SubscribedTopics: []string{"orders"}, RebalanceTimeoutMs: 30000}
	var hb protocol.ConsumerGroupHeartbeatResponse
	bob.call(join, &hb)
	if hb.ErrorCode != protocol.ErrTopicAuthorizationFailed {
		t.Fatalf("bob joins g subscribing to orders, without describe on it: %v", hb.ErrorCode)
	}
	addACL(t, admin, allow("User:bob", auth.ResourceTopic, "orders", auth.OpDescribe))
	poll.Until(t, 20*time.Second, "bob joins g", func() error {
		bob.call(join, &hb)
		return hb.ErrorCode.Err()
	})
}
