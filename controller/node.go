package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/auth"
)

// Server is one member of the Raft group.
type Server struct {
	ID    int32  // broker id; its Raft server id is the decimal form
	Addr  string // Raft address, host:port
	Voter bool
}

// ParseVoters parses a voter list "id@host:port,id@host:port,...".
func ParseVoters(s string) ([]Server, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Server
	for _, part := range strings.Split(s, ",") {
		idStr, addr, ok := strings.Cut(strings.TrimSpace(part), "@")
		id, err := strconv.ParseInt(idStr, 10, 32)
		if !ok || err != nil || id < 0 || addr == "" {
			return nil, fmt.Errorf("voters: %q: want id@host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("voters: %q: %w", part, err)
		}
		for _, o := range out {
			if o.ID == int32(id) || o.Addr == addr {
				return nil, fmt.Errorf("voters: %q: id or address given twice", part)
			}
		}
		out = append(out, Server{ID: int32(id), Addr: addr, Voter: true})
	}
	return out, nil
}

// NodeConfig configures a Node. Zero durations and counts take the
// defaults named on each field.
type NodeConfig struct {
	// ID is this broker's id.
	ID int32
	// Dir holds the Raft log and stable store (raft.db) and snapshots.
	Dir string
	// RaftAddr is the address to listen on for Raft, host:port.
	RaftAddr string
	// Listener, when set, is used instead of listening on RaftAddr (tests
	// bind port 0 before they know every address). The Node closes it.
	Listener net.Listener
	// TLS, when set, is TLS on the Raft transport: the listener accepts
	// only handshaken connections and the dials to other nodes verify
	// them (mutual TLS when the server side requires client
	// certificates). Default plaintext.
	TLS *auth.Transport
	// AdvertiseAddr is the Raft address other nodes dial; default the
	// listener's address.
	AdvertiseAddr string
	// Voters is the bootstrap voter set. Empty: this node is a one-voter
	// cluster. A node not in the list is a non-voter and waits to be added
	// (Join).
	Voters []Server
	// Forwarder carries writes to the leader when this node does not lead.
	// Nil: writes on a non-leader fail with ErrNotLeader.
	Forwarder Forwarder
	// Logger receives Raft's and the node's logs; default a no-op logger.
	// It names this broker (the broker's logger carries the field
	// `broker`): the node logs other brokers under their role (`leader`,
	// `peer`, `replica`), never this one's id again.
	Logger *zap.Logger

	HeartbeatTimeout   time.Duration // default 1s
	ElectionTimeout    time.Duration // default 1s
	LeaderLeaseTimeout time.Duration // default 500ms; at most HeartbeatTimeout
	CommitTimeout      time.Duration // default 50ms
	SnapshotInterval   time.Duration // how often to check for a snapshot; default 2m
	SnapshotThreshold  uint64        // log entries between snapshots; default 8192
	TrailingLogs       uint64        // log entries kept after a snapshot; default 10240
	// ApplyTimeout bounds a write when its context has no deadline;
	// default 10s.
	ApplyTimeout time.Duration
	// OnCommit, if set, is called with how long each command this node
	// proposed took from Raft's Apply to its commit and application
	// (commands forwarded to another leader are timed there). It runs on
	// the writer's goroutine and must be quick.
	OnCommit func(d time.Duration)

	// MaxCommandVersion is the newest command version (and snapshot
	// layout) this node decodes and writes, from MinCommandLevel to
	// CommandVersion; default CommandVersion. Lower only in tests: the
	// node then behaves as a build whose newest version it is (features.go).
	MaxCommandVersion uint8

	// StoreProbeInterval is how often a node whose Raft store failed
	// tries to write to it again (StoreErr); default 2s.
	StoreProbeInterval time.Duration

	// wrapStore, in tests, wraps raft.db as Raft sees it (to inject
	// failures).
	wrapStore func(raftStore) raftStore
}

func (c *NodeConfig) applyDefaults() {
	def := raft.DefaultConfig()
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.HeartbeatTimeout, def.HeartbeatTimeout},
		{&c.ElectionTimeout, def.ElectionTimeout},
		{&c.LeaderLeaseTimeout, def.LeaderLeaseTimeout},
		{&c.CommitTimeout, def.CommitTimeout},
		{&c.SnapshotInterval, def.SnapshotInterval},
		{&c.ApplyTimeout, 10 * time.Second},
		{&c.StoreProbeInterval, 2 * time.Second},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = def.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = def.TrailingLogs
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.MaxCommandVersion == 0 {
		c.MaxCommandVersion = CommandVersion
	}
}

