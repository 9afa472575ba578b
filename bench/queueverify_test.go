package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
)

func deadHeaders(topic string, part int32, off int64, deliveries int) map[string]string {
	return map[string]string{protocol.DeadLetterTopic: topic, protocol.DeadLetterPartition: strconv.Itoa(int(part)),
		protocol.DeadLetterOffset: strconv.FormatInt(off, 10), protocol.DeadLetterDeliveries: strconv.Itoa(deliveries),
		protocol.DeadLetterReason: "rejected: x"}
}

// CheckQueue finds each violation it exists for, and none in a clean run.
func TestCheckQueue(t *testing.T) {
	clean := func() QueueHistory {
		return QueueHistory{Topic: "t", MaxDeliveries: 3,
			Sends: []Send{{Value: "a", Outcome: Acked, Partition: 0, Offset: 0}, {Value: "b", Outcome: Acked, Partition: 0, Offset: 1},
				{Value: "c", Outcome: Failed}, {Value: "d", Outcome: Unknown}},
			Settles:     []QueueSettle{{Value: "a", Deliveries: 1}, {Value: "b", Deliveries: 2, Rejected: true}},
			MaxSeen:     map[string]int{"a": 1, "b": 2},
			DeadLetters: []QueueDeadLetter{{Value: "b", Headers: deadHeaders("t", 0, 1, 2)}, {Value: "b", Headers: deadHeaders("t", 0, 1, 2)}}}
	}
	if r := CheckQueue(clean()); r.Violations() != 0 || r.Accepted != 1 || r.DeadLettered != 1 || r.Acked != 2 {
		t.Fatalf("clean run: %+v", r)
	}
	// An indeterminate accept (R14) is not held lost.
	h := clean()
	h.Settles[0].Maybe = true
	if r := CheckQueue(h); r.Violations() != 0 || r.Indeterminate != 1 || r.Accepted != 0 {
		t.Fatalf("an indeterminate accept: %+v", r)
	}
	for name, tc := range map[string]struct {
		mutate func(*QueueHistory)
		count  func(QueueResult) int64
	}{
		"lost": {func(h *QueueHistory) { h.DeadLetters = nil }, func(r QueueResult) int64 { return r.Lost }},
		"accepted twice": {func(h *QueueHistory) { h.Settles = append(h.Settles, QueueSettle{Value: "a", Deliveries: 2}) },
			func(r QueueResult) int64 { return r.AcceptedTwice }},
		"accepted and dead": {func(h *QueueHistory) { h.Settles = append(h.Settles, QueueSettle{Value: "b", Deliveries: 3}) },
			func(r QueueResult) int64 { return r.AcceptedAndDead }},
		"over the limit": {func(h *QueueHistory) { h.MaxSeen["a"] = 4 }, func(r QueueResult) int64 { return r.OverLimit }},
		"bad headers": {func(h *QueueHistory) { h.DeadLetters[0].Headers = deadHeaders("t", 0, 7, 2) },
			func(r QueueResult) int64 { return r.BadHeaders }},
		"unexpected": {func(h *QueueHistory) { h.Settles = append(h.Settles, QueueSettle{Value: "c", Deliveries: 1}) },
			func(r QueueResult) int64 { return r.Unexpected }},
		"late accepted": {func(h *QueueHistory) { h.LateAccepted = 1 }, func(r QueueResult) int64 { return r.LateAccepted }},
	} {
		h := clean()
		tc.mutate(&h)
		if r := CheckQueue(h); tc.count(r) != 1 || r.Violations() != 1 || len(r.Examples) == 0 {
			t.Errorf("%s: %+v", name, r)
		}
	}
}

// VerifyQueue on a broker with a short lease and a low delivery limit:
// workers reject some records, hang past the lease and are killed, and
// the checks hold.
func TestVerifyQueue(t *testing.T) {
	b, err := broker.New(broker.Config{ListenAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Group: group.Config{Queue: group.QueueConfig{Lease: 500 * time.Millisecond, MaxDeliveries: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := Config{Client: []client.Opt{client.SeedBrokers(b.Addr())}, Topic: "vq", Create: true, Partitions: 2,
		Producers: 2, Consumers: 3, Records: 3000, ReadTimeout: 10 * time.Second,
		Producer: []client.Opt{client.Linger(time.Millisecond)}}
	h, err := VerifyQueue(ctx, cfg, QueueVerifyConfig{Group: "vq", RejectPercent: 10, KillInterval: 200 * time.Millisecond,
		HangPercent: 5, MaxDeliveries: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := CheckQueue(h)
	// A worker killed with an acceptance in flight leaves its outcome
	// unknown (R14): the record was accepted, or goes to a later
	// delivery; every record ends accepted, dead-lettered or unknown.
	done := r.Accepted + r.DeadLettered
	if r.Violations() != 0 || r.Acked != 3000 || r.DeadLettered < 100 || done > 3000 || done+r.Indeterminate < 3000 {
		t.Fatalf("verify: %+v", r)
	}
	t.Logf("accepted %d, dead-lettered %d, late accepts refused %d, kills %d", r.Accepted, r.DeadLettered, r.LateRefused, r.Kills)
}
