package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// errTransactions refuses a transactional id: transactions are not served
// yet (docs/kafka.md), and ApiVersions does not advertise their APIs.
var errTransactions = &protocol.Error{Code: protocol.ErrInvalidRequest,
	Detail: "transactions are not supported by this sluice broker: unset transactional.id (idempotence alone is supported)"}

// pendingAck is a partition of a produce whose answer waits for its
// acknowledgement.
type pendingAck struct {
	a    broker.LeaderAppend
	resp *kmsg.ProduceResponseTopicPartition
}

// produce appends each partition's batches, as they came, through the
// core (Broker.Append), in request order, on the connection's handler
// goroutine: the record bytes alias the frame, and the core copies them
// into the segment. The waits (fsync=always, acks=all) run in a goroutine
// of the connection that completes the reply, so the next request is
// read meanwhile. acks=0 is answered with nothing, as Kafka does.
func (s *Server) produce(fc *broker.FrontConn, h header, flexible bool, req *kmsg.ProduceRequest) *broker.Reply {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var txnErr error
	if req.TransactionID != nil {
		txnErr = errTransactions
	}
	var pending []pendingAck
	var cu broker.CatchUp
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i := range req.Topics {
		t, rt := &req.Topics[i], &resp.Topics[i]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		denied := txnErr
		if denied == nil {
			denied = fc.Session().CanWrite(t.Topic) // once per topic: nothing of a denied one is appended
		}
		for j := range t.Partitions {
			p, rp := &t.Partitions[j], &rt.Partitions[j]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			err := denied
			var a broker.LeaderAppend
			if err == nil {
				a, err = s.b.Append(&cu, t.Topic, p.Partition, p.Records, broker.Acks(req.Acks))
			}
			if err != nil {
				setProduceError(rp, err)
				continue
			}
			rp.BaseOffset, rp.LogStartOffset = a.BaseOffset, a.LogStartOffset
			if a.Pending() {
				pending = append(pending, pendingAck{a: a, resp: rp})
			}
		}
	}
	// The topic names alias the frame, which is reused after this call.
	for i := range resp.Topics {
		resp.Topics[i].Topic = clone(resp.Topics[i].Topic)
	}
	none := req.Acks == 0
	if len(pending) == 0 {
		if none {
			return nil
		}
		r := reply(h.correlation, flexible, resp)
		r.Code = firstProduceError(resp)
		return r
	}
	r := &broker.Reply{Ready: make(chan struct{})}
	timeout := broker.ProduceTimeout(req.TimeoutMillis)
	fc.Go(func() {
		defer fc.Finish(r)
		ctx, cancel := context.WithTimeout(fc.Context(), timeout)
		defer cancel()
		for _, w := range pending {
			if err := w.a.Wait(ctx); err != nil {
				setProduceError(w.resp, err)
				fc.Logger().Debug("kafka: produce not acknowledged", zap.Int32("partition", w.resp.Partition), zap.Error(err))
			}
		}
		if !none {
			r.Frame = [][]byte{appendResponse(nil, h.correlation, flexible, resp)}
		}
		r.Code = firstProduceError(resp)
	})
	return r
}

// firstProduceError is the first partition error of a produce response,
// what the metrics count it under (as the sluice listener does).
func firstProduceError(resp *kmsg.ProduceResponse) protocol.ErrorCode {
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if c := resp.Topics[i].Partitions[j].ErrorCode; c != 0 {
				return protocol.ErrorCode(c)
			}
		}
	}
	return protocol.NoError
}

func setProduceError(rp *kmsg.ProduceResponseTopicPartition, err error) {
	rp.ErrorCode, rp.ErrorMessage = errorCode(err)
	rp.BaseOffset = -1
}

// initProducerID gives an idempotent producer its id through the core
// (Broker.InitProducerID). Versions 0-1 carry no id to bump: each call is
// a new producer.
func (s *Server) initProducerID(fc *broker.FrontConn, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	if req.TransactionalID != nil {
		fc.Logger().Info("kafka: InitProducerId with a transactional id refused: transactions are not supported")
		resp.ErrorCode = codeOf(errTransactions)
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return resp
	}
	id, epoch, err := int64(-1), int16(-1), fc.Session().CanIdempotentWrite()
	if err == nil {
		id, epoch, err = s.b.InitProducerID(fc.Context(), -1, -1)
	}
	resp.ProducerID, resp.ProducerEpoch, resp.ErrorCode = id, epoch, codeOf(err)
	return resp
}

// clone copies a string that aliases the request frame.
func clone(s string) string { return string([]byte(s)) }