// Validate names the first bad field.
func (c *NodeConfig) Validate() error {
	switch {
	case c.ID < 0:
		return fmt.Errorf("controller: ID %d: want >= 0", c.ID)
	case c.Dir == "":
		return errors.New("controller: Dir: empty")
	case c.Listener == nil && c.RaftAddr == "":
		return errors.New("controller: RaftAddr: empty")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("controller: LeaderLeaseTimeout %v above HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.MaxCommandVersion != 0 && (c.MaxCommandVersion < MinCommandLevel || c.MaxCommandVersion > CommandVersion):
		return fmt.Errorf("controller: MaxCommandVersion %d: want %d to %d", c.MaxCommandVersion, MinCommandLevel, CommandVersion)
	}
	return nil
}

// Node is one member of the Raft group that replicates the cluster
// metadata: a voter or a non-voter. Every node applies the whole log to its
// FSM and serves Metadata from it; writes go to the leader, through the
// Forwarder when this node does not lead.
//
// All methods are safe for concurrent use. Close stops everything the Node
// started.
type Node struct {
	cfg    NodeConfig
	self   Server
	log    *zap.Logger
	fsm    *FSM
	raft   *raft.Raft
	store  *raftboltdb.BoltStore
	health *storeHealth      // of store and the snapshots (StoreErr)
	trans  *contactTransport // Raft's, noting peers' answers (HeardFrom)
	// versions, once Membership started, gives the supported command
	// versions gossip carries (features.go).
	versions atomic.Pointer[func() map[int32]VersionRange]

	observer *raft.Observer
	obsCh    chan raft.Observation

	leaderMu      sync.Mutex
	leaderChanged chan struct{} // closed and replaced when the leader changes

	mu     sync.Mutex // guards closed and wg.Add
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
	// watchStore stops before Raft shuts down: it may wait on a
	// leadership transfer, whose future Raft leaves unanswered when it
	// shuts down with the request still queued.
	storeStop chan struct{}
	storeDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// StartNode opens the Raft state in cfg.Dir, starts Raft and, on first
// start of a voter, bootstraps the configured voter set.
func StartNode(cfg NodeConfig) (*Node, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, fsm: newFSM(cfg.MaxCommandVersion), health: newStoreHealth(), leaderChanged: make(chan struct{}), stop: make(chan struct{}),
		storeStop: make(chan struct{}), storeDone: make(chan struct{})}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.RaftAddr); err != nil {
			return nil, fmt.Errorf("controller: listen: %w", err)
		}
	}
	ok := false
	defer func() {
		if !ok {
			ln.Close()
		}
	}()
	advertise := ln.Addr()
	if cfg.AdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("controller: AdvertiseAddr: %w", err)
		}
		advertise = a
	} else if name, err := voterName(cfg.Voters, cfg.ID, ln.Addr()); err != nil {
		return nil, err
	} else if name != "" {
		advertise = nameAddr(name)
	}
	n.self = Server{ID: cfg.ID, Addr: advertise.String()}
	bootstrap, err := n.bootstrapServers()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	n.store, err = raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second}, // another process holds it
	})
	if err != nil {
		return nil, fmt.Errorf("controller: open raft.db: %w", err)
	}
	defer func() {
		if !ok {
			n.store.Close()
		}
	}()
	hlog := newZapHclog(cfg.Logger.Named("raft"), "raft")
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		return nil, fmt.Errorf("controller: snapshots: %w", err)
	}
	snaps := checkedSnapshots{SnapshotStore: fileSnaps, h: n.health}
	var inner raftStore = n.store
	if cfg.wrapStore != nil {
		inner = cfg.wrapStore(inner)
	}
	store := checkedStore{raftStore: inner, h: n.health, log: n.log, retry: cfg.StoreProbeInterval, closing: n.storeStop}
	trans := newContactTransport(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  newStreamLayer(cfg.TLS.Listen(ln, "raft", cfg.Logger), advertise, cfg.TLS),
		MaxPool: 3,
		Timeout: 5 * time.Second,
		Logger:  hlog,
	}), n.health.get)
	n.trans = trans
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.Itoa(int(cfg.ID)))
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	// Commands proposed back to back (a broker's ISR changes of a pass,
	// AlterPartitions) go out in one log write and one AppendEntries, and
	// reach the FSM as one batch (FSM.ApplyBatch), up to this many: 64 by
	// default, which split a pass of 1,000 changes in 16.
	rc.MaxAppendEntries = maxAppendEntries
	rc.Logger = hlog
	// A leader demoted or removed (remove.go) steps down and its node
	// keeps running: shut down, its broker would be left without a
	// controller node, and Close would not free its Raft port.
	rc.ShutdownOnRemove = false
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("controller: %w", err)
	}
	hasState, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("controller: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, n.fsm, logs, store, snaps, trans)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("controller: start raft: %w", err)
	}
	ok = true
	if !hasState && len(bootstrap) > 0 {
		err := n.raft.BootstrapCluster(raft.Configuration{Servers: bootstrap}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.Close()
			return nil, fmt.Errorf("controller: bootstrap: %w", err)
		}
	}
	n.obsCh = make(chan raft.Observation, 1)
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(n.observer)
	n.wg.Add(1)
	go n.watchLeader()
	go n.watchStore()
	n.log.Info("controller node started", zap.String("raft_addr", n.self.Addr),
		zap.Bool("bootstrap", !hasState && len(bootstrap) > 0), zap.Int("voters", len(cfg.Voters)))
	return n, nil
}

