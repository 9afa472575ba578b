package controller

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/internal/poll"
)

// Voters may name each other by host name (compose service names,
// Kubernetes pod DNS names): a node whose name resolves to its listener
// advertises the name, and the group elects a leader dialling names.
func TestVotersByHostName(t *testing.T) {
	lns := map[int32]net.Listener{}
	var voters []Server
	for id := int32(1); id <= 3; id++ {
		lns[id] = poll.Listen(t, "127.0.0.1:0")
		voters = append(voters, Server{ID: id, Addr: fmt.Sprintf("localhost:%d", lns[id].Addr().(*net.TCPAddr).Port), Voter: true})
	}
	var nodes []*Node
	for id := int32(1); id <= 3; id++ {
		cfg := NodeConfig{ID: id, Dir: t.TempDir(), RaftAddr: lns[id].Addr().String(), Listener: lns[id], Voters: voters}
		testRaftTimings(&cfg)
		n, err := StartNode(cfg)
		if err != nil {
			t.Fatalf("start %d: %v", id, err)
		}
		t.Cleanup(func() { n.Close() })
		if got, want := n.RaftAddr(), voters[id-1].Addr; got != want {
			t.Errorf("node %d advertises %s, want the name %s", id, got, want)
		}
		nodes = append(nodes, n)
	}
	// Every node agrees on a leader, which it knows by its name.
	poll.Until(t, 20*time.Second, "a leader every node knows by name", func() error {
		for _, n := range nodes {
			l, ok := n.Leader()
			if !ok {
				return fmt.Errorf("node %d knows no leader", n.ID())
			}
			if !strings.HasPrefix(l.Addr, "localhost:") {
				return fmt.Errorf("node %d knows the leader at %s", n.ID(), l.Addr)
			}
		}
		return nil
	})
}

// A name that resolves elsewhere, or to this host on another port, is
// still refused with both addresses.
func TestVoterNameElsewhere(t *testing.T) {
	ln := poll.Listen(t, "127.0.0.1:0")
	for _, addr := range []string{"localhost:1", "192.0.2.1:" + fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)} {
		cfg := NodeConfig{ID: 1, Dir: t.TempDir(), RaftAddr: ln.Addr().String(), Listener: ln, Voters: []Server{{ID: 1, Addr: addr, Voter: true}}}
		_, err := StartNode(cfg)
		if err == nil || !strings.Contains(err.Error(), "but this node's Raft address is") {
			t.Errorf("voters %s: %v", addr, err)
		}
		ln = poll.Listen(t, "127.0.0.1:0")
	}
}

// A gossip address given as a host name binds (and so advertises) the
// address the name resolves to: memberlist would bind every address and
// advertise none for a name.
func TestGossipBindName(t *testing.T) {
	for _, c := range []struct{ bind, want string }{
		{"localhost:7094", "127.0.0.1"},
		{"127.0.0.2:7094", "127.0.0.2"},
		{"0.0.0.0:7094", "0.0.0.0"},
	} {
		cfg := MembershipConfig{BindAddr: c.bind, Logger: zap.NewNop()}
		sc, err := cfg.serfConfig()
		if err != nil {
			t.Fatalf("%s: %v", c.bind, err)
		}
		if got := sc.MemberlistConfig.BindAddr; got != c.want {
			t.Errorf("%s binds %s, want %s", c.bind, got, c.want)
		}
	}
	if _, err := (&MembershipConfig{BindAddr: "no-such-host.invalid:7094", Logger: zap.NewNop()}).serfConfig(); err == nil || !strings.Contains(err.Error(), "no-such-host.invalid") {
		t.Errorf("an unresolvable name: %v", err)
	}
}

// A node listening on every address takes a voter name that resolves to
// one of its host's addresses (a pod's Raft port on 0.0.0.0, named by
// its DNS name).
func TestVoterNameListenerOnEveryAddress(t *testing.T) {
	ln := poll.Listen(t, "0.0.0.0:0")
	name := fmt.Sprintf("localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	cfg := NodeConfig{ID: 1, Dir: t.TempDir(), RaftAddr: ln.Addr().String(), Listener: ln, Voters: []Server{{ID: 1, Addr: name, Voter: true}}}
	testRaftTimings(&cfg)
	n, err := StartNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.RaftAddr() != name {
		t.Errorf("advertises %s, want %s", n.RaftAddr(), name)
	}
}
