package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// The write path. A write is a request (a command, or a topic spec the
// leader places, or a membership change). On the leader it is turned into a
// command and proposed to Raft; the caller gets the result once the command
// is committed and applied. On any other node it is forwarded to the leader,
// and the caller gets the result once its own FSM has applied the same
// index, so a node reads its own writes.

// CreateTopic validates spec; the leader places its replicas and adds it.
func (n *Node) CreateTopic(ctx context.Context, spec TopicSpec) (*Topic, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	res, _, err := n.write(ctx, request{op: opCreateTopic, spec: spec})
	if err != nil {
		return nil, err
	}
	if t, ok := n.Metadata().Topics[spec.Name]; ok && t.ID == res.TopicID {
		return t.clone(), nil
	}
	// Deleted again since: report what was created.
	return &Topic{ID: res.TopicID, Name: spec.Name}, nil
}

// DeleteTopic removes a topic.
func (n *Node) DeleteTopic(ctx context.Context, name string) error {
	_, err := n.Propose(ctx, DeleteTopic{Name: name})
	return err
}

// AlterConfigs sets keys and reverts others to their defaults.
func (n *Node) AlterConfigs(ctx context.Context, name string, set map[string]string, remove []string) error {
	if err := validateAlter(set, remove); err != nil {
		return err
	}
	_, err := n.Propose(ctx, AlterConfigs{Name: name, Set: set, Remove: remove})
	return err
}

// RegisterBroker registers b (ID, Addr, Rack, RaftAddr, GossipAddr) and returns its new
// broker epoch. previousEpoch is RegisterBroker.PreviousEpoch: the epoch
// the broker had when it last shut down cleanly, PreviousEpochUnclean
// after a crash with its data dir in place, PreviousEpochEmpty when the
// data dir was empty.
func (n *Node) RegisterBroker(ctx context.Context, b Broker, previousEpoch int64) (int64, error) {
	res, err := n.Propose(ctx, RegisterBroker{ID: b.ID, Addr: b.Addr, Rack: b.Rack, RaftAddr: b.RaftAddr, GossipAddr: b.GossipAddr, DirID: b.DirID, PreviousEpoch: previousEpoch})
	return res.BrokerEpoch, err
}

// AllocateProducerIDs allocates the next count producer ids to broker, at
// its current brokerEpoch (AllocateProducerIDs), through the leader, and
// returns the block. An error that is not a refusal leaves the outcome
// unknown: a block may have been allocated and is then never used, which
// costs ids, never uniqueness.
func (n *Node) AllocateProducerIDs(ctx context.Context, broker int32, brokerEpoch int64, count int32) (ProducerIDBlock, error) {
	res, err := n.Propose(ctx, AllocateProducerIDs{BrokerID: broker, BrokerEpoch: brokerEpoch, Count: count})
	if err != nil {
		return ProducerIDBlock{}, err
	}
	return res.ProducerIDs, nil
}

// Propose applies c through the leader and returns its result. This
// node's own registration first has the leader check the finalized
// command version against this build (ErrCommandVersion), so an old build
// does not join an upgraded cluster it cannot follow (features.go).
func (n *Node) Propose(ctx context.Context, c Command) (Result, error) {
	if c == nil {
		return Result{}, fmt.Errorf("%w: nil command", ErrCorrupt)
	}
	if rb, ok := c.(RegisterBroker); ok && rb.ID == n.self.ID {
		if err := n.checkOwnLevel(ctx); err != nil {
			return Result{}, fmt.Errorf("%v: %w", c.Kind(), err)
		}
	}
	res, _, err := n.write(ctx, request{op: opCommand, command: c})
	return res, err
}

// Election is the outcome of moving one partition's leadership to its
// preferred replica.
type Election struct {
	Topic     string
	Partition int32
	// Leader is the preferred replica leadership moved to, or was to move
	// to when Err is set.
	Leader int32
	// Err is why the change was refused (ErrStalePartitionEpoch: the
	// partition changed between planning and applying; ErrInvalidPartition:
	// the replica is no longer an alive ISR member). Nil: it leads.
	Err error
}