// bootstrapServers returns the configuration to bootstrap with: the voter
// list when this node is in it, this node alone when there is no list,
// nothing for a non-voter.
func (n *Node) bootstrapServers() ([]raft.Server, error) {
	if len(n.cfg.Voters) == 0 {
		return []raft.Server{raftServer(Server{ID: n.self.ID, Addr: n.self.Addr, Voter: true})}, nil
	}
	var servers []raft.Server
	member := false
	for _, v := range n.cfg.Voters {
		if v.ID == n.self.ID {
			if v.Addr != n.self.Addr {
				return nil, fmt.Errorf("controller: voters name broker %d at %s, but this node's Raft address is %s", v.ID, v.Addr, n.self.Addr)
			}
			member = true
		}
		servers = append(servers, raftServer(Server{ID: v.ID, Addr: v.Addr, Voter: true}))
	}
	if !member {
		return nil, nil
	}
	return servers, nil
}

// voterName is the address voters give this node when it is a host name
// that resolves to the address the node listens on (or, for a listener on
// every address, to one of this host's): the node then advertises the
// name, so that the others dial the name and find the node after its IP
// address changed (a container or a pod restarted). "" when voters name
// this node by an IP address, or not at all.
func voterName(voters []Server, id int32, bound net.Addr) (string, error) {
	la, ok := bound.(*net.TCPAddr)
	if !ok {
		return "", nil
	}
	for _, v := range voters {
		if v.ID != id {
			continue
		}
		host, port, err := net.SplitHostPort(v.Addr)
		if err != nil || net.ParseIP(host) != nil || port != strconv.Itoa(la.Port) {
			return "", nil // an IP address, or another port: compared as they are
		}
		ips, err := lookupOwnName(host)
		if err != nil {
			return "", fmt.Errorf("controller: voters name broker %d at %s: %w", id, v.Addr, err)
		}
		local := []net.IP{la.IP}
		if la.IP.IsUnspecified() {
			addrs, err := net.InterfaceAddrs()
			if err != nil {
				return "", fmt.Errorf("controller: this host's addresses: %w", err)
			}
			local = local[:0]
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					local = append(local, ipn.IP)
				}
			}
		}
		for _, ip := range ips {
			for _, l := range local {
				if ip.IP.Equal(l) {
					return v.Addr, nil
				}
			}
		}
		return "", nil
	}
	return "", nil
}

// ownNameWait bounds how long lookupOwnName waits for this node's name to
// resolve: a pod's DNS name is published shortly after the pod has an
// address, so a broker starting at once may look it up too early.
const ownNameWait = 30 * time.Second

// lookupOwnName resolves host, retrying while it is not found (yet) for
// up to ownNameWait.
func lookupOwnName(host string) ([]net.IPAddr, error) {
	deadline := time.Now().Add(ownNameWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		cancel()
		var dnsErr *net.DNSError
		if err == nil || !errors.As(err, &dnsErr) || !(dnsErr.IsNotFound || dnsErr.IsTemporary) || time.Now().After(deadline) {
			return ips, err
		}
		time.Sleep(time.Second)
	}
}

// nameAddr is a Raft address that is a host name, resolved at each dial.
type nameAddr string

func (a nameAddr) Network() string { return "tcp" }
func (a nameAddr) String() string  { return string(a) }

func raftServer(s Server) raft.Server {
	sf := raft.Nonvoter
	if s.Voter {
		sf = raft.Voter
	}
	return raft.Server{Suffrage: sf, ID: raft.ServerID(strconv.Itoa(int(s.ID))), Address: raft.ServerAddress(s.Addr)}
}

