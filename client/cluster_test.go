package client

import (
	"testing"

	"github.com/sluicemq/sluice/protocol"
)

// Every API in the protocol table has its own version slot, so the
// internal APIs negotiate like the others.
func TestVersionSlots(t *testing.T) {
	seen := map[int]protocol.APIKey{}
	for _, r := range protocol.SupportedAPIs() {
		s := versionSlot(r.Key)
		if s < 0 || s >= versionSlots {
			t.Fatalf("%v: slot %d", r.Key, s)
		}
		if k, dup := seen[s]; dup {
			t.Fatalf("%v and %v share slot %d", k, r.Key, s)
		}
		seen[s] = r.Key
	}
	for _, k := range []protocol.APIKey{-1, kafkaSlots, protocol.InternalKeyBase - 1, protocol.InternalKeyBase + internalSlots} {
		if s := versionSlot(k); s != -1 {
			t.Errorf("key %d: slot %d, want -1", k, s)
		}
	}
}

// Metadata from a broker that lags (one cut off from the controller still
// believes it leads) does not send the client back to a deposed leader: a
// partition keeps the leader of the later epoch. A topic created again
// (another id) starts its epochs over and is taken as it comes.
func TestMetadataKeepsTheLaterLeaderEpoch(t *testing.T) {
	c := offlineClient(t)
	md := func(id uint64, leader, epoch int32) *protocol.MetadataResponse {
		return &protocol.MetadataResponse{Topics: []protocol.TopicMetadata{{Name: "t", ID: id,
			Partitions: []protocol.PartitionMetadata{{Partition: 0, Leader: leader, LeaderEpoch: epoch}}}}}
	}
	for _, step := range []struct {
		what               string
		resp               *protocol.MetadataResponse
		wantLeader, wantEp int32
	}{
		{"first", md(7, 2, 5), 2, 5},
		{"a lagging broker's older epoch", md(7, 1, 4), 2, 5},
		{"a newer epoch", md(7, 3, 6), 3, 6},
		{"the topic created again", md(8, 1, 0), 1, 0},
		{"a broker that sends no id", md(0, 2, 0), 2, 0},
	} {
		c.applyMetadata(step.resp)
		if leader, epoch, _ := c.meta.leader("t", 0); leader != step.wantLeader || epoch != step.wantEp {
			t.Fatalf("%s: leader %d epoch %d, want %d epoch %d", step.what, leader, epoch, step.wantLeader, step.wantEp)
		}
	}
}
