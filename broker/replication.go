package broker

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/replica"
)

// role is what this broker does for a partition it holds.
type role uint8

const (
	roleNone     role = iota // not open, or no leader to follow
	roleLeader               // takes produce, serves consumers and followers
	roleFollower             // copies the leader through a fetcher
)

// replication is what the partition manager needs of the broker to
// replicate: where other brokers are, this broker's epoch, and the timings.
type replication struct {
	self        int32
	addr        func(id int32) (string, bool) // a live broker's client address
	brokerEpoch func() int64
	maxLag      time.Duration
	fetchWait   time.Duration
	clientID    string
	login       loginFunc // authenticates each connection to a leader
	logger      *zap.Logger
	// dial opens the fetchers' connections to leaders (TLS with
	// Config.TLS); nil: plain TCP.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu       sync.Mutex
	fetchers map[int32]*replica.Fetcher // by leader broker
	closed   bool
}

// assign makes the fetcher for leader copy p for the leadership of epoch.
func (r *replication) assign(leader int32, tp replica.TopicPartition, epoch int32, f replica.Followed) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	ft := r.fetchers[leader]
	if ft == nil {
		ft = replica.StartFetcher(replica.FetcherConfig{
			Leader: leader, Self: r.self, BrokerEpoch: r.brokerEpoch,
			Addr:     func() (string, bool) { return r.addr(leader) },
			ClientID: r.clientID, MaxWait: r.fetchWait, Logger: r.logger, Login: r.login,
			Timeout: fetchTimeout(r.maxLag), Dial: r.dial,
		})
		r.fetchers[leader] = ft
	}
	ft.Set(tp, epoch, f)
}

// fetchTimeout bounds a follower's dial and fetch (beyond the long poll):
// half the ISR lag limit, between 1 s and 5 s, so a connection that went
// silent is given up and dialled again well before the follower is
// dropped from the ISR for lagging.
func fetchTimeout(maxLag time.Duration) time.Duration {
	return min(max(maxLag/2, time.Second), 5*time.Second)
}

// unassign stops the fetcher for leader copying tp.
func (r *replication) unassign(leader int32, tp replica.TopicPartition) {
	if leader < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ft := r.fetchers[leader]; ft != nil {
		ft.Remove(tp)
	}
}

// close stops every fetcher.
func (r *replication) close() {
	r.mu.Lock()
	r.closed = true
	fs := r.fetchers
	r.fetchers = map[int32]*replica.Fetcher{}
	r.mu.Unlock()
	for _, f := range fs {
		f.Close()
	}
}

// logView gives the replica package the partition's current log: the log
// is replaced when a config change reopens it, and the leader state reads
// it without the partition's lock.
type logView struct{ p *partition }

func (v logView) l() *log.Log                                        { return v.p.cur.Load() }
func (v logView) StartOffset() int64                                 { return v.l().StartOffset() }
func (v logView) EndOffset() int64                                   { return v.l().EndOffset() }
func (v logView) SyncedOffset() int64                                { return v.l().SyncedOffset() }
func (v logView) LatestEpoch() int32                                 { return v.l().LatestEpoch() }
func (v logView) EndOffsetForEpoch(e int32) (int32, int64)           { return v.l().EndOffsetForEpoch(e) }
func (v logView) TruncateTo(offset int64) error                      { return v.l().TruncateTo(offset) }
func (v logView) ResetTo(offset int64) error                         { return v.l().ResetTo(offset) }
func (v logView) DeleteRecordsBefore(offset int64) error             { return v.l().DeleteRecordsBefore(offset) }
func (v logView) AppendReplica(b record.Batch) (log.Appended, error) { return v.l().AppendReplica(b) }