func parseServerID(id raft.ServerID) int32 {
	v, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return -1
	}
	return int32(v)
}

// watchLeader keeps the published ControllerID and leaderChanged current.
// Observations may be dropped when the channel is full; each wake-up reads
// Raft's current leader, so a dropped one loses nothing.
func (n *Node) watchLeader() {
	defer n.wg.Done()
	last := int32(-2)
	for {
		_, id := n.raft.LeaderWithID()
		leader := int32(-1)
		if id != "" {
			leader = parseServerID(id)
		}
		if leader != last {
			if leader >= 0 {
				n.log.Info("controller leader", zap.Int32("leader", leader))
			}
			last = leader
			n.fsm.setController(leader)
			n.leaderMu.Lock()
			wake(&n.leaderChanged)
			n.leaderMu.Unlock()
		}
		select {
		case <-n.obsCh:
		case <-n.stop:
			return
		}
	}
}

func (n *Node) leaderChange() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderChanged
}

// ID returns this node's broker id.
func (n *Node) ID() int32 { return n.self.ID }

// RaftAddr returns the Raft address other nodes dial.
func (n *Node) RaftAddr() string { return n.self.Addr }

// Metadata returns the current snapshot of the local FSM. Do not modify it.
func (n *Node) Metadata() *Metadata { return n.fsm.Metadata() }

// Changed returns a channel closed at the next change of the metadata,
// including a change of controller leader.
func (n *Node) Changed() <-chan struct{} { return n.fsm.Changed() }

// WaitApplied returns once the local FSM has applied the log up to index.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	return n.fsm.WaitApplied(ctx, index)
}

// AppliedIndex is the Raft log index of the last command applied to
// this node's metadata.
func (n *Node) AppliedIndex() uint64 { return n.fsm.AppliedIndex() }

// Term returns this node's current Raft term: the election count that
// the leader it knows was chosen in, or a later one while an election runs.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader as this node knows it; ok is false when it
// knows none.
func (n *Node) Leader() (s Server, ok bool) {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return Server{}, false
	}
	return Server{ID: parseServerID(id), Addr: string(addr), Voter: true}, true
}

// Servers returns the Raft configuration: every voter and non-voter.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("controller: configuration: %w", err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: parseServerID(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// Snapshot takes a Raft snapshot now and compacts the log.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("controller: snapshot: %w", err)
	}
	return nil
}

// raftShutdownTimeout bounds how long Close waits for Raft to shut down.
const raftShutdownTimeout = 30 * time.Second

// Close shuts Raft down and waits for every goroutine the node started
// (Raft's own for at most raftShutdownTimeout). Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		if n.observer != nil {
			n.raft.DeregisterObserver(n.observer)
		}
		close(n.storeStop)
		if n.observer != nil { // started: StartNode got this far
			<-n.storeDone
		}
		// Shutdown resolves every pending future, so the goroutines
		// waiting on them (see wait) end. It is bounded: hashicorp/raft's
		// Shutdown can wait forever on a leadership transfer whose target
		// never answers (its transfer goroutine blocks on a channel the
		// stopped leader loop no longer reads: hashicorp/raft issue 696,
		// unfixed in the v1.7.3 we use), and a broker that cannot stop is
		// worse than one that stops with Raft's goroutines left.
		shutdown := make(chan error, 1)
		go func() { shutdown <- n.raft.Shutdown().Error() }()
		raftDown := true
		select {
		case err := <-shutdown:
			if err != nil {
				n.closeErr = fmt.Errorf("controller: shutdown raft: %w", err)
			}
		case <-time.After(raftShutdownTimeout):
			raftDown = false
			n.closeErr = fmt.Errorf("controller: raft did not shut down within %v (a leadership transfer in flight?); raft.db left open", raftShutdownTimeout)
			n.log.Error("raft did not shut down; stopping without it", zap.Duration("waited", raftShutdownTimeout))
		}
		close(n.stop)
		if raftDown {
			n.wg.Wait()
		} else {
			// Goroutines waiting on Raft's futures (wait) may never end.
			waited := make(chan struct{})
			go func() { n.wg.Wait(); close(waited) }()
			select {
			case <-waited:
			case <-time.After(5 * time.Second):
			}
		}
		if raftDown {
			// Raft's goroutines may still use the store when it did not
			// shut down: only a stopped Raft's store is closed.
			if err := n.store.Close(); err != nil && n.closeErr == nil {
				n.closeErr = fmt.Errorf("controller: close raft.db: %w", err)
			}
		}
		n.log.Info("controller node stopped")
	})
	return n.closeErr
}
