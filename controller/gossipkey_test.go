package controller

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/internal/poll"
)

// startSerf starts a serf agent from MembershipConfig{ID: id, Key: key}'s
// configuration and returns it with its gossip address.
func startSerf(t *testing.T, id int32, key []byte, accepted ...[]byte) (*serf.Serf, string) {
	t.Helper()
	cfg := MembershipConfig{ID: id, BindAddr: "127.0.0.1:0", Logger: zap.NewNop(), Key: key, AcceptedKeys: accepted, Gossip: testGossip}
	sc, err := cfg.serfConfig()
	if err != nil {
		t.Fatal(err)
	}
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	n := s.Memberlist().LocalNode()
	return s, net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// With a gossip key, brokers with the same key gossip with each other;
// one with another key, or none, cannot join: memberlist refuses what it
// cannot decrypt and authenticate.
func TestGossipKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	_, addr := startSerf(t, 1, key)
	same, _ := startSerf(t, 2, key)
	if _, err := same.Join([]string{addr}, true); err != nil {
		t.Fatalf("join with the same key: %v", err)
	}
	if n := same.NumNodes(); n != 2 {
		t.Fatalf("%d members after the join, want 2", n)
	}
	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"another key", bytes.Repeat([]byte{8}, 32)},
		{"no key", nil},
	} {
		s, _ := startSerf(t, 3, tc.key)
		if _, err := s.Join([]string{addr}, true); err == nil {
			t.Fatalf("%s: joined a cluster with a gossip key", tc.name)
		}
		if n := s.NumNodes(); n != 1 {
			t.Fatalf("%s: sees %d members, want itself alone", tc.name, n)
		}
		s.Shutdown()
	}
}

// A rolling rotation of the gossip key: at each step of the procedure
// (old with new accepted; new with old accepted; new alone) a member
// joins one from the step before and both see each other; a member with
// new alone cannot join one with old alone.
func TestGossipKeyRotation(t *testing.T) {
	oldK, newK := bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{9}, 16)
	type keys struct{ key, accepted []byte }
	steps := [][2]keys{
		{{oldK, nil}, {oldK, newK}},
		{{oldK, newK}, {newK, oldK}},
		{{newK, oldK}, {newK, nil}},
	}
	start := func(id int32, k keys) (*serf.Serf, string) {
		if k.accepted == nil {
			return startSerf(t, id, k.key)
		}
		return startSerf(t, id, k.key, k.accepted)
	}
	for i, st := range steps {
		a, addr := start(int32(10*i+1), st[0])
		b, _ := start(int32(10*i+2), st[1])
		if _, err := b.Join([]string{addr}, true); err != nil {
			t.Fatalf("step %d: join: %v", i+1, err)
		}
		// The joined member learns of the joiner asynchronously.
		poll.Until(t, 10*time.Second, fmt.Sprintf("step %d: both members see 2", i+1), func() error {
			if a.NumNodes() != 2 || b.NumNodes() != 2 {
				return fmt.Errorf("%d and %d members", a.NumNodes(), b.NumNodes())
			}
			return nil
		})
		a.Shutdown()
		b.Shutdown()
	}
	_, addr := startSerf(t, 41, oldK)
	c, _ := startSerf(t, 42, newK)
	if _, err := c.Join([]string{addr}, true); err == nil {
		t.Fatal("a member with the new key alone joined one with the old key alone")
	}
}
