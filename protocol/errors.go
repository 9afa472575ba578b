package protocol

import (
	"errors"
	"fmt"
)

// ErrorCode is a protocol error code as carried in responses. The numbers
// are Kafka's wherever Kafka has the same condition, so operators can look
// them up in familiar places; sluice-only conditions would take numbers
// above Kafka's range.
//
// An ErrorCode is itself an error so that it serves as the sentinel for
// errors.Is: errors.Is(err, protocol.ErrNotLeaderOrFollower) is true for any
// *Error carrying that code. Convert a code from a response with Err, which
// maps NoError to nil; never return a bare NoError as an error.
type ErrorCode int16

// The error codes. Each has one row in codeTable.
const (
	ErrUnknownServerError           ErrorCode = -1
	NoError                         ErrorCode = 0
	ErrOffsetOutOfRange             ErrorCode = 1
	ErrCorruptMessage               ErrorCode = 2
	ErrUnknownTopicOrPartition      ErrorCode = 3
	ErrInvalidFetchSize             ErrorCode = 4
	ErrLeaderNotAvailable           ErrorCode = 5
	ErrNotLeaderOrFollower          ErrorCode = 6
	ErrRequestTimedOut              ErrorCode = 7
	ErrBrokerNotAvailable           ErrorCode = 8
	ErrReplicaNotAvailable          ErrorCode = 9
	ErrMessageTooLarge              ErrorCode = 10
	ErrNetwork                      ErrorCode = 13
	ErrCoordinatorLoadInProgress    ErrorCode = 14
	ErrCoordinatorNotAvailable      ErrorCode = 15
	ErrNotCoordinator               ErrorCode = 16
	ErrInvalidTopic                 ErrorCode = 17
	ErrRecordListTooLarge           ErrorCode = 18
	ErrNotEnoughReplicas            ErrorCode = 19
	ErrNotEnoughReplicasAfterAppend ErrorCode = 20
	ErrInvalidRequiredAcks          ErrorCode = 21
	ErrIllegalGeneration            ErrorCode = 22
	ErrUnknownMemberID              ErrorCode = 25
	ErrRebalanceInProgress          ErrorCode = 27
	ErrTopicAuthorizationFailed     ErrorCode = 29
	ErrClusterAuthorizationFailed   ErrorCode = 31
	ErrInvalidTimestamp             ErrorCode = 32
	ErrUnsupportedVersion           ErrorCode = 35
	ErrTopicAlreadyExists           ErrorCode = 36
	ErrInvalidPartitions            ErrorCode = 37
	ErrInvalidReplicationFactor     ErrorCode = 38
	ErrInvalidReplicaAssignment     ErrorCode = 39
	ErrInvalidConfig                ErrorCode = 40
	ErrNotController                ErrorCode = 41
	ErrInvalidRequest               ErrorCode = 42
	ErrPolicyViolation              ErrorCode = 44
	ErrOutOfOrderSequenceNumber     ErrorCode = 45
	ErrDuplicateSequenceNumber      ErrorCode = 46
	ErrInvalidProducerEpoch         ErrorCode = 47
	ErrStorageError                 ErrorCode = 56
	ErrUnknownProducerID            ErrorCode = 59
	ErrFencedLeaderEpoch            ErrorCode = 74
	ErrUnknownLeaderEpoch           ErrorCode = 75
	ErrUnsupportedCompressionType   ErrorCode = 76
	ErrStaleBrokerEpoch             ErrorCode = 77
	ErrOffsetNotAvailable           ErrorCode = 78
	ErrPreferredLeaderNotAvailable  ErrorCode = 80
	ErrEligibleLeadersNotAvailable  ErrorCode = 83
	ErrElectionNotNeeded            ErrorCode = 84
	ErrInvalidRecord                ErrorCode = 87
	ErrThrottlingQuotaExceeded      ErrorCode = 89
	ErrProducerFenced               ErrorCode = 90
	ErrOffsetMetadataTooLarge       ErrorCode = 12
	ErrInvalidGroupID               ErrorCode = 24
	ErrNonEmptyGroup                ErrorCode = 68
	ErrGroupIDNotFound              ErrorCode = 69
	ErrGroupMaxSizeReached          ErrorCode = 81
	ErrFencedInstanceID             ErrorCode = 82
	ErrFencedMemberEpoch            ErrorCode = 110
	ErrUnreleasedInstanceID         ErrorCode = 111
	ErrUnsupportedAssignor          ErrorCode = 112
	ErrStaleMemberEpoch             ErrorCode = 113
	ErrInvalidRegularExpression     ErrorCode = 130
	ErrSecurityDisabled             ErrorCode = 54
	ErrInvalidPrincipalType         ErrorCode = 67
	ErrResourceNotFound             ErrorCode = 91
	ErrUnacceptableCredential       ErrorCode = 93
	// The classic group protocol's (the Kafka listener's groups).
	ErrInconsistentGroupProtocol ErrorCode = 23
	ErrInvalidSessionTimeout     ErrorCode = 26
	ErrMemberIDRequired          ErrorCode = 79
	ErrInvalidRecordState        ErrorCode = 121 // a queue outcome for an offset never delivered to the group, or done
	// ErrQueueLeaseLost is sluice's own: a queue outcome for a record this
	// member no longer holds (its lease ran out; the later delivery wins).
	// The Kafka listener answers it as INVALID_RECORD_STATE.
	ErrQueueLeaseLost           ErrorCode = 1000
	ErrReassignmentInProgress   ErrorCode = 60
	ErrNoReassignmentInProgress ErrorCode = 85
	ErrGroupAuthorizationFailed ErrorCode = 30
	ErrUnsupportedSaslMechanism ErrorCode = 33
	ErrIllegalSaslState         ErrorCode = 34
	ErrSaslAuthenticationFailed ErrorCode = 58
)

