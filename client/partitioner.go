package client

// Partitioner chooses the partition of each produced record.
type Partitioner interface {
	// Partition returns the partition of rec among n (n >= 1), or
	// StickyPartition to let the producer place it in its current sticky
	// batch. A result outside [0, n) fails the record.
	Partition(rec *Record, n int32) int32
}

// StickyPartition is what a Partitioner returns to leave the choice to the
// producer's sticky placement: records without a key fill one partition's
// batch, and each time that batch is sealed the next keyless record picks
// another partition at random. Batches fill faster than with round robin
// and load still spreads evenly over time (Kafka's KIP-480).
const StickyPartition int32 = -1

// KeyPartitioner is the default Partitioner, placing records where Kafka's
// Java producer would: a record with a non-nil key goes to
//
//	(murmur2(key) & 0x7fffffff) % n
//
// with Kafka's murmur2 (seed 0x9747b28c; Utils.murmur2 and toPositive in
// Apache Kafka's clients), so a key lands on the same partition as with a
// Kafka producer on a topic with the same partition count. A nil key (an
// empty but non-nil key is hashed) gets StickyPartition.
func KeyPartitioner() Partitioner { return keyPartitioner{} }

type keyPartitioner struct{}

func (keyPartitioner) Partition(rec *Record, n int32) int32 {
	if rec.Key == nil {
		return StickyPartition
	}
	return KeyPartition(rec.Key, n)
}

// KeyPartition is KeyPartitioner's choice for key among n partitions.
func KeyPartition(key []byte, n int32) int32 {
	return int32(murmur2(key)&0x7fffffff) % n
}

// ManualPartitioner sends every record to its Record.Partition.
func ManualPartitioner() Partitioner { return manualPartitioner{} }

type manualPartitioner struct{}

func (manualPartitioner) Partition(rec *Record, n int32) int32 { return rec.Partition }

// murmur2 is Kafka's 32-bit murmur2 (org.apache.kafka.common.utils.Utils):
// little-endian 4-byte blocks, the tail folded in from its highest byte
// down, then the final mix. uint32 arithmetic wraps exactly as Java's int.
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
