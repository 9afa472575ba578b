package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/replica"
)

// handleProduce validates and appends each partition's record set. The
// record bytes alias the request frame, which the log stamps (base offset,
// leader epoch; outside the CRC) and copies into the segment, so the frame
// is released as soon as this returns.
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
	validAcks := req.Acks == protocol.AcksNone || req.Acks == protocol.AcksLeader || req.Acks == protocol.AcksAll
	s.acks = s.acks[:0]
	for i := range req.Topics {
		t, ot := &req.Topics[i], &out.Topics[i]
		ot.Name = t.Name
		ot.Partitions = resize(ot.Partitions, len(t.Partitions))
		for j := range t.Partitions {
			pp, op := &t.Partitions[j], &ot.Partitions[j]
			*op = protocol.ProducePartitionResponse{Partition: pp.Partition, BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1}
			if !validAcks {
				op.ErrorCode = protocol.ErrInvalidRequiredAcks
				continue
			}
			c.producePartition(t.Name, pp, req.Acks, op, i, j)
		}
	}
	// Drop the aliases into the frame, which is about to be reused.
	for i := range req.Topics {
		for j := range req.Topics[i].Partitions {
			req.Topics[i].Partitions[j].Records = nil
		}
	}
	clear(s.batches[:cap(s.batches)])
	// As Kafka: acks=0 gets no response at all; the client learns of
	// failures only by their absence from what it later reads.
	resp.none = req.Acks == protocol.AcksNone
	if len(s.acks) > 0 {
		// The scratch is reused by the next request: the goroutine gets
		// copies of what it needs.
		waits := slices.Clone(s.acks)
		s.acks = s.acks[:0]
		hdr := *h
		resp.ready = make(chan struct{})
		c.polls.Add(1)
		go c.awaitAcks(hdr, resp, cloneProduceResponse(out), waits, produceTimeout(req.TimeoutMs))
		return nil
	}
	if !resp.none {
		c.encode(resp, h, out)
	}
	return nil
}

// produceTimeout is how long a produce may wait for its acknowledgement:
// the request's timeout, or 30 s when it names none, at most 5 minutes.
func produceTimeout(ms int32) time.Duration {
	if ms <= 0 {
		return 30 * time.Second
	}
	return min(time.Duration(ms)*time.Millisecond, 5*time.Minute)
}

// ackWait is a partition of a produce whose answer waits: for the fsync
// covering its last batch (fsync=always, R2), then, with acks=all, for the
// high watermark to cover it.
type ackWait struct {
	p        *partition
	log      *log.Log
	leader   *replica.Leader
	appended log.Appended
	durable  bool
	all      bool
	topic    int // index in the response
	part     int
}

// awaitAcks waits for each partition's acknowledgement and completes resp.
// Every failure here comes after the append, so its code is indeterminate
// (R14): a failed fsync took the log offline, leadership moved, the ISR
// fell below min.insync.replicas, or the wait timed out.
func (c *conn) awaitAcks(h protocol.RequestHeader, resp *response, out *protocol.ProduceResponse, waits []ackWait, timeout time.Duration) {
	defer c.polls.Done()
	defer close(resp.ready)
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	for _, w := range waits {
		var err error
		if w.durable {
			err = w.log.WaitDurable(w.appended)
			if err == nil && w.leader.Appended() {
				w.p.notify() // the high watermark moved: wake consumers
			}
		}
		if err == nil && w.all {
			err = w.leader.WaitFor(ctx, w.appended.Next)
		}
		if err != nil {
			op := &out.Topics[w.topic].Partitions[w.part]
			op.ErrorCode, op.ErrorMessage, op.BaseOffset = ackErrorCode(err), err.Error(), -1
			c.logger.Debug("produce not acknowledged", zap.String("topic", w.p.topic), zap.Int32("partition", w.p.index),
				zap.Stringer("code", op.ErrorCode), zap.Error(err))
		}
	}
	if !resp.none {
		c.encode(resp, &h, out)
	}
}

// ackErrorCode maps a failed wait to an indeterminate code.
func ackErrorCode(err error) protocol.ErrorCode {
	switch {
	case errors.Is(err, replica.ErrNotEnoughReplicas), errors.Is(err, replica.ErrNotLeader):
		return protocol.ErrNotEnoughReplicasAfterAppend
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return protocol.ErrRequestTimedOut
	}
	return appendErrorCode(err, true)
}

func cloneProduceResponse(r *protocol.ProduceResponse) *protocol.ProduceResponse {
	c := *r
	c.Topics = slices.Clone(r.Topics)
	for i := range c.Topics {
		c.Topics[i].Partitions = slices.Clone(c.Topics[i].Partitions)
	}
	return &c
}

