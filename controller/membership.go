package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/serf/serf"
	"go.uber.org/zap"
)

// Membership is a broker's serf agent: gossip membership and failure
// detection on the broker's gossip address, its tags carrying the broker's
// id, client address, Raft address and rack.
//
// Every broker runs one; the one whose Node leads the Raft group acts on
// what serf reports. A registered member that joins (or whose tags
// change) is registered again with a new broker epoch unless it is alive
// with the same tags, and only when its epoch tag names the epoch
// registered for it (the same process, back after a flap); a member never
// registered, or restarted and not registered yet, is left to register
// itself, as every broker does when it starts. Either is added to Raft as
// a non-voter when it is not a member yet. A member that fails or leaves is fenced with the epoch
// currently registered for it, so news about an earlier incarnation of a
// restarted broker cannot fence the current one (R10). A member serf
// reports failed is not fenced while the leader's Raft heartbeats to its
// node are answered (Node.HeardFrom): its gossip alone is cut or slow, the
// broker runs, and moving its leaderships would only fail produces; the
// leader checks again every heartbeat timeout until serf sees it alive or
// Raft stops hearing from it. A member that leaves is fenced at once.
// The leader never
// registers or fences its own broker: a broker registers itself, and its
// own shutdown fences it. On becoming leader, and every ReconcileInterval
// while leading, the leader reconciles serf's whole member list, so no
// event is lost across a leader change or a failed proposal.
//
// Serf's events are read by one goroutine into a queue and handled in
// order by another, so a slow Raft write never blocks serf's gossip. Close
// stops both and shuts serf down.
type Membership struct {
	cfg  MembershipConfig
	log  *zap.Logger
	node *Node
	serf *serf.Serf

	events chan serf.Event // serf writes here; pump reads

	jmu      sync.Mutex // guards stopped against JoinInBackground's wg.Add
	stopped  bool
	qmu      sync.Mutex
	queue    []serf.MemberEvent
	overflow bool          // events were dropped: reconcile the whole list
	queued   chan struct{} // capacity 1: a wake-up for run

	// Warned about already, so each refusal is logged once; run only.
	refused      map[int32]string       // id → member client address
	refusedRaft  map[int32]string       // id → member Raft address
	refusedLevel map[int32]VersionRange // id → member's command versions
	// spared are the members serf reports failed that Raft still hears
	// from, since when; reconcile rebuilds it, run rechecks while any.
	spared map[int32]time.Time
	passes atomic.Uint64 // whole-list reconciles done, for tests

	ctx    context.Context // cancelled by Close: ends in-flight writes
	cancel context.CancelFunc
	stop   chan struct{} // closed by Close: run and the joiner return
	pumpCh chan struct{} // closed by Close after serf is shut down
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// maxQueued bounds the event queue. Beyond it events are dropped and the
// next pass reconciles serf's whole member list instead.
const maxQueued = 4096

// StartMembership starts serf on cfg.BindAddr, starts handling its events
// and, in the background, joins cfg.Join until one seed answers.
func StartMembership(cfg MembershipConfig) (*Membership, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sc, err := cfg.serfConfig()
	if err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:          cfg,
		log:          cfg.Logger,
		node:         cfg.Node,
		events:       make(chan serf.Event, 256),
		queued:       make(chan struct{}, 1),
		refused:      map[int32]string{},
		refusedRaft:  map[int32]string{},
		refusedLevel: map[int32]VersionRange{},
		spared:       map[int32]time.Time{},
		stop:         make(chan struct{}),
		pumpCh:       make(chan struct{}),
	}
	sc.EventCh = m.events
	m.serf, err = serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("membership: start serf on %s: %w", cfg.BindAddr, err)
	}
	m.node.setVersionSource(m.commandVersions)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(2)
	go m.pump()
	go m.run()
	if len(cfg.Join) > 0 {
		m.wg.Add(1)
		go m.joinSeeds(cfg.Join)
	}
	m.log.Info("membership started", zap.String("gossip_addr", m.Addr()),
		zap.Strings("join", cfg.Join))
	return m, nil
}

