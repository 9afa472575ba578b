package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
)

// alterPartitionAssignments starts or cancels (null replicas) partition
// moves through the core (Broker.AlterReassignments), the call sluice
// cluster reassign uses.
func (s *Server) alterPartitionAssignments(ctx context.Context, req *kmsg.AlterPartitionAssignmentsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	ctx, cancel := ctxTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	var moves []broker.Reassignment
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			moves = append(moves, broker.Reassignment{Topic: t.Topic, Partition: p.Partition, Replicas: p.Replicas})
		}
	}
	errs := s.b.AlterReassignments(ctx, moves)
	k := 0
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode, rp.ErrorMessage = errorCode(errs[k])
			if errs[k] == nil {
				rp.ErrorMessage = nil
			}
			k++
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// listPartitionReassignments lists the moves in progress (Broker.Moves),
// of the partitions named (all when the topics are null). Moves queued
// behind the cluster's move limits have not started: Kafka has no such
// state, so they are left out.
func (s *Server) listPartitionReassignments(req *kmsg.ListPartitionReassignmentsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	var topics []string
	for _, t := range req.Topics {
		topics = append(topics, t.Topic)
	}
	byTopic := map[string]int{}
	for _, m := range s.b.Moves(topics) {
		if len(m.Queued) > 0 || !asked(req.Topics, m.Topic, m.Partition) {
			continue
		}
		i, ok := byTopic[m.Topic]
		if !ok {
			rt := kmsg.NewListPartitionReassignmentsResponseTopic()
			rt.Topic = m.Topic
			resp.Topics = append(resp.Topics, rt)
			i = len(resp.Topics) - 1
			byTopic[m.Topic] = i
		}
		rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		rp.Partition, rp.Replicas, rp.AddingReplicas, rp.RemovingReplicas = m.Partition, m.Replicas, m.Adding, m.Removing
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
	}
	return resp
}

// asked reports whether a ListPartitionReassignments names the partition
// (all of them when topics is null).
func asked(topics []kmsg.ListPartitionReassignmentsRequestTopic, topic string, partition int32) bool {
	if topics == nil {
		return true
	}
	for _, t := range topics {
		if t.Topic == topic {
			for _, p := range t.Partitions {
				if p == partition {
					return true
				}
			}
		}
	}
	return false
}