// ElectPreferredLeaders gives leadership back to the preferred replica (the
// first of the replica list) of every partition of the named topics (all
// when topics is empty) where that replica is alive and in the ISR but does
// not lead. The leader plans on metadata that holds every committed
// command (PlanPreferredLeaders) and applies one AlterPartition per
// partition; a refusal is reported in that partition's Election, not as
// the error. The error is for the request as a whole (no leader, timeout,
// leadership lost: some partitions may have moved, and running it again
// moves the rest).
func (n *Node) ElectPreferredLeaders(ctx context.Context, topics []string) ([]Election, error) {
	_, elections, err := n.write(ctx, request{op: opElectPreferred, topics: topics})
	return elections, err
}

// Sync is a read barrier: it returns once this node's metadata holds every
// command the controller leader had committed when Sync was called, so a
// plan made on Metadata afterwards sees at least what the leader saw. The
// leader answers after a Raft barrier (its own FSM may lag its commit
// index just after an election); a follower asks the leader, through the
// Forwarder, for that index and waits until it has applied it. Nothing is
// proposed. It fails, as a write does, while no leader answers before ctx
// ends.
func (n *Node) Sync(ctx context.Context) error {
	_, _, err := n.write(ctx, request{op: opReadIndex})
	if err != nil {
		return fmt.Errorf("controller read barrier: %w", err)
	}
	return nil
}

// AddVoter adds a voter to the Raft group (or promotes a non-voter).
func (n *Node) AddVoter(ctx context.Context, id int32, raftAddr string) error {
	_, _, err := n.write(ctx, request{op: opAddVoter, server: Server{ID: id, Addr: raftAddr, Voter: true}})
	return err
}

// AddNonvoter adds a non-voter to the Raft group: it receives the log but
// does not vote or count for commits.
func (n *Node) AddNonvoter(ctx context.Context, id int32, raftAddr string) error {
	_, _, err := n.write(ctx, request{op: opAddNonvoter, server: Server{ID: id, Addr: raftAddr}})
	return err
}

// Join makes this node a member: a node already in the Raft configuration
// returns at once; any other asks the leader, through the configured
// voters, to add it as a non-voter. Adding a server is idempotent, so a
// leader lost while committing the change (the outcome unknown) is simply
// asked again, until ctx ends.
func (n *Node) Join(ctx context.Context) error {
	for {
		servers, err := n.Servers()
		if err != nil {
			return err
		}
		for _, s := range servers {
			if s.ID == n.self.ID {
				return nil
			}
		}
		err = n.AddNonvoter(ctx, n.self.ID, n.self.Addr)
		if err == nil || !errors.Is(err, raft.ErrLeadershipLost) {
			return err
		}
		n.log.Debug("join: leadership lost while adding this node; asking again", zap.Error(err))
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// retrySafe reports whether r may run again after the leader lost its
// leadership while committing it (ErrLeadershipLost: applied or not,
// nobody knows): running it twice ends in the same state, with the same
// answer, as running it once.
//
//   - A read barrier proposes nothing.
//   - A preferred-leader election is planned again, after a barrier, on
//     the committed metadata: a partition the lost try moved is led by
//     its preferred replica and is not planned again (its answer is then
//     ELECTION_NOT_NEEDED: the state asked for holds).
//   - A config change sets keys to values and removes keys: applying it
//     again changes nothing more.
//   - A move's start names its target: once started (or queued, or
//     completed), the same target again is accepted and changes nothing
//     (applyAlterReassignment).
//
// Not retried, so the caller gets the indeterminate ErrLeadershipLost:
// a cancel (a retry after a lost try that applied is refused with
// ErrNoReassignment, or would cancel a move started since), topic
// creation and deletion, and the commands whose callers handle the loss
// themselves (a registration, ISR changes carrying a partition epoch).
func retrySafe(r request) bool {
	switch r.op {
	case opReadIndex, opElectPreferred:
		return true
	case opCommand:
		switch c := r.command.(type) {
		case AlterConfigs, AlterClusterConfigs, AlterGroupConfigs:
			return true
		case AlterReassignment:
			return len(c.Target) > 0
		}
	}
	return false
}

// write runs r on the leader: here when this node leads, else through the
// Forwarder. It retries while the leader is unknown or a node answers that
// it does not lead (both mean nothing was proposed), and after the leader
// lost its leadership while committing r when r is retrySafe, until ctx
// ends; then the error says why the last try failed.
func (n *Node) write(ctx context.Context, r request) (Result, []Election, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		defer cancel()
	}
	var req []byte
	var hint Server
	next := 0          // voter to ask when no leader is known
	why := ErrNoLeader // why the last try proposed nothing
	for {
		if n.isClosed() {
			return Result{}, nil, ErrClosed
		}
		changed := n.leaderChange()
		if n.IsLeader() {
			res, elections, err := n.execute(ctx, r)
			switch {
			case errors.Is(err, raft.ErrNotLeader):
				why = ErrNoLeader
			case errors.Is(err, ErrLeadershipLost) && retrySafe(r) && ctx.Err() == nil:
				why = n.lost(err)
			default:
				return res, elections, err
			}
		} else if n.cfg.Forwarder == nil {
			if _, known := n.Leader(); known {
				return Result{}, nil, ErrNotLeader
			}
		} else if to, ok := n.target(&hint, &next); ok {
			if req == nil {
				var err error
				if req, err = n.appendRequest(r); err != nil {
					return Result{}, nil, err
				}
			}
			resp, err := n.forward(ctx, to, req)
			switch {
			case errors.Is(err, ErrLeaderUnreachable):
				why = err // not sent
			case err != nil:
				return Result{}, nil, err
			case errors.Is(resp.err, ErrLeadershipLost) && retrySafe(r) && ctx.Err() == nil:
				why = n.lost(resp.err)
			case !errors.Is(resp.err, ErrNotLeader):
				if resp.err == nil && r.op != opAddVoter && r.op != opAddNonvoter && r.op != opPromoteVoter && r.op != opDemoteVoter {
					// Read your writes: the caller sees the change here.
					// (A Raft configuration change is not an FSM command.)
					if err := n.fsm.WaitApplied(ctx, resp.res.Index); err != nil {
						return resp.res, resp.elections, err
					}
				}
				return resp.res, resp.elections, resp.err
			case resp.leader.Addr != "" && resp.leader.ID != to.ID:
				hint = resp.leader
				continue
			default:
				why = ErrNoLeader
			}
		}
		// Nothing was proposed. Wait for news of a leader, briefly.
		t := time.NewTimer(n.cfg.HeartbeatTimeout / 4)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Result{}, nil, fmt.Errorf("controller write: %w: %w", why, ctx.Err())
		}
		t.Stop()
	}
}