// SetEpoch advertises the broker epoch this broker registered under (or
// took since), so the controller leader can tell this running process
// from a restarted one (ensureRegistered). The broker calls it after each
// registration and whenever its epoch changes.
func (m *Membership) SetEpoch(epoch int64) error {
	tags := maps.Clone(m.serf.LocalMember().Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	v := strconv.FormatInt(epoch, 10)
	if tags[tagEpoch] == v {
		return nil
	}
	tags[tagEpoch] = v
	if err := m.serf.SetTags(tags); err != nil {
		return fmt.Errorf("membership: advertise broker epoch %d: %w", epoch, err)
	}
	return nil
}

// Addr returns the gossip address serf listens on (with the port it picked
// when BindAddr's port is 0).
func (m *Membership) Addr() string {
	n := m.serf.Memberlist().LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Member is one serf member as this broker sees it.
type Member struct {
	ID         int32  `json:"id"`
	Addr       string `json:"addr"`
	RaftAddr   string `json:"raft_addr,omitempty"`
	Rack       string `json:"rack,omitempty"`
	GossipAddr string `json:"gossip_addr"`
	// KafkaAddr is the address of its Kafka listener, "" when it has none.
	KafkaAddr string `json:"kafka_addr,omitempty"`
	Status    string `json:"status"` // serf's: alive, leaving, left, failed
	// CommandVersions is the range of command versions it supports; nil
	// for a build before the gate (features.go).
	CommandVersions *VersionRange `json:"command_versions,omitempty"`
	// Epoch is the broker epoch the running process registered under,
	// 0 until it has registered (or for a build before the tag).
	Epoch int64 `json:"broker_epoch,omitempty"`
}

// Members returns serf's member list, including this broker. Members
// whose tags do not name a broker are left out.
func (m *Membership) Members() []Member {
	var out []Member
	for _, sm := range m.serf.Members() {
		if mb, err := parseMember(sm); err == nil {
			out = append(out, mb)
		}
	}
	return out
}

// commandVersions is the supported command versions of the members that
// advertise them.
func (m *Membership) commandVersions() map[int32]VersionRange {
	out := map[int32]VersionRange{}
	for _, mb := range m.Members() {
		if mb.CommandVersions != nil {
			out[mb.ID] = *mb.CommandVersions
		}
	}
	return out
}

// Leave tells the cluster this broker is leaving and waits for the news to
// spread (serf's broadcast timeout at most), so the leader fences it at
// once rather than after failure detection. Call Close afterwards.
func (m *Membership) Leave() error {
	if err := m.serf.Leave(); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// Close stops handling events and shuts serf down without leaving (the
// others detect a failure; call Leave first to leave gracefully).
// Idempotent.
//
// Serf and memberlist offer no way to wait for their own background
// goroutines: once Shutdown has returned they only wait on its shutdown
// channel, and exit within moments. Their event forwarder (serf's
// serfQueries.stream) sends to our channel without watching shutdown, so
// that channel is buffered and drained once more after Shutdown: it never
// blocks there.
func (m *Membership) Close() error {
	m.closeOnce.Do(func() {
		m.jmu.Lock()
		m.stopped = true
		m.jmu.Unlock()
		m.cancel()
		close(m.stop)
		if err := m.serf.Shutdown(); err != nil {
			m.closeErr = fmt.Errorf("membership: shutdown serf: %w", err)
		}
		close(m.pumpCh)
		m.wg.Wait()
		m.log.Info("membership stopped")
	})
	return m.closeErr
}

// pump moves serf's member events to the queue without ever blocking on
// their handling.
func (m *Membership) pump() {
	defer m.wg.Done()
	for {
		select {
		case e := <-m.events:
			m.enqueue(e)
		case <-m.pumpCh:
			for {
				select {
				case <-m.events:
				default:
					return
				}
			}
		}
	}
}

func (m *Membership) enqueue(e serf.Event) {
	me, ok := e.(serf.MemberEvent)
	if !ok {
		return // user events and queries: not used
	}
	m.qmu.Lock()
	if len(m.queue) < maxQueued {
		m.queue = append(m.queue, me)
	} else {
		m.overflow = true
	}
	m.qmu.Unlock()
	select {
	case m.queued <- struct{}{}:
	default:
	}
}

// takeQueue returns the queued events and whether any were dropped, and
// empties the queue.
func (m *Membership) takeQueue() ([]serf.MemberEvent, bool) {
	m.qmu.Lock()
	defer m.qmu.Unlock()
	q, over := m.queue, m.overflow
	m.queue, m.overflow = nil, false
	return q, over
}

// run handles events while this node leads, and reconciles the whole
// member list when it becomes leader and every ReconcileInterval.
func (m *Membership) run() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.ReconcileInterval)
	defer tick.Stop()
	wasLeader := false // and has reconciled since it became leader
	for {
		changed := m.node.Changed()
		leader := m.node.IsLeader()
		var retry <-chan time.Time
		switch {
		case !leader:
			// The next leader reconciles what these events told.
			m.takeQueue()
		case !wasLeader:
			// Events queued so far are older than the member list read
			// now: drop them, or a stale "failed" could fence a broker
			// that has come back since.
			m.takeQueue()
			m.log.Info("membership: controller leader reconciles members")
			if !m.reconcile(true) {
				// Take over again shortly (or on the next wake-up).
				leader = false
				retry = time.After(m.cfg.WriteTimeout / 10)
			}
		default:
			q, over := m.takeQueue()
			if over {
				m.reconcile(false)
			} else {
				for _, e := range q {
					m.handleEvent(e)
				}
			}
		}
		wasLeader = leader
		var recheck <-chan time.Time
		if leader && len(m.spared) > 0 {
			recheck = time.After(m.node.cfg.HeartbeatTimeout)
		}
		select {
		case <-m.stop:
			return
		case <-changed:
		case <-m.queued:
		case <-retry:
		case <-recheck:
			if m.node.IsLeader() {
				m.reconcile(false)
			}
		case <-tick.C:
			if leader && m.node.IsLeader() {
				m.reconcile(false)
			}
		}
	}
}

// handleEvent registers the brokers a join or update names and fences
// those a failure or a leave names.
func (m *Membership) handleEvent(e serf.MemberEvent) {
	for _, sm := range e.Members {
		mb, err := parseMember(sm)
		if err != nil {
			m.log.Debug("membership: not a broker", zap.String("serf_member", sm.Name), zap.Error(err))
			continue
		}
		m.log.Debug("membership event", zap.Stringer("event", e.Type), zap.Int32("peer", mb.ID), zap.String("addr", mb.Addr))
		switch e.Type {
		case serf.EventMemberJoin, serf.EventMemberUpdate:
			m.ensureRegistered(mb)
		case serf.EventMemberFailed, serf.EventMemberLeave:
			m.fence(mb)
		}
	}
}

// reconcile makes the metadata agree with serf's member list. barrier
// first waits until this leader's FSM holds every committed command, as a
// new leader's may lag the log it committed; false means that failed and
// nothing was done.
func (m *Membership) reconcile(barrier bool) bool {
	if barrier {
		ctx, cancel := m.writeContext()
		err := m.node.wait(ctx, m.node.raft.Barrier(m.cfg.WriteTimeout))
		cancel()
		if err != nil {
			m.log.Debug("membership: barrier failed; reconcile later", zap.Error(err))
			return false
		}
	}
	spared := m.spared
	m.spared = make(map[int32]time.Time, len(spared))
	for _, sm := range m.serf.Members() {
		mb, err := parseMember(sm)
		if err != nil {
			continue
		}
		if since, ok := spared[mb.ID]; ok && sm.Status == serf.StatusFailed {
			m.spared[mb.ID] = since // fence decides again; logged once
		}
		switch sm.Status {
		case serf.StatusAlive:
			m.ensureRegistered(mb)
		case serf.StatusFailed, serf.StatusLeft:
			m.fence(mb)
		}
	}
	m.passes.Add(1)
	return true
}

func (m *Membership) writeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.ctx, m.cfg.WriteTimeout)
}

