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

// queueReceiveHook makes the broker speak QueueReceive up to maxVersion
// and answer it with recv's action, or else records 0..n-1 of jobs[0];
// QueueAck with ack's.
func queueReceiveHook(fc *fakeCluster, n int, maxVersion int16, recv func(req *protocol.QueueReceiveRequest) action, ack func(req *protocol.QueueAckRequest) action) {
	fc.setHook(func(_ *fakeBroker, _ protocol.APIKey, req protocol.Message) action {
		switch r := req.(type) {
		case *protocol.APIVersionsRequest:
			apis := protocol.SupportedAPIs()
			for i := range apis {
				if apis[i].Key == protocol.QueueReceive {
					apis[i].Max = maxVersion
				}
			}
			return action{resp: &protocol.APIVersionsResponse{APIs: apis}}
		case *protocol.QueueReceiveRequest:
			if a := recv(r); a.resp != nil || a.close {
				return a
			}
			out := &protocol.QueueReceiveResponse{LeaseMs: 30000, Partitions: []protocol.QueuePartitionRecords{{Topic: "jobs"}}}
			for i := range n {
				out.Partitions[0].Records = append(out.Partitions[0].Records, protocol.QueueRecord{Offset: int64(i), Deliveries: 1, Value: []byte{byte('a' + i)}})
			}
			return action{resp: out}
		case *protocol.QueueAckRequest:
			return ack(r)
		}
		return action{}
	})
}

// receiveAcceptReceive receives the n records, accepts them with
// AcceptAsync and receives them again; it returns AcceptAsync's answer.
func receiveAcceptReceive(t *testing.T, fc *fakeCluster, n int, opts ...Opt) <-chan error {
	t.Helper()
	q := newTestClient(t, fc, opts...).QueueGroup("g", "jobs")
	ds, err := q.Receive(context.Background(), 10)
	if err != nil || len(ds) != n {
		t.Fatalf("receive: %d deliveries, %v", len(ds), err)
	}
	answer := q.AcceptAsync(ds)
	if again, err := q.Receive(context.Background(), 10); err != nil || len(again) != n {
		t.Fatalf("receive again: %d deliveries, %v", len(again), err)
	}
	return answer
}

// AcceptAsync's outcomes ride on the next receive, as one range, and
// their refusals come back with it: no QueueAck is sent.
func TestQueueAcceptAsyncRidesOnReceive(t *testing.T) {
	fc := newFakeCluster(t, 1)
	var carried []protocol.QueueAckRange
	var acks atomic.Int32
	queueReceiveHook(fc, 4, 2, func(r *protocol.QueueReceiveRequest) action {
		if len(r.Acks) == 0 {
			return action{}
		}
		carried = append(carried, r.Acks...)
		return action{resp: &protocol.QueueReceiveResponse{LeaseMs: 30000, AckFailures: []protocol.QueueAckFailure{
			{Topic: "jobs", Partition: 0, FirstOffset: 2, LastOffset: 2, ErrorCode: protocol.ErrQueueLeaseLost}}}}
	}, func(*protocol.QueueAckRequest) action { acks.Add(1); return action{resp: &protocol.QueueAckResponse{}} })
	err := <-receiveAcceptReceive(t, fc, 4)
	if !errors.Is(err, ErrLeaseLost) || IsIndeterminate(err) || acks.Load() != 0 {
		t.Fatalf("answer %v with %d QueueAcks, want offset 2's definite ErrLeaseLost, none sent", err, acks.Load())
	}
	if len(carried) != 1 || carried[0].FirstOffset != 0 || carried[0].LastOffset != 3 || carried[0].Outcome != protocol.QueueAccept {
		t.Fatalf("the receive carried %+v, want one accept of 0-3", carried)
	}
}

// A receive carrying outcomes whose answer is lost: they are sent again
// on their own, and a refusal of that try is indeterminate; the receive
// is tried again without them.
func TestQueueAcceptAsyncReceiveLost(t *testing.T) {
	fc := newFakeCluster(t, 1)
	var acks atomic.Int32
	queueReceiveHook(fc, 1, 2, func(r *protocol.QueueReceiveRequest) action {
		return action{close: len(r.Acks) > 0} // as if applied, the answer lost
	}, func(r *protocol.QueueAckRequest) action {
		acks.Add(1)
		return action{resp: &protocol.QueueAckResponse{Failures: []protocol.QueueAckFailure{
			{Topic: "jobs", Partition: 0, FirstOffset: 0, LastOffset: 0, ErrorCode: protocol.ErrQueueLeaseLost}}}}
	})
	if err := <-receiveAcceptReceive(t, fc, 1, RequestTimeout(2*time.Second)); !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrLeaseLost) || acks.Load() != 1 {
		t.Fatalf("answer %v after %d QueueAcks, want ErrOutcomeUnknown wrapping ErrLeaseLost after one", err, acks.Load())
	}
}

// Against a coordinator that speaks QueueReceive v1 the outcomes go in a
// QueueAck of their own.
func TestQueueAcceptAsyncOldBroker(t *testing.T) {
	fc := newFakeCluster(t, 1)
	var acks atomic.Int32
	queueReceiveHook(fc, 2, 1, func(r *protocol.QueueReceiveRequest) action {
		if len(r.Acks) > 0 {
			t.Errorf("a v1 receive carried %+v", r.Acks)
		}
		return action{}
	}, func(*protocol.QueueAckRequest) action { acks.Add(1); return action{resp: &protocol.QueueAckResponse{}} })
	if err := <-receiveAcceptReceive(t, fc, 2); err != nil || acks.Load() != 1 {
		t.Fatalf("answer %v after %d QueueAcks, want nil after one", err, acks.Load())
	}
}
