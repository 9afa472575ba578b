package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
)

// listOffsets answers earliest (-2), latest (-1) and by-timestamp queries
// through the core (Broker.ListOffset), per partition.
func (s *Server) listOffsets(sess *broker.Session, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, len(req.Topics))
	var cu broker.CatchUp
	for i := range req.Topics {
		t, rt := &req.Topics[i], &resp.Topics[i]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(t.Partitions))
		denied := sess.CanDescribe(t.Topic)
		for j, p := range t.Partitions {
			rp := &rt.Partitions[j]
			*rp = kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			at, err := broker.OffsetAt{Offset: -1, Timestamp: -1, LeaderEpoch: -1}, denied
			if err == nil {
				at, err = s.b.ListOffset(&cu, t.Topic, p.Partition, p.Timestamp)
			}
			rp.ErrorCode = codeOf(err)
			rp.Offset, rp.Timestamp, rp.LeaderEpoch = at.Offset, at.Timestamp, at.LeaderEpoch
		}
	}
	return resp
}

// offsetForLeaderEpoch answers, per partition, where the largest epoch at
// or below the one asked ends in the leader's log (Broker.EpochEndOffset):
// Kafka clients use it to detect a truncation after a leader change.
func (s *Server) offsetForLeaderEpoch(sess *broker.Session, req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	resp.Topics = make([]kmsg.OffsetForLeaderEpochResponseTopic, len(req.Topics))
	var cu broker.CatchUp
	for i := range req.Topics {
		t, rt := &req.Topics[i], &resp.Topics[i]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.OffsetForLeaderEpochResponseTopicPartition, len(t.Partitions))
		denied := sess.CanDescribe(t.Topic)
		if req.ReplicaID >= 0 {
			denied = sess.BrokerOnly()
		}
		for j, p := range t.Partitions {
			rp := &rt.Partitions[j]
			*rp = kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition = p.Partition
			epoch, end, err := int32(-1), int64(-1), denied
			if err == nil {
				epoch, end, err = s.b.EpochEndOffset(&cu, t.Topic, p.Partition, p.CurrentLeaderEpoch, p.LeaderEpoch)
			}
			rp.ErrorCode = codeOf(err)
			rp.LeaderEpoch, rp.EndOffset = epoch, end
		}
	}
	return resp
}
