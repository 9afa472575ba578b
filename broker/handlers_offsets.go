package broker

import (
	"github.com/sluicemq/sluice/protocol"
)

// handleListOffsets translates ListOffsets into the core's ListOffset:
// earliest, latest (the high watermark: what a consumer can read) and
// by-timestamp queries.
func (c *conn) handleListOffsets(h *protocol.RequestHeader, resp *response) error {
	req := &c.scratch.listReq
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := &c.scratch.listResp
	out.ErrorCode = protocol.NoError
	out.Topics = resize(out.Topics, len(req.Topics))
	var cu CatchUp
	for i := range req.Topics {
		t, ot := &req.Topics[i], &out.Topics[i]
		ot.Name = t.Name
		ot.Partitions = resize(ot.Partitions, len(t.Partitions))
		for j := range t.Partitions {
			ot.Partitions[j] = c.listOffset(&cu, t.Name, &t.Partitions[j])
		}
	}
	c.encode(resp, h, out)
	return nil
}

func (c *conn) listOffset(cu *CatchUp, topic string, q *protocol.ListOffsetsPartition) protocol.ListOffsetsPartitionResponse {
	err := c.sess.CanDescribe(topic)
	var at OffsetAt
	if err == nil {
		at, err = c.b.ListOffset(cu, topic, q.Partition, q.Timestamp)
	}
	r := protocol.ListOffsetsPartitionResponse{Partition: q.Partition, Timestamp: at.Timestamp, Offset: at.Offset, LeaderEpoch: at.LeaderEpoch}
	r.ErrorCode, _ = ErrorCode(err)
	return r
}
