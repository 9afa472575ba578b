package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// listOffsets answers earliest (-2), latest (-1) and by-timestamp queries
// through the core (Broker.ListOffset), per partition.
func (s *Server) listOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, len(req.Topics))
	for i := range req.Topics {
		t, rt := &req.Topics[i], &resp.Topics[i]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rp := &rt.Partitions[j]
			*rp = kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			at, err := s.b.ListOffset(t.Topic, p.Partition, p.Timestamp)
			rp.ErrorCode = codeOf(err)
			rp.Offset, rp.Timestamp, rp.LeaderEpoch = at.Offset, at.Timestamp, at.LeaderEpoch
		}
	}
	return resp
}

// offsetForLeaderEpoch answers, per partition, where the largest epoch at
// or below the one asked ends in the leader's log (Broker.EpochEndOffset):
// Kafka clients use it to detect a truncation after a leader change.
func (s *Server) offsetForLeaderEpoch(req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	resp.Topics = make([]kmsg.OffsetForLeaderEpochResponseTopic, len(req.Topics))
	for i := range req.Topics {
		t, rt := &req.Topics[i], &resp.Topics[i]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.OffsetForLeaderEpochResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rp := &rt.Partitions[j]
			*rp = kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition = p.Partition
			epoch, end, err := s.b.EpochEndOffset(t.Topic, p.Partition, p.CurrentLeaderEpoch, p.LeaderEpoch)
			rp.ErrorCode = codeOf(err)
			rp.LeaderEpoch, rp.EndOffset = epoch, end
		}
	}
	return resp
}
