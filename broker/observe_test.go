package broker

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// TestStatsDoNotWaitForPartitionLocks: a scrape (Stats, Ready) reads no
// partition's lock, so it completes while a writer holds every
// partition's lock — as a role change or a reopen does, and as a writer
// queued behind a long fsync=always append makes every new reader wait.
func TestStatsDoNotWaitForPartitionLocks(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("held", 3)
	poll.Until(t, 10*time.Second, "the broker ready", b.Ready)
	if r := c.produce("held", 1, protocol.AcksAll, makeBatch(t, record.None, "a", 3, 1000)); r.ErrorCode != protocol.NoError {
		t.Fatalf("produce: %+v", r)
	}
	parts := b.parts.all()
	if len(parts) != 3 {
		t.Fatalf("%d partitions open, want 3", len(parts))
	}
	for _, p := range parts {
		p.mu.Lock()
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			for _, p := range parts {
				p.mu.Unlock()
			}
		}
	}
	defer unlock()

	done := make(chan Stats, 1)
	ready := make(chan error, 1)
	go func() { done <- b.Stats(true) }()
	go func() { ready <- b.Ready() }()
	var st Stats
	select {
	case st = <-done:
	case <-time.After(5 * time.Second):
		unlock()
		t.Fatal("Stats waited for the partitions' locks")
	}
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("Ready: %v", err)
		}
	case <-time.After(5 * time.Second):
		unlock()
		t.Fatal("Ready waited for the partitions' locks")
	}
	unlock()

	if len(st.Topics) != 1 || st.Topics[0].Led != 3 || len(st.Topics[0].Partitions) != 3 {
		t.Fatalf("stats: %+v", st.Topics)
	}
	ps := st.Topics[0].Partitions[1]
	if !ps.Leader || ps.EndOffset != 3 || ps.HighWatermark != 3 || ps.ISR != 1 || ps.Replicas != 1 || ps.Bytes == 0 || ps.Segments != 1 {
		t.Fatalf("partition 1: %+v", ps)
	}
}

var statsPartitions = flag.Int("stats.partitions", 10000, "BenchmarkStats: the partitions the broker holds")

// BenchmarkStats: one scrape's snapshot (Stats, without and with the
// partitions) of a broker holding -stats.partitions partitions (topics of
// 500), all led here. TestStatsDoNotWaitForPartitionLocks is what shows
// that a scrape does not wait for the produce path.
func BenchmarkStats(b *testing.B) {
	br := startBroker(b, "", nil)
	c := dial(b, br.Addr())
	const perTopic = 500
	topics := (*statsPartitions + perTopic - 1) / perTopic
	for i := range topics {
		c.createTopic(fmt.Sprintf("many%d", i), int32(min(perTopic, *statsPartitions-i*perTopic)))
	}
	poll.Until(b, 10*time.Minute, "the broker ready", br.Ready)
	if n := len(br.parts.all()); n != *statsPartitions {
		b.Fatalf("%d partitions open", n)
	}
	for _, parts := range []bool{false, true} {
		b.Run(fmt.Sprintf("partitions=%v", parts), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if st := br.Stats(parts); len(st.Topics) != topics {
					b.Fatalf("stats: %d topics", len(st.Topics))
				}
			}
		})
	}
}
