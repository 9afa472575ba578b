package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/replica"
)

// Broker-level checks of the idempotent producer's state (R13, issue 14)
// over real TCP: raw produce requests with producer-stamped batches. The
// replica package tests the state machine itself.

// idemBatch builds a batch of n records of producer id at epoch, first
// sequence seq.
func idemBatch(t testing.TB, id int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	b := record.NewBuilder(record.None)
	b.SetProducer(id, epoch, seq)
	for i := range n {
		b.Append(baseTS+int64(i), nil, fmt.Appendf(nil, "p%d-e%d-s%d", id, epoch, int(seq)+i), nil)
	}
	out, err := b.AppendBatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantProduced fails unless r succeeded at base.
func wantProduced(t testing.TB, what string, r protocol.ProducePartitionResponse, base int64) {
	t.Helper()
	if r.ErrorCode != protocol.NoError || r.BaseOffset != base {
		t.Fatalf("%s: %v %q at %d, want success at %d", what, r.ErrorCode, r.ErrorMessage, r.BaseOffset, base)
	}
}

// wantRefused fails unless r is the definite error code.
func wantRefused(t testing.TB, what string, r protocol.ProducePartitionResponse, code protocol.ErrorCode) {
	t.Helper()
	if r.ErrorCode != code {
		t.Fatalf("%s: %v %q, want %v", what, r.ErrorCode, r.ErrorMessage, code)
	}
	if code.Indeterminate() || r.ErrorMessage == "" {
		t.Fatalf("%s: %v must be definite (R14) and explained, got message %q", what, code, r.ErrorMessage)
	}
}

// wantEnd fails unless the partition's high watermark is end.
func (c *testClient) wantEnd(t testing.TB, topic string, end int64) {
	t.Helper()
	if got := c.listOffset(topic, 0, LatestTimestamp).Offset; got != end {
		t.Fatalf("%s: high watermark %d, want %d", topic, got, end)
	}
}

// waitLeading waits until partition 0 of topic answers ListOffsets
// (latest) without an error: a restarted broker leads it again.
func (c *testClient) waitLeading(t testing.TB, topic string) {
	t.Helper()
	poll.Until(t, 20*time.Second, "the partition leads again", func() error {
		var resp protocol.ListOffsetsResponse
		c.call(&protocol.ListOffsetsRequest{ReplicaID: -1, Topics: []protocol.ListOffsetsTopic{
			{Name: topic, Partitions: []protocol.ListOffsetsPartition{{Partition: 0, CurrentLeaderEpoch: -1, Timestamp: LatestTimestamp}}}}}, &resp)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != protocol.NoError {
			return code
		}
		return nil
	})
}

func TestIdempotentDuplicateGetsOriginalOffsets(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("t", 1)
	first := idemBatch(t, 1, 0, 0, 3)
	wantProduced(t, "first", c.produce("t", 0, -1, first), 0)
	wantProduced(t, "other producer", c.produce("t", 0, -1, idemBatch(t, 2, 0, 0, 2)), 3)
	wantProduced(t, "plain batch", c.produce("t", 0, -1, makeBatch(t, record.None, "plain", 1, 0)), 5)
	wantProduced(t, "retry of the first", c.produce("t", 0, -1, first), 0)
	wantProduced(t, "retry at acks=1", c.produce("t", 0, 1, idemBatch(t, 2, 0, 0, 2)), 3)
	c.wantEnd(t, "t", 6)
	wantProduced(t, "next of the first producer", c.produce("t", 0, -1, idemBatch(t, 1, 0, 3, 1)), 6)

	// Several batches in one record set are checked in order: a retry
	// followed by a new batch appends only the new one.
	rs := append(idemBatch(t, 1, 0, 3, 1), idemBatch(t, 1, 0, 4, 2)...)
	wantProduced(t, "retry + new batch", c.produce("t", 0, -1, rs), 6)
	c.wantEnd(t, "t", 9)
	var n int
	for off := int64(0); off < 9; {
		f := c.fetch("t", 0, off)
		for rest := f.Records; len(rest) > 0; {
			bt, next, err := record.NextBatch(rest, 0)
			if err != nil {
				t.Fatal(err)
			}
			n++
			off, rest = bt.LastOffset()+1, next
		}
	}
	if n != 5 {
		t.Fatalf("%d batches in the log, want 5: a retry was appended", n)
	}
}

func TestIdempotentRefusals(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("t", 1)
	wantRefused(t, "unknown producer past sequence 0", c.produce("t", 0, -1, idemBatch(t, 1, 0, 5, 1)), protocol.ErrUnknownProducerID)
	wantProduced(t, "first", c.produce("t", 0, -1, idemBatch(t, 1, 3, 0, 2)), 0)
	wantRefused(t, "gap", c.produce("t", 0, -1, idemBatch(t, 1, 3, 3, 1)), protocol.ErrOutOfOrderSequenceNumber)
	wantRefused(t, "stale epoch", c.produce("t", 0, -1, idemBatch(t, 1, 2, 2, 1)), protocol.ErrInvalidProducerEpoch)
	wantRefused(t, "new epoch not at 0", c.produce("t", 0, -1, idemBatch(t, 1, 4, 2, 1)), protocol.ErrOutOfOrderSequenceNumber)
	c.wantEnd(t, "t", 2)
	wantProduced(t, "in order", c.produce("t", 0, -1, idemBatch(t, 1, 3, 2, 1)), 2)
	wantProduced(t, "new epoch at 0", c.produce("t", 0, -1, idemBatch(t, 1, 4, 0, 1)), 3)
	wantRefused(t, "old epoch after the bump", c.produce("t", 0, -1, idemBatch(t, 1, 3, 3, 1)), protocol.ErrInvalidProducerEpoch)
}

// TestIdempotentStateAfterRestart restarts a broker cleanly, then like a
// crash (Abandon: no snapshot at close), with segments small enough that
// the state comes from a roll snapshot and the log after it.
func TestIdempotentStateAfterRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			dir := t.TempDir()
			b := startBroker(t, dir, nil)
			c := dial(t, b.Addr())
			c.createTopic("t", 1, protocol.Config{Name: "segment.bytes", Value: "4096"}, protocol.Config{Name: "max.message.bytes", Value: "2048"})
			// 3 producers, 40 batches each (~100 bytes a batch): several
			// segments, so several roll snapshots.
			bases := map[[2]int64]int64{}
			next := int64(0)
			for seq := range int32(40) {
				for id := range int64(3) {
					r := c.produce("t", 0, -1, idemBatch(t, id, 0, seq, 1))
					wantProduced(t, "fill", r, next)
					bases[[2]int64{id, int64(seq)}] = next
					next++
				}
			}
			if crash {
				if err := b.Abandon(); err != nil {
					t.Fatal(err)
				}
			} else if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			// A clean stop snapshots the state at the log end; a crash
			// leaves the roll snapshots and the log after them.
			_, err := os.Stat(filepath.Join(dir, "t-0", fmt.Sprintf("%020d.producers", next)))
			if crash != errors.Is(err, os.ErrNotExist) {
				t.Fatalf("snapshot at the log end %d after the stop: %v", next, err)
			}
			b = startBroker(t, dir, nil)
			c = dial(t, b.Addr())
			c.waitLeading(t, "t")
			for id := range int64(3) {
				for seq := int32(35); seq < 40; seq++ {
					wantProduced(t, fmt.Sprintf("retry of producer %d seq %d", id, seq),
						c.produce("t", 0, -1, idemBatch(t, id, 0, seq, 1)), bases[[2]int64{id, int64(seq)}])
				}
				wantRefused(t, "gap after restart", c.produce("t", 0, -1, idemBatch(t, id, 0, 41, 1)), protocol.ErrOutOfOrderSequenceNumber)
				wantProduced(t, "next after restart", c.produce("t", 0, -1, idemBatch(t, id, 0, 40, 1)), next)
				next++
			}
			c.wantEnd(t, "t", next)
		})
	}
}

