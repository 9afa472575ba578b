package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// The queue calls from any broker. A Kafka share consumer sends its
// ShareFetch and ShareAcknowledge to each partition's leader (KIP-932:
// the share-partition leader keeps the records' states), while a sluice
// queue group's states are its coordinator's. A broker that is not the
// coordinator forwards the call to it over the inter-broker connection
// (forward.go: a connection per call, logged in as a broker), as
// QueueReceive v1 with the partitions or QueueAck; the coordinator then
// reads partitions led elsewhere as for its own members. The cost: one
// more hop per call (leader → coordinator → leader), and the records of
// a partition this broker leads travel to the coordinator and back.
// A forwarded call is served by the coordinator's own calls, never
// forwarded again.

// QueueReceiveVia is QueueReceivePartitions here, or at the group's
// coordinator when this broker is not it. poll ends the wait for records
// here (QueueSettleAndReceive); a wait at the coordinator runs to its
// end: cut, the call would lose what the coordinator acquired for it
// until the lease expires.
func (b *Broker) QueueReceiveVia(ctx context.Context, poll <-chan struct{}, groupID, member string, keys []group.QueueKey, max int, wait time.Duration) ([]QueueMessage, time.Duration, error) {
	msgs, _, lease, err := b.QueueSettleAndReceive(ctx, poll, groupID, member, nil, keys, max, wait)
	if !errors.Is(err, protocol.ErrNotCoordinator) {
		return msgs, lease, err
	}
	addr, cerr := b.queueCoordinatorAddr(ctx, groupID)
	if cerr != nil {
		return nil, 0, cerr
	}
	req := &protocol.QueueReceiveRequest{GroupID: groupID, MemberID: member, MaxRecords: int32(min(max, maxQueueRecords)),
		MaxWaitMs: int32(min(wait, maxQueueWait).Milliseconds())}
	for _, k := range keys {
		if n := len(req.Topics); n == 0 || req.Topics[n-1] != k.Topic {
			req.Topics = append(req.Topics, k.Topic)
		}
		req.Partitions = append(req.Partitions, protocol.QueuePartitionKey{Topic: k.Topic, Partition: k.Partition})
	}
	var resp protocol.QueueReceiveResponse
	if err := b.fwd.callVersion(ctx, addr, min(wait, maxQueueWait)+groupWriteTimeout, req, &resp, 1); err != nil {
		return nil, 0, queueForwardErr(groupID, addr, err)
	}
	if resp.ErrorCode != protocol.NoError {
		return nil, 0, resp.ErrorCode.ErrWithDetail(resp.ErrorMessage)
	}
	var out []QueueMessage
	for _, p := range resp.Partitions {
		for _, r := range p.Records {
			m := QueueMessage{Topic: p.Topic, Partition: p.Partition, Offset: r.Offset, Deliveries: int(r.Deliveries),
				Timestamp: r.Timestamp, Key: bytesCopy(r.Key), Value: bytesCopy(r.Value)}
			for _, h := range r.Headers {
				m.Headers = append(m.Headers, record.Header{Key: []byte(h.Key), Value: bytesCopy(h.Value)})
			}
			out = append(out, m)
		}
	}
	return out, time.Duration(resp.LeaseMs) * time.Millisecond, nil
}

// QueueAckVia is QueueAck here, or at the group's coordinator when this
// broker is not it.
func (b *Broker) QueueAckVia(ctx context.Context, groupID, member string, outcomes []QueueOutcome) ([]QueueRefusal, error) {
	refused, err := b.QueueAck(ctx, groupID, member, outcomes)
	if !errors.Is(err, protocol.ErrNotCoordinator) {
		return refused, err
	}
	addr, cerr := b.queueCoordinatorAddr(ctx, groupID)
	if cerr != nil {
		return nil, cerr
	}
	req := &protocol.QueueAckRequest{GroupID: groupID, MemberID: member, Acks: make([]protocol.QueueAckRange, len(outcomes))}
	for i, o := range outcomes {
		req.Acks[i] = protocol.QueueAckRange{Topic: o.Topic, Partition: o.Partition, FirstOffset: o.First, LastOffset: o.Last,
			Outcome: int8(o.Outcome), DelayMs: int32(o.Delay.Milliseconds()), Reason: o.Reason}
	}
	var resp protocol.QueueAckResponse
	if err := b.fwd.call(ctx, addr, groupWriteTimeout, req, &resp); err != nil {
		return nil, queueForwardErr(groupID, addr, err)
	}
	if resp.ErrorCode != protocol.NoError {
		return nil, resp.ErrorCode.ErrWithDetail(resp.ErrorMessage)
	}
	out := make([]QueueRefusal, len(resp.Failures))
	for i, f := range resp.Failures {
		out[i] = QueueRefusal{Topic: f.Topic, Partition: f.Partition, First: f.FirstOffset, Last: f.LastOffset, Err: f.ErrorCode.ErrWithDetail(f.ErrorMessage)}
	}
	return out, nil
}

// queueCoordinatorAddr is the sluice address of the group's coordinator
// when it is another broker.
func (b *Broker) queueCoordinatorAddr(ctx context.Context, groupID string) (string, error) {
	c, err := b.FindCoordinator(ctx, groupID)
	if err != nil {
		return "", err
	}
	if c.BrokerID == b.cfg.BrokerID {
		// The metadata says here, the coordinator is not loaded yet.
		return "", protocol.ErrCoordinatorLoadInProgress
	}
	return c.Addr, nil
}

// queueForwardErr makes a failed forward retriable for the client: not
// sent is COORDINATOR_NOT_AVAILABLE (nothing changed); a failure after
// sending is REQUEST_TIMED_OUT (indeterminate, R14: an acknowledgement
// may have been applied).
func queueForwardErr(groupID, addr string, err error) error {
	code := protocol.ErrRequestTimedOut
	if errors.Is(err, protocol.ErrNotSent) {
		code = protocol.ErrCoordinatorNotAvailable
	}
	return &protocol.Error{Code: code, Detail: fmt.Sprintf("queue group %s at its coordinator %s: %v", groupID, addr, err)}
}
