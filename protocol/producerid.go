package protocol

// InitProducerIDRequest asks for an idempotent producer id and epoch. A new
// producer sends ProducerID -1 and ProducerEpoch -1 and gets a fresh id; a
// producer that already has one sends it back to have its epoch bumped —
// after UNKNOWN_PRODUCER_ID or OUT_OF_ORDER_SEQUENCE_NUMBER, say — and then
// starts every partition's sequence again at 0. The id is unique across
// the cluster and across controller failover (R13).
type InitProducerIDRequest struct {
	ProducerID    int64
	ProducerEpoch int16
}

// Key returns InitProducerID.
func (*InitProducerIDRequest) Key() APIKey { return InitProducerID }

// Append encodes the body.
func (r *InitProducerIDRequest) Append(dst []byte, version int16) []byte {
	dst = appendInt64(dst, r.ProducerID)
	return appendInt16(dst, r.ProducerEpoch)
}

// Decode parses the body.
func (r *InitProducerIDRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(InitProducerID, false, version); err != nil {
		return err
	}
	r.ProducerID = d.int64("producer_id")
	r.ProducerEpoch = d.int16("producer_epoch")
	return d.finish()
}

// InitProducerIDResponse carries the producer id and epoch to use, or an
// error (then neither means anything).
type InitProducerIDResponse struct {
	ErrorCode     ErrorCode
	ThrottleMs    int32
	ProducerID    int64
	ProducerEpoch int16
}

// Key returns InitProducerID.
func (*InitProducerIDResponse) Key() APIKey { return InitProducerID }

// Append encodes the body.
func (r *InitProducerIDResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendInt32(dst, r.ThrottleMs)
	dst = appendInt64(dst, r.ProducerID)
	return appendInt16(dst, r.ProducerEpoch)
}

// Decode parses the body.
func (r *InitProducerIDResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(InitProducerID, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ThrottleMs, r.ProducerID, r.ProducerEpoch = 0, 0, 0
		return d.err
	}
	r.ThrottleMs = d.int32("throttle_ms")
	r.ProducerID = d.int64("producer_id")
	r.ProducerEpoch = d.int16("producer_epoch")
	return d.finish()
}
