// Package protocol is the wire format between sluice clients and brokers:
// frames, request and response headers, the request and response types of
// every API, and the table of error codes.
//
// The format is sluice's own — Kafka-like in spirit, not Kafka-compatible.
// Everything is big-endian. A frame is an i32 length followed by that many
// bytes. A request frame holds api key i16, api version i16, correlation id
// i32, client id (i16 length, -1 = null) and the body; a response frame
// holds the correlation id i32 and the body. Requests on one connection are
// answered in order.
//
// The uniform error rule: every response body of every API and version
// begins with an i16 top-level error code, and a body that is exactly that
// code (non-zero) is a valid response to any request. A broker that cannot
// serve a request at all — unknown key, unsupported version — answers with
// such a body (AppendErrorResponse), and the client's decoder for the API
// it called recognises it without knowing anything else about the failure.
//
// Record sets travel as opaque bytes: the protocol never looks inside them.
// Decoded record bytes alias the frame buffer (zero copy), and a Fetch
// response can be encoded with holes where the broker writes each
// partition's records straight from the segment (FetchResponse.AppendSplitFrame).
//
// Each message type has Append (encode the body into a reusable buffer) and
// Decode (parse a body, reusing the struct's slices and strings, with every
// length checked against the bytes remaining before anything is allocated).
// Messages are not safe for concurrent use; neither is a Decoder, a
// FrameReader or a Conn (the blocking request/response connection brokers
// use between themselves). Everything else in the package is stateless.
package protocol

import (
	"fmt"
	"strings"
)

// APIKey identifies a request type. The numbers are Kafka's for the same
// API, which costs nothing and keeps traces readable.
type APIKey int16

// The APIs sluice speaks.
const (
	Produce              APIKey = 0
	Fetch                APIKey = 1
	ListOffsets          APIKey = 2
	Metadata             APIKey = 3
	APIVersions          APIKey = 18
	InitProducerID       APIKey = 22 // an idempotent producer's id and epoch (R13)
	CreateTopics         APIKey = 19
	DeleteTopics         APIKey = 20
	OffsetForLeaderEpoch APIKey = 23 // where an epoch ended in the leader's log: a follower's truncation point (R9)
	DescribeConfigs      APIKey = 32
	AlterConfigs         APIKey = 33
	ElectLeaders         APIKey = 43 // preferred-leader election
	DeleteRecords        APIKey = 21 // move partitions' log start offsets up (records.go)

	// Growing topics and moving partitions (reassign.go).
	CreatePartitions            APIKey = 37
	AlterPartitionReassignments APIKey = 45
	ListPartitionReassignments  APIKey = 46

	// Consumer groups (group.go).
	OffsetCommit           APIKey = 8
	OffsetFetch            APIKey = 9
	FindCoordinator        APIKey = 10
	ListGroups             APIKey = 16
	DeleteGroups           APIKey = 42
	ConsumerGroupHeartbeat APIKey = 68
	ConsumerGroupDescribe  APIKey = 69

	// Security administration (security.go).
	DescribeAcls                 APIKey = 29
	CreateAcls                   APIKey = 30
	DeleteAcls                   APIKey = 31
	DescribeUserScramCredentials APIKey = 50
	AlterUserScramCredentials    APIKey = 51

	// Authentication (sasl.go).
	SaslHandshake    APIKey = 17
	SaslAuthenticate APIKey = 36
)

// Internal APIs, spoken between brokers and by admin tools. Their keys
// start at InternalKeyBase, far above any key Kafka has assigned, so they
// can never collide with a Kafka API sluice adopts later.
const (
	// ControllerForward carries a metadata write from a broker that is not
	// the controller leader to the one that is (controller.Forwarder).
	ControllerForward APIKey = 1000
	// DescribeCluster reports the controller leader, the Raft voters and
	// non-voters, and every registered broker.
	DescribeCluster APIKey = 1001
	// DescribeReplicas reports the replicas one broker holds, with their
	// offsets and optionally a checksum of their logs.
	DescribeReplicas APIKey = 1002

	// The queue-group APIs (queue.go): sluice's own, so in this range
	// although clients speak them (Kafka's share-group APIs, 76-79,
	// differ in shape and may be adopted by the Kafka listener later).
	QueueReceive       APIKey = 1003
	QueueAck           APIKey = 1004
	DescribeQueueGroup APIKey = 1005
	ResetQueueGroup    APIKey = 1006

	// AlterClusterMembership removes a broker from the cluster, or
	// promotes or demotes a Raft voter (cluster.go).
	AlterClusterMembership APIKey = 1010
)