// ensureRegistered registers again an alive member that is registered
// and runs under its registered epoch (its epoch tag), unless it is alive
// with the same tags, and adds it to Raft as a non-voter unless it is a
// member. A member never registered, or not running under its registered
// epoch (restarted), is left to register itself. A different broker registered and alive under its id
// is never replaced.
func (m *Membership) ensureRegistered(mb Member) {
	if mb.ID == m.cfg.ID {
		// A broker registers itself, with what it knows of its data
		// (PreviousEpoch), before it gossips. A restarted voter may lead
		// the Raft group before it has registered: registering it from
		// here would vouch for data it may have lost (R11).
		return
	}
	md := m.node.Metadata()
	b, ok := md.Brokers[mb.ID]
	if r := mb.CommandVersions; r != nil && md.CommandLevel != 0 && !r.Includes(md.CommandLevel) {
		// A build that cannot follow the log at the finalized level.
		if m.refusedLevel[mb.ID] != *r {
			m.refusedLevel[mb.ID] = *r
			m.log.Warn("membership: broker does not support the finalized command version; refused (upgrade its build)",
				zap.Int32("peer", mb.ID), zap.Stringer("supported", r), zap.Uint8("finalized", md.CommandLevel))
		}
		return
	}
	delete(m.refusedLevel, mb.ID)
	if _, removed := md.Removed[mb.ID]; removed && !ok {
		// An operator removed it: only the broker itself, on a new data
		// directory, registers that id again (remove.go).
		return
	}
	if !ok {
		// Never registered: the broker registers itself, with what it
		// knows of its data, as it starts. Its serf listens before that
		// (the registration names its gossip address), and a peer that
		// has it as a seed gossips it here first: registering it now
		// would vouch for data unknown, and its own registration a
		// moment later would take a second epoch, fence the first and
		// move the leaderships given to it, on every new cluster. Its
		// Raft membership is seen to (a non-voter asks for it itself
		// too), so it can register.
		m.ensureRaftMember(mb)
		return
	}
	if b.State == BrokerAlive && b.Addr != mb.Addr {
		if m.refused[mb.ID] != mb.Addr {
			m.refused[mb.ID] = mb.Addr
			m.log.Warn("membership: broker id already registered and alive at another address; refused",
				zap.Int32("peer", mb.ID), zap.String("registered_addr", b.Addr), zap.String("peer_addr", mb.Addr),
				zap.Int64("broker_epoch", b.Epoch))
		}
		return
	}
	delete(m.refused, mb.ID)
	if b.State != BrokerAlive || b.RaftAddr != mb.RaftAddr || b.Rack != mb.Rack {
		if mb.Epoch != b.Epoch {
			// Not the process registered under b.Epoch: a restarted
			// broker whose serf listens before it registers (its
			// registration names its gossip address), which a peer
			// reconnecting to its address found first. Registering it
			// from here as still running would vouch for data it may
			// have lost in the crash (R11: it could lead again what it
			// was the last in-sync replica of); it registers itself in
			// a moment, with what it found in its logs.
			m.log.Debug("membership: member not running under its registered epoch; left to register itself",
				zap.Int32("peer", mb.ID), zap.Int64("broker_epoch", b.Epoch), zap.Int64("gossip_epoch", mb.Epoch))
			m.ensureRaftMember(mb)
			return
		}
		// The member is the process registered under b.Epoch, still
		// running: its data did not go away (a flap, or new tags), so
		// its data is as good as under its current epoch.
		ctx, cancel := m.writeContext()
		epoch, err := m.node.RegisterBroker(ctx, Broker{ID: mb.ID, Addr: mb.Addr, Rack: mb.Rack, RaftAddr: mb.RaftAddr, GossipAddr: mb.GossipAddr, DirID: b.DirID}, b.Epoch)
		cancel()
		if err != nil {
			m.log.Debug("membership: register failed; retry at the next reconcile", zap.Int32("peer", mb.ID), zap.Error(err))
			return
		}
		m.log.Info("broker registered", zap.Int32("peer", mb.ID), zap.String("addr", mb.Addr),
			zap.String("raft_addr", mb.RaftAddr), zap.String("rack", mb.Rack), zap.Int64("broker_epoch", epoch))
	}
	m.ensureRaftMember(mb)
}

