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
