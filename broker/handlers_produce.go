package broker

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/protocol"
)

// handleProduce translates a Produce into the core's appends
// (Broker.Append), one per partition in request order. The record bytes
// alias the request frame; the core copies them into the segment, so the
// frame is released as soon as this returns.
//
// Appends happen here, in the connection's request order. The waits do
// not (the fsync of fsync=always partitions, the high watermark of acks=all
// produces): a goroutine waits and completes the response, so the handler
// goes on with the connection's next request (whose response still
// follows this one).
func (c *conn) handleProduce(h *protocol.RequestHeader, resp *response) error {
	s := &c.scratch
	req := &s.produceReq
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := &s.produceResp
	out.ErrorCode, out.ThrottleMs = protocol.NoError, 0
	out.Topics = resize(out.Topics, len(req.Topics))
	s.acks = s.acks[:0]
	var cu CatchUp
	for i := range req.Topics {
		t, ot := &req.Topics[i], &out.Topics[i]
		ot.Name = t.Name
		ot.Partitions = resize(ot.Partitions, len(t.Partitions))
		denied := c.sess.CanWrite(t.Name) // once per topic: nothing of a denied one is appended
		for j := range t.Partitions {
			pp, op := &t.Partitions[j], &ot.Partitions[j]
			if denied != nil {
				*op = protocol.ProducePartitionResponse{Partition: pp.Partition, BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1}
				op.ErrorCode, op.ErrorMessage = ErrorCode(denied)
				continue
			}
			a, err := c.b.Append(&cu, t.Name, pp.Partition, pp.Records, Acks(req.Acks))
			*op = protocol.ProducePartitionResponse{Partition: pp.Partition, BaseOffset: a.BaseOffset,
				LogAppendTime: -1, LogStartOffset: a.LogStartOffset}
			if err != nil {
				op.ErrorCode, op.ErrorMessage = ErrorCode(err)
				continue
			}
			if a.Pending() {
				s.acks = append(s.acks, ackWait{a: a, topic: i, part: j})
			}
		}
	}
	// Drop the aliases into the frame, which is about to be reused.
	for i := range req.Topics {
		for j := range req.Topics[i].Partitions {
			req.Topics[i].Partitions[j].Records = nil
		}
	}
	// As Kafka: acks=0 gets no response at all; the client learns of
	// failures only by their absence from what it later reads.
	resp.none = req.Acks == protocol.AcksNone
	if c.b.obs != nil {
		resp.timing.Code = firstProduceError(out)
	}
	if len(s.acks) > 0 {
		// The scratch is reused by the next request: the goroutine gets
		// copies of what it needs.
		waits := slices.Clone(s.acks)
		clear(s.acks)
		s.acks = s.acks[:0]
		hdr := *h
		resp.ready = make(chan struct{})
		c.polls.Add(1)
		go c.awaitAcks(hdr, resp, cloneProduceResponse(out), waits, ProduceTimeout(req.TimeoutMs))
		return nil
	}
	if !resp.none {
		c.encode(resp, h, out)
	}
	return nil
}

// ProduceTimeout is how long a produce may wait for its acknowledgement:
// the request's timeout, or 30 s when it names none, at most 5 minutes.
// Every front end uses it for its produce requests.
func ProduceTimeout(ms int32) time.Duration {
	if ms <= 0 {
		return 30 * time.Second
	}
	return min(time.Duration(ms)*time.Millisecond, 5*time.Minute)
}

// ackWait is a partition of a produce whose answer waits.
type ackWait struct {
	a     LeaderAppend
	topic int // index in the response
	part  int
}

// awaitAcks waits for each partition's acknowledgement and completes
// resp. Every failure here comes after the append, so its code is
// indeterminate (R14).
func (c *conn) awaitAcks(h protocol.RequestHeader, resp *response, out *protocol.ProduceResponse, waits []ackWait, timeout time.Duration) {
	defer c.polls.Done()
	defer close(resp.ready)
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	for i := range waits {
		w := &waits[i]
		if err := w.a.Wait(ctx); err != nil {
			op := &out.Topics[w.topic].Partitions[w.part]
			op.ErrorCode, op.ErrorMessage = ErrorCode(err)
			op.BaseOffset = -1
			c.logger.Debug("produce not acknowledged", zap.String("topic", out.Topics[w.topic].Name), zap.Int32("partition", op.Partition),
				zap.Stringer("code", op.ErrorCode), zap.Error(err))
		}
	}
	if c.b.obs != nil {
		resp.timing.Code, resp.timing.Done = firstProduceError(out), observeNow()
	}
	if !resp.none {
		c.encode(resp, &h, out)
	}
}

func cloneProduceResponse(r *protocol.ProduceResponse) *protocol.ProduceResponse {
	c := *r
	c.Topics = slices.Clone(r.Topics)
	for i := range c.Topics {
		c.Topics[i].Partitions = slices.Clone(c.Topics[i].Partitions)
	}
	return &c
}