// codeInfo is one row of the error table.
//
// maybeWritten marks the indeterminate codes of R14: a produce answered with
// one of them may or may not have been appended (and may yet be committed),
// so a client must not treat it as "not written" — it retries only with
// idempotence (R13) and a checker counts the record as possibly present. A
// broker must answer a produce it did append with an indeterminate code,
// never a definite one, even when the reason (say, lost leadership while
// waiting for acks) also has a definite code. Conversely a produce refused
// before any byte was written gets a definite code: STORAGE_ERROR is for
// an append the storage failure hit (part of it may be in the log), while
// an append refused because the leader's log was already offline (after a
// full disk or an I/O error) is answered NOT_LEADER_OR_FOLLOWER: nothing
// was written, and the client's metadata refresh finds the leader the
// controller elected in its place.
type codeInfo struct {
	name         string
	retriable    bool
	maybeWritten bool
	message      string
}

// codeTable is the one table of error codes, shared by broker and client.
var codeTable = map[ErrorCode]codeInfo{
	ErrUnknownServerError:           {"UNKNOWN_SERVER_ERROR", false, true, "the server hit an unexpected error"},
	NoError:                         {"NONE", false, false, "no error"},
	ErrOffsetOutOfRange:             {"OFFSET_OUT_OF_RANGE", false, false, "the requested offset is outside the partition's range"},
	ErrCorruptMessage:               {"CORRUPT_MESSAGE", true, false, "a record batch failed its CRC or framing checks"},
	ErrUnknownTopicOrPartition:      {"UNKNOWN_TOPIC_OR_PARTITION", true, false, "this server does not host the topic-partition"},
	ErrInvalidFetchSize:             {"INVALID_FETCH_SIZE", false, false, "the requested fetch size is invalid"},
	ErrLeaderNotAvailable:           {"LEADER_NOT_AVAILABLE", true, false, "the partition has no leader right now (election in progress)"},
	ErrNotLeaderOrFollower:          {"NOT_LEADER_OR_FOLLOWER", true, false, "this server is not the leader (or a follower) of the partition"},
	ErrRequestTimedOut:              {"REQUEST_TIMED_OUT", true, true, "the request timed out; it may have been applied"},
	ErrBrokerNotAvailable:           {"BROKER_NOT_AVAILABLE", true, false, "the broker is not available"},
	ErrReplicaNotAvailable:          {"REPLICA_NOT_AVAILABLE", true, false, "the replica is not available"},
	ErrMessageTooLarge:              {"MESSAGE_TOO_LARGE", false, false, "a record batch is larger than the configured maximum"},
	ErrNetwork:                      {"NETWORK_EXCEPTION", true, true, "the connection failed before the response arrived"},
	ErrCoordinatorLoadInProgress:    {"COORDINATOR_LOAD_IN_PROGRESS", true, false, "the coordinator is loading its state"},
	ErrCoordinatorNotAvailable:      {"COORDINATOR_NOT_AVAILABLE", true, false, "the coordinator is not available"},
	ErrNotCoordinator:               {"NOT_COORDINATOR", true, false, "this server is not the coordinator"},
	ErrInvalidTopic:                 {"INVALID_TOPIC_EXCEPTION", false, false, "the topic name is invalid or the topic is internal"},
	ErrRecordListTooLarge:           {"RECORD_LIST_TOO_LARGE", false, false, "the record set of a partition is larger than the maximum"},
	ErrNotEnoughReplicas:            {"NOT_ENOUGH_REPLICAS", true, false, "too few in-sync replicas; the batch was not appended"},
	ErrNotEnoughReplicasAfterAppend: {"NOT_ENOUGH_REPLICAS_AFTER_APPEND", true, true, "the batch was appended but too few in-sync replicas confirmed it"},
	ErrInvalidRequiredAcks:          {"INVALID_REQUIRED_ACKS", false, false, "acks must be -1, 0 or 1"},
	ErrIllegalGeneration:            {"ILLEGAL_GENERATION", false, false, "the group generation is not current"},
	ErrUnknownMemberID:              {"UNKNOWN_MEMBER_ID", false, false, "the member id is not known to the coordinator"},
	ErrRebalanceInProgress:          {"REBALANCE_IN_PROGRESS", false, false, "the group is rebalancing"},
	ErrTopicAuthorizationFailed:     {"TOPIC_AUTHORIZATION_FAILED", false, false, "not authorized for the topic"},
	ErrClusterAuthorizationFailed:   {"CLUSTER_AUTHORIZATION_FAILED", false, false, "not authorized for the cluster"},
	ErrInvalidTimestamp:             {"INVALID_TIMESTAMP", false, false, "a timestamp is out of the acceptable range"},
	ErrUnsupportedVersion:           {"UNSUPPORTED_VERSION", false, false, "the API key or version is not supported"},
	ErrTopicAlreadyExists:           {"TOPIC_ALREADY_EXISTS", false, false, "the topic already exists"},
	ErrInvalidPartitions:            {"INVALID_PARTITIONS", false, false, "the number of partitions is invalid"},
	ErrInvalidReplicationFactor:     {"INVALID_REPLICATION_FACTOR", false, false, "the replication factor is invalid"},
	ErrInvalidReplicaAssignment:     {"INVALID_REPLICA_ASSIGNMENT", false, false, "the replica assignment is invalid"},
	ErrInvalidConfig:                {"INVALID_CONFIG", false, false, "a configuration value is invalid"},
	ErrNotController:                {"NOT_CONTROLLER", true, false, "this server is not the controller"},
	ErrInvalidRequest:               {"INVALID_REQUEST", false, false, "the request is malformed or inconsistent"},
	ErrPolicyViolation:              {"POLICY_VIOLATION", false, false, "the request violates a configured policy"},
	ErrOutOfOrderSequenceNumber:     {"OUT_OF_ORDER_SEQUENCE_NUMBER", false, false, "the producer sequence number is out of order"},
	ErrDuplicateSequenceNumber:      {"DUPLICATE_SEQUENCE_NUMBER", false, false, "the producer sequence number is a duplicate"},
	ErrInvalidProducerEpoch:         {"INVALID_PRODUCER_EPOCH", false, false, "the producer epoch is stale"},
	ErrStorageError:                 {"STORAGE_ERROR", true, true, "the replica's storage failed; the batch may have been written"},
	ErrUnknownProducerID:            {"UNKNOWN_PRODUCER_ID", false, false, "the producer id is not known to the broker"},
	ErrFencedLeaderEpoch:            {"FENCED_LEADER_EPOCH", true, false, "the request's leader epoch is older than the broker's"},
	ErrUnknownLeaderEpoch:           {"UNKNOWN_LEADER_EPOCH", true, false, "the request's leader epoch is newer than the broker's"},
	ErrUnsupportedCompressionType:   {"UNSUPPORTED_COMPRESSION_TYPE", false, false, "the compression codec is not supported"},
	ErrStaleBrokerEpoch:             {"STALE_BROKER_EPOCH", false, false, "the broker epoch is stale"},
	ErrOffsetNotAvailable:           {"OFFSET_NOT_AVAILABLE", true, false, "the offset is not available yet (leader catching up)"},
	ErrPreferredLeaderNotAvailable:  {"PREFERRED_LEADER_NOT_AVAILABLE", true, false, "the preferred leader is not alive or not in the ISR"},
	ErrEligibleLeadersNotAvailable:  {"ELIGIBLE_LEADERS_NOT_AVAILABLE", true, false, "no replica eligible for leadership is available"},
	ErrElectionNotNeeded:            {"ELECTION_NOT_NEEDED", false, false, "the preferred replica already leads the partition"},
	ErrInvalidRecord:                {"INVALID_RECORD", false, false, "a record failed validation"},
	ErrThrottlingQuotaExceeded:      {"THROTTLING_QUOTA_EXCEEDED", true, false, "a quota was exceeded"},
	ErrProducerFenced:               {"PRODUCER_FENCED", false, false, "a newer producer with the same id is active"},
	ErrOffsetMetadataTooLarge:       {"OFFSET_METADATA_TOO_LARGE", false, false, "the committed offset's metadata is longer than the broker accepts"},
	ErrInvalidGroupID:               {"INVALID_GROUP_ID", false, false, "the group id is empty or invalid"},
	ErrNonEmptyGroup:                {"NON_EMPTY_GROUP", false, false, "the group still has members"},
	ErrGroupIDNotFound:              {"GROUP_ID_NOT_FOUND", false, false, "the group does not exist"},
	ErrGroupMaxSizeReached:          {"GROUP_MAX_SIZE_REACHED", false, false, "the group has as many members as it may"},
	ErrFencedInstanceID:             {"FENCED_INSTANCE_ID", false, false, "another member took this static instance id"},
	ErrFencedMemberEpoch:            {"FENCED_MEMBER_EPOCH", false, false, "the member epoch is fenced: drop the partitions and join again"},
	ErrUnreleasedInstanceID:         {"UNRELEASED_INSTANCE_ID", false, false, "the static instance id is still held by a member"},
	ErrUnsupportedAssignor:          {"UNSUPPORTED_ASSIGNOR", false, false, "the assignor is not known to the coordinator"},
	ErrStaleMemberEpoch:             {"STALE_MEMBER_EPOCH", false, false, "the member epoch is older than the coordinator's; heartbeat and retry"},
	ErrInvalidRegularExpression:     {"INVALID_REGULAR_EXPRESSION", false, false, "the topic regular expression does not compile"},
	ErrSecurityDisabled:             {"SECURITY_DISABLED", false, false, "security features are disabled"},
	ErrInvalidPrincipalType:         {"INVALID_PRINCIPAL_TYPE", false, false, "the principal type is not supported"},
	ErrResourceNotFound:             {"RESOURCE_NOT_FOUND", false, false, "the resource does not exist"},
	ErrUnacceptableCredential:       {"UNACCEPTABLE_CREDENTIAL", false, false, "the credential is not acceptable"},
	ErrInconsistentGroupProtocol:    {"INCONSISTENT_GROUP_PROTOCOL", false, false, "the group's protocol type or protocols do not match the request's"},
	ErrInvalidSessionTimeout:        {"INVALID_SESSION_TIMEOUT", false, false, "the session timeout is outside the broker's bounds"},
	ErrMemberIDRequired:             {"MEMBER_ID_REQUIRED", false, false, "join again with the member id given"},
	ErrInvalidRecordState:           {"INVALID_RECORD_STATE", false, false, "the offset was not delivered to this queue group (or is done)"},
	ErrQueueLeaseLost:               {"QUEUE_LEASE_LOST", false, false, "the record's lease was lost: it is not held by this member (a later delivery wins)"},
	ErrReassignmentInProgress:       {"REASSIGNMENT_IN_PROGRESS", false, false, "the partition is moving; cancel its move first"},
	ErrNoReassignmentInProgress:     {"NO_REASSIGNMENT_IN_PROGRESS", false, false, "the partition is not moving"},
	ErrGroupAuthorizationFailed:     {"GROUP_AUTHORIZATION_FAILED", false, false, "not authorized for the group"},
	ErrUnsupportedSaslMechanism:     {"UNSUPPORTED_SASL_MECHANISM", false, false, "the SASL mechanism is not offered by this listener"},
	ErrIllegalSaslState:             {"ILLEGAL_SASL_STATE", false, false, "the SASL request is not expected in the connection's state"},
	ErrSaslAuthenticationFailed:     {"SASL_AUTHENTICATION_FAILED", false, false, "authentication failed: unknown user, wrong password or unsupported mechanism"},
}

