package protocol

import (
	"errors"
	"strings"
	"testing"
)

// body builds a message body from fields for the malformed-input tables.
func body(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case int8:
			b = appendInt8(b, v)
		case int16:
			b = appendInt16(b, v)
		case int32:
			b = appendInt32(b, v)
		case int64:
			b = appendInt64(b, v)
		case string:
			b = appendString(b, v)
		case []byte:
			b = append(b, v...)
		default:
			panic("body: unsupported part")
		}
	}
	return b
}

// fetchHead is a FetchRequest body up to its topics array.
func fetchHead() []byte {
	return body(int32(-1), int64(-1), int32(500), int32(1), int32(1<<20), int8(0))
}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		in   []byte
		want string // the whole error message
	}{
		{"count bomb", &FetchRequest{}, body(fetchHead(), int32(1), "t", int32(1000000), make([]byte, 12)),
			"fetch request: topics[0].partitions: count 1000000 exceeds remaining 12 bytes"},
		{"count bomb top level", &ProduceRequest{}, body(int16(1), int32(0), int32(1e9), make([]byte, 10)),
			"produce request: topics: count 1000000000 exceeds remaining 10 bytes"},
		{"negative count", &ProduceRequest{}, body(int16(1), int32(0), int32(-5)),
			"produce request: topics: count -5"},
		{"null array where not allowed", &DeleteTopicsRequest{}, body(int32(-1), int32(0)),
			"deletetopics request: topics: null array"},
		{"records length bomb", &ProduceRequest{}, body(int16(1), int32(0), int32(1), "t", int32(1), int32(0), int32(100<<20), make([]byte, 3)),
			"produce request: topics[0].partitions[0].records: length 104857600 exceeds remaining 3 bytes"},
		{"negative records length", &ProduceRequest{}, body(int16(1), int32(0), int32(1), "t", int32(1), int32(0), int32(-2)),
			"produce request: topics[0].partitions[0].records: bytes length -2"},
		{"string past end", &DeleteTopicsRequest{}, body(int32(1), int16(300), "ab"),
			"deletetopics request: topics[0]: need 300 bytes, 4 remain"},
		{"null string", &CreateTopicsRequest{}, body(int32(1), int16(-1), int32(1), int16(1), int32(0), int32(0), int8(0)),
			"createtopics request: topics[0].name: string length -1"},
		{"truncated field", &FetchRequest{}, fetchHead()[:14],
			"fetch request: max_wait_ms: need 4 bytes, 2 remain"},
		{"bad bool", &CreateTopicsRequest{}, body(int32(0), int32(0), int8(2)),
			"createtopics request: validate_only: boolean byte 2"},
		{"trailing bytes", &APIVersionsRequest{}, []byte{0},
			"apiversions request: 1 trailing bytes"},
		{"nested path", &MetadataResponse{}, body(int16(0), int32(0), "c", int32(1), int32(1), int16(0), "t", int8(0),
			int32(1), int16(0), int32(0), int32(1), int32(0), int32(5), make([]byte, 8)),
			"metadata response: topics[0].partitions[0].replicas: count 5 exceeds remaining 8 bytes"},
		{"empty response body", &ProduceResponse{}, nil, "produce response: error_code: need 2 bytes, 0 remain"},
		{"zero code alone is not an error-only body", &FetchResponse{}, body(int16(0)),
			"fetch response: throttle_ms: need 4 bytes, 0 remain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Decode(tt.msg, tt.in, 0)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if err.Error() != tt.want {
				t.Fatalf("err = %q\nwant  %q", err, tt.want)
			}
		})
	}
}

func TestDecodeUnsupportedVersion(t *testing.T) {
	for _, k := range allKeys() {
		for _, m := range []Message{NewRequest(k), NewResponse(k)} {
			err := Decode(m, nil, 99)
			if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "v99") {
				t.Errorf("%T v99: err = %v", m, err)
			}
		}
	}
}

// TestDecodeErrorOnly checks the uniform error rule: a body that is just a
// non-zero code decodes as that code for every response type, and clears
// what a reused struct held.
func TestDecodeErrorOnly(t *testing.T) {
	for _, full := range sampleResponses() {
		m := full // reused: holds a full response first
		if err := Decode(m, body(int16(ErrNotController)), 0); err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		code := errorCodeOf(m)
		if code != ErrNotController {
			t.Fatalf("%T: code %v", m, code)
		}
		want := NewResponse(m.Key())
		setErrorCode(want, ErrNotController)
		if string(m.Append(nil, 0)) != string(want.Append(nil, 0)) {
			t.Errorf("%T: error-only decode left old fields: %+v", m, m)
		}
	}
}

func TestDecoderIsReusable(t *testing.T) {
	var d Decoder
	var r ProduceRequest
	d.Reset([]byte{1})
	if err := r.Decode(&d, 0); err == nil {
		t.Fatal("short body decoded")
	}
	good := sampleRequests()[0].Append(nil, 0)
	d.Reset(good)
	if err := r.Decode(&d, 0); err != nil {
		t.Fatalf("error survived Reset: %v", err)
	}
	if d.Remaining() != 0 || d.Err() != nil {
		t.Fatalf("remaining %d, err %v", d.Remaining(), d.Err())
	}
}