// lost logs that a retrySafe write is tried again after err, a leadership
// lost while committing it, and returns err.
func (n *Node) lost(err error) error {
	n.log.Debug("controller leadership lost while committing a write that is safe to run again; running it again", zap.Error(err))
	return err
}

// target picks the node to forward to: the known leader, else the last
// hint, else the configured voters in turn.
func (n *Node) target(hint *Server, next *int) (Server, bool) {
	if s, ok := n.Leader(); ok && s.ID != n.self.ID {
		return s, true
	}
	if hint.Addr != "" {
		s := *hint
		*hint = Server{}
		return s, true
	}
	for range n.cfg.Voters {
		v := n.cfg.Voters[*next%len(n.cfg.Voters)]
		*next++
		if v.ID != n.self.ID {
			return v, true
		}
	}
	return Server{}, false
}

func (n *Node) forward(ctx context.Context, to Server, req []byte) (response, error) {
	b, err := n.cfg.Forwarder.Forward(ctx, to, req)
	if err != nil {
		return response{}, fmt.Errorf("forward to controller %d at %s: %w", to.ID, to.Addr, err)
	}
	resp, err := decodeResponse(b)
	if err != nil {
		return response{}, fmt.Errorf("forward to controller %d at %s: %w", to.ID, to.Addr, err)
	}
	return resp, nil
}

// HandleForward runs a request forwarded by another node and returns the
// encoded response. Any failure, including a request that does not decode
// or this node not leading, is reported inside the response.
func (n *Node) HandleForward(ctx context.Context, req []byte) []byte {
	var resp response
	r, err := decodeRequest(req)
	switch {
	case err != nil:
		resp.err = err
	case n.isClosed():
		resp.err = ErrClosed
	case !n.IsLeader():
		resp.err = fmt.Errorf("%w: broker %d", ErrNotLeader, n.self.ID)
	default:
		resp.res, resp.elections, resp.err = n.execute(ctx, r)
		if errors.Is(resp.err, raft.ErrNotLeader) {
			resp.err = fmt.Errorf("%w: broker %d: %w", ErrNotLeader, n.self.ID, resp.err)
		}
	}
	if errors.Is(resp.err, ErrNotLeader) {
		resp.leader, _ = n.Leader()
	}
	return appendResponse(nil, resp)
}

