package broker

import (
	"context"
	"testing"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// The handover's fence refuses produces with a definite
// NOT_LEADER_OR_FOLLOWER, appending nothing, only in the leader epoch it
// was set in; a handover whose switch is refused lifts it.
func TestHandoverFence(t *testing.T) {
	b := startBroker(t, "", nil)
	ctx := context.Background()
	if errs := b.CreateTopics(ctx, []NewTopic{{Name: "h", Partitions: 1, ReplicationFactor: -1}}, false); errs[0] != nil {
		t.Fatal(errs[0])
	}
	p := b.parts.get("h", 0)
	if p == nil {
		t.Fatal("partition h-0 not open")
	}
	p.mu.RLock()
	epoch, end := p.epoch, p.log.EndOffset()
	p.mu.RUnlock()
	batch := makeBatch(t, record.None, "v", 2, 0)

	p.handover.Store(int64(epoch) + 1)
	_, err := b.Append(nil, "h", 0, batch, AcksAll)
	code, _ := ErrorCode(err)
	if code != protocol.ErrNotLeaderOrFollower || code.Indeterminate() {
		t.Fatalf("append during the handover: %v (code %v), want a definite NOT_LEADER_OR_FOLLOWER", err, code)
	}
	if got := p.cur.Load().EndOffset(); got != end {
		t.Fatalf("end offset %d after a refused append, want %d", got, end)
	}

	// A fence of another leader epoch refuses nothing.
	p.handover.Store(int64(epoch))
	if _, err := b.Append(nil, "h", 0, batch, AcksAll); err != nil {
		t.Fatalf("append with a fence of epoch %d, leading in %d: %v", epoch-1, epoch, err)
	}

	// A switch the controller refuses (broker 2 is no replica) lifts the
	// fence: produces go through again.
	p.handover.Store(0)
	mp := b.Metadata().Topics["h"].Partitions[0]
	c := controller.AlterPartition{Topic: "h", Partition: 0, PartitionEpoch: mp.PartitionEpoch, Leader: 2, ISR: []int32{2}}
	if err := b.handOver(ctx, p, c); err == nil {
		t.Fatal("handover to a broker that holds no replica succeeded")
	}
	if e := p.handover.Load(); e != 0 {
		t.Fatalf("fence %d left after a refused switch, want none", e)
	}
	if _, err := b.Append(nil, "h", 0, batch, AcksAll); err != nil {
		t.Fatalf("append after a refused handover: %v", err)
	}
	// And a plan made at another partition epoch is not acted on.
	c.PartitionEpoch++
	if err := b.handOver(ctx, p, c); err == nil {
		t.Fatal("handover planned at a stale partition epoch went ahead")
	}
}