// ensureRaftMember adds a broker with a Raft address to the Raft group as
// a non-voter, or updates a non-voter's address. Voters are configured,
// never moved by gossip.
func (m *Membership) ensureRaftMember(mb Member) {
	if mb.RaftAddr == "" {
		return
	}
	servers, err := m.node.Servers()
	if err != nil {
		m.log.Debug("membership: read Raft configuration; retry at the next reconcile", zap.Error(err))
		return
	}
	for _, s := range servers {
		if s.ID != mb.ID {
			continue
		}
		if s.Addr == mb.RaftAddr {
			delete(m.refusedRaft, mb.ID)
			return
		}
		if s.Voter {
			if m.refusedRaft[mb.ID] != mb.RaftAddr {
				m.refusedRaft[mb.ID] = mb.RaftAddr
				m.log.Warn("membership: voter gossips another Raft address; configuration kept",
					zap.Int32("peer", mb.ID), zap.String("raft_addr", s.Addr), zap.String("peer_raft_addr", mb.RaftAddr))
			}
			return
		}
	}
	ctx, cancel := m.writeContext()
	err = m.node.AddNonvoter(ctx, mb.ID, mb.RaftAddr)
	cancel()
	if err != nil {
		m.log.Debug("membership: add non-voter failed; retry at the next reconcile", zap.Int32("peer", mb.ID), zap.Error(err))
	}
}