// InternalKeyBase is the first key of the internal APIs.
const InternalKeyBase APIKey = 1000

// apiInfo is one row of the API table. The "what" strings name the message
// in decode errors; keeping them here avoids building them per decode.
type apiInfo struct {
	name        string
	min, max    int16
	reqWhat     string
	respWhat    string
	newRequest  func() Message
	newResponse func() Message
}

// apiTable is the one table of APIs: key, name, supported versions and the
// message types. Indexed by key; rows with an empty name are unused keys.
var apiTable = [...]apiInfo{
	Produce:              row("Produce", 0, 0, func() Message { return new(ProduceRequest) }, func() Message { return new(ProduceResponse) }),
	Fetch:                row("Fetch", 0, 0, func() Message { return new(FetchRequest) }, func() Message { return new(FetchResponse) }),
	ListOffsets:          row("ListOffsets", 0, 0, func() Message { return new(ListOffsetsRequest) }, func() Message { return new(ListOffsetsResponse) }),
	Metadata:             row("Metadata", 0, 2, func() Message { return new(MetadataRequest) }, func() Message { return new(MetadataResponse) }),
	APIVersions:          row("ApiVersions", 0, 0, func() Message { return new(APIVersionsRequest) }, func() Message { return new(APIVersionsResponse) }),
	CreateTopics:         row("CreateTopics", 0, 0, func() Message { return new(CreateTopicsRequest) }, func() Message { return new(CreateTopicsResponse) }),
	DeleteTopics:         row("DeleteTopics", 0, 0, func() Message { return new(DeleteTopicsRequest) }, func() Message { return new(DeleteTopicsResponse) }),
	InitProducerID:       row("InitProducerId", 0, 0, func() Message { return new(InitProducerIDRequest) }, func() Message { return new(InitProducerIDResponse) }),
	OffsetForLeaderEpoch: row("OffsetForLeaderEpoch", 0, 0, func() Message { return new(OffsetForLeaderEpochRequest) }, func() Message { return new(OffsetForLeaderEpochResponse) }),
	DescribeConfigs:      row("DescribeConfigs", 0, 0, func() Message { return new(DescribeConfigsRequest) }, func() Message { return new(DescribeConfigsResponse) }),
	AlterConfigs:         row("AlterConfigs", 0, 0, func() Message { return new(AlterConfigsRequest) }, func() Message { return new(AlterConfigsResponse) }),
	ElectLeaders:         row("ElectLeaders", 0, 1, func() Message { return new(ElectLeadersRequest) }, func() Message { return new(ElectLeadersResponse) }),
	DeleteRecords:        row("DeleteRecords", 0, 0, func() Message { return new(DeleteRecordsRequest) }, func() Message { return new(DeleteRecordsResponse) }),

	CreatePartitions: row("CreatePartitions", 0, 0, func() Message { return new(CreatePartitionsRequest) }, func() Message { return new(CreatePartitionsResponse) }),
	AlterPartitionReassignments: row("AlterPartitionReassignments", 0, 0, func() Message { return new(AlterPartitionReassignmentsRequest) },
		func() Message { return new(AlterPartitionReassignmentsResponse) }),
	ListPartitionReassignments: row("ListPartitionReassignments", 0, 0, func() Message { return new(ListPartitionReassignmentsRequest) },
		func() Message { return new(ListPartitionReassignmentsResponse) }),

	OffsetCommit:           row("OffsetCommit", 0, 0, func() Message { return new(OffsetCommitRequest) }, func() Message { return new(OffsetCommitResponse) }),
	OffsetFetch:            row("OffsetFetch", 0, 0, func() Message { return new(OffsetFetchRequest) }, func() Message { return new(OffsetFetchResponse) }),
	FindCoordinator:        row("FindCoordinator", 0, 0, func() Message { return new(FindCoordinatorRequest) }, func() Message { return new(FindCoordinatorResponse) }),
	ListGroups:             row("ListGroups", 0, 0, func() Message { return new(ListGroupsRequest) }, func() Message { return new(ListGroupsResponse) }),
	DeleteGroups:           row("DeleteGroups", 0, 0, func() Message { return new(DeleteGroupsRequest) }, func() Message { return new(DeleteGroupsResponse) }),
	ConsumerGroupHeartbeat: row("ConsumerGroupHeartbeat", 0, 0, func() Message { return new(ConsumerGroupHeartbeatRequest) }, func() Message { return new(ConsumerGroupHeartbeatResponse) }),
	ConsumerGroupDescribe:  row("ConsumerGroupDescribe", 0, 0, func() Message { return new(ConsumerGroupDescribeRequest) }, func() Message { return new(ConsumerGroupDescribeResponse) }),

	DescribeAcls:                 row("DescribeAcls", 0, 0, func() Message { return new(DescribeAclsRequest) }, func() Message { return new(DescribeAclsResponse) }),
	CreateAcls:                   row("CreateAcls", 0, 0, func() Message { return new(CreateAclsRequest) }, func() Message { return new(CreateAclsResponse) }),
	DeleteAcls:                   row("DeleteAcls", 0, 0, func() Message { return new(DeleteAclsRequest) }, func() Message { return new(DeleteAclsResponse) }),
	DescribeUserScramCredentials: row("DescribeUserScramCredentials", 0, 0, func() Message { return new(DescribeUserScramCredentialsRequest) }, func() Message { return new(DescribeUserScramCredentialsResponse) }),
	AlterUserScramCredentials:    row("AlterUserScramCredentials", 0, 0, func() Message { return new(AlterUserScramCredentialsRequest) }, func() Message { return new(AlterUserScramCredentialsResponse) }),

	SaslHandshake:    row("SaslHandshake", 0, 0, func() Message { return new(SaslHandshakeRequest) }, func() Message { return new(SaslHandshakeResponse) }),
	SaslAuthenticate: row("SaslAuthenticate", 0, 0, func() Message { return new(SaslAuthenticateRequest) }, func() Message { return new(SaslAuthenticateResponse) }),
}

