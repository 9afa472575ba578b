package protocol

import (
	"bytes"
	"math/rand"
	"reflect"
	"testing"
)

// TestRoundTripRandom checks Decode(Append(x)) == x for random values of
// every request and response type, and that decoding into a struct that
// held another message leaves nothing of it behind.
func TestRoundTripRandom(t *testing.T) {
	iters := 60
	if testing.Short() {
		iters = 10
	}
	for _, k := range allKeys() {
		for _, isResp := range []bool{false, true} {
			newMsg := NewRequest
			if isResp {
				newMsg = NewResponse
			}
			t.Run(reflect.TypeOf(newMsg(k)).Elem().Name(), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(k)*2 + map[bool]int64{false: 0, true: 1}[isResp]))
				reused := newMsg(k)
				for range iters {
					x := randomMessage(t, newMsg(k), rng)
					checkRoundTrip(t, x, newMsg(k))
					checkRoundTrip(t, x, reused)
				}
			})
		}
	}
}

// checkRoundTrip encodes x at the highest version of its API (every field
// is carried), decodes it into into (fresh or reused) and checks that the
// result equals x and re-encodes to the same bytes.
func checkRoundTrip(t *testing.T, x, into Message) {
	t.Helper()
	_, v, _ := x.Key().Versions()
	enc := x.Append(nil, v)
	if err := Decode(into, enc, v); err != nil {
		t.Fatalf("%T: decode v%d: %v", x, v, err)
	}
	if !same(x, into) {
		t.Fatalf("%T: round trip v%d differs:\n in  %+v\n out %+v", x, v, x, into)
	}
	if re := into.Append(nil, v); !bytes.Equal(re, enc) {
		t.Fatalf("%T: re-encoding v%d differs", x, v)
	}
}

// Metadata version 1 carries topic ids; version 0 does not, and a v0
// decode leaves none behind from a reused struct.
func TestMetadataTopicIDByVersion(t *testing.T) {
	x := &MetadataResponse{ControllerID: 1, Topics: []TopicMetadata{{Name: "t", ID: 42,
		Partitions: []PartitionMetadata{{Partition: 0, Leader: 1, LeaderEpoch: 3}}}}}
	var got MetadataResponse
	if err := Decode(&got, x.Append(nil, 1), 1); err != nil || got.Topics[0].ID != 42 {
		t.Fatalf("v1: id %d, %v; want 42", got.Topics[0].ID, err)
	}
	if err := Decode(&got, x.Append(nil, 0), 0); err != nil || got.Topics[0].ID != 0 || got.Topics[0].Partitions[0].LeaderEpoch != 3 {
		t.Fatalf("v0: %+v, %v; want no id and the rest intact", got.Topics[0], err)
	}
}

// Metadata version 2 carries each partition's note; a version 1 body is
// the same as before, and a v1 decode leaves no note behind from a reused
// struct.
func TestMetadataNoteByVersion(t *testing.T) {
	const note = "no eligible leader"
	x := &MetadataResponse{ControllerID: 1, Topics: []TopicMetadata{{Name: "t", ID: 42,
		Partitions: []PartitionMetadata{{Partition: 0, Leader: -1, LeaderEpoch: 3, Note: note}}}}}
	var got MetadataResponse
	if err := Decode(&got, x.Append(nil, 2), 2); err != nil || got.Topics[0].Partitions[0].Note != note {
		t.Fatalf("v2: %+v, %v; want the note", got.Topics[0].Partitions, err)
	}
	if err := Decode(&got, x.Append(nil, 1), 1); err != nil || got.Topics[0].Partitions[0].Note != "" || got.Topics[0].ID != 42 {
		t.Fatalf("v1: %+v, %v; want no note and the rest intact", got.Topics[0], err)
	}
	if len(x.Append(nil, 1)) != len(x.Append(nil, 2))-2-len(note) {
		t.Fatal("version 1 encoding changed")
	}
}