func (c ErrorCode) info() (codeInfo, bool) {
	ci, ok := codeTable[c]
	return ci, ok
}

// String returns the code's name (NOT_LEADER_OR_FOLLOWER), or
// UNKNOWN_CODE(n) for a code not in the table.
func (c ErrorCode) String() string {
	if ci, ok := c.info(); ok {
		return ci.name
	}
	return fmt.Sprintf("UNKNOWN_CODE(%d)", int16(c))
}

// Message is the code's human-readable description.
func (c ErrorCode) Message() string {
	if ci, ok := c.info(); ok {
		return ci.message
	}
	return "error code unknown to this client"
}

// Error makes a code usable as an errors.Is target. See ErrorCode.
func (c ErrorCode) Error() string { return c.String() + ": " + c.Message() }

// Retriable reports whether the same request may succeed if sent again,
// possibly after refreshing metadata. Unknown codes are not retriable.
func (c ErrorCode) Retriable() bool {
	ci, _ := c.info()
	return ci.retriable
}

// Indeterminate reports whether a produce answered with c may have been
// appended (R14). Codes unknown to this client are indeterminate: assuming
// "not written" for a code we cannot interpret could lose a record's trace.
func (c ErrorCode) Indeterminate() bool {
	ci, ok := c.info()
	return !ok || ci.maybeWritten
}

