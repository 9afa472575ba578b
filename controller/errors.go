package controller

import (
	"context"
	"errors"

	"github.com/hashicorp/raft"
)

// The controller's errors, which callers branch on with errors.Is. They are
// listed in the order of errorCodes, the table that carries them across a
// forwarded write, so a new one is added at the end of both. The broker
// maps them to protocol codes in one place (broker's adminErrorCode).
var (
	// ErrTopicExists: CreateTopic of a name that is taken.
	ErrTopicExists = errors.New("topic already exists")
	// ErrUnknownTopic: the named topic does not exist.
	ErrUnknownTopic = errors.New("unknown topic")
	// ErrInvalidTopic matches every topic name validation error.
	ErrInvalidTopic = errors.New("invalid topic name")
	// ErrInvalidPartitions: a partition count outside 1 to MaxPartitions.
	ErrInvalidPartitions = errors.New("invalid partition count")
	// ErrInvalidReplicationFactor: fewer than one replica, more than the
	// alive brokers, or a broker twice in a replica list.
	ErrInvalidReplicationFactor = errors.New("invalid replication factor")
	// ErrInvalidConfig matches every config validation error.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrUnknownBroker: the command names a broker that is not registered.
	ErrUnknownBroker = errors.New("unknown broker")
	// ErrStaleBrokerEpoch: the command carries a broker epoch older than
	// the registered one (R10).
	ErrStaleBrokerEpoch = errors.New("stale broker epoch")
	// ErrUnknownPartition: the command names a partition that does not
	// exist.
	ErrUnknownPartition = errors.New("unknown partition")
	// ErrStalePartitionEpoch: a partition change proposed against a
	// state that has changed since (another partition epoch, or the topic
	// created again under its name).
	ErrStalePartitionEpoch = errors.New("stale partition epoch")
	// ErrInvalidPartition: a partition change the rules refuse (an empty
	// ISR, an ISR member that is not a replica, a leader outside the ISR
	// or not alive).
	ErrInvalidPartition = errors.New("invalid partition change")
	// ErrInvalidBroker: a broker registration the rules refuse.
	ErrInvalidBroker = errors.New("invalid broker registration")
	// ErrCorrupt matches every error from decoding commands, forwarded
	// requests and snapshots.
	ErrCorrupt = errors.New("corrupt metadata encoding")
	// ErrNotLeader: the node asked to run a write is not the Raft leader.
	// The write was not proposed; retrying on the leader is safe.
	ErrNotLeader = errors.New("not the controller leader")
	// ErrNoLeader: no controller leader is known (an election is running,
	// or this node cannot reach a quorum).
	ErrNoLeader = errors.New("no controller leader")
	// ErrClosed: the node is closed.
	ErrClosed = errors.New("metadata store closed")
	// ErrLeaderUnreachable: a Forwarder could not send the request (the
	// connection failed before it was written). Nothing was proposed; the
	// node retries until its context ends.
	ErrLeaderUnreachable = errors.New("controller leader unreachable")
	// ErrLeadershipLost: the leader lost its leadership while committing
	// the write, which may or may not have been applied (Raft's error).
	ErrLeadershipLost = raft.ErrLeadershipLost
	// ErrBrokerIDInUse: a registration from another data directory while
	// the id is registered alive (two brokers configured with one id).
	ErrBrokerIDInUse = errors.New("broker id in use")
	// ErrInvalidProducerIDs: an AllocateProducerIDs count outside 1 to
	// MaxProducerIDBlock.
	ErrInvalidProducerIDs = errors.New("invalid producer id block size")
	// ErrProducerIDsExhausted: the block would pass the largest int64
	// producer id. Nothing was allocated.
	ErrProducerIDsExhausted = errors.New("producer ids exhausted")
	// ErrInvalidCredential: a SCRAM credential or user name that cannot
	// be stored.
	ErrInvalidCredential = errors.New("invalid credential")
	// ErrUnknownUser: no credential of that user and mechanism.
	ErrUnknownUser = errors.New("unknown user")
	// ErrInvalidACL: an ACL that cannot be stored.
	ErrInvalidACL = errors.New("invalid ACL")
	// ErrInvalidReassignment: a move the rules refuse (a target of
	// another replication factor or naming an unknown broker, or a cancel
	// that would leave no original replica in the ISR).
	ErrInvalidReassignment = errors.New("invalid reassignment")
	// ErrNoReassignment: a cancel of a partition that is not moving.
	ErrNoReassignment = errors.New("no reassignment in progress")
	// ErrReassignmentInProgress: a new target for a partition that is
	// moving; cancel its move first.
	ErrReassignmentInProgress = errors.New("reassignment in progress")
	// ErrMembershipChange: a cluster membership change the rules refuse
	// (removing a broker that is alive or holds replicas, promoting a
	// broker that is not an alive non-voter, a voter change that would
	// leave the Raft group without a majority of live voters). The
	// message says why; nothing was changed.
	ErrMembershipChange = errors.New("membership change refused")
	// ErrBrokerRemoved: a registration from the data directory of a
	// broker an operator removed (UnregisterBroker).
	ErrBrokerRemoved = errors.New("broker removed from the cluster")
	// ErrCommandVersion: a command the cluster's finalized command
	// version does not allow yet, a raise of it some node does not
	// support or a lowering, or a node whose build lacks the finalized
	// version (features.go). Nothing was proposed or changed.
	ErrCommandVersion = errors.New("command version not finalized")
)

// errorCodes lists the errors a forwarded write's response can carry, so
// the caller can still branch with errors.Is: the controller's errors in
// the order above, and the context's and Raft's errors a write may end
// with. Append only: a code's meaning never changes. The first match
// wins.
var errorCodes = []error{
	nil,
	ErrTopicExists, ErrUnknownTopic, ErrInvalidTopic, ErrInvalidPartitions,
	ErrInvalidReplicationFactor, ErrInvalidConfig, ErrUnknownBroker,
	ErrStaleBrokerEpoch, ErrUnknownPartition, ErrStalePartitionEpoch,
	ErrInvalidPartition, ErrInvalidBroker, ErrCorrupt, ErrNotLeader,
	ErrNoLeader, ErrClosed, context.DeadlineExceeded, context.Canceled,
	ErrLeaderUnreachable, ErrLeadershipLost, ErrBrokerIDInUse,
	ErrInvalidProducerIDs, ErrProducerIDsExhausted,
	ErrInvalidCredential, ErrUnknownUser, ErrInvalidACL,
	ErrInvalidReassignment, ErrNoReassignment, ErrReassignmentInProgress,
	ErrMembershipChange, ErrBrokerRemoved, ErrCommandVersion,
}

// codeOther is an error outside errorCodes: only its message travels.
const codeOther = 255

// errorCode is err's code in errorCodes: 0 for nil, codeOther for an
// error that matches none.
func errorCode(err error) byte {
	if err == nil {
		return 0
	}
	for i, e := range errorCodes[1:] {
		if errors.Is(err, e) {
			return byte(i + 1)
		}
	}
	return codeOther
}

// remoteError is an error that came back from the leader: its message as
// the leader wrote it, matching the sentinel it was built from.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

// appendError writes err as its code and message.
func appendError(b []byte, err error) []byte {
	b = append(b, errorCode(err))
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	return appendString(b, msg)
}

// error reads what appendError wrote.
func (d *decoder) error() error {
	code, msg := d.byte(), d.string()
	switch {
	case d.err != nil || code == 0:
		return nil
	case int(code) < len(errorCodes):
		return &remoteError{msg: msg, kind: errorCodes[code]}
	}
	return errors.New(msg)
}
