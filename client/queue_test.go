package client

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// fakeQueue answers QueueReceive with records 0..n-1 of jobs[0], and
// QueueAck with ack (nil: every outcome applied).
func fakeQueue(fc *fakeCluster, n int, ack func(call int, req *protocol.QueueAckRequest) action) *atomic.Int32 {
	var acks atomic.Int32
	fc.setHook(func(_ *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		switch r := req.(type) {
		case *protocol.QueueReceiveRequest:
			out := &protocol.QueueReceiveResponse{LeaseMs: 30000, Partitions: []protocol.QueuePartitionRecords{{Topic: "jobs"}}}
			for i := range n {
				out.Partitions[0].Records = append(out.Partitions[0].Records, protocol.QueueRecord{Offset: int64(i), Deliveries: 1, Value: []byte{byte('a' + i)}})
			}
			return action{resp: out}
		case *protocol.QueueAckRequest:
			call := int(acks.Add(1))
			if ack != nil {
				return ack(call, r)
			}
			return action{resp: &protocol.QueueAckResponse{}}
		}
		return action{}
	})
	return &acks
}

// Outcomes settled at once go in one QueueAck, consecutive offsets as one
// range, and each gets its own refusal.
func TestQueueOutcomesBatchedAndRefusedOneByOne(t *testing.T) {
	fc := newFakeCluster(t, 1)
	var got *protocol.QueueAckRequest
	acks := fakeQueue(fc, 4, func(_ int, req *protocol.QueueAckRequest) action {
		got = req
		return action{resp: &protocol.QueueAckResponse{Failures: []protocol.QueueAckFailure{
			{Topic: "jobs", Partition: 0, FirstOffset: 2, LastOffset: 2, ErrorCode: protocol.ErrQueueLeaseLost}}}}
	})
	c := newTestClient(t, fc)
	q := c.QueueGroup("g", "jobs")
	ds, err := q.Receive(context.Background(), 10)
	if err != nil || len(ds) != 4 || string(ds[3].Value) != "d" || ds[0].DeliveryCount != 1 {
		t.Fatalf("receive: %d deliveries, %v", len(ds), err)
	}
	err = q.AcceptAll(ds)
	if !errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrOutcomeUnknown) || IsIndeterminate(err) {
		t.Fatalf("accept all: %v, want offset 2's ErrLeaseLost, definite", err)
	}
	if acks.Load() != 1 || len(got.Acks) != 1 || got.Acks[0].FirstOffset != 0 || got.Acks[0].LastOffset != 3 {
		t.Fatalf("%d acks, the last %+v: want one range 0-3", acks.Load(), got)
	}
}

// An acknowledgement whose answer is lost is sent again; the retry's
// refusal (the first try settled the record) is indeterminate, not a
// definite ErrLeaseLost.
func TestQueueOutcomeRefusedAfterLostAnswerIsIndeterminate(t *testing.T) {
	fc := newFakeCluster(t, 1)
	acks := fakeQueue(fc, 1, func(call int, _ *protocol.QueueAckRequest) action {
		if call == 1 {
			return action{close: true} // as if applied, the answer lost
		}
		return action{resp: &protocol.QueueAckResponse{Failures: []protocol.QueueAckFailure{
			{Topic: "jobs", Partition: 0, FirstOffset: 0, LastOffset: 0, ErrorCode: protocol.ErrQueueLeaseLost}}}}
	})
	c := newTestClient(t, fc, RequestTimeout(2*time.Second))
	q := c.QueueGroup("g", "jobs")
	ds, err := q.Receive(context.Background(), 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v", err)
	}
	err = ds[0].Accept()
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrLeaseLost) || !IsIndeterminate(err) {
		t.Fatalf("accept after a lost answer: %v, want ErrOutcomeUnknown wrapping ErrLeaseLost", err)
	}
	if acks.Load() != 2 {
		t.Fatalf("%d acknowledgements sent, want 2", acks.Load())
	}
}
