package controller

import (
	"bytes"
	"net"
	"strconv"
	"testing"

	"github.com/hashicorp/serf/serf"
	"go.uber.org/zap"
)

// startSerf starts a serf agent from MembershipConfig{ID: id, Key: key}'s
// configuration and returns it with its gossip address.
func startSerf(t *testing.T, id int32, key []byte) (*serf.Serf, string) {
	t.Helper()
	cfg := MembershipConfig{ID: id, BindAddr: "127.0.0.1:0", Logger: zap.NewNop(), Key: key, Gossip: testGossip}
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
