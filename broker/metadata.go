package broker

import (
	"context"
	"errors"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// MetadataStore is everything the broker needs from the cluster metadata:
// the current snapshot, a signal when it changes, and the topic changes
// clients ask for. No handler touches metadata storage except through it.
// controller.Node implements it, on a single broker as in a cluster.
type MetadataStore interface {
	// Metadata returns the current immutable snapshot.
	Metadata() *controller.Metadata
	// Changed returns a channel closed at the next change.
	Changed() <-chan struct{}
	// CreateTopic validates spec, places its replicas and adds the topic.
	CreateTopic(ctx context.Context, spec controller.TopicSpec) (*controller.Topic, error)
	// DeleteTopic removes a topic.
	DeleteTopic(ctx context.Context, name string) error
	// AlterConfigs sets keys and reverts others to their defaults.
	AlterConfigs(ctx context.Context, name string, set map[string]string, remove []string) error
}

var _ MetadataStore = (*controller.Node)(nil)

// adminErrorCode maps a metadata store error to the protocol code a client
// can act on, and the message to send with it.
func adminErrorCode(err error) (protocol.ErrorCode, string) {
	if err == nil {
		return protocol.NoError, ""
	}
	var code protocol.ErrorCode
	switch {
	case errors.Is(err, controller.ErrTopicExists):
		code = protocol.ErrTopicAlreadyExists
	case errors.Is(err, controller.ErrUnknownTopic):
		code = protocol.ErrUnknownTopicOrPartition
	case errors.Is(err, controller.ErrInvalidTopic):
		code = protocol.ErrInvalidTopic
	case errors.Is(err, controller.ErrInvalidPartitions):
		code = protocol.ErrInvalidPartitions
	case errors.Is(err, controller.ErrInvalidReplicationFactor):
		code = protocol.ErrInvalidReplicationFactor
	case errors.Is(err, controller.ErrInvalidConfig):
		code = protocol.ErrInvalidConfig
	case errors.Is(err, controller.ErrStalePartitionEpoch), errors.Is(err, controller.ErrStaleBrokerEpoch):
		code = protocol.ErrStaleBrokerEpoch
	case errors.Is(err, controller.ErrInvalidPartition):
		code = protocol.ErrEligibleLeadersNotAvailable
	case errors.Is(err, context.DeadlineExceeded):
		code = protocol.ErrRequestTimedOut
	case errors.Is(err, controller.ErrClosed), errors.Is(err, context.Canceled):
		code = protocol.ErrBrokerNotAvailable
	default:
		code = protocol.ErrUnknownServerError
	}
	return code, err.Error()
}