// applyRole makes p lead or follow as mp says. Call without p.mu.
func (m *partitions) applyRole(p *partition, t *controller.Topic, mp *controller.Partition, pc partitionConfig) {
	tp := replica.TopicPartition{Topic: p.topic, Partition: p.index}
	key := m.roleKey(t, mp, pc)
	p.mu.Lock()
	if p.state != stateOpen {
		p.unlock()
		return
	}
	p.settled = key
	oldISR := p.isr
	replicasChanged := !slices.Equal(p.replicas, mp.Replicas)
	addingChanged := !slices.Equal(p.adding, mp.Adding)
	p.replicas, p.isr, p.partEpoch = slices.Clone(mp.Replicas), slices.Clone(mp.ISR), mp.PartitionEpoch
	p.adding = slices.Clone(mp.Adding)
	p.minInsync = controller.MinInsync(t)
	var resign *replica.Leader
	unassignFrom := int32(-1)

	if mp.Leader == m.self {
		if p.role == roleLeader && p.leader.Epoch() == mp.LeaderEpoch {
			m.countISRChange(p, oldISR, mp)
			if replicasChanged {
				// A move added or removed replicas (controller/move.go).
				p.leader.SetReplicas(mp.Replicas)
			}
			moved := false
			if !slices.Equal(p.leader.ISR(), mp.ISR) {
				moved = p.leader.SetISR(mp.ISR)
			}
			p.unlock()
			if moved || replicasChanged || addingChanged {
				// The fetches waiting on p answer again: its high
				// watermark moved, or who may fetch and how fast. An
				// ISR change alone changes no answer, and waking every
				// follower's fetch of thousands of partitions for each
				// made them read all of them again.
				p.notify()
			}
			return
		}
		lg := m.partitionLogger(p)
		hw := p.hw
		if p.follower != nil {
			hw = max(hw, p.follower.HighWatermark())
		}
		if p.leader != nil {
			hw = max(hw, p.leader.HighWatermark())
			resign = p.leader
		}
		p.log.SetLeaderEpoch(max(mp.LeaderEpoch, p.log.LeaderEpoch()))
		ld, err := replica.NewLeader(replica.LeaderConfig{
			ID: m.self, Epoch: mp.LeaderEpoch, Replicas: mp.Replicas, ISR: mp.ISR, HighWatermark: hw,
			MinInsync: p.minInsync, SyncedPosition: pc.log.Fsync == log.FsyncAlways, MaxLag: m.repl.maxLag,
		}, logView{p})
		if err != nil {
			lg.Error("become leader", zap.Error(err))
			ld = nil
		}
		unassignFrom = p.fetchFrom
		p.leader, p.follower, p.fetchFrom, p.proposed = ld, nil, -1, nil
		p.role = roleLeader
		if ld == nil {
			p.role = roleNone
			p.settled = roleKey{} // the next reconcile tries again
		}
		p.leaderID, p.epoch = mp.Leader, mp.LeaderEpoch
		p.unlock()
		if ld != nil {
			m.elections.Add(1)
		}
		if resign != nil {
			resign.Resign()
		}
		m.repl.unassign(unassignFrom, tp)
		p.notify()
		lg.Info("leading partition", zap.Int32("leader_epoch", mp.LeaderEpoch), zap.Int32s("isr", mp.ISR),
			zap.Int64("high_watermark", hw), zap.Int64("end_offset", p.cur.Load().EndOffset()))
		return
	}

	// Following, or waiting for a leader.
	if p.role == roleLeader {
		resign = p.leader
		p.hw = max(p.hw, p.leader.HighWatermark())
		p.leader, p.proposed = nil, nil
	}
	// A replica whose log went offline (and that the controller knows
	// of) does not fetch: it could not append, and it would only retry.
	offline := mp.IsOffline(m.self)
	same := p.leaderID == mp.Leader && p.epoch == mp.LeaderEpoch &&
		(p.role == roleFollower && !offline || p.role == roleNone && offline)
	if same {
		p.unlock()
		return
	}
	lg := m.partitionLogger(p)
	if p.follower != nil {
		p.hw = max(p.hw, p.follower.HighWatermark())
	}
	unassignFrom = p.fetchFrom
	p.leaderID, p.epoch = mp.Leader, mp.LeaderEpoch
	p.fetchFrom = -1
	p.follower = nil
	p.role = roleNone
	if mp.Leader >= 0 && !offline {
		p.role = roleFollower
		p.follower = replica.NewFollower(logView{p}, p.hw, p.producers)
		p.fetchFrom = mp.Leader
	}
	leader, epoch := p.leaderID, p.epoch
	p.unlock()
	if resign != nil {
		resign.Resign()
	}
	if unassignFrom != leader || offline {
		m.repl.unassign(unassignFrom, tp)
	}
	switch {
	case offline:
		lg.Info("not following partition: its log is offline", zap.Int32("leader", leader), zap.Int32("leader_epoch", epoch))
	case leader >= 0:
		m.repl.assign(leader, tp, epoch, &followed{p: p, leader: leader, epoch: epoch, fsync: pc.log.Fsync == log.FsyncAlways, lg: lg})
		lg.Info("following partition", zap.Int32("leader", leader), zap.Int32("leader_epoch", epoch))
	default:
		lg.Info("partition has no leader", zap.Int32("leader_epoch", epoch), zap.Int32s("isr", mp.ISR))
	}
	p.notify()
}

