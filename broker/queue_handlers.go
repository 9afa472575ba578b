package broker

import (
	"context"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
)

// The queue handlers translate between the sluice protocol's queue APIs
// (protocol/queue.go) and the queue half of the broker core (queue.go).

func (c *conn) handleQueueReceive(h *protocol.RequestHeader, resp *response) error {
	var req protocol.QueueReceiveRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	if c.refused(resp, h, c.sess.CanConsume(req.GroupID, func(yield func(string) bool) {
		for _, t := range req.Topics {
			if !yield(t) {
				return
			}
		}
		for _, p := range req.Partitions {
			if !yield(p.Topic) {
				return
			}
		}
		for _, a := range req.Acks {
			if !yield(a.Topic) {
				return
			}
		}
	})) {
		return nil
	}
	wait := time.Duration(max(req.MaxWaitMs, 0)) * time.Millisecond
	// As groupContext, with the long-poll on top; the wait for records
	// ends with the connection's long-polls (drain.go), the commits of a
	// look begun do not.
	ctx, cancel := context.WithTimeout(context.Background(), min(wait, maxQueueWait)+groupWriteTimeout)
	defer cancel()
	var msgs []QueueMessage
	var refused []QueueRefusal
	var lease time.Duration
	var keys []group.QueueKey
	var err error
	if len(req.Partitions) > 0 {
		keys = make([]group.QueueKey, len(req.Partitions))
		for i, p := range req.Partitions {
			keys[i] = group.QueueKey{Topic: p.Topic, Partition: p.Partition}
		}
	} else {
		keys, err = c.b.queueTopicKeys(req.Topics)
	}
	if err == nil {
		msgs, refused, lease, err = c.b.QueueSettleAndReceive(ctx, c.pollContext().Done(), req.GroupID, req.MemberID, queueOutcomes(req.Acks), keys, int(req.MaxRecords), wait)
	}
	out := protocol.QueueReceiveResponse{LeaseMs: int32(lease.Milliseconds()), AckFailures: queueAckFailures(refused)}
	out.ErrorCode, out.ErrorMessage = ErrorCode(err)
	for _, m := range msgs {
		n := len(out.Partitions)
		if n == 0 || out.Partitions[n-1].Topic != m.Topic || out.Partitions[n-1].Partition != m.Partition {
			out.Partitions = append(out.Partitions, protocol.QueuePartitionRecords{Topic: m.Topic, Partition: m.Partition})
			n++
		}
		r := protocol.QueueRecord{Offset: m.Offset, Deliveries: int32(m.Deliveries), Timestamp: m.Timestamp, Key: m.Key, Value: m.Value}
		for _, hd := range m.Headers {
			r.Headers = append(r.Headers, protocol.QueueHeader{Key: string(hd.Key), Value: hd.Value})
		}
		out.Partitions[n-1].Records = append(out.Partitions[n-1].Records, r)
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleQueueAck(h *protocol.RequestHeader, resp *response) error {
	var req protocol.QueueAckRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	if c.refused(resp, h, c.sess.CanConsume(req.GroupID, func(yield func(string) bool) {
		for _, a := range req.Acks {
			if !yield(a.Topic) {
				return
			}
		}
	})) {
		return nil
	}
	ctx, cancel := groupContext()
	defer cancel()
	refused, err := c.b.QueueAck(ctx, req.GroupID, req.MemberID, queueOutcomes(req.Acks))
	out := protocol.QueueAckResponse{Failures: queueAckFailures(refused)}
	out.ErrorCode, out.ErrorMessage = ErrorCode(err)
	c.encode(resp, h, &out)
	return nil
}

// queueOutcomes reads the outcomes of a QueueAck or QueueReceive.
func queueOutcomes(acks []protocol.QueueAckRange) []QueueOutcome {
	if len(acks) == 0 {
		return nil
	}
	outcomes := make([]QueueOutcome, len(acks))
	for i, a := range acks {
		outcomes[i] = QueueOutcome{Topic: a.Topic, Partition: a.Partition, First: a.FirstOffset, Last: a.LastOffset,
			Outcome: group.Outcome(a.Outcome), Delay: time.Duration(a.DelayMs) * time.Millisecond, Reason: a.Reason}
	}
	return outcomes
}

// queueAckFailures writes the refusals of outcomes.
func queueAckFailures(refused []QueueRefusal) []protocol.QueueAckFailure {
	var out []protocol.QueueAckFailure
	for _, r := range refused {
		f := protocol.QueueAckFailure{Topic: r.Topic, Partition: r.Partition, FirstOffset: r.First, LastOffset: r.Last}
		f.ErrorCode, f.ErrorMessage = ErrorCode(r.Err)
		out = append(out, f)
	}
	return out
}

func (c *conn) handleDescribeQueueGroup(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DescribeQueueGroupRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	if c.refused(resp, h, c.sess.CanGroup(req.GroupID, auth.OpDescribe)) {
		return nil
	}
	ctx, cancel := groupContext()
	defer cancel()
	parts, lease, err := c.b.DescribeQueueGroup(ctx, req.GroupID)
	out := protocol.DescribeQueueGroupResponse{LeaseMs: int32(lease.Milliseconds())}
	out.ErrorCode, out.ErrorMessage = ErrorCode(err)
	now := time.Now()
	for _, p := range parts {
		age := int64(-1)
		if !p.OldestAcquired.IsZero() {
			age = now.Sub(p.OldestAcquired).Milliseconds()
		}
		out.Partitions = append(out.Partitions, protocol.QueuePartitionState{Topic: p.Topic, Partition: p.Partition,
			StartOffset: p.Start, EndOffset: p.End, Available: int32(p.Available), Acquired: int32(p.Acquired),
			Accepted: int32(p.Accepted), Archived: int32(p.Archived), DeadLettered: p.DeadLettered, OldestAcquiredMs: age, AtCap: p.AtCap})
	}
	c.encode(resp, h, &out)
	return nil
}

func (c *conn) handleResetQueueGroup(h *protocol.RequestHeader, resp *response) error {
	var req protocol.ResetQueueGroupRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	// Moving a queue group's window is a commit of its position: Kafka's
	// rule for resetting offsets (read on the group and on each topic).
	if c.refused(resp, h, c.sess.CanConsume(req.GroupID, func(yield func(string) bool) {
		for _, p := range req.Partitions {
			if !yield(p.Topic) {
				return
			}
		}
	})) {
		return nil
	}
	to := make(map[group.QueueKey]int64, len(req.Partitions))
	for _, p := range req.Partitions {
		to[group.QueueKey{Topic: p.Topic, Partition: p.Partition}] = p.Offset
	}
	ctx, cancel := groupContext()
	defer cancel()
	var out protocol.ResetQueueGroupResponse
	out.ErrorCode, out.ErrorMessage = ErrorCode(c.b.ResetQueueGroup(ctx, req.GroupID, to))
	c.encode(resp, h, &out)
	return nil
}