// internalTable is the API table of the internal keys, indexed by key
// minus InternalKeyBase.
var internalTable = [...]apiInfo{
	ControllerForward - InternalKeyBase: row("ControllerForward", 0, 0, func() Message { return new(ControllerForwardRequest) }, func() Message { return new(ControllerForwardResponse) }),
	DescribeCluster - InternalKeyBase:   row("DescribeCluster", 0, 2, func() Message { return new(DescribeClusterRequest) }, func() Message { return new(DescribeClusterResponse) }),
	DescribeReplicas - InternalKeyBase:  row("DescribeReplicas", 0, 4, func() Message { return new(DescribeReplicasRequest) }, func() Message { return new(DescribeReplicasResponse) }),

	QueueReceive - InternalKeyBase:       row("QueueReceive", 0, 2, func() Message { return new(QueueReceiveRequest) }, func() Message { return new(QueueReceiveResponse) }),
	QueueAck - InternalKeyBase:           row("QueueAck", 0, 0, func() Message { return new(QueueAckRequest) }, func() Message { return new(QueueAckResponse) }),
	DescribeQueueGroup - InternalKeyBase: row("DescribeQueueGroup", 0, 0, func() Message { return new(DescribeQueueGroupRequest) }, func() Message { return new(DescribeQueueGroupResponse) }),
	ResetQueueGroup - InternalKeyBase:    row("ResetQueueGroup", 0, 0, func() Message { return new(ResetQueueGroupRequest) }, func() Message { return new(ResetQueueGroupResponse) }),

	AlterClusterMembership - InternalKeyBase: row("AlterClusterMembership", 0, 1, func() Message { return new(AlterClusterMembershipRequest) },
		func() Message { return new(AlterClusterMembershipResponse) }),
}

