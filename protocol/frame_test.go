package protocol

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func frameOf(payload []byte) []byte { return append(appendInt32(nil, int32(len(payload))), payload...) }

func TestFrameReaderReadsFrames(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: grows past frameChunk
	payloads := [][]byte{[]byte("first"), {}, big, []byte("after the big one")}
	var stream []byte
	for _, p := range payloads {
		stream = append(stream, frameOf(p)...)
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			fr := NewFrameReader(wrap(bytes.NewReader(stream)), 0)
			for i, want := range payloads {
				got, err := fr.Next()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("frame %d: %d bytes, want %d", i, len(got), len(want))
				}
			}
			if _, err := fr.Next(); err != io.EOF {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
		})
	}
}

func TestFrameReaderRefuses(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		max    int
		is     error
		want   string
	}{
		{"negative length", appendInt32(nil, -1), 0, ErrFrameSize, "frame length -1 is negative"},
		{"most negative length", appendInt32(nil, -1<<31), 0, ErrFrameSize, "frame length -2147483648 is negative"},
		{"over the default max", appendInt32(nil, DefaultMaxFrameSize+1), 0, ErrFrameSize, "frame length 104857601 exceeds the maximum of 104857600"},
		{"over a configured max", frameOf(make([]byte, 11)), 10, ErrFrameSize, "frame length 11 exceeds the maximum of 10"},
		{"truncated length", []byte{0, 0}, 0, io.ErrUnexpectedEOF, "frame length: unexpected EOF"},
		{"truncated body", append(appendInt32(nil, 10), "abc"...), 0, io.ErrUnexpectedEOF, "frame of 10 bytes: read 3: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFrameReader(bytes.NewReader(tt.stream), tt.max).Next()
			if !errors.Is(err, tt.is) || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q (%v)", err, tt.want, tt.is)
			}
			var fse *FrameSizeError
			if errors.Is(tt.is, ErrFrameSize) && !errors.As(err, &fse) {
				t.Fatalf("err %T is not a *FrameSizeError", err)
			}
		})
	}
	// A frame exactly at the maximum is accepted.
	if got, err := NewFrameReader(bytes.NewReader(frameOf(make([]byte, 10))), 10).Next(); err != nil || len(got) != 10 {
		t.Fatalf("frame at the max: %d bytes, %v", len(got), err)
	}
}

