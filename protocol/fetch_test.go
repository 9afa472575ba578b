package protocol

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// splitSample is a Fetch response whose record sets come from "segments":
// records[i] belongs to the i-th partition in response order.
func splitSample() (*FetchResponse, [][]byte) {
	records := [][]byte{[]byte("batches of p0"), nil, {}, bytes.Repeat([]byte{7}, 1000)}
	r := &FetchResponse{ThrottleMs: 3, Topics: []FetchTopicResponse{
		{Name: "a", Partitions: []FetchPartitionResponse{{Partition: 0, HighWatermark: 10}, {Partition: 1, ErrorCode: ErrOffsetOutOfRange}}},
		{Name: "b", Partitions: []FetchPartitionResponse{{Partition: 0, LastStableOffset: 4}, {Partition: 9, LogStartOffset: 2}}},
	}}
	return r, records
}

func sizesOf(records [][]byte) []int32 {
	sizes := make([]int32, len(records))
	for i, rec := range records {
		sizes[i] = int32(len(rec))
		if rec == nil {
			sizes[i] = -1
		}
	}
	return sizes
}

// splitWire encodes r as a split frame with correlation id 77 and returns
// the bytes its Buffers put on the wire, checking them against Len and the
// length prefix.
func splitWire(t *testing.T, r *FetchResponse, records [][]byte) []byte {
	t.Helper()
	var f SplitFrame
	if err := r.AppendSplitFrame(&f, 77, 0, sizesOf(records)); err != nil {
		t.Fatal(err)
	}
	wire := writeSplit(t, &f, records)
	if prefix := int64(be.Uint32(f.Head)) + 4; prefix != f.Len() {
		t.Fatalf("length prefix says %d bytes, the frame has %d", prefix, f.Len())
	}
	return wire
}

// writeSplit returns the bytes f's Buffers put on the wire with records
// in its holes, checking their count against f.Len.
func writeSplit(t *testing.T, f *SplitFrame, records [][]byte) []byte {
	t.Helper()
	bufs, err := f.Buffers(nil, records)
	if err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	if n, err := bufs.WriteTo(&wire); err != nil || n != f.Len() {
		t.Fatalf("wrote %d of %d: %v", n, f.Len(), err)
	}
	return wire.Bytes()
}

// TestSplitFrameMatchesAppend checks that a frame sent as head pieces and
// record sets is byte for byte the frame AppendResponse builds with the
// records copied in, and that the records never entered the head.
func TestSplitFrameMatchesAppend(t *testing.T) {
	r, records := splitSample()
	wire := bytes.NewBuffer(splitWire(t, r, records))

	copied := *r
	copied.Topics = []FetchTopicResponse{
		{Name: "a", Partitions: []FetchPartitionResponse{r.Topics[0].Partitions[0], r.Topics[0].Partitions[1]}},
		{Name: "b", Partitions: []FetchPartitionResponse{r.Topics[1].Partitions[0], r.Topics[1].Partitions[1]}},
	}
	for i, rec := range records {
		copied.Topics[i/2].Partitions[i%2].Records = rec
	}
	want, err := AppendResponse(nil, 77, 0, &copied)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wire.Bytes(), want) {
		t.Fatalf("split frame differs from the copied encoding:\n% x\n% x", wire.Bytes(), want)
	}

	// The client side reads it back with records aliasing its buffer.
	frame, err := NewFrameReader(wire, 0).Next()
	if err != nil {
		t.Fatal(err)
	}
	corr, b, _ := ParseResponse(frame)
	var got FetchResponse
	if err := Decode(&got, b, 0); err != nil || corr != 77 {
		t.Fatalf("decode: corr %d, %v", corr, err)
	}
	if !same(&got, &copied) {
		t.Fatalf("decoded %+v", got)
	}

	// Reusing the SplitFrame for the next response reuses its storage.
	var f SplitFrame
	if err := r.AppendSplitFrame(&f, 77, 0, sizesOf(records)); err != nil {
		t.Fatal(err)
	}
	head := &f.Head[0]
	if err := r.AppendSplitFrame(&f, 78, 0, sizesOf(records)); err != nil || &f.Head[0] != head {
		t.Fatalf("reuse: %v", err)
	}
}

func TestSplitFrameRefuses(t *testing.T) {
	r, records := splitSample()
	var f SplitFrame
	tests := []struct {
		name  string
		sizes []int32
		ver   int16
		want  string
	}{
		{"too few sizes", sizesOf(records)[:3], 0, "3 record set sizes for 4 partitions"},
		{"bad size", []int32{1, -2, 0, 0}, 0, "record set size -2"},
		{"too big for i32", []int32{1 << 30, 1 << 30, 0, 0}, 0, "exceeds the i32 length"},
		{"version", sizesOf(records), 3, "unsupported"},
	}
	for _, tt := range tests {
		err := r.AppendSplitFrame(&f, 1, tt.ver, tt.sizes)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.want)) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	if err := r.AppendSplitFrame(&f, 1, 0, sizesOf(records)); err != nil {
		t.Fatal(err)
	}
	wrong := [][]byte{records[0], nil, {}, records[3][:999]}
	if _, err := f.Buffers(nil, wrong); err == nil {
		t.Error("Buffers accepted a record set shorter than its hole")
	}
	if _, err := f.Buffers(nil, records[:2]); err == nil {
		t.Error("Buffers accepted too few record sets")
	}
	if _, err := f.Buffers(nil, [][]byte{records[0], {1}, {}, records[3]}); err == nil {
		t.Error("Buffers accepted bytes for a null record set")
	}
}

// TestSplitFrameSendfileLoop is the broker's sendfile pattern: write the
// head pieces and copy each record set from its "file" between them.
func TestSplitFrameSendfileLoop(t *testing.T) {
	r, records := splitSample()
	var f SplitFrame
	if err := r.AppendSplitFrame(&f, 9, 0, sizesOf(records)); err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	prev := 0
	for i, h := range f.Holes {
		wire.Write(f.Head[prev:h.At])
		if _, err := io.CopyN(&wire, bytes.NewReader(records[i]), int64(max(h.Size, 0))); err != nil {
			t.Fatal(err)
		}
		prev = h.At
	}
	wire.Write(f.Head[prev:])
	bufs, _ := f.Buffers(nil, records)
	var viaBuffers bytes.Buffer
	if _, err := bufs.WriteTo(&viaBuffers); err != nil || !bytes.Equal(wire.Bytes(), viaBuffers.Bytes()) {
		t.Fatalf("sendfile loop and Buffers disagree (%v)", err)
	}
}
