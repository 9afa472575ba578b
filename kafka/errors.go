package kafka

import (
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// kafkaError is one row of the error table: the Kafka code a sluice code
// is answered with, and whether Kafka's clients retry it.
type kafkaError struct {
	code      int16
	retriable bool
}

// errorTable maps every code the broker core answers with to Kafka's.
// sluice took Kafka's numbers for Kafka's conditions (protocol/errors.go),
// so each row keeps the number; the table is where that is checked
// (TestErrorTableMatchesKafka compares the retriable column with
// franz-go's kerr, Kafka's semantics) and where a sluice-only code would
// be translated. Produce answers keep R14: the indeterminate codes
// (REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS_AFTER_APPEND, KAFKA_STORAGE_ERROR,
// UNKNOWN_SERVER_ERROR) are ones Kafka clients also treat as "may have
// been written" and retry only with idempotence.
var errorTable = map[protocol.ErrorCode]kafkaError{
	protocol.ErrUnknownServerError:           {-1, false},
	protocol.NoError:                         {0, false},
	protocol.ErrOffsetOutOfRange:             {1, false},
	protocol.ErrCorruptMessage:               {2, true},
	protocol.ErrUnknownTopicOrPartition:      {3, true},
	protocol.ErrInvalidFetchSize:             {4, false},
	protocol.ErrLeaderNotAvailable:           {5, true},
	protocol.ErrNotLeaderOrFollower:          {6, true},
	protocol.ErrRequestTimedOut:              {7, true},
	protocol.ErrBrokerNotAvailable:           {8, true},
	protocol.ErrReplicaNotAvailable:          {9, true},
	protocol.ErrMessageTooLarge:              {10, false},
	protocol.ErrNetwork:                      {13, true},
	protocol.ErrCoordinatorLoadInProgress:    {14, true},
	protocol.ErrCoordinatorNotAvailable:      {15, true},
	protocol.ErrNotCoordinator:               {16, true},
	protocol.ErrInvalidTopic:                 {17, false},
	protocol.ErrRecordListTooLarge:           {18, false},
	protocol.ErrNotEnoughReplicas:            {19, true},
	protocol.ErrNotEnoughReplicasAfterAppend: {20, true},
	protocol.ErrInvalidRequiredAcks:          {21, false},
	protocol.ErrIllegalGeneration:            {22, false},
	protocol.ErrUnknownMemberID:              {25, false},
	protocol.ErrRebalanceInProgress:          {27, false},
	protocol.ErrTopicAuthorizationFailed:     {29, false},
	protocol.ErrClusterAuthorizationFailed:   {31, false},
	protocol.ErrInvalidTimestamp:             {32, false},
	protocol.ErrUnsupportedVersion:           {35, false},
	protocol.ErrTopicAlreadyExists:           {36, false},
	protocol.ErrInvalidPartitions:            {37, false},
	protocol.ErrInvalidReplicationFactor:     {38, false},
	protocol.ErrInvalidReplicaAssignment:     {39, false},
	protocol.ErrInvalidConfig:                {40, false},
	protocol.ErrNotController:                {41, true},
	protocol.ErrInvalidRequest:               {42, false},
	protocol.ErrPolicyViolation:              {44, false},
	protocol.ErrOutOfOrderSequenceNumber:     {45, false},
	protocol.ErrDuplicateSequenceNumber:      {46, false},
	protocol.ErrInvalidProducerEpoch:         {47, false},
	protocol.ErrStorageError:                 {56, true},
	protocol.ErrUnknownProducerID:            {59, false},
	protocol.ErrFencedLeaderEpoch:            {74, true},
	protocol.ErrUnknownLeaderEpoch:           {75, true},
	protocol.ErrUnsupportedCompressionType:   {76, false},
	protocol.ErrStaleBrokerEpoch:             {77, false},
	protocol.ErrOffsetNotAvailable:           {78, true},
	protocol.ErrPreferredLeaderNotAvailable:  {80, true},
	protocol.ErrEligibleLeadersNotAvailable:  {83, true},
	protocol.ErrElectionNotNeeded:            {84, true},
	protocol.ErrInvalidRecord:                {87, false},
	protocol.ErrThrottlingQuotaExceeded:      {89, true},
	protocol.ErrProducerFenced:               {90, false},
	// Groups and security (codes the sluice protocol carries the same).
	protocol.ErrOffsetMetadataTooLarge:   {12, false},
	protocol.ErrInvalidGroupID:           {24, false},
	protocol.ErrSecurityDisabled:         {54, false},
	protocol.ErrInvalidPrincipalType:     {67, false},
	protocol.ErrNonEmptyGroup:            {68, false},
	protocol.ErrGroupIDNotFound:          {69, false},
	protocol.ErrGroupMaxSizeReached:      {81, false},
	protocol.ErrFencedInstanceID:         {82, false},
	protocol.ErrResourceNotFound:         {91, false},
	protocol.ErrUnacceptableCredential:   {93, false},
	protocol.ErrReassignmentInProgress:   {60, false},
	protocol.ErrNoReassignmentInProgress: {85, false},
	protocol.ErrFencedMemberEpoch:        {110, false},
	protocol.ErrUnreleasedInstanceID:     {111, false},
	protocol.ErrUnsupportedAssignor:      {112, false},
	protocol.ErrStaleMemberEpoch:         {113, false},
	protocol.ErrInvalidRecordState:       {121, false},
	protocol.ErrQueueLeaseLost:           {121, false}, // sluice's own code: Kafka's share groups say INVALID_RECORD_STATE
	protocol.ErrInvalidRegularExpression: {130, false},
	// The classic group protocol's.
	protocol.ErrInconsistentGroupProtocol: {23, false},
	protocol.ErrInvalidSessionTimeout:     {26, false},
	protocol.ErrMemberIDRequired:          {79, false},
	protocol.ErrGroupAuthorizationFailed:  {30, false},
	protocol.ErrUnsupportedSaslMechanism:  {33, false},
	protocol.ErrIllegalSaslState:          {34, false},
	protocol.ErrSaslAuthenticationFailed:  {58, false},
}

// errorCode is the Kafka code and message a response carries for err
// (nil: 0 and no message). A code missing from the table is answered
// UNKNOWN_SERVER_ERROR with the code's name in the message.
func errorCode(err error) (int16, *string) {
	if err == nil {
		return 0, nil
	}
	code, detail := broker.ErrorCode(err)
	row, ok := errorTable[code]
	if !ok {
		row = errorTable[protocol.ErrUnknownServerError]
		detail = code.String() + ": " + detail
	}
	if detail == "" {
		detail = code.Message()
	}
	return row.code, &detail
}

// codeOf is errorCode without the message.
func codeOf(err error) int16 {
	c, _ := errorCode(err)
	return c
}