// roleKey is what applyRole makes of a partition's metadata besides its
// replica lists (partition.settled); the zero key matches none.
type roleKey struct {
	set                            bool
	leader, leaderEpoch, partEpoch int32
	offline, fsync                 bool
	minInsync                      int
}

func (m *partitions) roleKey(t *controller.Topic, mp *controller.Partition, pc partitionConfig) roleKey {
	return roleKey{set: true, leader: mp.Leader, leaderEpoch: mp.LeaderEpoch, partEpoch: mp.PartitionEpoch,
		offline: mp.IsOffline(m.self), fsync: pc.log.Fsync == log.FsyncAlways, minInsync: controller.MinInsync(t)}
}

// settledAt reports whether applyRole of mp with key would change nothing
// of p: the reconcile of a metadata change that did not touch p passes it
// over (at 10,000 partitions, visiting each on every change was a fifth
// of a broker's CPU while a restarted broker rejoined the ISRs).
func (p *partition) settledAt(key roleKey, mp *controller.Partition) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.state == stateOpen && p.settled == key && slices.Equal(p.isr, mp.ISR) &&
		slices.Equal(p.replicas, mp.Replicas) && slices.Equal(p.adding, mp.Adding)
}

// partitionLogger is the logger of p's role changes. Made only for a
// change: a reconcile visits every partition on every metadata change,
// and at 10,000 partitions a logger each was a tenth of a broker's CPU
// while a restarted broker rejoined the ISRs.
func (m *partitions) partitionLogger(p *partition) *zap.Logger {
	return m.logger.With(zap.String("topic", p.topic), zap.Int32("partition", p.index))
}

// stopReplication ends p's role when it is closed: its leader state
// resigns (acks=all waits fail) and its fetcher lets it go.
func (m *partitions) stopReplication(p *partition) {
	p.mu.Lock()
	ld, from := p.leader, p.fetchFrom
	p.leader, p.follower, p.fetchFrom, p.role = nil, nil, -1, roleNone
	p.settled = roleKey{}
	p.unlock()
	if ld != nil {
		ld.Resign()
	}
	m.repl.unassign(from, replica.TopicPartition{Topic: p.topic, Partition: p.index})
}

// replicated reports whether every partition this broker leads has its
// high watermark at its log end: nothing appended is still waiting for
// the followers.
func (m *partitions) replicated() bool {
	for _, p := range m.all() {
		p.mu.RLock()
		behind := p.state == stateOpen && p.role == roleLeader && p.leader.HighWatermark() < p.log.EndOffset()
		p.mu.RUnlock()
		if behind {
			return false
		}
	}
	return true
}

