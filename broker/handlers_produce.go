package broker

import (
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// handleProduce validates and appends each partition's record set. The
// record bytes alias the request frame, which the log stamps (base offset,
// leader epoch; outside the CRC) and copies into the segment, so the frame
// is released as soon as this returns.
//
// Appends happen here, in the connection's request order. For fsync=always
// partitions the wait for the fsync does not: a goroutine waits for the
// group commit and completes the response, so the handler goes on with the
// connection's next request (whose response still follows this one).
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
	s.durable = s.durable[:0]
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
			c.producePartition(t.Name, pp, op, i, j)
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
	if len(s.durable) > 0 {
		// The scratch is reused by the next request: the goroutine gets
		// copies of what it needs.
		waits := slices.Clone(s.durable)
		s.durable = s.durable[:0]
		hdr := *h
		resp.ready = make(chan struct{})
		c.polls.Add(1)
		go c.awaitDurable(hdr, resp, cloneProduceResponse(out), waits)
		return nil
	}
	if !resp.none {
		c.encode(resp, h, out)
	}
	return nil
}

// durableWait is an fsync=always partition of a produce whose last batch
// must be durable before the produce is answered.
type durableWait struct {
	p        *partition
	log      *log.Log
	appended log.Appended
	topic    int // index in the response
	part     int
}

// awaitDurable waits until every fsync=always partition's batches are
// durable (R2), wakes that partition's fetches (its high watermark is the
// synced offset), and completes resp. A failed fsync took the log offline
// after the batch was appended, so the answer is indeterminate (R14).
func (c *conn) awaitDurable(h protocol.RequestHeader, resp *response, out *protocol.ProduceResponse, waits []durableWait) {
	defer c.polls.Done()
	defer close(resp.ready)
	for _, w := range waits {
		err := w.log.WaitDurable(w.appended)
		w.p.notify()
		if err != nil {
			op := &out.Topics[w.topic].Partitions[w.part]
			op.ErrorCode, op.ErrorMessage, op.BaseOffset = appendErrorCode(err, true), err.Error(), -1
			c.logger.Warn("produce not durable", zap.String("topic", w.p.topic), zap.Int32("partition", w.p.index), zap.Error(err))
		}
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

// producePartition appends one partition's record set: every batch is
// validated first (R1), so a bad batch leaves the partition untouched.
// For an fsync=always partition it queues the wait for durability in
// c.scratch.durable instead of waiting; ti and pi locate op in the response.
func (c *conn) producePartition(topic string, pp *protocol.ProducePartition, op *protocol.ProducePartitionResponse, ti, pi int) {
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
	if p.cfg.log.Fsync == log.FsyncAlways {
		c.scratch.durable = append(c.scratch.durable, durableWait{p: p, log: p.log, appended: last, topic: ti, part: pi})
		return
	}
	p.notify()
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
