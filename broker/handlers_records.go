package broker

import "github.com/sluicemq/sluice/protocol"

// handleDeleteRecords moves log start offsets through the core
// (Broker.DeleteRecords), per partition; each needs delete on its topic.
func (c *conn) handleDeleteRecords(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DeleteRecordsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := protocol.DeleteRecordsResponse{Topics: make([]protocol.DeleteRecordsTopicResponse, len(req.Topics))}
	var cu CatchUp
	for i, t := range req.Topics {
		ot := &out.Topics[i]
		ot.Name = t.Name
		refused := c.sess.CanDeleteTopic(t.Name)
		for _, p := range t.Partitions {
			r := protocol.DeleteRecordsPartitionResponse{Partition: p.Partition, LowWatermark: -1}
			err := refused
			if err == nil {
				r.LowWatermark, err = c.b.DeleteRecords(&cu, t.Name, p.Partition, p.Offset)
			}
			r.ErrorCode, r.ErrorMessage = ErrorCode(err)
			ot.Partitions = append(ot.Partitions, r)
		}
	}
	c.encode(resp, h, &out)
	return nil
}