// TestIdempotentStateAfterRetention lets retention delete the segments
// holding one producer's batches: its state goes with them (a follower
// starting from the new log start would not have it either), while a
// producer with batches in the kept segments still deduplicates.
func TestIdempotentStateAfterRetention(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *Config) { c.RetentionCheckInterval = 20 * time.Millisecond }
	b := startBroker(t, dir, mod)
	c := dial(t, b.Addr())
	c.createTopic("t", 1, protocol.Config{Name: "segment.bytes", Value: "4096"}, protocol.Config{Name: "max.message.bytes", Value: "2048"},
		protocol.Config{Name: "retention.bytes", Value: "8192"})
	wantProduced(t, "old producer", c.produce("t", 0, -1, idemBatch(t, 1, 0, 0, 1)), 0)
	var last protocol.ProducePartitionResponse
	for seq := range int32(200) {
		last = c.produce("t", 0, -1, idemBatch(t, 2, 0, seq, 1))
		wantProduced(t, "new producer", last, int64(seq)+1)
	}
	poll.Until(t, 20*time.Second, "retention moves the log start past offset 0", func() error {
		if s := c.listOffset("t", 0, EarliestTimestamp).Offset; s == 0 {
			return fmt.Errorf("log start %d", s)
		}
		// The retention pass cuts the producer state just after it moved
		// the log start: wait for that too.
		if n := b.parts.get("t", 0).producers.Len(); n != 1 {
			return fmt.Errorf("%d producers", n)
		}
		return nil
	})
	check := func(when string) {
		t.Helper()
		wantRefused(t, when+": producer whose batches retention deleted", c.produce("t", 0, -1, idemBatch(t, 1, 0, 1, 1)), protocol.ErrUnknownProducerID)
		wantProduced(t, when+": retry of a kept batch", c.produce("t", 0, -1, idemBatch(t, 2, 0, 199, 1)), 200)
	}
	check("running")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir, mod)
	c = dial(t, b.Addr())
	c.waitLeading(t, "t")
	check("after restart")
}

