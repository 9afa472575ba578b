package broker

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/protocol"
)

// AlterClusterMembership removes broker id from the cluster
// (protocol.MembershipRemove), or promotes it to a Raft voter
// (MembershipAddVoter) or demotes it to a non-voter
// (MembershipRemoveVoter), through the controller leader, which checks
// the change (controller/remove.go): a refusal says why, and nothing
// changed.
func (b *Broker) AlterClusterMembership(ctx context.Context, op int8, id int32) error {
	var err error
	var what string
	switch op {
	case protocol.MembershipRemove:
		what, err = "broker removed from the cluster", b.node.RemoveBroker(ctx, id)
	case protocol.MembershipAddVoter:
		what, err = "broker promoted to controller voter", b.node.PromoteVoter(ctx, id)
	case protocol.MembershipRemoveVoter:
		what, err = "broker demoted to controller non-voter", b.node.DemoteVoter(ctx, id)
	default:
		return protocol.ErrInvalidRequest.ErrWithDetail(fmt.Sprintf("membership op %d", op))
	}
	if err != nil {
		return err
	}
	b.logger.Info(what, zap.Int32("peer", id))
	return nil
}

// FinalizeCommandVersion raises the cluster's finalized controller command
// version to level (0: this broker's newest) through the
// controller leader, which refuses it when a broker does not support it
// or it would lower the level (controller/features.go).
func (b *Broker) FinalizeCommandVersion(ctx context.Context, level int8) error {
	if level < 0 {
		return protocol.ErrInvalidRequest.ErrWithDetail(fmt.Sprintf("command version %d", level))
	}
	if err := b.node.FinalizeCommandVersion(ctx, uint8(level)); err != nil {
		return err
	}
	b.logger.Info("controller command version finalized", zap.Uint8("command_version", b.node.Metadata().CommandLevel))
	return nil
}
