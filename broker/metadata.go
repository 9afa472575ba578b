package broker

import (
	"context"

	"github.com/sluicemq/sluice/controller"
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
	// Propose applies a command through the controller leader (the
	// security commands: credentials and ACLs).
	Propose(ctx context.Context, c controller.Command) (controller.Result, error)
}

var _ MetadataStore = (*controller.Node)(nil)
