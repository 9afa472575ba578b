package broker

import (
	"errors"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// handleListOffsets answers earliest, latest (the high watermark: what a
// consumer can read) and by-timestamp queries.
func (c *conn) handleListOffsets(h *protocol.RequestHeader, resp *response) error {
	req := &c.scratch.listReq
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := &c.scratch.listResp
	out.ErrorCode = protocol.NoError
	out.Topics = resize(out.Topics, len(req.Topics))
	for i := range req.Topics {
		t, ot := &req.Topics[i], &out.Topics[i]
		ot.Name = t.Name
		ot.Partitions = resize(ot.Partitions, len(t.Partitions))
		for j := range t.Partitions {
			ot.Partitions[j] = c.listOffset(t.Name, &t.Partitions[j])
		}
	}
	c.encode(resp, h, out)
	return nil
}

func (c *conn) listOffset(topic string, q *protocol.ListOffsetsPartition) protocol.ListOffsetsPartitionResponse {
	r := protocol.ListOffsetsPartitionResponse{Partition: q.Partition, Timestamp: -1, Offset: -1, LeaderEpoch: -1}
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
	r.LeaderEpoch = p.epoch
	if q.Timestamp != protocol.EarliestTimestamp && !p.leader.HighWatermarkKnown() {
		// A new leader whose followers have not reported in its epoch
		// yet: its high watermark may be below the previous leader's.
		r.ErrorCode = protocol.ErrOffsetNotAvailable
		return r
	}
	switch ts := q.Timestamp; {
	case ts == protocol.LatestTimestamp:
		r.Offset = p.highWatermark()
	case ts == protocol.EarliestTimestamp:
		r.Offset = p.log.StartOffset()
	case ts >= 0:
		r.Offset, r.Timestamp, r.LeaderEpoch, r.ErrorCode = c.offsetForTimestamp(p, ts)
	default:
		r.ErrorCode = protocol.ErrInvalidRequest
	}
	return r
}

// offsetForTimestamp finds the first record at or after ts below the high
// watermark: the log finds the batch, and its records give the exact
// offset and timestamp. No such record gives offset and timestamp -1, as
// Kafka answers. Call with p.mu held.
func (c *conn) offsetForTimestamp(p *partition, ts int64) (offset, timestamp int64, epoch int32, code protocol.ErrorCode) {
	hw := p.highWatermark()
	off, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		return -1, -1, -1, readErrorCode(err)
	}
	if off >= hw {
		return -1, -1, -1, protocol.NoError
	}
	v, err := p.log.ReadUpTo(off, hw, 1)
	if err != nil {
		return -1, -1, -1, readErrorCode(err)
	}
	defer v.Release()
	b, _, err := record.NextBatch(v.Bytes(), 0)
	if err != nil {
		return -1, -1, -1, protocol.ErrCorruptMessage
	}
	var rd record.Reader
	if err := rd.Reset(b); err != nil {
		return -1, -1, -1, protocol.ErrCorruptMessage
	}
	for rd.Next() {
		if rec := rd.Record(); rec.Timestamp >= ts {
			return rec.Offset, rec.Timestamp, b.LeaderEpoch(), protocol.NoError
		}
	}
	if rd.Err() != nil {
		return -1, -1, -1, protocol.ErrCorruptMessage
	}
	// The batch's max timestamp said a record qualifies, its records say
	// none does (a producer-set maxTimestamp): the next batch starts there.
	return b.NextOffset(), b.MaxTimestamp(), b.LeaderEpoch(), protocol.NoError
}

func readErrorCode(err error) protocol.ErrorCode {
	switch {
	case errors.Is(err, log.ErrOffsetOutOfRange):
		return protocol.ErrOffsetOutOfRange
	case errors.Is(err, log.ErrClosed):
		return protocol.ErrNotLeaderOrFollower
	}
	return protocol.ErrUnknownServerError
}
