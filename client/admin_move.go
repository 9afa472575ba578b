package client

import (
	"context"
	"fmt"
	"slices"

	"github.com/sluicemq/sluice/protocol"
)

// CreatePartitions grows topic to count partitions (more than it has;
// partitions are never removed). Keyed records map to hash(key) mod the
// new count from then on, so a key's later records may land in another
// partition than its earlier ones. Producers and consumers see the new
// partitions at their next metadata refresh.
func (c *Client) CreatePartitions(ctx context.Context, topic string, count int32) error {
	req := &protocol.CreatePartitionsRequest{Topics: []protocol.PartitionCount{{Name: topic, Count: count}}, TimeoutMs: c.adminTimeoutMs()}
	// Not idempotent as a request: a retry after a lost answer would be
	// refused (the topic has the count already), so it is not retried.
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.CreatePartitionsResponse) }, false)
	if err != nil {
		return fmt.Errorf("create partitions: %w", err)
	}
	err = topicErrors(m.(*protocol.CreatePartitionsResponse).Topics)
	c.meta.requestRefresh()
	return err
}

// Reassignment is one partition's target replica list, preferred leader
// first; empty Replicas cancels the partition's move.
type Reassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
}

// ReassignmentResult is one partition's outcome: Err is nil when its move
// started (or, for a cancel, when the move was reverted), else
// protocol.ErrInvalidReplicaAssignment, ErrReassignmentInProgress,
// ErrNoReassignmentInProgress or another code, with a detail.
type ReassignmentResult struct {
	Topic     string
	Partition int32
	Err       error
}

// AlterReassignments starts moves of partitions to new replica lists, or
// cancels them. Any broker takes the request and forwards each change
// to the controller. The error is for the request as a whole.
func (c *Client) AlterReassignments(ctx context.Context, moves []Reassignment) ([]ReassignmentResult, error) {
	req := &protocol.AlterPartitionReassignmentsRequest{TimeoutMs: c.adminTimeoutMs()}
	for _, m := range moves {
		req.Partitions = append(req.Partitions, protocol.Reassignment{Topic: m.Topic, Partition: m.Partition, Replicas: m.Replicas})
	}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.AlterPartitionReassignmentsResponse) }, false)
	if err != nil {
		return nil, fmt.Errorf("alter reassignments: %w", err)
	}
	rs := m.(*protocol.AlterPartitionReassignmentsResponse).Results
	out := make([]ReassignmentResult, 0, len(rs))
	for _, r := range rs {
		out = append(out, ReassignmentResult{Topic: r.Topic, Partition: r.Partition, Err: r.ErrorCode.ErrWithDetail(r.Message)})
	}
	c.meta.requestRefresh()
	return out, nil
}

// Move is one partition's move in progress, as the sluice protocol
// carries it (protocol.MovingPartition): Replicas is the target followed
// by the removing replicas. Progress is set when the partition's leader
// answered: LeaderEnd is its log end offset, Positions each adding
// replica's fetch position (-1: none yet), BytesRemaining the leader's
// estimate of what the furthest-behind adding replica has yet to copy.
type Move = protocol.MovingPartition

// ListReassignments lists the partitions of topics (all for none) that
// are moving, by topic and partition, with the progress each leader
// reports: any broker lists them, then each leader is asked once for its
// own (a leader that does not answer leaves Progress unset).
func (c *Client) ListReassignments(ctx context.Context, topics ...string) ([]Move, error) {
	req := &protocol.ListPartitionReassignmentsRequest{Topics: topics}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.ListPartitionReassignmentsResponse) }, true)
	if err != nil {
		return nil, fmt.Errorf("list reassignments: %w", err)
	}
	all := m.(*protocol.ListPartitionReassignmentsResponse)
	out := make([]Move, 0, len(all.Partitions))
	leaders := map[int32]bool{}
	for _, p := range all.Partitions {
		out = append(out, p)
		if p.Leader >= 0 {
			leaders[p.Leader] = true
		}
	}
	for id := range leaders {
		m, _, err := c.roundTripOnce(ctx, id, req, new(protocol.ListPartitionReassignmentsResponse))
		if err != nil {
			continue
		}
		r := m.(*protocol.ListPartitionReassignmentsResponse)
		for _, p := range r.Partitions {
			if !p.Progress || r.BrokerID != id {
				continue
			}
			i := slices.IndexFunc(out, func(o Move) bool { return o.Topic == p.Topic && o.Partition == p.Partition })
			if i >= 0 {
				out[i] = p
			}
		}
	}
	return out, nil
}
