package broker

import (
	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/protocol"
)

// The handlers of growing topics and moving partitions translate between
// the sluice protocol and the core (core_move.go).

// handleCreatePartitions grows topics through the core.
func (c *conn) handleCreatePartitions(h *protocol.RequestHeader, resp *response) error {
	var req protocol.CreatePartitionsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	ctx, cancel := adminContext(req.TimeoutMs)
	defer cancel()
	errs := make([]error, len(req.Topics))
	var allowed []PartitionCount
	var at []int // allowed[k] answers errs[at[k]]
	for i, t := range req.Topics {
		if errs[i] = c.sess.CanAlterTopic(t.Name); errs[i] == nil {
			allowed, at = append(allowed, PartitionCount{Topic: t.Name, Count: t.Count}), append(at, i)
		}
	}
	for k, err := range c.b.CreatePartitions(ctx, allowed, req.ValidateOnly) {
		errs[at[k]] = err
	}
	out := protocol.CreatePartitionsResponse{Topics: make([]protocol.TopicError, len(req.Topics))}
	for i, t := range req.Topics {
		out.Topics[i].Name = t.Name
		out.Topics[i].ErrorCode, out.Topics[i].ErrorMessage = ErrorCode(errs[i])
	}
	c.encode(resp, h, &out)
	return nil
}

// handleAlterPartitionReassignments starts and cancels moves through the
// core.
func (c *conn) handleAlterPartitionReassignments(h *protocol.RequestHeader, resp *response) error {
	var req protocol.AlterPartitionReassignmentsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	if c.refused(resp, h, c.sess.CanCluster(auth.OpAlter)) {
		return nil
	}
	ctx, cancel := adminContext(req.TimeoutMs)
	defer cancel()
	moves := make([]Reassignment, len(req.Partitions))
	for i, p := range req.Partitions {
		moves[i] = Reassignment{Topic: p.Topic, Partition: p.Partition, Replicas: p.Replicas}
	}
	errs := c.b.AlterReassignments(ctx, moves)
	out := protocol.AlterPartitionReassignmentsResponse{Results: make([]protocol.PartitionResult, len(moves))}
	for i, m := range moves {
		r := &out.Results[i]
		r.Topic, r.Partition = m.Topic, m.Partition
		r.ErrorCode, r.Message = ErrorCode(errs[i])
	}
	c.encode(resp, h, &out)
	return nil
}

// handleListPartitionReassignments lists the moving partitions, with the
// progress of those this broker leads.
func (c *conn) handleListPartitionReassignments(h *protocol.RequestHeader, resp *response) error {
	var req protocol.ListPartitionReassignmentsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	if c.refused(resp, h, c.sess.CanCluster(auth.OpDescribe)) {
		return nil
	}
	out := protocol.ListPartitionReassignmentsResponse{BrokerID: c.b.cfg.BrokerID, Partitions: c.b.Moves(req.Topics)}
	c.encode(resp, h, &out)
	return nil
}
