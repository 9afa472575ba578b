package client

import (
	"context"
	"fmt"

	"github.com/sluicemq/sluice/protocol"
)

// RemoveBroker removes a stopped broker that holds no replicas from the
// cluster: from the broker registry (cluster status stops listing it,
// placement never picks it, and a process restarted on its data
// directory is refused) and from the controller's Raft group. A refusal
// (errors.Is protocol.ErrInvalidRequest) says why: the broker is alive,
// still holds replicas (drain it first), or is a voter whose removal
// would leave the controller without a majority of live voters. Running
// it again after an unknown outcome is safe.
func (c *Client) RemoveBroker(ctx context.Context, id int32) error {
	return c.alterMembership(ctx, protocol.MembershipRemove, id, true, "remove broker")
}

// AddVoter promotes a registered, alive non-voter to a voter of the
// controller's Raft group.
func (c *Client) AddVoter(ctx context.Context, id int32) error {
	return c.alterMembership(ctx, protocol.MembershipAddVoter, id, false, "add voter")
}

// RemoveVoter demotes a voter of the controller's Raft group to a
// non-voter; refused when the voters left would not hold a majority of
// live ones.
func (c *Client) RemoveVoter(ctx context.Context, id int32) error {
	return c.alterMembership(ctx, protocol.MembershipRemoveVoter, id, false, "remove voter")
}

// FinalizeCommandVersion raises the cluster's finalized controller command
// version to level (0: the newest the answering broker's build knows).
// Refused (errors.Is protocol.ErrInvalidRequest), with the brokers that
// stand in the way, while a Raft member or alive broker does not support
// it, and when it is below the level in force (it is never lowered).
// Running it again after an unknown outcome is safe.
func (c *Client) FinalizeCommandVersion(ctx context.Context, level uint8) error {
	req := &protocol.AlterClusterMembershipRequest{Op: protocol.MembershipFinalizeCommandVersion, TimeoutMs: c.adminTimeoutMs(), CommandVersion: int8(level)}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.AlterClusterMembershipResponse) }, true)
	if err != nil {
		return fmt.Errorf("finalize command version %d: %w", level, err)
	}
	if r := m.(*protocol.AlterClusterMembershipResponse); r.ErrorCode != protocol.NoError {
		return fmt.Errorf("finalize command version %d: %w", level, r.ErrorCode.ErrWithDetail(r.ErrorMessage))
	}
	return nil
}

func (c *Client) alterMembership(ctx context.Context, op int8, id int32, idempotent bool, what string) error {
	req := &protocol.AlterClusterMembershipRequest{Op: op, BrokerID: id, TimeoutMs: c.adminTimeoutMs()}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.AlterClusterMembershipResponse) }, idempotent)
	if err != nil {
		return fmt.Errorf("%s %d: %w", what, id, err)
	}
	if r := m.(*protocol.AlterClusterMembershipResponse); r.ErrorCode != protocol.NoError {
		return fmt.Errorf("%s %d: %w", what, id, r.ErrorCode.ErrWithDetail(r.ErrorMessage))
	}
	c.meta.requestRefresh()
	return nil
}