// TestFrameReaderLengthBomb sends a length prefix at the maximum followed by
// a few bytes and the end of the stream: the reader must not have allocated
// anything near the declared size.
func TestFrameReaderLengthBomb(t *testing.T) {
	stream := append(appendInt32(nil, DefaultMaxFrameSize), "only a few bytes"...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fr := NewFrameReader(bytes.NewReader(stream), 0)
	_, err := fr.Next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
	if cap(fr.buf) > frameChunk {
		t.Errorf("buffer grew to %d bytes for 16 bytes received", cap(fr.buf))
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("allocated %d bytes for a 100 MiB length prefix with 16 bytes behind it", n)
	}
}

// TestFrameReaderReleasesBigBuffer checks that a rare big frame does not pin
// its buffer for the connection's lifetime, and that small frames reuse it.
func TestFrameReaderReleasesBigBuffer(t *testing.T) {
	stream := append(frameOf(make([]byte, retainLimit+1)), frameOf([]byte("small"))...)
	stream = append(stream, frameOf([]byte("small2"))...)
	fr := NewFrameReader(bytes.NewReader(stream), 0)
	for range 2 {
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if cap(fr.buf) > retainLimit {
		t.Fatalf("kept a %d-byte buffer after a small frame", cap(fr.buf))
	}
	first := &fr.buf[:1][0]
	if got, err := fr.Next(); err != nil || string(got) != "small2" || &got[0] != first {
		t.Fatalf("small frames do not reuse the buffer: %q %v", got, err)
	}
}

func TestRequestRoundTripThroughFrames(t *testing.T) {
	var stream []byte
	reqs := sampleRequests()
	for i, req := range reqs {
		h := RequestHeader{Key: req.Key(), CorrelationID: int32(100 + i), ClientID: "client-1"}
		var err error
		if stream, err = AppendRequest(stream, &h, req); err != nil {
			t.Fatal(err)
		}
	}
	fr := NewFrameReader(bytes.NewReader(stream), 0)
	var h RequestHeader
	var d Decoder
	for i, want := range reqs {
		frame, err := fr.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, err := h.Decode(frame)
		if err != nil {
			t.Fatal(err)
		}
		if h.Key != want.Key() || h.Version != 0 || h.CorrelationID != int32(100+i) || h.ClientID != "client-1" {
			t.Fatalf("frame %d: header %+v", i, h)
		}
		got := NewRequest(h.Key)
		d.Reset(b)
		if err := got.Decode(&d, h.Version); err != nil {
			t.Fatal(err)
		}
		if !same(got, want) {
			t.Fatalf("frame %d: %+v, want %+v", i, got, want)
		}
	}
}

func TestAppendRequestRefuses(t *testing.T) {
	dst := []byte("keep")
	h := RequestHeader{Key: Fetch}
	out, err := AppendRequest(dst, &h, &ProduceRequest{})
	if err == nil || string(out) != "keep" {
		t.Fatalf("key mismatch: %v, %q", err, out)
	}
	h = RequestHeader{Key: Produce, Version: 1}
	if out, err = AppendRequest(dst, &h, &ProduceRequest{}); !errors.Is(err, ErrUnsupportedVersion) || string(out) != "keep" {
		t.Fatalf("unsupported version: %v, %q", err, out)
	}
	if out, err = AppendResponse(dst, 1, 7, &FetchResponse{}); !errors.Is(err, ErrUnsupportedVersion) || string(out) != "keep" {
		t.Fatalf("unsupported response version: %v, %q", err, out)
	}
}

func TestRequestHeaderDecode(t *testing.T) {
	tests := []struct {
		name   string
		frame  []byte
		client string
		body   string
		err    string
	}{
		{"client id", body(int16(1), int16(0), int32(7), "cli", []byte("BODY")), "cli", "BODY", ""},
		{"null client id", body(int16(1), int16(0), int32(7), int16(-1), []byte("BODY")), "", "BODY", ""},
		{"short", body(int16(1), int16(0), int32(7)), "", "", "request header: 8 bytes, need at least 10"},
		{"client id past end", body(int16(1), int16(0), int32(7), int16(5), []byte("ab")), "", "",
			"request header: client_id: length 5 with 2 bytes remaining"},
		{"negative client id", body(int16(1), int16(0), int32(7), int16(-2)), "", "",
			"request header: client_id: length -2 with 0 bytes remaining"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := RequestHeader{ClientID: "previous"}
			b, err := h.Decode(tt.frame)
			if tt.err != "" {
				if !errors.Is(err, ErrMalformed) || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || h.ClientID != tt.client || string(b) != tt.body || h.Key != Fetch || h.CorrelationID != 7 {
				t.Fatalf("got %+v body %q err %v", h, b, err)
			}
		})
	}
}

// TestErrorResponseIsReadableForEveryKey is the uniform error rule end to
// end: the broker answers any key and version with AppendErrorResponse, and
// the client's decoder for the API it called reads the code.
func TestErrorResponseIsReadableForEveryKey(t *testing.T) {
	for _, k := range allKeys() {
		for _, v := range []int16{0, 1, 99, -1} {
			h := RequestHeader{Key: k, Version: v, CorrelationID: 42}
			frame, err := NewFrameReader(bytes.NewReader(AppendErrorResponse(nil, &h, ErrUnsupportedVersion)), 0).Next()
			if err != nil {
				t.Fatal(err)
			}
			corr, b, err := ParseResponse(frame)
			if err != nil || corr != 42 {
				t.Fatalf("%v: corr %d err %v", k, corr, err)
			}
			resp := NewResponse(k)
			if err := Decode(resp, b, 0); err != nil { // the client decodes at the version it knows
				t.Fatalf("%v v%d: client cannot decode the error response: %v", k, v, err)
			}
			if got := errorCodeOf(resp); got != ErrUnsupportedVersion {
				t.Fatalf("%v: code %v", k, got)
			}
			if av, ok := resp.(*APIVersionsResponse); ok && !same(&APIVersionsResponse{ErrorCode: ErrUnsupportedVersion, APIs: SupportedAPIs()}, av) {
				t.Fatalf("ApiVersions error response lacks the supported list: %+v", av)
			}
		}
	}
	// An unknown key gets the bare code: the client recognises it by rule.
	h := RequestHeader{Key: 999, CorrelationID: 5}
	want := body(int32(6), int32(5), int16(ErrUnsupportedVersion))
	if got := AppendErrorResponse([]byte("x"), &h, ErrUnsupportedVersion); !bytes.Equal(got[1:], want) {
		t.Fatalf("unknown key: % x, want % x", got[1:], want)
	}
}

func TestAPITable(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range SupportedAPIs() {
		name := r.Key.String()
		if seen[name] || strings.HasPrefix(name, "ApiKey(") {
			t.Errorf("key %d: name %q", r.Key, name)
		}
		seen[name] = true
		if NewRequest(r.Key).Key() != r.Key || NewResponse(r.Key).Key() != r.Key {
			t.Errorf("%v: message types have the wrong key", r.Key)
		}
		if !r.Key.Supports(r.Min) || !r.Key.Supports(r.Max) || r.Key.Supports(r.Max+1) || r.Key.Supports(r.Min-1) {
			t.Errorf("%v: Supports disagrees with %d..%d", r.Key, r.Min, r.Max)
		}
	}
	if len(seen) != 38 {
		t.Errorf("%d APIs, want 38", len(seen))
	}
	if QueueReceive != 1003 || ResetQueueGroup != 1006 || QueueAck.String() != "QueueAck" {
		t.Error("queue APIs: wrong keys or names")
	}
	if SaslHandshake != 17 || SaslAuthenticate != 36 || SaslAuthenticate.String() != "SaslAuthenticate" {
		t.Error("SASL APIs: wrong keys or names")
	}
	if ControllerForward.String() != "ControllerForward" || DescribeCluster.String() != "DescribeCluster" ||
		DescribeReplicas.String() != "DescribeReplicas" {
		t.Error("internal APIs are not in the table")
	}
	// Kafka's numbers, which traces and the docs rely on.
	if OffsetForLeaderEpoch != 23 || ElectLeaders != 43 || DescribeReplicas != 1002 ||
		OffsetForLeaderEpoch.String() != "OffsetForLeaderEpoch" || ElectLeaders.String() != "ElectLeaders" {
		t.Error("replication APIs: wrong keys or names")
	}
	if OffsetCommit != 8 || OffsetFetch != 9 || FindCoordinator != 10 || ListGroups != 16 || DeleteGroups != 42 ||
		ConsumerGroupHeartbeat != 68 || ConsumerGroupDescribe != 69 || ConsumerGroupHeartbeat.String() != "ConsumerGroupHeartbeat" {
		t.Error("group APIs: wrong keys or names")
	}
	for _, k := range []APIKey{-1, 4, 34, 41, 44, 999, 1007, 0x7fff} {
		if NewRequest(k) != nil || NewResponse(k) != nil || k.Supports(0) {
			t.Errorf("unknown key %d is known", k)
		}
		if _, _, ok := k.Versions(); ok {
			t.Errorf("unknown key %d has versions", k)
		}
	}
	if Fetch.String() != "Fetch" || APIKey(77).String() != "ApiKey(77)" {
		t.Error("APIKey.String")
	}
}

// TestFrameReaderDetach checks that a detached frame keeps its bytes
// while later frames are read, that the next frame is read into a buffer
// of its length at once (no growth, no copy), and that a length prefix
// beyond the largest detached frame is still grown as its bytes arrive.
func TestFrameReaderDetach(t *testing.T) {
	a := bytes.Repeat([]byte{'a'}, 1<<20)
	b := bytes.Repeat([]byte{'b'}, 1<<20-100)
	var stream []byte
	for _, p := range [][]byte{a, b, []byte("c")} {
		stream = append(stream, frameOf(p)...)
	}
	stream = append(stream, appendInt32(nil, DefaultMaxFrameSize)...)
	stream = append(stream, "a lie"...)
	fr := NewFrameReader(iotest.HalfReader(bytes.NewReader(stream)), 0)
	gotA, err := fr.Next()
	if err != nil || !bytes.Equal(gotA, a) {
		t.Fatalf("first frame: %d bytes, %v", len(gotA), err)
	}
	fr.Detach()
	gotB, err := fr.Next()
	if err != nil || !bytes.Equal(gotB, b) {
		t.Fatalf("second frame: %d bytes, %v", len(gotB), err)
	}
	if cap(gotB) != len(b) {
		t.Errorf("second frame's buffer has cap %d, want its length %d (allocated once)", cap(gotB), len(b))
	}
	fr.Detach()
	if got, err := fr.Next(); err != nil || string(got) != "c" {
		t.Fatalf("third frame: %q, %v", got, err)
	}
	if !bytes.Equal(gotA, a) || !bytes.Equal(gotB, b) {
		t.Fatal("a detached frame changed after later reads")
	}
	if _, err := fr.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
	if cap(fr.buf) > 1<<20+frameChunk {
		t.Errorf("a 100 MiB length prefix with 5 bytes behind it grew the buffer to %d", cap(fr.buf))
	}
}

// TestFrameReaderAlloc checks that after a Detach the next frame is read
// into the buffer SetAlloc's function gives (asked for the frame's size),
// that one too small grows as the bytes arrive, and that nil falls back
// to allocating.
func TestFrameReaderAlloc(t *testing.T) {
	frames := [][]byte{bytes.Repeat([]byte{'a'}, 5000), bytes.Repeat([]byte{'b'}, 4500),
		bytes.Repeat([]byte{'c'}, 300), bytes.Repeat([]byte{'d'}, 200)}
	var stream []byte
	for _, p := range frames {
		stream = append(stream, frameOf(p)...)
	}
	spare := make([]byte, 3, 8000)
	give := [][]byte{spare, make([]byte, 0, 10), nil}
	var asked []int
	fr := NewFrameReader(iotest.HalfReader(bytes.NewReader(stream)), 0)
	fr.SetAlloc(func(n int) []byte {
		asked = append(asked, n)
		b := give[0]
		give = give[1:]
		return b
	})
	for i, want := range frames {
		got, err := fr.Next()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
		}
		if i == 1 && &got[:1][0] != &spare[:1][0] {
			t.Error("the frame after a Detach was not read into the buffer alloc gave")
		}
		fr.Detach()
	}
	if want := []int{4500, minFrameBuffer, minFrameBuffer}; !slices.Equal(asked, want) {
		t.Errorf("alloc asked for %v, want %v", asked, want)
	}
}
