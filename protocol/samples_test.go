package protocol

import (
	"bytes"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
)

// sampleRequests and sampleResponses hold one filled-in message per API:
// fuzz seeds and fixtures for the frame tests.
func sampleRequests() []Message {
	return []Message{
		&ProduceRequest{Acks: AcksAll, TimeoutMs: 30000, Topics: []ProduceTopic{
			{Name: "orders", Partitions: []ProducePartition{{Partition: 0, Records: []byte("batch-0")}, {Partition: 3, Records: nil}}},
			{Name: "audit", Partitions: []ProducePartition{{Partition: 1, Records: []byte{}}}},
		}},
		&FetchRequest{ReplicaID: -1, ReplicaEpoch: -1, MaxWaitMs: 500, MinBytes: 1, MaxBytes: 50 << 20, Isolation: ReadCommitted,
			Topics: []FetchTopic{{Name: "orders", Partitions: []FetchPartition{{Partition: 2, CurrentLeaderEpoch: 7, FetchOffset: 1234, LogStartOffset: -1, PartitionMaxBytes: 1 << 20}}}}},
		&ListOffsetsRequest{ReplicaID: -1, Topics: []ListOffsetsTopic{{Name: "orders", Partitions: []ListOffsetsPartition{
			{Partition: 0, CurrentLeaderEpoch: 3, Timestamp: LatestTimestamp}, {Partition: 1, CurrentLeaderEpoch: -1, Timestamp: EarliestTimestamp}}}}},
		&MetadataRequest{Topics: []string{"orders", "audit"}},
		&MetadataRequest{AllTopics: true},
		&APIVersionsRequest{},
		&CreateTopicsRequest{Topics: []CreatableTopic{{Name: "orders", Partitions: 12, ReplicationFactor: 3,
			Configs: []Config{{"retention.ms", "86400000"}, {"min.insync.replicas", "2"}}}}, TimeoutMs: 5000, ValidateOnly: true},
		&DeleteTopicsRequest{Topics: []string{"old"}, TimeoutMs: 5000},
		&DeleteRecordsRequest{Topics: []DeleteRecordsTopic{{Name: "orders", Partitions: []DeleteRecordsPartition{{Partition: 0, Offset: 1200}, {Partition: 2, Offset: -1}}}},
			TimeoutMs: 5000},
		&DescribeConfigsRequest{Resources: []DescribeConfigsResource{{Type: ResourceTopic, Name: "orders", ConfigNames: []string{"retention.ms"}}}},
		&AlterConfigsRequest{Resources: []AlterConfigsResource{{Type: ResourceTopic, Name: "orders",
			Configs: []AlterableConfig{{Name: "retention.ms", Op: ConfigSet, Value: "1000"}, {Name: "cleanup.policy", Op: ConfigDelete}}}}},
		&ControllerForwardRequest{Payload: []byte{1, 2, 0, 5}},
		&DescribeClusterRequest{},
		&OffsetForLeaderEpochRequest{ReplicaID: 2, Topics: []OffsetForLeaderEpochTopic{{Name: "orders", Partitions: []OffsetForLeaderEpochPartition{
			{Partition: 0, CurrentLeaderEpoch: 5, LeaderEpoch: 4}, {Partition: 3, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}},
		&DescribeReplicasRequest{Topics: []string{"orders"}, ChecksumUpTo: 2000},
		&DescribeReplicasRequest{ChecksumUpTo: -1},
		&ElectLeadersRequest{Topics: []string{"orders", "audit"}, TimeoutMs: 5000},
		&ElectLeadersRequest{TimeoutMs: 5000},
		&CreatePartitionsRequest{Topics: []PartitionCount{{Name: "orders", Count: 24}}, TimeoutMs: 5000, ValidateOnly: true},
		&AlterPartitionReassignmentsRequest{TimeoutMs: 5000, Partitions: []Reassignment{{Topic: "orders", Partition: 3, Replicas: []int32{2, 3, 4}},
			{Topic: "orders", Partition: 4}}},
		&ListPartitionReassignmentsRequest{Topics: []string{"orders"}},
		&InitProducerIDRequest{ProducerID: -1, ProducerEpoch: -1},
		&InitProducerIDRequest{ProducerID: 1_000_042, ProducerEpoch: 3},
		&FindCoordinatorRequest{CoordinatorKey: "payments", KeyType: CoordinatorGroup},
		&ConsumerGroupHeartbeatRequest{GroupID: "payments", MemberEpoch: MemberEpochJoin, RebalanceTimeoutMs: 300000,
			SubscribedTopics: []string{"orders"}, SubscribedTopicRegex: "^audit-.*$", Assignor: "uniform"},
		&ConsumerGroupHeartbeatRequest{GroupID: "payments", MemberID: "m-1", MemberEpoch: 7, InstanceID: "host-a",
			RebalanceTimeoutMs: 300000, SubscribedTopics: []string{"orders"},
			OwnedPartitions: []TopicPartitions{{Topic: "orders", Partitions: []int32{0, 3}}}},
		&OffsetCommitRequest{GroupID: "payments", MemberID: "m-1", MemberEpoch: 7, Topics: []OffsetCommitTopic{{Name: "orders",
			Partitions: []OffsetCommitPartition{{Partition: 0, Offset: 1500, LeaderEpoch: 4, Metadata: "host-a"}}}}},
		&OffsetFetchRequest{GroupID: "payments", MemberEpoch: MemberEpochAdmin, Topics: []TopicPartitions{{Topic: "orders", Partitions: []int32{0, 1}}}},
		&OffsetFetchRequest{GroupID: "payments", MemberEpoch: MemberEpochAdmin, AllTopics: true},
		&ListGroupsRequest{States: []string{"stable"}},
		&ConsumerGroupDescribeRequest{GroupIDs: []string{"payments", "audit"}},
		&DeleteGroupsRequest{GroupIDs: []string{"old"}},
		&CreateAclsRequest{ACLs: []ACLBinding{{ResourceType: 2, Name: "orders", PatternType: 3, Principal: "User:alice", Host: "*", Operation: 4, Permission: 3}}},
		&DeleteAclsRequest{Filters: []ACLBinding{{ResourceType: 1, PatternType: 1, Principal: "User:alice", Operation: 1, Permission: 1}}},
		&DescribeAclsRequest{Filter: ACLBinding{ResourceType: 2, Name: "orders", PatternType: 1, Operation: 1, Permission: 1}},
		&DescribeUserScramCredentialsRequest{Users: []string{"alice"}},
		&AlterUserScramCredentialsRequest{Upsertions: []ScramUpsertion{{User: "alice", Mechanism: "SCRAM-SHA-256", Iterations: 8192,
			Salt: []byte("salt"), StoredKey: bytes.Repeat([]byte{1}, 32), ServerKey: bytes.Repeat([]byte{2}, 32)}},
			Deletions: []ScramDeletion{{User: "bob", Mechanism: "SCRAM-SHA-512"}}},
		&QueueReceiveRequest{GroupID: "workers", MemberID: "m-1", Topics: []string{"jobs"}, MaxRecords: 100, MaxWaitMs: 500},
		&QueueAckRequest{GroupID: "workers", MemberID: "m-1", Acks: []QueueAckRange{
			{Topic: "jobs", Partition: 0, FirstOffset: 10, LastOffset: 19, Outcome: QueueAccept},
			{Topic: "jobs", Partition: 0, FirstOffset: 20, LastOffset: 20, Outcome: QueueRelease, DelayMs: 5000},
			{Topic: "jobs", Partition: 1, FirstOffset: 7, LastOffset: 7, Outcome: QueueReject, Reason: "bad json"}}},
		&DescribeQueueGroupRequest{GroupID: "workers"},
		&ResetQueueGroupRequest{GroupID: "workers", Partitions: []QueueResetPartition{{Topic: "jobs", Partition: 0, Offset: 42}}},
		&AlterClusterMembershipRequest{Op: MembershipRemoveVoter, BrokerID: 3, TimeoutMs: 30000},
		&SaslHandshakeRequest{Mechanism: "SCRAM-SHA-512"},
		&SaslAuthenticateRequest{AuthBytes: []byte("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL")},
	}
}

func sampleResponses() []Message {
	return []Message{
		&ProduceResponse{ThrottleMs: 5, Topics: []ProduceTopicResponse{{Name: "orders", Partitions: []ProducePartitionResponse{
			{Partition: 0, BaseOffset: 100, LogAppendTime: -1, LogStartOffset: 0},
			{Partition: 3, ErrorCode: ErrNotLeaderOrFollower, ErrorMessage: "leader is 2", BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1}}}}},
		&FetchResponse{Topics: []FetchTopicResponse{{Name: "orders", Partitions: []FetchPartitionResponse{
			{Partition: 2, HighWatermark: 2000, LastStableOffset: 2000, LogStartOffset: 0, Records: []byte("some batches")},
			{Partition: 5, ErrorCode: ErrOffsetOutOfRange, HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1}}}}},
		&ListOffsetsResponse{Topics: []ListOffsetsTopicResponse{{Name: "orders", Partitions: []ListOffsetsPartitionResponse{
			{Partition: 0, Timestamp: -1, Offset: 2000, LeaderEpoch: 3}}}}},
		&MetadataResponse{Brokers: []BrokerMetadata{{ID: 1, Host: "b1", Port: 9092, Rack: "r1"}, {ID: 2, Host: "b2", Port: 9092}},
			ClusterID: "c-1", ControllerID: 1, Topics: []TopicMetadata{{Name: "orders", Partitions: []PartitionMetadata{
				{Partition: 0, Leader: 1, LeaderEpoch: 4, Replicas: []int32{1, 2}, ISR: []int32{1}, OfflineReplicas: []int32{2},
					Note: "leader elected by a balanced recovery at leader epoch 4: may lack 12 committed offsets"}}}}},
		&APIVersionsResponse{APIs: SupportedAPIs()},
		&CreateTopicsResponse{Topics: []TopicError{{Name: "orders"}, {Name: "dup", ErrorCode: ErrTopicAlreadyExists, ErrorMessage: "exists"}}},
		&DeleteTopicsResponse{Topics: []TopicError{{Name: "old", ErrorCode: ErrUnknownTopicOrPartition}}},
		&DescribeConfigsResponse{Resources: []DescribeConfigsResult{{Type: ResourceTopic, Name: "orders",
			Configs: []ConfigEntry{{Name: "retention.ms", Value: "86400000", IsDefault: true}, {Name: "secret", Sensitive: true, ReadOnly: true}}}}},
		&AlterConfigsResponse{Resources: []ResourceError{{ErrorCode: ErrInvalidConfig, ErrorMessage: "bad value", Type: ResourceTopic, Name: "orders"}}},
		&ControllerForwardResponse{Payload: []byte{1, 0, 0, 0, 0, 0, 2}},
		&DescribeClusterResponse{ClusterID: "c-1", ControllerID: 2, RaftTerm: 7,
			Servers: []RaftServer{{ID: 1, RaftAddr: "b1:7093", Voter: true}, {ID: 4, RaftAddr: "b4:7093"}},
			Brokers: []ClusterBroker{{ID: 1, Addr: "b1:7092", Rack: "r1", RaftAddr: "b1:7093", Epoch: 3, State: BrokerStateAlive},
				{ID: 4, Addr: "b4:7092", RaftAddr: "b4:7093", Epoch: 1, State: BrokerStateOffline}},
			CommandLevel: 8, CommandVersions: []NodeCommandVersions{{ID: 1, Min: 3, Max: 9}, {ID: 4}}},
		&OffsetForLeaderEpochResponse{ThrottleMs: 1, Topics: []OffsetForLeaderEpochTopicResult{{Name: "orders", Partitions: []EpochEndOffset{
			{Partition: 0, LeaderEpoch: 4, EndOffset: 1500},
			{Partition: 3, ErrorCode: ErrFencedLeaderEpoch, LeaderEpoch: -1, EndOffset: -1}}}}},
		&DescribeReplicasResponse{BrokerID: 3, Replicas: []ReplicaInfo{
			{Topic: "orders", Partition: 0, Leader: true, LeaderEpoch: 4, StartOffset: 0, EndOffset: 2000, HighWatermark: 1990,
				SyncedOffset: 2000, Checksum: 0xdeadbeef, ChecksumEnd: 1990},
			{Topic: "orders", Partition: 1, ErrorCode: ErrStorageError, ErrorMessage: "log offline: write: no space left on device",
				StartOffset: -1, EndOffset: -1, HighWatermark: -1, SyncedOffset: -1, ChecksumEnd: -1},
			{Topic: "accounts", Partition: 0, LeaderEpoch: 2, EndOffset: 500, HighWatermark: 500, SyncedOffset: 500, ChecksumEnd: -1,
				Compacted: true, CleanBytes: 4096, DirtyBytes: 1024, LastCleanMs: 1_700_000_000_000, CleanerFailures: 2,
				CleanerError: "log cleaner: no space left on device"}},
			ControllerStoreError: "controller store failed: store raft log: no space left on device"},
		&ElectLeadersResponse{Results: []ElectionResult{{Topic: "orders", Partition: 0, Leader: 1},
			{Topic: "orders", Partition: 1, ErrorCode: ErrElectionNotNeeded, Leader: 2},
			{Topic: "orders", Partition: 2, ErrorCode: ErrPreferredLeaderNotAvailable, Message: "broker 3 not in the ISR", Leader: 1}}},
		&InitProducerIDResponse{ThrottleMs: 2, ProducerID: 1_000_042, ProducerEpoch: 4},
		&QueueReceiveResponse{LeaseMs: 30000, Partitions: []QueuePartitionRecords{{Topic: "jobs", Partition: 0, Records: []QueueRecord{
			{Offset: 10, Deliveries: 1, Timestamp: 1_700_000_000_000, Key: []byte("k"), Value: []byte("v"), Headers: []QueueHeader{{Key: "h", Value: []byte("x")}}},
			{Offset: 11, Deliveries: 3, Timestamp: 1_700_000_000_001, Value: []byte{}}}}}},
		&QueueAckResponse{Failures: []QueueAckFailure{{Topic: "jobs", Partition: 0, FirstOffset: 20, LastOffset: 21, ErrorCode: ErrQueueLeaseLost, ErrorMessage: "lease lost"}}},
		&DescribeQueueGroupResponse{LeaseMs: 30000, Partitions: []QueuePartitionState{{Topic: "jobs", Partition: 0, StartOffset: 10, EndOffset: 30,
			Available: 3, Acquired: 5, Accepted: 12, DeadLettered: 2, OldestAcquiredMs: 1200, AtCap: true}}},
		&ResetQueueGroupResponse{ErrorCode: ErrGroupIDNotFound, ErrorMessage: "no such group"},
		&DeleteRecordsResponse{Topics: []DeleteRecordsTopicResponse{{Name: "orders", Partitions: []DeleteRecordsPartitionResponse{
			{Partition: 0, LowWatermark: 1200}, {Partition: 2, ErrorCode: ErrOffsetOutOfRange, ErrorMessage: "above the high watermark 90", LowWatermark: -1}}}}},
		&AlterClusterMembershipResponse{ErrorCode: ErrInvalidRequest, ErrorMessage: "broker 3 still holds replicas"},
		&CreatePartitionsResponse{Topics: []TopicError{{Name: "orders"}, {Name: "audit", ErrorCode: ErrInvalidPartitions, ErrorMessage: "12, topic has 24"}}},
		&AlterPartitionReassignmentsResponse{Results: []PartitionResult{{Topic: "orders", Partition: 3},
			{Topic: "orders", Partition: 4, ErrorCode: ErrNoReassignmentInProgress, Message: "orders-4"}}},
		&ListPartitionReassignmentsResponse{BrokerID: 2, Partitions: []MovingPartition{
			{Topic: "orders", Partition: 3, Leader: 2, Replicas: []int32{2, 3, 4, 1}, Adding: []int32{4}, Removing: []int32{1},
				Progress: true, LeaderEnd: 1 << 33, Positions: []int64{1 << 20}, BytesRemaining: 1 << 40},
			{Topic: "orders", Partition: 5, Leader: 1, Replicas: []int32{4, 2, 3}, Adding: []int32{4}, Removing: []int32{1}},
			{Topic: "orders", Partition: 6, Leader: 1, Replicas: []int32{1, 2, 3}, Queued: []int32{2, 3, 4}}}},
		&SaslHandshakeResponse{Mechanisms: []string{"SCRAM-SHA-256", "SCRAM-SHA-512"}},
		&SaslAuthenticateResponse{ErrorCode: ErrSaslAuthenticationFailed, ErrorMessage: "authentication failed"},
		&SaslAuthenticateResponse{AuthBytes: []byte("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")},
	}
}

// allKeys lists every API in the table.
func allKeys() []APIKey {
	var ks []APIKey
	for _, r := range SupportedAPIs() {
		ks = append(ks, r.Key)
	}
	return ks
}

// randomMessage fills a message of m's type with random values. Fields
// whose random values have no encoding of their own are fixed up.
func randomMessage(t *testing.T, m Message, rng *rand.Rand) Message {
	v, ok := quick.Value(reflect.TypeOf(m).Elem(), rng)
	if !ok {
		t.Fatalf("quick.Value cannot fill %T", m)
	}
	p := reflect.New(v.Type())
	p.Elem().Set(v)
	out := p.Interface().(Message)
	if r, ok := out.(*MetadataRequest); ok && r.AllTopics {
		r.Topics = nil // a null array has no elements
	}
	if r, ok := out.(*OffsetFetchRequest); ok && r.AllTopics {
		r.Topics = nil
	}
	return out
}

// sameValue compares like reflect.DeepEqual but treats nil and empty
// slices as equal: a decoded zero-count array is nil, or a reused empty
// slice.
func sameValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Pointer:
		return sameValue(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		if a.Type().Elem().Kind() == reflect.Uint8 {
			return bytes.Equal(a.Bytes(), b.Bytes())
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	default:
		return a.Interface() == b.Interface()
	}
}

func same(a, b Message) bool { return sameValue(reflect.ValueOf(a), reflect.ValueOf(b)) }

// errorCodeOf and setErrorCode reach the top-level ErrorCode every
// response type has.
func errorCodeOf(m Message) ErrorCode {
	return ErrorCode(reflect.ValueOf(m).Elem().FieldByName("ErrorCode").Int())
}

func setErrorCode(m Message, c ErrorCode) {
	reflect.ValueOf(m).Elem().FieldByName("ErrorCode").SetInt(int64(c))
}

// fresh returns a zero message of m's type.
func fresh(m Message) Message { return reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message) }