// execute runs r on this node as leader. raft.ErrNotLeader means it was not
// proposed.
func (n *Node) execute(ctx context.Context, r request) (Result, []Election, error) {
	switch r.op {
	case opCreateTopic:
		if err := n.barrier(ctx); err != nil {
			return Result{}, nil, fmt.Errorf("%v: %w", KindCreateTopic, err)
		}
		c, err := PlanCreateTopic(n.fsm.Metadata(), r.spec)
		if err != nil {
			return Result{}, nil, fmt.Errorf("%v: %w", KindCreateTopic, err)
		}
		res, err := n.apply(ctx, c)
		return res, nil, err
	case opCommand:
		res, err := n.apply(ctx, r.command)
		return res, nil, err
	case opElectPreferred:
		return n.electPreferred(ctx, r.topics)
	case opAlterPartitions:
		return n.alterPartitions(ctx, r.changes)
	case opAddVoter, opAddNonvoter:
		res, err := n.addServer(ctx, r.server)
		return res, nil, err
	case opRemoveBroker:
		res, err := n.removeBroker(ctx, r.broker)
		return res, nil, err
	case opPromoteVoter:
		res, err := n.promoteVoter(ctx, r.broker)
		return res, nil, err
	case opDemoteVoter:
		res, err := n.demoteVoter(ctx, r.broker)
		return res, nil, err
	case opFinalizeLevel:
		res, err := n.finalizeLevel(ctx, r.level)
		return res, nil, err
	case opCheckLevel:
		return Result{}, nil, n.checkLevel(ctx, r.broker, r.level)
	case opReadIndex:
		if err := n.barrier(ctx); err != nil {
			return Result{}, nil, fmt.Errorf("read index: %w", err)
		}
		return Result{Index: n.fsm.AppliedIndex()}, nil, nil
	}
	return Result{}, nil, fmt.Errorf("%w: request op %d", ErrCorrupt, r.op)
}

// barrier waits until this leader's FSM holds every committed command: a
// new leader's FSM may still lag the log it committed, and plans made on
// it would be stale.
func (n *Node) barrier(ctx context.Context) error {
	return n.wait(ctx, n.raft.Barrier(n.timeout(ctx)))
}

// electPreferred plans and applies preferred-leader elections. The
// Result's index is the last one applied, so a forwarding node can wait
// for every change.
func (n *Node) electPreferred(ctx context.Context, topics []string) (Result, []Election, error) {
	if err := n.barrier(ctx); err != nil {
		return Result{}, nil, fmt.Errorf("elect preferred leaders: %w", err)
	}
	var res Result
	var out []Election
	for _, c := range PlanPreferredLeaders(n.fsm.Metadata(), topics) {
		resp, err := n.propose(ctx, c)
		if err != nil {
			return res, out, fmt.Errorf("elect preferred leaders: %w", err)
		}
		res.Index = max(res.Index, resp.Result.Index)
		out = append(out, Election{Topic: c.Topic, Partition: c.Partition, Leader: c.Leader, Err: resp.Err})
		if resp.Err == nil {
			n.log.Info("preferred leader elected", zap.String("topic", c.Topic), zap.Int32("partition", c.Partition),
				zap.Int32("leader", c.Leader))
		}
	}
	return res, out, nil
}

func (n *Node) apply(ctx context.Context, c Command) (Result, error) {
	resp, err := n.propose(ctx, c)
	if err != nil {
		return Result{}, err
	}
	return resp.Result, resp.Err
}

// propose commits c and returns the FSM's answer. An error is Raft's (not
// leader, leadership lost, timeout); a refusal by Apply is in the answer.
func (n *Node) propose(ctx context.Context, c Command) (ApplyResponse, error) {
	return n.finish(ctx, c, n.start(ctx, c), time.Now())
}