// fence marks a failed or departed member's registration offline, with
// the epoch registered now. A registration at another address belongs to
// another process (see ensureRegistered) and is left alone.
func (m *Membership) fence(mb Member) {
	if mb.ID == m.cfg.ID {
		return // a broker's own shutdown fences it (controlled shutdown)
	}
	b, ok := m.node.Metadata().Brokers[mb.ID]
	if !ok || b.State != BrokerAlive || b.Addr != mb.Addr {
		return
	}
	if m.spare(mb) {
		return
	}
	ctx, cancel := m.writeContext()
	_, err := m.node.Propose(ctx, FenceBroker{ID: mb.ID, Epoch: b.Epoch})
	cancel()
	switch {
	case errors.Is(err, ErrStaleBrokerEpoch):
		m.log.Debug("membership: broker re-registered before the fence", zap.Int32("peer", mb.ID), zap.Int64("broker_epoch", b.Epoch))
	case err != nil:
		m.log.Debug("membership: fence failed; retry at the next reconcile", zap.Int32("peer", mb.ID), zap.Error(err))
	default:
		m.log.Info("broker fenced", zap.Int32("peer", mb.ID), zap.String("addr", mb.Addr), zap.Int64("broker_epoch", b.Epoch),
			zap.String("status", mb.Status))
	}
}

// spare reports whether a member serf reports failed is left alone,
// because this leader's Raft heartbeats to its node are answered: a gossip
// false alarm (issue 13). It notes the member in spared, so run checks
// again, and logs the first time. A member that left is never spared.
func (m *Membership) spare(mb Member) bool {
	if mb.Status != serf.StatusFailed.String() || !m.node.HeardFrom(mb.ID) {
		if since, ok := m.spared[mb.ID]; ok {
			delete(m.spared, mb.ID)
			m.log.Info("membership: spared broker no longer answers Raft either; fencing", zap.Int32("peer", mb.ID),
				zap.Duration("spared_for", time.Since(since)))
		}
		return false
	}
	if _, ok := m.spared[mb.ID]; !ok {
		m.spared[mb.ID] = time.Now()
		m.log.Warn("membership: serf reports broker failed but it answers Raft heartbeats; not fenced (gossip cut or slow)",
			zap.Int32("peer", mb.ID), zap.String("gossip_addr", mb.GossipAddr))
	}
	return true
}

