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