// errNotFollowing says a fetcher's view of a partition is out of date: the
// partition has a new leader or epoch, or was closed.
var errNotFollowing = fmt.Errorf("partition no longer follows this leadership: %w", replica.ErrLeadershipOver)

// followed is a partition as one fetcher copies it, for one leadership.
type followed struct {
	p      *partition
	leader int32
	epoch  int32
	fsync  bool // fsync=always: sync before the next fetch reports the offset
	lg     *zap.Logger
}

// check runs under p.mu.
func (f *followed) check() error {
	p := f.p
	if p.state != stateOpen || p.role != roleFollower || p.leaderID != f.leader || p.epoch != f.epoch || p.follower == nil {
		return errNotFollowing
	}
	return nil
}

// Truncate implements replica.Followed. The question to the leader is
// asked without the partition's lock (a slow leader must not hold up the
// metadata watcher); the cut is made under it, if the log still ends in
// the epoch asked about.
func (f *followed) Truncate(ctx context.Context, src replica.EpochSource) error {
	p := f.p
	p.mu.RLock()
	err := f.check()
	epoch := p.log.LatestEpoch()
	p.mu.RUnlock()
	if err != nil {
		return err
	}
	ans := answered{epoch: epoch, lEpoch: -1, lEnd: -1}
	if epoch >= 0 {
		if ans.lEpoch, ans.lEnd, err = src.EndOffsetForEpoch(ctx, epoch); err != nil {
			return err
		}
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err := f.check(); err != nil {
		return err
	}
	before := p.log.EndOffset()
	end, err := p.follower.Truncate(ctx, ans)
	if err != nil {
		return err
	}
	if end < before {
		f.lg.Info("truncated to the leader's log (R9)", zap.Int32("leader", f.leader), zap.Int32("leader_epoch", f.epoch),
			zap.Int64("from", before), zap.Int64("to", end))
	}
	return nil
}

// answered replays one OffsetForLeaderEpoch answer to Follower.Truncate.
type answered struct {
	epoch  int32
	lEpoch int32
	lEnd   int64
}

// EndOffsetForEpoch implements replica.EpochSource.
func (a answered) EndOffsetForEpoch(_ context.Context, epoch int32) (int32, int64, error) {
	if epoch != a.epoch {
		return -1, -1, fmt.Errorf("log now ends in epoch %d, asked about %d: %w", epoch, a.epoch, errNotFollowing)
	}
	return a.lEpoch, a.lEnd, nil
}

// FetchOffset implements replica.Followed.
func (f *followed) FetchOffset() (int64, error) {
	f.p.mu.RLock()
	defer f.p.mu.RUnlock()
	if err := f.check(); err != nil {
		return -1, err
	}
	return f.p.follower.FetchOffset(), nil
}

// ResetTo implements replica.Followed.
func (f *followed) ResetTo(leaderStart int64) error {
	f.p.mu.RLock()
	defer f.p.mu.RUnlock()
	if err := f.check(); err != nil {
		return err
	}
	return f.p.follower.ResetTo(leaderStart)
}

// AdvanceStart implements replica.Followed.
func (f *followed) AdvanceStart(leaderStart int64) error {
	f.p.mu.RLock()
	defer f.p.mu.RUnlock()
	if err := f.check(); err != nil {
		return err
	}
	return f.p.follower.AdvanceStart(leaderStart)
}

// Apply implements replica.Followed.
func (f *followed) Apply(records []byte, leaderHW int64) error {
	p := f.p
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err := f.check(); err != nil {
		return err
	}
	n, err := p.follower.Apply(records, leaderHW)
	if n > 0 && f.fsync {
		// The next fetch reports the end offset as this replica's
		// position; with fsync=always it must be on disk (R3).
		if serr := p.log.Sync(); serr != nil && err == nil {
			err = serr
		}
	}
	return err
}
