package protocol

import (
	"errors"
	"testing"
)

// TestInternalAPIsRefuseBadBodies feeds the internal APIs' decoders bodies
// that declare more than they hold, and checks the error-only rule.
func TestInternalAPIsRefuseBadBodies(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
		b    []byte
	}{
		{"forward payload past end", &ControllerForwardRequest{}, body(int32(1 << 30))},
		{"forward payload negative", &ControllerForwardRequest{}, body(int32(-2))},
		{"forward trailing", &ControllerForwardRequest{}, body(int32(1), int8(7), int8(8))},
		{"forward response truncated", &ControllerForwardResponse{}, body(int16(0), int32(4), int8(1))},
		{"describe request not empty", &DescribeClusterRequest{}, []byte{0}},
		{"servers count bomb", &DescribeClusterResponse{}, body(int16(0), "c", int32(-1), int32(1e8))},
		{"brokers count bomb", &DescribeClusterResponse{}, body(int16(0), "c", int32(-1), int32(0), int32(1e6), make([]byte, 20))},
		{"voter not a bool", &DescribeClusterResponse{}, body(int16(0), "c", int32(1), int32(1), int32(1), "a", int8(2), int32(0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Decode(tc.m, tc.b, 0); !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode: %v, want ErrMalformed", err)
			}
		})
	}
	var r DescribeClusterResponse
	if err := Decode(&r, body(int16(ErrNotController)), 0); err != nil || r.ErrorCode != ErrNotController {
		t.Fatalf("error-only body: %v, code %v", err, r.ErrorCode)
	}
	var f ControllerForwardResponse
	if err := Decode(&f, body(int16(ErrUnsupportedVersion)), 0); err != nil || f.ErrorCode != ErrUnsupportedVersion || f.Payload != nil {
		t.Fatalf("error-only forward body: %v, %+v", err, f)
	}
}

// DescribeCluster version 1 carries the Raft term and DescribeReplicas
// version 2 the controller store's error; the older versions still decode,
// without them, and leave nothing of them behind in a reused struct.
func TestClusterFieldsByVersion(t *testing.T) {
	c := &DescribeClusterResponse{ClusterID: "c", ControllerID: 1, RaftTerm: 9, Servers: []RaftServer{{ID: 1, RaftAddr: "a", Voter: true}}}
	var gc DescribeClusterResponse
	if err := Decode(&gc, c.Append(nil, 1), 1); err != nil || gc.RaftTerm != 9 {
		t.Fatalf("cluster v1: term %d, %v; want 9", gc.RaftTerm, err)
	}
	if err := Decode(&gc, c.Append(nil, 0), 0); err != nil || gc.RaftTerm != 0 || gc.ControllerID != 1 || len(gc.Servers) != 1 {
		t.Fatalf("cluster v0: %+v, %v; want no term and the rest intact", gc, err)
	}
	if len(c.Append(nil, 0)) != len(c.Append(nil, 1))-8 {
		t.Fatal("DescribeCluster version 0 encoding changed")
	}
	// Version 2 carries the command-version gate; version 1 leaves
	// nothing of it behind in a reused struct.
	c.CommandLevel, c.CommandVersions = 8, []NodeCommandVersions{{ID: 1, Min: 3, Max: 9}}
	if err := Decode(&gc, c.Append(nil, 2), 2); err != nil || gc.CommandLevel != 8 || len(gc.CommandVersions) != 1 || gc.CommandVersions[0] != c.CommandVersions[0] {
		t.Fatalf("cluster v2: %+v, %v", gc, err)
	}
	if err := Decode(&gc, c.Append(nil, 1), 1); err != nil || gc.CommandLevel != 0 || len(gc.CommandVersions) != 0 || gc.RaftTerm != 9 {
		t.Fatalf("cluster v1 after v2: %+v, %v", gc, err)
	}
	if len(c.Append(nil, 1)) != len(c.Append(nil, 2))-1-4-6 {
		t.Fatal("DescribeCluster version 1 encoding changed")
	}
	m := &AlterClusterMembershipRequest{Op: MembershipFinalizeCommandVersion, TimeoutMs: 5, CommandVersion: 9}
	var gm AlterClusterMembershipRequest
	if err := Decode(&gm, m.Append(nil, 1), 1); err != nil || gm != *m {
		t.Fatalf("membership v1: %+v, %v", gm, err)
	}
	if err := Decode(&gm, m.Append(nil, 0), 0); err != nil || gm.CommandVersion != 0 || gm.TimeoutMs != 5 {
		t.Fatalf("membership v0 after v1: %+v, %v", gm, err)
	}
	const why = "controller store failed: no space left on device"
	r := &DescribeReplicasResponse{BrokerID: 2, Replicas: []ReplicaInfo{{Topic: "t", ErrorMessage: "m"}}, ControllerStoreError: why}
	var gr DescribeReplicasResponse
	if err := Decode(&gr, r.Append(nil, 3), 3); err != nil || gr.ControllerStoreError != why {
		t.Fatalf("replicas v3: %q, %v; want the store error", gr.ControllerStoreError, err)
	}
	for _, v := range []int16{2, 1, 0} {
		if err := Decode(&gr, r.Append(nil, v), v); err != nil || gr.ControllerStoreError != "" || gr.BrokerID != 2 || len(gr.Replicas) != 1 {
			t.Fatalf("replicas v%d: %+v, %v; want no store error and the rest intact", v, gr, err)
		}
	}
	if len(r.Append(nil, 2)) != len(r.Append(nil, 3))-2-len(why) {
		t.Fatal("DescribeReplicas version 2 encoding changed")
	}
}

// ElectLeaders version 1 carries LeaderOnly; version 0 still decodes,
// without it, and leaves none behind in a reused struct.
func TestElectLeadersLeaderOnlyByVersion(t *testing.T) {
	x := &ElectLeadersRequest{Topics: []string{"t"}, TimeoutMs: 100, LeaderOnly: true}
	var got ElectLeadersRequest
	if err := Decode(&got, x.Append(nil, 1), 1); err != nil || !got.LeaderOnly {
		t.Fatalf("v1: %+v, %v; want LeaderOnly", got, err)
	}
	if err := Decode(&got, x.Append(nil, 0), 0); err != nil || got.LeaderOnly || got.TimeoutMs != 100 || len(got.Topics) != 1 {
		t.Fatalf("v0: %+v, %v; want no LeaderOnly and the rest intact", got, err)
	}
	if len(x.Append(nil, 0)) != len(x.Append(nil, 1))-1 {
		t.Fatal("ElectLeaders version 0 encoding changed")
	}
}