// TestRoundTripSamples covers the hand-written samples, whose values (null
// vs empty record sets, AllTopics) random values rarely hit exactly.
func TestRoundTripSamples(t *testing.T) {
	for _, ms := range [][]Message{sampleRequests(), sampleResponses()} {
		for _, x := range ms {
			checkRoundTrip(t, x, fresh(x))
		}
	}
}

func TestNullAndEmptyRecords(t *testing.T) {
	in := &ProduceRequest{Topics: []ProduceTopic{{Name: "t", Partitions: []ProducePartition{
		{Partition: 0, Records: nil}, {Partition: 1, Records: []byte{}}, {Partition: 2, Records: []byte{9}}}}}}
	var out ProduceRequest
	if err := Decode(&out, in.Append(nil, 0), 0); err != nil {
		t.Fatal(err)
	}
	ps := out.Topics[0].Partitions
	if ps[0].Records != nil || ps[1].Records == nil || len(ps[1].Records) != 0 || !bytes.Equal(ps[2].Records, []byte{9}) {
		t.Fatalf("null/empty records not preserved: %#v", ps)
	}
}

// TestDecodeAliases checks that decoded record sets point into the input
// rather than at copies, and cannot be appended into the bytes after them.
func TestDecodeAliases(t *testing.T) {
	for _, m := range []Message{sampleRequests()[0], sampleResponses()[1]} {
		enc := m.Append(nil, 0)
		got := fresh(m)
		if err := Decode(got, enc, 0); err != nil {
			t.Fatal(err)
		}
		var recs []byte
		switch g := got.(type) {
		case *ProduceRequest:
			recs = g.Topics[0].Partitions[0].Records
		case *FetchResponse:
			recs = g.Topics[0].Partitions[0].Records
		}
		i := bytes.Index(enc, recs)
		if i < 0 || &enc[i] != &recs[0] {
			t.Errorf("%T: records do not alias the input", m)
		}
		if cap(recs) != len(recs) {
			t.Errorf("%T: records cap %d > len %d: an append would overwrite the next field", m, cap(recs), len(recs))
		}
	}
}

// QueueReceive v2 carries outcomes in the request and their refusals in
// the response; v1 carries neither, and a v1 decode leaves none behind
// from a reused struct.
func TestQueueReceiveAcksByVersion(t *testing.T) {
	req := &QueueReceiveRequest{GroupID: "workers", MemberID: "m-1", Topics: []string{"jobs"}, MaxRecords: 500, MaxWaitMs: 500,
		Acks: []QueueAckRange{{Topic: "jobs", Partition: 1, FirstOffset: 0, LastOffset: 499, Outcome: QueueAccept}}}
	resp := &QueueReceiveResponse{LeaseMs: 30000, AckFailures: []QueueAckFailure{{Topic: "jobs", Partition: 1, FirstOffset: 3, LastOffset: 3,
		ErrorCode: ErrQueueLeaseLost, ErrorMessage: "offset 3 is available"}}}
	checkRoundTrip(t, req, new(QueueReceiveRequest))
	checkRoundTrip(t, resp, new(QueueReceiveResponse))
	gotReq, gotResp := new(QueueReceiveRequest), new(QueueReceiveResponse)
	checkRoundTrip(t, req, gotReq)
	checkRoundTrip(t, resp, gotResp)
	if err := Decode(gotReq, req.Append(nil, 1), 1); err != nil || len(gotReq.Acks) != 0 || gotReq.MaxRecords != 500 {
		t.Fatalf("v1 request: %+v, %v; want no acks", gotReq, err)
	}
	if err := Decode(gotResp, resp.Append(nil, 1), 1); err != nil || len(gotResp.AckFailures) != 0 || gotResp.LeaseMs != 30000 {
		t.Fatalf("v1 response: %+v, %v; want no ack failures", gotResp, err)
	}
}