// TestIdempotentProducerCap opens 10,000 producers on a partition capped
// at 1,000: the 9,000 least recently written are evicted and get
// UNKNOWN_PRODUCER_ID when they come back past sequence 0; the 1,000
// kept ones still deduplicate.
func TestIdempotentProducerCap(t *testing.T) {
	const producers, max, perRequest = 10000, 1000, 200
	b := startBroker(t, "", func(c *Config) { c.ProducerIDMax = max })
	c := dial(t, b.Addr())
	c.createTopic("t", 1)
	batches := make([][]byte, producers)
	for id := range producers {
		batches[id] = idemBatch(t, int64(id), 0, 0, 1)
	}
	send := func(from, to int) protocol.ProducePartitionResponse {
		var rs []byte
		for id := from; id < to; id++ {
			rs = append(rs, batches[id]...)
		}
		return c.produce("t", 0, 1, rs)
	}
	for from := 0; from < producers; from += perRequest {
		wantProduced(t, "first batches", send(from, from+perRequest), int64(from))
	}
	c.wantEnd(t, "t", producers)
	// The kept ones: every retry is a duplicate, nothing is appended.
	for from := producers - max; from < producers; from += perRequest {
		wantProduced(t, "retries of kept producers", send(from, from+perRequest), int64(from))
	}
	c.wantEnd(t, "t", producers)
	// The evicted ones (a sample: one round trip each).
	for id := 0; id < producers-max; id += 90 {
		r := c.produce("t", 0, 1, idemBatch(t, int64(id), 0, 1, 1))
		wantRefused(t, fmt.Sprintf("evicted producer %d", id), r, protocol.ErrUnknownProducerID)
		if !strings.Contains(r.ErrorMessage, "initialise") {
			t.Fatalf("message %q does not say what to do", r.ErrorMessage)
		}
	}
	c.wantEnd(t, "t", producers)
	p := b.parts.get("t", 0)
	if n, ev := p.producers.Len(), p.producers.Evicted(); n != max || ev != producers-max {
		t.Fatalf("%d producers kept, %d evicted; want %d and %d", n, ev, max, producers-max)
	}
}