// Err returns nil for NoError and an *Error with no detail otherwise.
func (c ErrorCode) Err() error {
	if c == NoError {
		return nil
	}
	return &Error{Code: c}
}

// ErrWithDetail is Err with the server's per-item message attached.
func (c ErrorCode) ErrWithDetail(detail string) error {
	if c == NoError {
		return nil
	}
	return &Error{Code: c, Detail: detail}
}

// Error is a protocol error returned by a broker: a code and, when the
// response carried one, the server's message.
type Error struct {
	Code   ErrorCode
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Code.Error()
	}
	return e.Code.Error() + ": " + e.Detail
}

// Retriable reports whether the request may succeed if sent again.
func (e *Error) Retriable() bool { return e.Code.Retriable() }

// Indeterminate reports whether the failed write may have been applied
// (R14); false means the broker definitely did not append it.
func (e *Error) Indeterminate() bool { return e.Code.Indeterminate() }

// Is makes errors.Is(err, code) true for the code e carries.
func (e *Error) Is(target error) bool {
	c, ok := target.(ErrorCode)
	return ok && c == e.Code
}

// ErrMalformed matches (errors.Is) every decoding failure; the concrete type
// is *MalformedError. A broker closes the connection on a malformed request:
// after one, the stream's framing can no longer be trusted to mean anything.
var ErrMalformed = errors.New("malformed message")

