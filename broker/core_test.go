package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/replica"
)

// TestCoreWithoutWire drives the broker core as a second front end would:
// admin, append, long-poll fetch and list offsets as Go calls, no frames.
func TestCoreWithoutWire(t *testing.T) {
	b := startBroker(t, "", nil)
	ctx := context.Background()
	errs := b.CreateTopics(ctx, []NewTopic{
		{Name: "core", Partitions: 2, ReplicationFactor: -1, Configs: []TopicConfig{{"retention.ms", "60000"}}},
		{Name: "dup", Partitions: 1, ReplicationFactor: 1, Configs: []TopicConfig{{"retention.ms", "1"}, {"retention.ms", "2"}}},
	}, false)
	if errs[0] != nil {
		t.Fatalf("create core: %v", errs[0])
	}
	if code, _ := ErrorCode(errs[1]); code != protocol.ErrInvalidConfig {
		t.Fatalf("a key given twice: %v (code %v), want INVALID_CONFIG", errs[1], code)
	}
	if got := len(b.Metadata().Topics["core"].Partitions); got != 2 {
		t.Fatalf("metadata: %d partitions, want 2", got)
	}

	// A consumer's long-poll fetch waits for the append.
	f := &Fetch{MinBytes: 1, MaxBytes: 1 << 20, Parts: []FetchPart{{Topic: "core", Partition: 1, Offset: 0, MaxBytes: 1 << 20}}}
	if b.StartFetch(f) {
		t.Fatalf("fetch of an empty partition answered at once: %v", f.Parts[0].Err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.WaitFetch(ctx, f, time.Now().Add(10*time.Second))
	}()
	batch := makeBatch(t, record.None, "v", 3, 0)
	a, err := b.Append(nil, "core", 1, batch, AcksAll)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if a.BaseOffset != 0 {
		t.Fatalf("base offset %d, want 0", a.BaseOffset)
	}
	if a.Pending() {
		if err := a.Wait(ctx); err != nil {
			t.Fatalf("wait: %v", err)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll was not woken by the append")
	}
	r := f.Parts[0].Result
	if f.Parts[0].Err != nil || r.HighWatermark != 3 {
		t.Fatalf("fetch: err %v, high watermark %d; want nil, 3", f.Parts[0].Err, r.HighWatermark)
	}
	got := r.Records.Bytes()
	wantBytes(t, "fetched batch", got, stamped(batch, 0, record.Batch(got).LeaderEpoch()))
	f.Reset() // a log closes only once the Views read from it are released

	at, err := b.ListOffset(nil, "core", 1, LatestTimestamp)
	if err != nil || at.Offset != 3 {
		t.Fatalf("latest: %+v, %v; want offset 3", at, err)
	}
	at, err = b.ListOffset(nil, "core", 1, baseTS+1)
	if err != nil || at.Offset != 1 || at.Timestamp != baseTS+1 {
		t.Fatalf("by timestamp: %+v, %v; want offset 1", at, err)
	}

	// Refusals are definite codes a front end can answer with.
	for _, c := range []struct {
		name string
		err  func() error
		want protocol.ErrorCode
	}{
		{"unknown topic", func() error { _, err := b.Append(nil, "nope", 0, batch, AcksLeader); return err }, protocol.ErrUnknownTopicOrPartition},
		{"bad acks", func() error { _, err := b.Append(nil, "core", 0, batch, Acks(2)); return err }, protocol.ErrInvalidRequiredAcks},
		{"empty", func() error { _, err := b.Append(nil, "core", 0, nil, AcksLeader); return err }, protocol.ErrCorruptMessage},
		{"torn", func() error { _, err := b.Append(nil, "core", 0, batch[:len(batch)-1], AcksLeader); return err }, protocol.ErrCorruptMessage},
		{"out of range", func() error { _, err := b.ListOffset(nil, "core", 9, LatestTimestamp); return err }, protocol.ErrUnknownTopicOrPartition},
	} {
		code, _ := ErrorCode(c.err())
		if code != c.want {
			t.Errorf("%s: code %v, want %v", c.name, code, c.want)
		}
		if code.Indeterminate() {
			t.Errorf("%s: %v is indeterminate; nothing was appended", c.name, code)
		}
	}
	if end := b.parts.get("core", 0).log.EndOffset(); end != 0 {
		t.Fatalf("refused appends wrote: end offset %d", end)
	}

	if errs := b.DeleteTopics(ctx, []string{"core", "never"}); errs[0] != nil || !errors.Is(errs[1], controller.ErrUnknownTopic) {
		t.Fatalf("delete: %v", errs)
	}
}

// TestErrorCode is the table from the errors of the layers below the core
// to codes, and R14's rule for errors after an append.
func TestErrorCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want protocol.ErrorCode
	}{
		{nil, protocol.NoError},
		{protocol.ErrNotLeaderOrFollower, protocol.ErrNotLeaderOrFollower},
		{fmt.Errorf("x: %w", protocol.ErrFencedLeaderEpoch), protocol.ErrFencedLeaderEpoch},
		{fmt.Errorf("append: %w", log.ErrOffline), protocol.ErrStorageError},
		{log.ErrClosed, protocol.ErrNotLeaderOrFollower},
		{log.ErrOffsetOutOfRange, protocol.ErrOffsetOutOfRange},
		{replica.ErrNotEnoughReplicas, protocol.ErrNotEnoughReplicas},
		{controller.ErrTopicExists, protocol.ErrTopicAlreadyExists},
		{context.DeadlineExceeded, protocol.ErrRequestTimedOut},
		{fmt.Errorf("CreateTopic: %w", controller.ErrLeadershipLost), protocol.ErrRequestTimedOut},
		{errors.New("surprise"), protocol.ErrUnknownServerError},
		// After an append every code is indeterminate (R14).
		{afterAppend(replica.ErrNotEnoughReplicas), protocol.ErrNotEnoughReplicasAfterAppend},
		{afterAppend(replica.ErrNotLeader), protocol.ErrNotEnoughReplicasAfterAppend},
		{afterAppend(context.Canceled), protocol.ErrRequestTimedOut},
		{afterAppend(log.ErrOffline), protocol.ErrStorageError},
		{afterAppend(controller.ErrInvalidConfig), protocol.ErrUnknownServerError},
	} {
		got, _ := ErrorCode(c.err)
		if got != c.want {
			t.Errorf("ErrorCode(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
