package protocol

import (
	"bytes"
	"errors"
	"testing"
)

// TestProduceSplitFrameMatchesAppend checks that produce requests
// encoded as split frames, several into one SplitFrame with a whole frame
// between them, put on the wire byte for byte what AppendRequest builds
// with the records copied in, and that the records never enter the head.
func TestProduceSplitFrameMatchesAppend(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 5000)
	reqs := []*ProduceRequest{
		{Acks: AcksAll, TimeoutMs: 1000, Topics: []ProduceTopic{
			{Name: "a", Partitions: []ProducePartition{{Partition: 0, Records: []byte("batches of a0")}, {Partition: 3, Records: nil}}},
			{Name: "b", Partitions: []ProducePartition{{Partition: 1, Records: []byte{}}, {Partition: 2, Records: big}}},
		}},
		{Acks: AcksLeader, TimeoutMs: 5, Topics: []ProduceTopic{{Name: "c", Partitions: []ProducePartition{{Partition: 7, Records: big[:10]}}}}},
		{Acks: AcksNone},
	}
	var (
		f       SplitFrame
		records [][]byte
		want    []byte
		err     error
	)
	for i, r := range reqs {
		h := RequestHeader{Key: Produce, Version: 0, CorrelationID: int32(10 + i), ClientID: "split"}
		if err := r.AppendSplitFrame(&f, &h); err != nil {
			t.Fatal(err)
		}
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				records = append(records, p.Records)
			}
		}
		if want, err = AppendRequest(want, &h, r); err != nil {
			t.Fatal(err)
		}
		// A whole frame of another API between the split ones.
		mh := RequestHeader{Key: Metadata, Version: 0, CorrelationID: int32(20 + i), ClientID: "split"}
		mr := &MetadataRequest{Topics: []string{"a"}}
		if f.Head, err = AppendRequest(f.Head, &mh, mr); err != nil {
			t.Fatal(err)
		}
		if want, err = AppendRequest(want, &mh, mr); err != nil {
			t.Fatal(err)
		}
	}
	if bytes.Contains(f.Head, big[:100]) {
		t.Fatal("a record set was copied into the head")
	}
	wire := writeSplit(t, &f, records)
	if !bytes.Equal(wire, want) {
		t.Fatalf("split frames differ from the copied encoding:\n% x\n% x", wire, want)
	}

	// The broker's reader takes the frames apart as usual.
	fr := NewFrameReader(bytes.NewReader(wire), 0)
	frame, err := fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	var h RequestHeader
	body, err := h.Decode(frame)
	if err != nil || h.Key != Produce || h.CorrelationID != 10 {
		t.Fatalf("header %+v: %v", h, err)
	}
	var got ProduceRequest
	if err := Decode(&got, body, 0); err != nil {
		t.Fatal(err)
	}
	if len(got.Topics) != 2 || !bytes.Equal(got.Topics[1].Partitions[1].Records, big) || got.Topics[0].Partitions[1].Records != nil {
		t.Fatalf("decoded %+v", got)
	}
}

// TestProduceSplitFrameRefuses: a header of another API or an unsupported
// version is an error and leaves the SplitFrame as it was.
func TestProduceSplitFrameRefuses(t *testing.T) {
	r := &ProduceRequest{Topics: []ProduceTopic{{Name: "a", Partitions: []ProducePartition{{Records: []byte("x")}}}}}
	f := SplitFrame{Head: []byte("kept"), Holes: []Hole{{At: 2, Size: 0}}}
	for _, h := range []RequestHeader{{Key: Metadata}, {Key: Produce, Version: 99}} {
		err := r.AppendSplitFrame(&f, &h)
		if err == nil {
			t.Fatalf("%+v: no error", h)
		}
		if h.Version == 99 && !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("%+v: %v", h, err)
		}
		if string(f.Head) != "kept" || len(f.Holes) != 1 {
			t.Fatalf("%+v: the frame changed: %q %v", h, f.Head, f.Holes)
		}
	}
}
