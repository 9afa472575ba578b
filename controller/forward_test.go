package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func sampleRequests() []request {
	return []request{
		{op: opCommand, command: FenceBroker{ID: 2, Epoch: 3}},
		{op: opCreateTopic, spec: TopicSpec{Name: "t", Partitions: 6, ReplicationFactor: 3, Configs: map[string]string{ConfigFsync: FsyncAlways}}},
		{op: opAddVoter, server: Server{ID: 4, Addr: "h:4", Voter: true}},
		{op: opAddNonvoter, server: Server{ID: 5, Addr: "h:5"}},
		{op: opElectPreferred, topics: []string{"a", "orders"}},
		{op: opElectPreferred},
		{op: opAlterPartitions, changes: []AlterPartition{
			{Topic: "t", Partition: 1, PartitionEpoch: 4, Leader: 2, ISR: []int32{2, 3}, BrokerEpochs: []int64{0, 7}, HighWatermark: 99, TopicID: 5},
			{Topic: "orders", Partition: 0, PartitionEpoch: 1, Leader: 1, ISR: []int32{1}, BrokerEpochs: []int64{0}, HighWatermark: 3, TopicID: 6}}},
		{op: opReadIndex},
		{op: opFinalizeLevel, level: 9},
		{op: opCheckLevel, broker: 4, level: 8},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range sampleRequests() {
		b := appendRequest(nil, r)
		got, err := decodeRequest(b)
		if err != nil {
			t.Fatalf("op %d: %v", r.op, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("decoded %+v, want %+v", got, r)
		}
		for i := range b {
			if _, err := decodeRequest(b[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("op %d truncated to %d: %v", r.op, i, err)
			}
		}
	}
	if _, err := decodeRequest([]byte{forwardVersion, 99}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown op: %v", err)
	}
	// A partition change list holding another command is refused.
	bad := appendRequest(nil, request{op: opAlterPartitions})
	bad = append(bad[:len(bad)-1], 1)
	bad = appendString(bad, string(AppendCommand(nil, FenceBroker{ID: 2, Epoch: 3})))
	if _, err := decodeRequest(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a FenceBroker in a partition change list: %v", err)
	}
}

func TestResponseCarriesErrors(t *testing.T) {
	for _, sentinel := range errorCodes[1:] {
		err := fmt.Errorf("CreateTopic: %w: %q", sentinel, "t")
		b := appendResponse(nil, response{res: Result{Index: 9}, err: err, leader: Server{ID: 2, Addr: "h:2", Voter: true}})
		got, derr := decodeResponse(b)
		if derr != nil {
			t.Fatal(derr)
		}
		if !errors.Is(got.err, sentinel) || got.err.Error() != err.Error() {
			t.Errorf("sent %v, received %v", err, got.err)
		}
		if got.leader.ID != 2 || got.leader.Addr != "h:2" || got.res.Index != 9 {
			t.Errorf("received %+v", got)
		}
	}
	other := errors.New("disk on fire")
	got, err := decodeResponse(appendResponse(nil, response{err: other}))
	if err != nil || got.err == nil || got.err.Error() != other.Error() {
		t.Fatalf("unlisted error: %v, %v", got.err, err)
	}
	for _, sentinel := range errorCodes[1:] {
		if errors.Is(got.err, sentinel) {
			t.Fatalf("unlisted error matches %v", sentinel)
		}
	}
	ok, err := decodeResponse(appendResponse(nil, response{res: Result{Index: 4, BrokerEpoch: 2, TopicID: 3}}))
	if err != nil || ok.err != nil || !reflect.DeepEqual(ok.res, Result{Index: 4, BrokerEpoch: 2, TopicID: 3}) {
		t.Fatalf("success response: %+v, %v", ok, err)
	}
}

func sampleElectionResponse() response {
	return response{res: Result{Index: 12}, elections: []Election{
		{Topic: "t", Partition: 0, Leader: 1},
		{Topic: "t", Partition: 3, Leader: 2, Err: fmt.Errorf("AlterPartition: %w: t-3", ErrStalePartitionEpoch)},
	}}
}

func TestResponseCarriesElections(t *testing.T) {
	want := sampleElectionResponse()
	b := appendResponse(nil, want)
	got, err := decodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.res, want.res) || got.err != nil || len(got.elections) != 2 {
		t.Fatalf("received %+v", got)
	}
	for i, e := range got.elections {
		w := want.elections[i]
		if e.Topic != w.Topic || e.Partition != w.Partition || e.Leader != w.Leader || (e.Err == nil) != (w.Err == nil) {
			t.Errorf("election %d: %+v, want %+v", i, e, w)
		}
	}
	if e := got.elections[1].Err; !errors.Is(e, ErrStalePartitionEpoch) || e.Error() != want.elections[1].Err.Error() {
		t.Errorf("election error %v", e)
	}
	for i := range b {
		if _, err := decodeResponse(b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
	}
	// A count the bytes cannot hold is refused before allocating.
	huge := appendResponse(nil, response{})
	huge = append(huge[:len(huge)-1], 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := decodeResponse(huge); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("huge election count: %v", err)
	}
}

func TestHandleForwardRefusesGarbage(t *testing.T) {
	n := &Node{} // decode fails before the node is used
	resp, err := decodeResponse(n.HandleForward(context.Background(), []byte{forwardVersion, 1, 0xff}))
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(resp.err, ErrCorrupt) {
		t.Fatalf("garbage request answered with %v, want ErrCorrupt", resp.err)
	}
}

// olderCommands says whether request b (decoded as r) carries a command
// encoded in an older command version than this build's: the command of
// opCommand, or any change of opAlterPartitions. Such a command decodes
// and is written in the current version, so only its meaning must
// survive a round trip, not its bytes.
func olderCommands(b []byte, r request) bool {
	switch r.op {
	case opCommand:
		return len(b) > 2 && b[2] != CommandVersion
	case opAlterPartitions:
		d := &decoder{b: b, off: 2}
		for range d.count(3) {
			if c := d.string(); d.err != nil || len(c) == 0 || c[0] != CommandVersion {
				return true
			}
		}
	}
	return false
}

func FuzzDecodeForward(f *testing.F) {
	for _, r := range sampleRequests() {
		f.Add(appendRequest(nil, r))
	}
	f.Add(appendResponse(nil, response{res: Result{Index: 1}, err: ErrNotLeader, leader: Server{ID: 1, Addr: "x:1"}}))
	f.Add(appendResponse(nil, sampleElectionResponse()))
	f.Add(appendResponse(nil, response{res: Result{Index: 3, ProducerIDs: ProducerIDBlock{First: 2000, Count: 1000}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRequest(b); err == nil {
			again := appendRequest(nil, r)
			if !olderCommands(b, r) && !bytes.Equal(again, b) {
				t.Fatalf("request has another encoding")
			}
			if r2, err := decodeRequest(again); err != nil || !reflect.DeepEqual(r2, r) {
				t.Fatalf("re-encoded request decodes as %#v, %v; was %#v", r2, err, r)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("request error %v does not match ErrCorrupt", err)
		}
		if _, err := decodeResponse(b); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("response error %v does not match ErrCorrupt", err)
		}
	})
}