func row(name string, min, max int16, req, resp func() Message) apiInfo {
	what := strings.ToLower(name) // error strings start in lower case
	return apiInfo{name: name, min: min, max: max, reqWhat: what + " request", respWhat: what + " response",
		newRequest: req, newResponse: resp}
}

func (k APIKey) info() *apiInfo {
	var a *apiInfo
	switch {
	case k >= 0 && int(k) < len(apiTable):
		a = &apiTable[k]
	case k >= InternalKeyBase && int(k-InternalKeyBase) < len(internalTable):
		a = &internalTable[k-InternalKeyBase]
	default:
		return nil
	}
	if a.name == "" {
		return nil
	}
	return a
}

// String returns the API's name (Fetch), or ApiKey(n) for an unknown key.
func (k APIKey) String() string {
	if a := k.info(); a != nil {
		return a.name
	}
	return fmt.Sprintf("ApiKey(%d)", int16(k))
}

// Versions returns the range of versions this build supports for k; ok is
// false for an unknown key.
func (k APIKey) Versions() (min, max int16, ok bool) {
	if a := k.info(); a != nil {
		return a.min, a.max, true
	}
	return 0, 0, false
}

// Supports reports whether this build can decode and encode version v of k.
func (k APIKey) Supports(v int16) bool {
	a := k.info()
	return a != nil && v >= a.min && v <= a.max
}

// SupportedAPIs lists every API with its version range, in key order: the
// body of an ApiVersions response.
func SupportedAPIs() []APIVersionRange {
	var out []APIVersionRange
	for k := range apiTable {
		if a := &apiTable[k]; a.name != "" {
			out = append(out, APIVersionRange{Key: APIKey(k), Min: a.min, Max: a.max})
		}
	}
	for k := range internalTable {
		if a := &internalTable[k]; a.name != "" {
			out = append(out, APIVersionRange{Key: InternalKeyBase + APIKey(k), Min: a.min, Max: a.max})
		}
	}
	return out
}

// NewRequest returns a zero request of type k, or nil for an unknown key.
func NewRequest(k APIKey) Message {
	if a := k.info(); a != nil {
		return a.newRequest()
	}
	return nil
}

// NewResponse returns a zero response of type k, or nil for an unknown key.
func NewResponse(k APIKey) Message {
	if a := k.info(); a != nil {
		return a.newResponse()
	}
	return nil
}

// Message is implemented by every request and response type.
type Message interface {
	// Key is the API the message belongs to.
	Key() APIKey
	// Append encodes the body at the given version onto dst. The version
	// must be one Key supports (AppendRequest and AppendResponse check).
	Append(dst []byte, version int16) []byte
	// Decode parses the body held by d at the given version into the
	// message, reusing its slices and strings. Bytes fields alias d's input.
	Decode(d *Decoder, version int16) error
}

// Decode parses body into m at the given version with a fresh Decoder. A
// connection decoding many messages keeps its own Decoder and calls
// m.Decode to avoid the allocation.
func Decode(m Message, body []byte, version int16) error {
	var d Decoder
	d.Reset(body)
	return m.Decode(&d, version)
}

// begin names the message for errors and checks the version.
func (d *Decoder) beginMessage(k APIKey, response bool, version int16) error {
	a := k.info()
	d.what = a.reqWhat
	if response {
		d.what = a.respWhat
	}
	d.depth = 0
	if version < a.min || version > a.max {
		d.err = fmt.Errorf("%s v%d: %w", d.what, version, ErrUnsupportedVersion)
	}
	return d.err
}

// errorOnly implements the uniform error rule for response decoders: it
// reads the top-level error code and reports whether the body is nothing
// but a non-zero code, in which case the decoder clears the rest of the
// response and stops.
func (d *Decoder) errorOnly(code *ErrorCode) bool {
	*code = ErrorCode(d.int16("error_code"))
	return d.err == nil && d.Remaining() == 0 && *code != NoError
}