// TestIdempotentProducerCapIsPerBroker: the cap counts the producers of
// all the broker's partitions, and evicts the least recently written of
// any partition: partition 1's new producers cost partition 0's oldest
// their state, while partition 0's recent ones and all of partition 1's
// stay.
func TestIdempotentProducerCapIsPerBroker(t *testing.T) {
	const max, perPart = 100, 80
	b := startBroker(t, "", func(c *Config) { c.ProducerIDMax = max })
	c := dial(t, b.Addr())
	c.createTopic("t", 2)
	send := func(p int32, from, to int64, seq int32) protocol.ProducePartitionResponse {
		var rs []byte
		for id := from; id < to; id++ {
			rs = append(rs, idemBatch(t, id, 0, seq, 1)...)
		}
		return c.produce("t", p, 1, rs)
	}
	wantProduced(t, "partition 0", send(0, 0, perPart, 0), 0)
	wantProduced(t, "partition 1", send(1, 1000, 1000+perPart, 0), 0)
	evicted := int64(2*perPart - max)
	if got := b.ProducerIDsEvicted(); got != uint64(evicted) {
		t.Fatalf("evicted %d, want %d", got, evicted)
	}
	// Partition 0's kept producers and all of partition 1's deduplicate.
	wantProduced(t, "retries on partition 0", send(0, evicted, perPart, 0), evicted)
	wantProduced(t, "retries on partition 1", send(1, 1000, 1000+perPart, 0), 0)
	for id := range evicted {
		r := c.produce("t", 0, 1, idemBatch(t, id, 0, 1, 1))
		wantRefused(t, fmt.Sprintf("evicted producer %d", id), r, protocol.ErrUnknownProducerID)
	}
	c.wantEnd(t, "t", perPart)
	if n0, n1 := b.parts.get("t", 0).producers.Len(), b.parts.get("t", 1).producers.Len(); n0 != perPart-int(evicted) || n1 != perPart {
		t.Fatalf("partitions hold %d and %d producers, want %d and %d", n0, n1, perPart-int(evicted), perPart)
	}
}

// leadingPartition is an open partition led by broker 1 with broker 2 in
// its ISR, which fetches only when the test says: acks=all appends wait
// until then.
func leadingPartition(t *testing.T) *partition {
	t.Helper()
	dir := t.TempDir()
	l, err := log.Open(dir, log.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &partition{topic: "t", dir: dir, log: l, producers: replica.NewProducers(replica.ProducersConfig{Dir: dir}),
		cfg: partitionConfig{maxMessageBytes: 1 << 20}, state: stateOpen, role: roleLeader, leaderID: 1, epoch: 0}
	p.cur.Store(l)
	ld, err := replica.NewLeader(replica.LeaderConfig{ID: 1, Epoch: 0, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, MinInsync: 1}, logView{p})
	if err != nil {
		t.Fatal(err)
	}
	p.leader = ld
	return p
}

// TestIdempotentRetryOfPendingBatchSharesItsOutcome: a retry of a batch
// still waiting for acks=all is not appended; it waits for the
// original's outcome and gets it: success with the original offset once
// the follower fetched, or the original's error when leadership is lost.
func TestIdempotentRetryOfPendingBatchSharesItsOutcome(t *testing.T) {
	for _, resign := range []bool{false, true} {
		t.Run(fmt.Sprintf("resign=%v", resign), func(t *testing.T) {
			p := leadingPartition(t)
			batch := idemBatch(t, 5, 0, 0, 2)
			type outcome struct {
				base int64
				err  error
			}
			done := make(chan outcome, 2)
			for range 2 {
				a, err := p.appendAsLeader(slices.Clone(batch), AcksAll)
				if err != nil {
					t.Fatal(err)
				}
				go func() { done <- outcome{a.BaseOffset, a.Wait(context.Background())} }()
			}
			if end := p.log.EndOffset(); end != 2 {
				t.Fatalf("log end %d after the batch and its retry, want 2", end)
			}
			select {
			case o := <-done:
				t.Fatalf("acknowledged (%+v) before the follower has the batch", o)
			case <-time.After(50 * time.Millisecond):
			}
			var want error
			if resign {
				p.leader.Resign()
				want = replica.ErrNotLeader
			} else if _, err := p.leader.Fetched(2, 2, 2, 0, 1); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				o := <-done
				if o.base != 0 {
					t.Fatalf("answered at %d, want 0", o.base)
				}
				code, _ := ErrorCode(o.err)
				if wantCode, _ := ErrorCode(afterAppend(want)); code != wantCode {
					t.Fatalf("outcome %v, want %v", o.err, want)
				}
			}
		})
	}
}

