package protocol

import (
	"errors"
	"strings"
	"testing"
)

// TestReplicationAPIsRefuseBadBodies feeds the decoders of
// OffsetForLeaderEpoch, DescribeReplicas and ElectLeaders bodies that
// declare more than they hold, or hold values with no encoding.
func TestReplicationAPIsRefuseBadBodies(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
		b    []byte
		want string // part of the error
	}{
		{"epoch topics bomb", &OffsetForLeaderEpochRequest{}, body(int32(2), int32(1e9), make([]byte, 8)),
			"offsetforleaderepoch request: topics: count 1000000000 exceeds remaining 8 bytes"},
		{"epoch partitions bomb", &OffsetForLeaderEpochRequest{}, body(int32(2), int32(1), "t", int32(2), make([]byte, 12)),
			"offsetforleaderepoch request: topics[0].partitions: count 2 exceeds remaining 12 bytes"},
		{"epoch partition truncated", &OffsetForLeaderEpochRequest{}, body(int32(2), int32(1), "t", int32(1), make([]byte, 11)),
			"count 1 exceeds remaining 11 bytes"},
		{"epoch null topics", &OffsetForLeaderEpochRequest{}, body(int32(2), int32(-1)), "topics: null array"},
		{"epoch response partitions bomb", &OffsetForLeaderEpochResponse{}, body(int16(0), int32(0), int32(1), "t", int32(3), make([]byte, 36)),
			"offsetforleaderepoch response: topics[0].partitions: count 3 exceeds remaining 36 bytes"},
		{"epoch response trailing", &OffsetForLeaderEpochResponse{}, body(int16(0), int32(0), int32(0), int8(1)), "1 trailing bytes"},
		{"replicas request topics bomb", &DescribeReplicasRequest{}, body(int32(1<<30), int64(-1)), "topics: count 1073741824 exceeds remaining 8 bytes"},
		{"replicas request null topics", &DescribeReplicasRequest{}, body(int32(-1), int64(-1)), "topics: null array"},
		{"replicas request no limit", &DescribeReplicasRequest{}, body(int32(0)), "checksum_up_to: need 8 bytes, 0 remain"},
		{"replicas bomb", &DescribeReplicasResponse{}, body(int16(0), int32(1), int32(2), make([]byte, 57)),
			"describereplicas response: replicas: count 2 exceeds remaining 57 bytes"},
		{"replica leader not a bool", &DescribeReplicasResponse{}, body(int16(0), int32(1), int32(1), "t", int32(0), int16(0), int8(2), make([]byte, 48)),
			"replicas[0].leader: boolean byte 2"},
		{"replica topic past end", &DescribeReplicasResponse{}, body(int16(0), int32(1), int32(1), int16(300), make([]byte, 55)),
			"replicas[0].topic: need 300 bytes, 55 remain"},
		{"elect topics bomb", &ElectLeadersRequest{}, body(int32(1e6), int32(0)), "topics: count 1000000 exceeds remaining 4 bytes"},
		{"elect results bomb", &ElectLeadersResponse{}, body(int16(0), int32(0), int32(2), make([]byte, 14)),
			"electleaders response: results: count 2 exceeds remaining 14 bytes"},
		{"moves bomb", &ListPartitionReassignmentsResponse{}, body(int16(0), int32(1), int32(2), make([]byte, 93)),
			"listpartitionreassignments response: partitions: count 2 exceeds remaining 93 bytes"},
		{"move positions bomb", &ListPartitionReassignmentsResponse{}, body(int16(0), int32(1), int32(1), "t", int32(0), int32(1),
			int32(0), int32(0), int32(0), int8(1), int64(0), int32(1e6), int64(0), int32(0)), "partitions[0].positions: count 1000000 exceeds remaining 12 bytes"},
		{"reassign bomb", &AlterPartitionReassignmentsRequest{}, body(int32(0), int32(3), make([]byte, 29)),
			"partitions: count 3 exceeds remaining 29 bytes"},
		{"elect message null", &ElectLeadersResponse{}, body(int16(0), int32(0), int32(1), "t", int32(0), int16(0), int16(-1), int32(1)),
			"results[0].message: string length -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Decode(tc.m, tc.b, 0)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode: %v, want ErrMalformed with %q", err, tc.want)
			}
		})
	}
}

