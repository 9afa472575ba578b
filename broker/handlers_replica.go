package broker

import (
	"context"
	"math"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// handleOffsetForLeaderEpoch answers a follower's question after a
// leadership change (R9): where the largest epoch at or below the one it
// names ends in this leader's log.
func (c *conn) handleOffsetForLeaderEpoch(h *protocol.RequestHeader, resp *response) error {
	var req protocol.OffsetForLeaderEpochRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	if req.ReplicaID >= 0 && c.sess.BrokerOnly() != nil {
		c.errorResponse(resp, h, protocol.ErrClusterAuthorizationFailed)
		return nil
	}
	out := protocol.OffsetForLeaderEpochResponse{Topics: make([]protocol.OffsetForLeaderEpochTopicResult, len(req.Topics))}
	var cu CatchUp
	for i, t := range req.Topics {
		ot := &out.Topics[i]
		ot.Name = t.Name
		ot.Partitions = make([]protocol.EpochEndOffset, len(t.Partitions))
		for j, q := range t.Partitions {
			ot.Partitions[j] = c.epochEndOffset(&cu, t.Name, q)
		}
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) epochEndOffset(cu *CatchUp, topic string, q protocol.OffsetForLeaderEpochPartition) protocol.EpochEndOffset {
	r := protocol.EpochEndOffset{Partition: q.Partition, LeaderEpoch: -1, EndOffset: -1}
	err := c.sess.CanDescribe(topic)
	if err == nil {
		r.LeaderEpoch, r.EndOffset, err = c.b.EpochEndOffset(cu, topic, q.Partition, q.CurrentLeaderEpoch, q.LeaderEpoch)
	}
	r.ErrorCode, _ = ErrorCode(err)
	return r
}

// handleDescribeReplicas reports every replica this broker holds (the
// core's Replicas): role, offsets and, when asked, a checksum of its
// batches, so replicas can be compared byte for byte; and whether its
// controller store takes writes.
func (c *conn) handleDescribeReplicas(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DescribeReplicasRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := protocol.DescribeReplicasResponse{BrokerID: c.b.cfg.BrokerID}
	if err := c.b.node.StoreErr(); err != nil {
		out.ControllerStoreError = err.Error()
	}
	out.DiskFree, out.DiskCapacity = c.b.cfg.DiskSpace(c.b.cfg.DataDir)
	for _, r := range c.b.Replicas(req.Topics, req.ChecksumUpTo) {
		ri := protocol.ReplicaInfo{Topic: r.Topic, Partition: r.Partition, Leader: r.Leader, LeaderEpoch: r.LeaderEpoch,
			StartOffset: r.StartOffset, EndOffset: r.EndOffset, HighWatermark: r.HighWatermark, SyncedOffset: r.SyncedOffset,
			Checksum: r.Checksum, ChecksumEnd: r.ChecksumEnd, LogBytes: r.LogBytes}
		if cs := r.Cleaner; cs != nil {
			ri.Compacted, ri.CleanBytes, ri.DirtyBytes, ri.LastCleanMs = true, cs.CleanBytes, cs.DirtyBytes, -1
			if !cs.LastClean.IsZero() {
				ri.LastCleanMs = cs.LastClean.UnixMilli()
			}
			ri.CleanerFailures, ri.CleanerError = int32(min(cs.Failures, math.MaxInt32)), cs.Err
		}
		ri.ErrorCode, ri.ErrorMessage = ErrorCode(r.Err)
		out.Replicas = append(out.Replicas, ri)
	}
	c.encode(resp, h, &out)
	return nil
}

// handleElectLeaders moves leadership back to preferred replicas that are
// in sync, each by a handover on its leader's broker
// (Broker.ElectPreferredLeaders).
func (c *conn) handleElectLeaders(h *protocol.RequestHeader, resp *response) error {
	var req protocol.ElectLeadersRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	timeout := defaultAdminTimeout
	if req.TimeoutMs > 0 {
		timeout = min(time.Duration(req.TimeoutMs)*time.Millisecond, 5*time.Minute)
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	out := protocol.ElectLeadersResponse{}
	if req.LeaderOnly && c.sess.BrokerOnly() != nil {
		c.errorResponse(resp, h, protocol.ErrClusterAuthorizationFailed)
		return nil
	}
	if req.LeaderOnly {
		// Another broker runs the election and asks this one, the
		// leader, to hand over its own partitions: answer for those,
		// planned on metadata at least as new as the asker's.
		md, err := c.b.syncedMetadata(ctx)
		if err != nil {
			out.ErrorCode, _ = ErrorCode(err)
			c.encode(resp, h, &out)
			return nil
		}
		var mine []controller.AlterPartition
		for _, pc := range controller.PlanPreferredLeaders(md, req.Topics) {
			if md.Topics[pc.Topic].Partitions[pc.Partition].Leader == c.b.cfg.BrokerID {
				mine = append(mine, pc)
			}
		}
		for _, e := range c.b.handOverAll(ctx, mine) {
			r := protocol.ElectionResult{Topic: e.Topic, Partition: e.Partition, Leader: e.Leader}
			r.ErrorCode, r.Message = ErrorCode(e.Err)
			out.Results = append(out.Results, r)
		}
		c.encode(resp, h, &out)
		return nil
	}
	elections, err := c.b.ElectPreferredLeaders(ctx, req.Topics)
	if err != nil {
		out.ErrorCode, _ = ErrorCode(err)
		c.encode(resp, h, &out)
		return nil
	}
	out.Results = electionResults(c.b.Metadata(), req.Topics, elections)
	c.encode(resp, h, &out)
	return nil
}

// electionResults answers for every partition of the topics asked about
// (all when none): the elections the controller made, and for the others
// why none was made: the preferred replica leads already
// (ELECTION_NOT_NEEDED), or it is not alive or not in sync
// (PREFERRED_LEADER_NOT_AVAILABLE). An unknown topic gets one entry,
// partition -1.
func electionResults(md *controller.Metadata, topics []string, elections []controller.Election) []protocol.ElectionResult {
	type key struct {
		topic string
		part  int32
	}
	made := make(map[key]controller.Election, len(elections))
	for _, e := range elections {
		made[key{e.Topic, e.Partition}] = e
	}
	if len(topics) == 0 {
		topics = md.TopicNames()
	}
	var out []protocol.ElectionResult
	for _, name := range topics {
		t, ok := md.Topics[name]
		if !ok {
			out = append(out, protocol.ElectionResult{Topic: name, Partition: -1, Leader: -1,
				ErrorCode: protocol.ErrUnknownTopicOrPartition, Message: "unknown topic"})
			continue
		}
		for _, p := range t.Partitions {
			r := protocol.ElectionResult{Topic: name, Partition: p.Index, Leader: p.Leader}
			if e, ok := made[key{name, p.Index}]; ok {
				r.Leader = e.Leader
				if e.Err != nil {
					r.ErrorCode, r.Message = ErrorCode(e.Err)
				}
			} else if len(p.Replicas) > 0 && p.Leader == p.Replicas[0] {
				r.ErrorCode, r.Message = protocol.ErrElectionNotNeeded, "the preferred replica leads"
			} else {
				r.ErrorCode, r.Message = protocol.ErrPreferredLeaderNotAvailable, "the preferred replica is not alive or not in sync"
			}
			out = append(out, r)
		}
	}
	return out
}
