package controller

import (
	"fmt"
	"testing"
)

// largeMetadata returns 3 brokers and topics×partitions partitions.
func largeMetadata(b *testing.B, topics, partitions int) *Metadata {
	b.Helper()
	m := NewMetadata()
	var err error
	for id := int32(1); id <= 3; id++ {
		if m, _, err = Apply(m, RegisterBroker{ID: id, Addr: fmt.Sprintf("h:%d", id)}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range topics {
		c, err := PlanCreateTopic(m, TopicSpec{Name: fmt.Sprintf("topic-%d", i), Partitions: int32(partitions), ReplicationFactor: 3})
		if err != nil {
			b.Fatal(err)
		}
		if m, _, err = Apply(m, c); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

// BenchmarkApplyAlterPartition measures an ISR change on a large cluster:
// Apply copies the maps and the one topic it changes, not the whole
// metadata.
func BenchmarkApplyAlterPartition(b *testing.B) {
	m := largeMetadata(b, 1000, 10)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := m.Topics["topic-7"].Partitions[3]
		isr := p.ISR
		if len(isr) == 3 {
			isr = isr[:2]
		} else {
			isr = p.Replicas
		}
		next, _, err := Apply(m, AlterPartition{Topic: "topic-7", Partition: 3, PartitionEpoch: p.PartitionEpoch, Leader: p.Leader, ISR: isr})
		if err != nil {
			b.Fatal(err)
		}
		m = next
	}
}

// BenchmarkSnapshot measures encoding and decoding a snapshot of 10,000
// partitions.
func BenchmarkSnapshot(b *testing.B) {
	m := largeMetadata(b, 1000, 10)
	snap := encodeSnapshot(m, 1)
	b.SetBytes(int64(len(snap)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeSnapshot(encodeSnapshot(m, 1)); err != nil {
			b.Fatal(err)
		}
	}
}
