package broker

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

func TestDefaultRaftAddr(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{"127.0.0.1:7092", "127.0.0.1:7093"},
		{"127.0.0.1:0", "127.0.0.1:0"},
		{":9092", ":9093"},
		{"[::1]:100", "[::1]:101"},
		{"h:65535", "h:0"},
		{"nope", ""},
	} {
		if got := nextAddr(tc.listen, 1); got != tc.want {
			t.Errorf("nextAddr(%q, 1) = %q, want %q", tc.listen, got, tc.want)
		}
	}
	if c := (Config{}).WithDefaults(); c.RaftAddr != "127.0.0.1:7093" || c.GossipAddr != "127.0.0.1:7094" || c.RaftElectionTimeout != DefaultSingleVoterRaftTimeout {
		t.Errorf("defaults: RaftAddr %q, GossipAddr %q, election timeout %v", c.RaftAddr, c.GossipAddr, c.RaftElectionTimeout)
	}
	if c := (Config{Voters: "1@h:1"}).WithDefaults(); c.RaftHeartbeatTimeout != DefaultRaftTimeout {
		t.Errorf("voters: heartbeat timeout %v, want %v", c.RaftHeartbeatTimeout, DefaultRaftTimeout)
	}
}

// A single broker is a one-voter Raft group: DescribeCluster shows it as
// the controller and its only voter, and a restart gives it a new epoch
// (R10) and keeps its topics.
func TestSingleBrokerDescribeClusterAndEpoch(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, nil)
	c := dial(t, b.Addr())
	c.createTopic("kept", 2)
	var resp protocol.DescribeClusterResponse
	c.call(&protocol.DescribeClusterRequest{}, &resp)
	if resp.ControllerID != 1 || len(resp.Servers) != 1 || !resp.Servers[0].Voter || resp.Servers[0].RaftAddr != b.RaftAddr() {
		t.Fatalf("describe: %+v", resp)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].Addr != b.Addr() || resp.Brokers[0].Epoch != b.Epoch() ||
		resp.Brokers[0].State != protocol.BrokerStateAlive {
		t.Fatalf("brokers: %+v (epoch %d)", resp.Brokers, b.Epoch())
	}
	first := b.Epoch()
	c.nc.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir, nil)
	if b.Epoch() != first+1 {
		t.Fatalf("epoch after restart %d, want %d", b.Epoch(), first+1)
	}
	c = dial(t, b.Addr())
	c.call(&protocol.DescribeClusterRequest{}, &resp)
	// Port 0: the restarted broker has a new Raft address, which the
	// group now records.
	if len(resp.Servers) != 1 || resp.Servers[0].RaftAddr != b.RaftAddr() || resp.Brokers[0].Epoch != first+1 {
		t.Fatalf("after restart: %+v", resp)
	}
	var md protocol.MetadataResponse
	c.call(&protocol.MetadataRequest{Topics: []string{"kept"}}, &md)
	if md.Topics[0].ErrorCode != protocol.NoError || len(md.Topics[0].Partitions) != 2 {
		t.Fatalf("topic lost over a restart: %+v", md.Topics)
	}
}

// A data directory of the earlier single-node store is refused rather than
// having its partitions deleted as orphans.
func TestLegacyDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, legacyMetadataFile), []byte("sluice-metadata 1 0\n{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "t-0"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{ListenAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "earlier single-node") {
		b.Close()
		t.Fatalf("Start on a legacy data dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "t-0")); err != nil {
		t.Fatalf("partition data touched: %v", err)
	}
}

// The forwarder reports a leader it cannot dial, or one whose address it
// does not know, as ErrLeaderUnreachable (nothing sent: safe to retry),
// and a request the peer cannot serve likewise.
func TestForwarderUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	f := &forwarder{timeout: defaultAdminTimeout}
	f.hint(2, dead)
	ctx := context.Background()
	if _, err := f.Forward(ctx, controller.Server{ID: 2}, []byte{1}); !errors.Is(err, controller.ErrLeaderUnreachable) {
		t.Errorf("dial failure: %v", err)
	}
	if _, err := f.Forward(ctx, controller.Server{ID: 3}, []byte{1}); !errors.Is(err, controller.ErrLeaderUnreachable) {
		t.Errorf("unknown address: %v", err)
	}
	// A broker answering with a top-level error never ran the request.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		frame, err := protocol.NewFrameReader(nc, 0).Next()
		if err != nil {
			return
		}
		var h protocol.RequestHeader
		if _, err := h.Decode(frame); err != nil {
			return
		}
		nc.Write(protocol.AppendErrorResponse(nil, &h, protocol.ErrUnsupportedVersion))
	}()
	f.hint(4, ln.Addr().String())
	if _, err := f.Forward(ctx, controller.Server{ID: 4}, []byte{1}); !errors.Is(err, controller.ErrLeaderUnreachable) ||
		!errors.Is(err, protocol.ErrUnsupportedVersion) {
		t.Errorf("unsupported API: %v", err)
	}
}

// A broker whose controller cannot reach a quorum does not register: it
// answers clients BROKER_NOT_AVAILABLE (retriable) rather than from
// metadata that may lag, and Start gives up at its context's end.
func TestStartWithoutQuorum(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	absent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	absentAddr := absent.Addr().String()
	absent.Close()
	b, err := New(Config{ListenAddr: "127.0.0.1:0", DataDir: t.TempDir(), RaftListener: ln,
		Voters:               "1@" + ln.Addr().String() + ",2@" + absentAddr,
		RaftHeartbeatTimeout: 50 * time.Millisecond, RaftElectionTimeout: 50 * time.Millisecond,
		Security: Security{ClusterSecret: []byte("a cluster secret of 32 bytes....")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan error, 1)
	go func() { started <- b.Start(ctx) }()
	poll.Until(t, 10*time.Second, "the broker to listen", func() bool { return b.listenAddr() != "" })
	if b.Addr() != "" {
		t.Fatal("Addr published before registration")
	}
	// Each refusal closes its connection (TestNotReadyRefusalEndsTheConnection).
	var md protocol.MetadataResponse
	dial(t, b.listenAddr()).call(&protocol.MetadataRequest{AllTopics: true}, &md)
	var dc protocol.DescribeClusterResponse
	dial(t, b.listenAddr()).call(&protocol.DescribeClusterRequest{}, &dc)
	if md.ErrorCode != protocol.ErrBrokerNotAvailable || dc.ErrorCode != protocol.ErrBrokerNotAvailable {
		t.Fatalf("before registration: metadata %v, describe %v; want BROKER_NOT_AVAILABLE", md.ErrorCode, dc.ErrorCode)
	}
	cancel()
	if err := <-started; err == nil {
		t.Fatal("Start without a quorum succeeded")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close after a failed Start: %v", err)
	}
}