// TestClosedPartitionReleasesProducerIDs: the producers of a deleted
// topic's partitions no longer count against the broker's cap.
func TestClosedPartitionReleasesProducerIDs(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("gone", 2)
	c.createTopic("kept", 1)
	for id := range int64(5) {
		for _, p := range []int32{0, 1} {
			wantProduced(t, "gone", c.produce("gone", p, 1, idemBatch(t, id, 0, 0, 1)), id)
		}
		wantProduced(t, "kept", c.produce("kept", 0, 1, idemBatch(t, id, 0, 0, 1)), id)
	}
	if n := b.parts.producerLimit.Len(); n != 15 {
		t.Fatalf("the broker holds %d producer entries, want 15", n)
	}
	var resp protocol.DeleteTopicsResponse
	c.call(&protocol.DeleteTopicsRequest{Topics: []string{"gone"}, TimeoutMs: 10000}, &resp)
	poll.Until(t, 10*time.Second, "the deleted topic's producers released", func() error {
		if n := b.parts.producerLimit.Len(); n != 5 {
			return fmt.Errorf("%d entries", n)
		}
		return nil
	})
}

// TestProducerIDExpirationTopicConfig: producer.id.expiration.ms of a
// topic overrides the broker's ProducerIDExpiration, which is the
// broker-level default of the key; altering it applies to the open
// partitions at once; 0 is refused.
func TestProducerIDExpirationTopicConfig(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.ProducerIDExpiration = 2 * time.Hour })
	c := dial(t, b.Addr())
	c.createTopic("short", 1, protocol.Config{Name: controller.ConfigProducerIDExpirationMs, Value: "60000"})
	c.createTopic("long", 1)
	// One producer per topic whose last batch is 10 minutes old.
	old := record.NewBuilder(record.None)
	old.SetProducer(7, 0, 0)
	old.Append(time.Now().Add(-10*time.Minute).UnixMilli(), nil, []byte("v"), nil)
	batch, err := old.AppendBatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"short", "long"} {
		wantProduced(t, topic, c.produce(topic, 0, 1, batch), 0)
	}
	if n := b.parts.get("short", 0).producers.Expire(); n != 1 {
		t.Fatalf("short: %d producers expired, want 1 (topic's 1 min)", n)
	}
	if n := b.parts.get("long", 0).producers.Expire(); n != 0 {
		t.Fatalf("long: %d producers expired, want 0 (broker's 2 h)", n)
	}
	describe := func(topic string) protocol.ConfigEntry {
		t.Helper()
		var resp protocol.DescribeConfigsResponse
		c.call(&protocol.DescribeConfigsRequest{Resources: []protocol.DescribeConfigsResource{
			{Type: protocol.ResourceTopic, Name: topic, ConfigNames: []string{controller.ConfigProducerIDExpirationMs}}}}, &resp)
		if len(resp.Resources) != 1 || len(resp.Resources[0].Configs) != 1 {
			t.Fatalf("describe %s: %+v", topic, resp.Resources)
		}
		return resp.Resources[0].Configs[0]
	}
	if e := describe("long"); e.Value != "7200000" || !e.IsDefault {
		t.Fatalf("long: %+v, want the broker's 7200000", e)
	}
	if e := describe("short"); e.Value != "60000" || e.IsDefault {
		t.Fatalf("short: %+v, want the topic's 60000", e)
	}
	alter := func(value string) protocol.ResourceError {
		var resp protocol.AlterConfigsResponse
		c.call(&protocol.AlterConfigsRequest{Resources: []protocol.AlterConfigsResource{{Type: protocol.ResourceTopic, Name: "long",
			Configs: []protocol.AlterableConfig{{Name: controller.ConfigProducerIDExpirationMs, Value: value}}}}}, &resp)
		return resp.Resources[0]
	}
	if r := alter("0"); r.ErrorCode != protocol.ErrInvalidConfig {
		t.Fatalf("alter to 0: %+v, want INVALID_CONFIG", r)
	}
	if r := alter("60000"); r.ErrorCode != protocol.NoError {
		t.Fatalf("alter: %+v", r)
	}
	poll.Until(t, 10*time.Second, "the altered expiration applied", func() error {
		if n := b.parts.get("long", 0).producers.Expire(); n != 1 {
			return fmt.Errorf("%d producers expired", n)
		}
		return nil
	})
}