// MalformedError says which message and which field failed to decode and
// why, e.g. "fetch request: topics[0].partitions: count 1000000 exceeds
// remaining 12 bytes".
type MalformedError struct {
	What   string // "fetch request"
	Field  string // "topics[0].partitions"
	Reason string
}

func (e *MalformedError) Error() string {
	if e.Field == "" {
		return e.What + ": " + e.Reason
	}
	return e.What + ": " + e.Field + ": " + e.Reason
}

// Is makes errors.Is(err, ErrMalformed) true.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

// ErrFrameSize matches (errors.Is) a frame whose length prefix is negative
// or above the reader's maximum; the concrete type is *FrameSizeError. The
// connection must be closed: the rest of the stream cannot be re-synchronised.
var ErrFrameSize = errors.New("frame size out of range")

// FrameSizeError reports a refused frame length prefix.
type FrameSizeError struct {
	Length int64 // as declared on the wire
	Max    int
}

func (e *FrameSizeError) Error() string {
	if e.Length < 0 {
		return fmt.Sprintf("frame length %d is negative", e.Length)
	}
	return fmt.Sprintf("frame length %d exceeds the maximum of %d", e.Length, e.Max)
}

// Is makes errors.Is(err, ErrFrameSize) true.
func (e *FrameSizeError) Is(target error) bool { return target == ErrFrameSize }