// TestReplicationAPIsMinimalElements checks the minimum element sizes the
// decoders assume: arrays of elements with every string empty — the
// smallest encoding there is — must decode, so no count check refuses a
// valid body.
func TestReplicationAPIsMinimalElements(t *testing.T) {
	const n = 3
	for _, m := range []Message{
		&OffsetForLeaderEpochRequest{Topics: make([]OffsetForLeaderEpochTopic, n)},
		&OffsetForLeaderEpochRequest{Topics: []OffsetForLeaderEpochTopic{{Partitions: make([]OffsetForLeaderEpochPartition, n)}}},
		&OffsetForLeaderEpochResponse{Topics: make([]OffsetForLeaderEpochTopicResult, n)},
		&OffsetForLeaderEpochResponse{Topics: []OffsetForLeaderEpochTopicResult{{Partitions: make([]EpochEndOffset, n)}}},
		&DescribeReplicasRequest{Topics: make([]string, n)},
		&DescribeReplicasResponse{Replicas: make([]ReplicaInfo, n)},
		&ElectLeadersRequest{Topics: make([]string, n)},
		&ElectLeadersResponse{Results: make([]ElectionResult, n)},
		&CreatePartitionsRequest{Topics: make([]PartitionCount, n)},
		&AlterPartitionReassignmentsRequest{Partitions: make([]Reassignment, n)},
		&AlterPartitionReassignmentsResponse{Results: make([]PartitionResult, n)},
		&ListPartitionReassignmentsResponse{Partitions: make([]MovingPartition, n)},
	} {
		checkRoundTrip(t, m, fresh(m))
	}
}

// TestReplicaChecksumIsUnsigned checks a checksum with the top bit set
// survives as the same uint32 (it travels as the bits of an i32).
func TestReplicaChecksumIsUnsigned(t *testing.T) {
	in := &DescribeReplicasResponse{Replicas: []ReplicaInfo{{Topic: "t", Checksum: 0xfffffffe, ChecksumEnd: 10}}}
	var out DescribeReplicasResponse
	if err := Decode(&out, in.Append(nil, 0), 0); err != nil || out.Replicas[0].Checksum != 0xfffffffe {
		t.Fatalf("checksum %x, %v", out.Replicas[0].Checksum, err)
	}
}

// TestReplicaErrorMessageVersion checks the error message travels from
// version 1 only: a version 0 peer reads the same body as before.
func TestReplicaErrorMessageVersion(t *testing.T) {
	in := &DescribeReplicasResponse{BrokerID: 1, Replicas: []ReplicaInfo{{Topic: "t", ErrorCode: ErrStorageError, ErrorMessage: "disk full"}}}
	for v, want := range map[int16]string{0: "", 1: "disk full"} {
		var out DescribeReplicasResponse
		if err := Decode(&out, in.Append(nil, v), v); err != nil || out.Replicas[0].ErrorMessage != want {
			t.Fatalf("v%d: message %q, %v; want %q", v, out.Replicas[0].ErrorMessage, err, want)
		}
	}
	if len(in.Append(nil, 0)) != len(in.Append(nil, 1))-2-len("disk full") {
		t.Fatal("version 0 encoding changed")
	}
}

// TestReplicaCleanerVersion checks the cleaner state travels from
// version 2 only.
func TestReplicaCleanerVersion(t *testing.T) {
	in := &DescribeReplicasResponse{BrokerID: 1, Replicas: []ReplicaInfo{{Topic: "t", Compacted: true, CleanBytes: 5, DirtyBytes: 6, LastCleanMs: 7, CleanerFailures: 1, CleanerError: "boom"}}}
	for v := int16(0); v <= 2; v++ {
		var out DescribeReplicasResponse
		if err := Decode(&out, in.Append(nil, v), v); err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		r := out.Replicas[0]
		if got := r.Compacted && r.CleanBytes == 5 && r.DirtyBytes == 6 && r.LastCleanMs == 7 && r.CleanerFailures == 1 && r.CleanerError == "boom"; got != (v >= 2) {
			t.Fatalf("v%d: cleaner state %+v", v, r)
		}
	}
}

// The disk usage and log sizes travel from version 4 only.
func TestReplicaDiskVersion(t *testing.T) {
	in := &DescribeReplicasResponse{BrokerID: 1, DiskFree: 10, DiskCapacity: 100, Replicas: []ReplicaInfo{{Topic: "t", LogBytes: 42}}}
	for v := int16(0); v <= 4; v++ {
		var out DescribeReplicasResponse
		if err := Decode(&out, in.Append(nil, v), v); err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if got := out.DiskFree == 10 && out.DiskCapacity == 100 && out.Replicas[0].LogBytes == 42; got != (v >= 4) {
			t.Fatalf("v%d: disk %d of %d, log bytes %d", v, out.DiskFree, out.DiskCapacity, out.Replicas[0].LogBytes)
		}
	}
}
