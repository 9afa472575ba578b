package broker

import (
	"context"
	"hash/crc32"
	"slices"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// handleOffsetForLeaderEpoch answers a follower's question after a
// leadership change (R9): where the largest epoch at or below the one it
// names ends in this leader's log.
func (c *conn) handleOffsetForLeaderEpoch(h *protocol.RequestHeader, resp *response) error {
	var req protocol.OffsetForLeaderEpochRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := protocol.OffsetForLeaderEpochResponse{Topics: make([]protocol.OffsetForLeaderEpochTopicResult, len(req.Topics))}
	for i, t := range req.Topics {
		ot := &out.Topics[i]
		ot.Name = t.Name
		ot.Partitions = make([]protocol.EpochEndOffset, len(t.Partitions))
		for j, q := range t.Partitions {
			ot.Partitions[j] = c.epochEndOffset(t.Name, q)
		}
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) epochEndOffset(topic string, q protocol.OffsetForLeaderEpochPartition) protocol.EpochEndOffset {
	r := protocol.EpochEndOffset{Partition: q.Partition, LeaderEpoch: -1, EndOffset: -1}
	p, code := c.lookup(topic, q.Partition)
	if p == nil {
		r.ErrorCode = code
		return r
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if r.ErrorCode = p.unavailable(); r.ErrorCode != protocol.NoError {
		return r
	}
	switch e := q.CurrentLeaderEpoch; {
	case e >= 0 && e < p.leader.Epoch():
		r.ErrorCode = protocol.ErrFencedLeaderEpoch
		return r
	case e > p.leader.Epoch():
		r.ErrorCode = protocol.ErrUnknownLeaderEpoch
		return r
	}
	r.LeaderEpoch, r.EndOffset = p.log.EndOffsetForEpoch(q.LeaderEpoch)
	return r
}

// handleDescribeReplicas reports every replica this broker holds: role,
// offsets and, when asked, a checksum of its batches, so replicas can be
// compared byte for byte.
func (c *conn) handleDescribeReplicas(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DescribeReplicasRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := protocol.DescribeReplicasResponse{BrokerID: c.b.cfg.BrokerID}
	for _, p := range c.b.parts.all() {
		if len(req.Topics) > 0 && !slices.Contains(req.Topics, p.topic) {
			continue
		}
		out.Replicas = append(out.Replicas, describeReplica(p, req.ChecksumUpTo))
	}
	slices.SortFunc(out.Replicas, func(a, b protocol.ReplicaInfo) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition) - int(b.Partition)
	})
	c.encode(resp, h, &out)
	return nil
}

func describeReplica(p *partition, checksumUpTo int64) protocol.ReplicaInfo {
	r := protocol.ReplicaInfo{Topic: p.topic, Partition: p.index, StartOffset: -1, EndOffset: -1, HighWatermark: -1,
		SyncedOffset: -1, ChecksumEnd: -1, LeaderEpoch: -1}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state != stateOpen {
		r.ErrorCode = protocol.ErrReplicaNotAvailable
		return r
	}
	r.Leader = p.role == roleLeader
	r.LeaderEpoch = p.epoch
	r.StartOffset, r.EndOffset, r.SyncedOffset = p.log.StartOffset(), p.log.EndOffset(), p.log.SyncedOffset()
	r.HighWatermark = p.highWatermark()
	if checksumUpTo >= 0 {
		sum, end, err := checksum(p, min(checksumUpTo, r.EndOffset))
		if err != nil {
			r.ErrorCode = protocol.ErrCorruptMessage
		}
		r.Checksum, r.ChecksumEnd = sum, end
	}
	return r
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum hashes the bytes of every whole batch from the log start whose
// offsets are all below upTo; it returns the offset after the last batch
// hashed. Call with p.mu held.
func checksum(p *partition, upTo int64) (uint32, int64, error) {
	var sum uint32
	off := p.log.StartOffset()
	for off < upTo {
		v, err := p.log.ReadUpTo(off, upTo, 1<<20)
		if err != nil {
			return sum, off, err
		}
		b := v.Bytes()
		if len(b) == 0 {
			v.Release()
			break
		}
		for len(b) > 0 {
			batch, rest, err := record.NextBatch(b, 0)
			if err != nil || batch.LastOffset() >= upTo {
				break
			}
			sum = crc32.Update(sum, castagnoli, batch)
			off = batch.LastOffset() + 1
			b = rest
		}
		v.Release()
		if len(b) > 0 && off < upTo {
			// A batch crossing upTo (or a torn one): stop there.
			break
		}
	}
	return sum, off, nil
}

// handleElectLeaders moves leadership back to preferred replicas that are
// in sync, through the controller.
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
	elections, err := c.b.node.ElectPreferredLeaders(ctx, req.Topics)
	if err != nil {
		out.ErrorCode, _ = adminErrorCode(err)
		c.encode(resp, h, &out)
		return nil
	}
	out.Results = electionResults(c.b.store.Metadata(), req.Topics, elections)
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
					r.ErrorCode, r.Message = adminErrorCode(e.Err)
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
