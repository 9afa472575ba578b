package broker

import (
	"context"
	"errors"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/replica"
)

// ErrorCode returns the protocol error code and the message a front end
// answers err with. It is the broker's one mapping from the errors of the
// core and of the layers below it (log, replica, controller, context) to
// codes; every front end calls it rather than keeping its own. The codes
// are Kafka's numbers, so the Kafka front end answers with them as they
// are. A nil err is NoError.
//
// An error the core already decided the code of (a *protocol.Error, or a
// bare protocol.ErrorCode) keeps it: that is how the core says, for
// example, that a produce failed after appending (R14).
func ErrorCode(err error) (protocol.ErrorCode, string) {
	if err == nil {
		return protocol.NoError, ""
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code, pe.Detail
	}
	var code protocol.ErrorCode
	if errors.As(err, &code) {
		if code == protocol.NoError {
			return protocol.ErrUnknownServerError, err.Error()
		}
		if err == error(code) {
			return code, "" // the code says it all
		}
		return code, err.Error()
	}
	return codeFor(err), err.Error()
}

// groupCodes maps the group coordinator's refusals to their codes.
var groupCodes = map[group.Error]protocol.ErrorCode{
	group.ErrInvalidGroupID:            protocol.ErrInvalidGroupID,
	group.ErrInvalidRequest:            protocol.ErrInvalidRequest,
	group.ErrUnknownMemberID:           protocol.ErrUnknownMemberID,
	group.ErrFencedMemberEpoch:         protocol.ErrFencedMemberEpoch,
	group.ErrStaleMemberEpoch:          protocol.ErrStaleMemberEpoch,
	group.ErrInvalidRegularExpression:  protocol.ErrInvalidRegularExpression,
	group.ErrUnsupportedAssignor:       protocol.ErrUnsupportedAssignor,
	group.ErrGroupIDNotFound:           protocol.ErrGroupIDNotFound,
	group.ErrNonEmptyGroup:             protocol.ErrNonEmptyGroup,
	group.ErrGroupMaxSizeReached:       protocol.ErrGroupMaxSizeReached,
	group.ErrOffsetMetadataTooLarge:    protocol.ErrOffsetMetadataTooLarge,
	group.ErrIllegalGeneration:         protocol.ErrIllegalGeneration,
	group.ErrRebalanceInProgress:       protocol.ErrRebalanceInProgress,
	group.ErrInconsistentGroupProtocol: protocol.ErrInconsistentGroupProtocol,
	group.ErrInvalidSessionTimeout:     protocol.ErrInvalidSessionTimeout,
	group.ErrMemberIDRequired:          protocol.ErrMemberIDRequired,
	group.ErrFencedInstanceID:          protocol.ErrFencedInstanceID,
}

// codeFor is the table behind ErrorCode for errors that carry no code.
func codeFor(err error) protocol.ErrorCode {
	var ge group.Error
	if errors.As(err, &ge) {
		if code, ok := groupCodes[ge]; ok {
			return code
		}
	}
	switch {
	// Queue groups.
	case errors.Is(err, group.ErrLeaseLost):
		return protocol.ErrQueueLeaseLost
	case errors.Is(err, group.ErrNotDelivered):
		return protocol.ErrInvalidRecordState
	case errors.Is(err, group.ErrQueueGroupNotFound):
		return protocol.ErrGroupIDNotFound
	// Storage.
	case errors.Is(err, log.ErrOffline):
		return protocol.ErrStorageError
	case errors.Is(err, log.ErrClosed):
		return protocol.ErrNotLeaderOrFollower
	case errors.Is(err, log.ErrOffsetOutOfRange):
		return protocol.ErrOffsetOutOfRange
	case errors.Is(err, record.ErrCorrupt):
		return protocol.ErrCorruptMessage
	// Replication.
	case errors.Is(err, replica.ErrNotEnoughReplicas):
		return protocol.ErrNotEnoughReplicas
	case errors.Is(err, replica.ErrNotLeader):
		return protocol.ErrNotLeaderOrFollower
	case errors.Is(err, replica.ErrStaleBrokerEpoch):
		return protocol.ErrStaleBrokerEpoch
	// Cluster metadata.
	case errors.Is(err, controller.ErrTopicExists):
		return protocol.ErrTopicAlreadyExists
	case errors.Is(err, controller.ErrUnknownTopic):
		return protocol.ErrUnknownTopicOrPartition
	case errors.Is(err, controller.ErrInvalidTopic):
		return protocol.ErrInvalidTopic
	case errors.Is(err, controller.ErrInvalidPartitions):
		return protocol.ErrInvalidPartitions
	case errors.Is(err, controller.ErrInvalidReplicationFactor):
		return protocol.ErrInvalidReplicationFactor
	case errors.Is(err, controller.ErrInvalidConfig):
		return protocol.ErrInvalidConfig
	case errors.Is(err, controller.ErrStalePartitionEpoch), errors.Is(err, controller.ErrStaleBrokerEpoch):
		return protocol.ErrStaleBrokerEpoch
	case errors.Is(err, controller.ErrInvalidPartition):
		return protocol.ErrEligibleLeadersNotAvailable
	case errors.Is(err, controller.ErrInvalidReassignment), errors.Is(err, controller.ErrUnknownBroker):
		return protocol.ErrInvalidReplicaAssignment
	case errors.Is(err, controller.ErrNoReassignment):
		return protocol.ErrNoReassignmentInProgress
	case errors.Is(err, controller.ErrReassignmentInProgress):
		return protocol.ErrReassignmentInProgress
	case errors.Is(err, controller.ErrInvalidCredential):
		return protocol.ErrUnacceptableCredential
	case errors.Is(err, controller.ErrUnknownUser):
		return protocol.ErrResourceNotFound
	case errors.Is(err, controller.ErrInvalidACL), errors.Is(err, controller.ErrMembershipChange), errors.Is(err, controller.ErrBrokerRemoved),
		errors.Is(err, controller.ErrCommandVersion):
		return protocol.ErrInvalidRequest
	case errors.Is(err, controller.ErrClosed):
		return protocol.ErrBrokerNotAvailable
	case errors.Is(err, controller.ErrLeadershipLost), errors.Is(err, controller.ErrNoLeader):
		// Retriable; a lost leadership leaves the outcome unknown, as a
		// timeout does.
		return protocol.ErrRequestTimedOut
	// Waits.
	case errors.Is(err, context.DeadlineExceeded):
		return protocol.ErrRequestTimedOut
	case errors.Is(err, context.Canceled):
		return protocol.ErrBrokerNotAvailable
	}
	return protocol.ErrUnknownServerError
}

// afterAppend is the error of a produce that failed after the leader
// appended some or all of its batches: whatever the cause, its code is
// indeterminate (R14), since the batches may yet be committed. Losing the
// ISR or the leadership while waiting is NOT_ENOUGH_REPLICAS_AFTER_APPEND
// (retriable); a wait cut short is REQUEST_TIMED_OUT.
func afterAppend(err error) error {
	if err == nil {
		return nil
	}
	code, _ := ErrorCode(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		code = protocol.ErrRequestTimedOut
	case code == protocol.ErrNotEnoughReplicas, code == protocol.ErrNotLeaderOrFollower:
		code = protocol.ErrNotEnoughReplicasAfterAppend
	case !code.Indeterminate():
		code = protocol.ErrUnknownServerError
	}
	return &protocol.Error{Code: code, Detail: err.Error()}
}