// JoinInBackground joins seeds in the background, retrying every
// RetryJoinInterval until one answers or the membership closes.
func (m *Membership) JoinInBackground(seeds []string) {
	if len(seeds) == 0 {
		return
	}
	m.jmu.Lock()
	defer m.jmu.Unlock()
	if m.stopped {
		return
	}
	m.wg.Add(1)
	go m.joinSeeds(seeds)
}

// joinSeeds joins the seeds, retrying every RetryJoinInterval until one
// answers or the membership closes: brokers started together may come up
// in any order.
func (m *Membership) joinSeeds(seeds []string) {
	defer m.wg.Done()
	for {
		n, err := m.serf.Join(seeds, false)
		if n > 0 {
			m.log.Info("membership joined", zap.Int("seeds_answered", n))
			return
		}
		m.log.Debug("membership: no seed answered; retrying", zap.Strings("join", seeds), zap.Error(err))
		t := time.NewTimer(m.cfg.RetryJoinInterval)
		select {
		case <-m.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Tag keys carried by every broker's serf member.
const (
	tagID       = "id"
	tagAddr     = "addr"
	tagRaftAddr = "raft_addr"
	tagRack     = "rack"
	// tagKafkaAddr is the Kafka listener's advertised address: gossip
	// only, not in the Raft metadata (kafka/ reads it for Metadata).
	tagKafkaAddr = "kafka_addr"
	// tagCommandVersions is the range of command versions the broker
	// supports, "min-max" (features.go); absent from builds before the
	// gate.
	tagCommandVersions = "cmd_versions"
	// tagEpoch is the broker epoch this process registered under (and
	// took since), set once it has registered (Membership.SetEpoch);
	// absent before. It tells a registered broker still running (a
	// gossip flap: the leader may register it again on its behalf) from
	// one restarted that has not registered yet (left to register
	// itself, with what it knows of its data: R11).
	tagEpoch = "epoch"
)

// parseMember reads a broker from a serf member's tags. An error means the
// member is not a broker of this cluster: no id tag or not a broker id, a
// name other than the id, or no client address.
func parseMember(sm serf.Member) (Member, error) {
	idStr, ok := sm.Tags[tagID]
	if !ok {
		return Member{}, errors.New("no id tag")
	}
	id, err := strconv.ParseInt(idStr, 10, 32)
	if err != nil || id < 0 {
		return Member{}, fmt.Errorf("id tag %q: want a broker id", idStr)
	}
	if sm.Name != idStr {
		return Member{}, fmt.Errorf("name %q differs from id tag %q", sm.Name, idStr)
	}
	if sm.Tags[tagAddr] == "" {
		return Member{}, errors.New("no addr tag")
	}
	var epoch int64
	if t, ok := sm.Tags[tagEpoch]; ok {
		if epoch, err = strconv.ParseInt(t, 10, 64); err != nil || epoch < 1 {
			return Member{}, fmt.Errorf("epoch tag %q: want a broker epoch", t)
		}
	}
	var versions *VersionRange
	if t, ok := sm.Tags[tagCommandVersions]; ok {
		r, err := ParseVersionRange(t)
		if err != nil {
			return Member{}, err
		}
		versions = &r
	}
	return Member{
		CommandVersions: versions,
		Epoch:           epoch,
		ID:              int32(id),
		Addr:            sm.Tags[tagAddr],
		RaftAddr:        sm.Tags[tagRaftAddr],
		Rack:            sm.Tags[tagRack],
		KafkaAddr:       sm.Tags[tagKafkaAddr],
		GossipAddr:      net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port))),
		Status:          sm.Status.String(),
	}, nil
}

// ParseSeeds parses a seed list "host:port[,host:port...]".
func ParseSeeds(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if _, _, err := net.SplitHostPort(part); err != nil {
			return nil, fmt.Errorf("join: %q: %w", part, err)
		}
		out = append(out, part)
	}
	return out, nil
}