// producePartition appends one partition's record set on its leader:
// every batch is validated first (R1), so a bad batch leaves the
// partition untouched, and an acks=all produce is refused before anything
// is appended while the ISR is below min.insync.replicas. A produce that
// must wait (fsync=always, acks=all) is queued in c.scratch.acks; ti and
// pi locate op in the response.
func (c *conn) producePartition(topic string, pp *protocol.ProducePartition, acks int16, op *protocol.ProducePartitionResponse, ti, pi int) {
	// The controlled shutdown waits for appends that passed this check
	// before it counts what is left to replicate.
	c.b.appending.Add(1)
	defer c.b.appending.Add(-1)
	if c.b.draining.Load() {
		// Controlled shutdown: the leadership is about to move; the
		// client retries on the new leader (definite: nothing appended).
		op.ErrorCode, op.ErrorMessage = protocol.ErrNotLeaderOrFollower, "broker shutting down; leadership moving"
		return
	}
	p, code := c.lookup(topic, pp.Partition)
	if p == nil {
		op.ErrorCode = code
		return
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if op.ErrorCode = p.unavailable(); op.ErrorCode != protocol.NoError {
		return
	}
	ld := p.leader
	all := acks == protocol.AcksAll
	if all {
		if err := ld.CanAppend(); err != nil {
			op.ErrorCode, op.ErrorMessage = protocol.ErrNotEnoughReplicas, err.Error()
			if errors.Is(err, replica.ErrNotLeader) {
				op.ErrorCode = protocol.ErrNotLeaderOrFollower
			}
			return
		}
	}
	batches, code, err := c.splitBatches(pp.Records, p.cfg.maxMessageBytes)
	if err != nil {
		op.ErrorCode, op.ErrorMessage = code, err.Error()
		c.logger.Debug("produce refused", zap.String("topic", topic), zap.Int32("partition", pp.Partition),
			zap.Stringer("code", code), zap.Error(err))
		return
	}
	base := int64(-1)
	var last log.Appended
	for k, b := range batches {
		a, err := p.log.AppendNoWait(b)
		if err != nil {
			op.ErrorCode, op.ErrorMessage = appendErrorCode(err, k > 0), err.Error()
			c.logger.Debug("append failed", zap.String("topic", topic), zap.Int32("partition", pp.Partition), zap.Error(err))
			break
		}
		if k == 0 {
			base = a.Base
		}
		last = a
	}
	op.BaseOffset = base
	op.LogStartOffset = p.log.StartOffset()
	if base < 0 {
		return
	}
	durable := p.cfg.log.Fsync == log.FsyncAlways
	if !durable {
		ld.Appended() // a leader alone in its ISR moves its high watermark
	}
	p.notify() // followers' long-polls, and consumers if the high watermark moved
	if durable || all {
		c.scratch.acks = append(c.scratch.acks, ackWait{p: p, log: p.log, leader: ld, appended: last,
			durable: durable, all: all, topic: ti, part: pi})
	}
}

// splitBatches cuts a record set into batches and validates each fully.
func (c *conn) splitBatches(records []byte, maxMessageBytes int) ([]record.Batch, protocol.ErrorCode, error) {
	s := &c.scratch
	batches := s.batches[:0]
	defer func() { s.batches = batches[:0] }()
	if len(records) == 0 {
		return nil, protocol.ErrCorruptMessage, errors.New("empty record set")
	}
	lim := record.Limits{MaxBatchBytes: maxMessageBytes, Contiguous: true}
	for rest := records; len(rest) > 0; {
		b, next, err := record.NextBatch(rest, 0)
		if err != nil {
			return nil, protocol.ErrCorruptMessage, fmt.Errorf("batch %d: %w", len(batches), err)
		}
		if b.Size() > maxMessageBytes {
			return nil, protocol.ErrMessageTooLarge, fmt.Errorf("batch %d: %d bytes, max.message.bytes is %d", len(batches), b.Size(), maxMessageBytes)
		}
		if err := record.Validate(b, lim); err != nil {
			return nil, protocol.ErrCorruptMessage, fmt.Errorf("batch %d: %w", len(batches), err)
		}
		batches = append(batches, b)
		rest = next
	}
	return batches, protocol.NoError, nil
}

// appendErrorCode maps a log.Append error to a produce error code. Once a
// batch of the record set was appended the code must be indeterminate
// (R14): the client may not assume nothing was written.
func appendErrorCode(err error, someAppended bool) protocol.ErrorCode {
	code := protocol.ErrUnknownServerError
	switch {
	case errors.Is(err, log.ErrOffline):
		code = protocol.ErrStorageError
	case errors.Is(err, log.ErrClosed):
		code = protocol.ErrNotLeaderOrFollower
	case errors.Is(err, record.ErrCorrupt):
		code = protocol.ErrCorruptMessage
	}
	if someAppended && !code.Indeterminate() {
		code = protocol.ErrUnknownServerError
	}
	return code
}
