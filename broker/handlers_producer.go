package broker

import (
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/protocol"
)

// handleInitProducerID gives an idempotent producer its id and epoch
// through the core (InitProducerID). The wait for a block of ids ends with
// the connection.
func (c *conn) handleInitProducerID(h *protocol.RequestHeader, resp *response) error {
	var req protocol.InitProducerIDRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := protocol.InitProducerIDResponse{ProducerID: -1, ProducerEpoch: -1}
	id, epoch, err := int64(-1), int16(-1), c.sess.CanIdempotentWrite()
	if err == nil {
		id, epoch, err = c.b.InitProducerID(c.ctx, req.ProducerID, req.ProducerEpoch)
	}
	if err != nil {
		// The response has no room for the detail: log it.
		var detail string
		out.ErrorCode, detail = ErrorCode(err)
		c.logger.Debug("InitProducerId refused", zap.Stringer("code", out.ErrorCode), zap.String("detail", detail))
	} else {
		out.ProducerID, out.ProducerEpoch = id, epoch
	}
	c.encode(resp, h, &out)
	return nil
}
