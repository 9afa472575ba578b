package client

import "github.com/sluicemq/sluice/protocol"

// Building requests and reading responses, shared by the producer, the
// consumer's fetchers and the admin API: requests and responses list
// partitions by topic, so a request is built topic entry by topic entry
// and a partition's answer is looked up by topic and partition.

// topicEntry returns the element of *ts named name, appending one if there
// is none; name gives access to an element's name.
func topicEntry[T any](ts *[]T, topic string, name func(*T) *string) *T {
	for i := range *ts {
		if *name(&(*ts)[i]) == topic {
			return &(*ts)[i]
		}
	}
	var t T
	*name(&t) = topic
	*ts = append(*ts, t)
	return &(*ts)[len(*ts)-1]
}

// findPartition returns the partition entry for tp in a response's topics,
// or nil; parts gives a topic entry's name and partitions, id a partition
// entry's id.
func findPartition[T, P any](ts []T, tp TopicPartition, parts func(*T) (string, []P), id func(*P) int32) *P {
	for i := range ts {
		name, ps := parts(&ts[i])
		if name != tp.Topic {
			continue
		}
		for j := range ps {
			if id(&ps[j]) == tp.Partition {
				return &ps[j]
			}
		}
	}
	return nil
}

// findListOffsets is tp's entry in a ListOffsets response, or nil.
func findListOffsets(resp *protocol.ListOffsetsResponse, tp TopicPartition) *protocol.ListOffsetsPartitionResponse {
	return findPartition(resp.Topics, tp,
		func(t *protocol.ListOffsetsTopicResponse) (string, []protocol.ListOffsetsPartitionResponse) {
			return t.Name, t.Partitions
		},
		func(p *protocol.ListOffsetsPartitionResponse) int32 { return p.Partition })
}

// findProduce is tp's entry in a Produce response, or nil.
func findProduce(resp *protocol.ProduceResponse, tp TopicPartition) *protocol.ProducePartitionResponse {
	return findPartition(resp.Topics, tp,
		func(t *protocol.ProduceTopicResponse) (string, []protocol.ProducePartitionResponse) {
			return t.Name, t.Partitions
		},
		func(p *protocol.ProducePartitionResponse) int32 { return p.Partition })
}