// start hands c to Raft without waiting for it: commands started back to
// back are committed in groups (one log write for many). c is written at
// the finalized command level; a command the level does not allow is
// not proposed, and its future holds the refusal.
func (n *Node) start(ctx context.Context, c Command) raft.ApplyFuture {
	b, err := n.encode(nil, c)
	if err != nil {
		return refusedFuture{err}
	}
	return n.raft.Apply(b, n.timeout(ctx))
}

// refusedFuture is the future of a command refused before Raft saw it.
type refusedFuture struct{ err error }

func (f refusedFuture) Error() error          { return f.err }
func (f refusedFuture) Index() uint64         { return 0 }
func (f refusedFuture) Response() interface{} { return nil }

// finish waits for the command c that start returned f for, and returns
// the FSM's answer, as propose does; started is when c was started, for
// NodeConfig.OnCommit.
func (n *Node) finish(ctx context.Context, c Command, f raft.ApplyFuture, started time.Time) (ApplyResponse, error) {
	if err := n.wait(ctx, f); err != nil {
		return ApplyResponse{}, fmt.Errorf("%v: %w", c.Kind(), err)
	}
	if n.cfg.OnCommit != nil {
		n.cfg.OnCommit(time.Since(started))
	}
	resp, ok := f.Response().(ApplyResponse)
	if !ok {
		return ApplyResponse{}, fmt.Errorf("%v: unexpected FSM response %T", c.Kind(), f.Response())
	}
	if resp.Err == nil {
		n.log.Debug("metadata applied", zap.Stringer("command", c.Kind()), zap.Uint64("index", resp.Result.Index))
	}
	for _, o := range resp.Result.Offline {
		n.log.Warn("partition stays offline: its last in-sync replica restarted and may have lost committed records (R11)",
			zap.String("topic", o.Topic), zap.Int32("partition", o.Partition), zap.Int32("replica", o.Broker),
			zap.String("reason", o.Reason), zap.Int64("end_offset", o.EndOffset),
			zap.Bool("recovery_truncated", o.RecoveryTruncated), zap.Int64("committed_high_watermark", o.CommittedHW),
			zap.String("unclean_recovery_strategy", o.Strategy), zap.Int32s("waiting_for", o.Waiting))
	}
	for _, r := range resp.Result.Recovered {
		n.log.Warn("partition led again by a balanced unclean recovery: no replica was eligible (R11), the leader may lack committed records",
			zap.String("topic", r.Topic), zap.Int32("partition", r.Partition), zap.Int32("leader", r.Leader),
			zap.Int32("leader_epoch", r.LeaderEpoch), zap.Int32("last_epoch", r.LastEpoch), zap.Int64("end_offset", r.EndOffset),
			zap.Int64("committed_high_watermark", r.CommittedHW), zap.Int64("may_lack", r.MayLack), zap.String("reason", r.Reason))
	}
	return resp, nil
}

func (n *Node) addServer(ctx context.Context, s Server) (Result, error) {
	id := raft.ServerID(strconv.Itoa(int(s.ID)))
	var f raft.IndexFuture
	if s.Voter {
		f = n.raft.AddVoter(id, raft.ServerAddress(s.Addr), 0, n.timeout(ctx))
	} else {
		f = n.raft.AddNonvoter(id, raft.ServerAddress(s.Addr), 0, n.timeout(ctx))
	}
	if err := n.wait(ctx, f); err != nil {
		return Result{}, fmt.Errorf("add server %d at %s: %w", s.ID, s.Addr, err)
	}
	n.log.Info("controller member added", zap.Int32("peer", s.ID), zap.String("raft_addr", s.Addr), zap.Bool("voter", s.Voter))
	return Result{Index: f.Index()}, nil
}

// timeout is how long Raft may take to enqueue a command.
func (n *Node) timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return n.cfg.ApplyTimeout
}

// wait waits for f or ctx. A goroutine owned by the node waits for f so a
// cancelled caller does not leave it behind: Close's Raft shutdown resolves
// every future, and Close waits for the goroutine.
func (n *Node) wait(ctx context.Context, f raft.Future) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.wg.Add(1)
	n.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		defer n.wg.Done()
		done <- f.Error()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The command may still commit: the outcome is unknown (R14).
		return ctx.Err()
	}
}

func (n *Node) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}
