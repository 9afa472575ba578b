package controller

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Changes to who is in the cluster, made by an operator: remove a broker
// (from the broker registry and the Raft group), promote a non-voter to a
// Raft voter, demote a voter to a non-voter. Together they replace a
// failed voter machine without downtime: start a new broker with --join
// (a non-voter), promote it, demote or remove the dead one.
//
// Rules, checked by the controller leader on metadata that holds every
// committed command (a barrier first):
//   - A broker is removed only when it is not alive (stopped, and fenced)
//     and holds no replica: not in any replica list, move or queue
//     (UnregisterBroker, checked again by Apply). The controller leader's
//     own broker is never removed.
//   - A voter change never leaves the group without voters, nor with
//     fewer live voters than a majority of the voters after it (liveness:
//     the leader itself, and every node whose Raft heartbeat answers
//     reached the leader within a heartbeat timeout, Node.HeardFrom). So
//     removing a voter of three while another is down is refused: the two
//     left would need both to commit.
//   - Only a registered, alive non-voter that answers the leader's Raft
//     heartbeats is promoted, at the Raft address it registered.
//
// Raft persists its configuration itself; a restarted broker keeps the
// role the configuration gives it, whatever its --voters flag says: the
// flag only bootstraps a node without Raft state (node.go), and the
// broker's own address update keeps the role it finds (broker's
// updateRaftAddr).

// UnregisterBroker removes broker ID, at its registered Epoch, from the
// broker registry and records it in Metadata.Removed. Refused while it is
// alive or holds a replica. New in CommandVersion 8.
type UnregisterBroker struct {
	ID    int32
	Epoch int64
}

// Kind implements Command.
func (UnregisterBroker) Kind() CommandKind { return KindUnregisterBroker }

func (c UnregisterBroker) appendBody(b []byte) []byte {
	b = binary.AppendVarint(b, int64(c.ID))
	return binary.AppendVarint(b, c.Epoch)
}

func applyUnregisterBroker(m *Metadata, c UnregisterBroker) (*Metadata, error) {
	b, err := registeredAt(m, c.ID, c.Epoch)
	if err != nil {
		return nil, err
	}
	if b.State == BrokerAlive {
		return nil, errAlive(c.ID)
	}
	if held := HeldBy(m, c.ID); len(held) > 0 {
		return nil, fmt.Errorf("%w: broker %d still holds replicas of %d partitions (%s): drain it first (sluice cluster drain %d) and wait for the moves to end",
			ErrMembershipChange, c.ID, len(held), summarize(held, 5), c.ID)
	}
	n := edit(m)
	delete(n.Brokers, c.ID)
	n.Removed = maps.Clone(m.Removed)
	if n.Removed == nil {
		n.Removed = map[int32]RemovedBroker{}
	}
	n.Removed[c.ID] = RemovedBroker{DirID: b.DirID, Epoch: b.Epoch}
	return n, nil
}

// HeldBy returns the partitions ("topic-index", in topic and partition
// order) where broker id is a replica, in the ISR, being added or
// removed, or in a queued move's target.
func HeldBy(m *Metadata, id int32) []string {
	var out []string
	for _, name := range m.TopicNames() {
		t := m.Topics[name]
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if contains(p.Replicas, id) || contains(p.ISR, id) || contains(p.Adding, id) || contains(p.Removing, id) || contains(p.Queued, id) {
				out = append(out, name+"-"+strconv.Itoa(int(p.Index)))
			}
		}
	}
	return out
}

// summarize lists at most n names, and how many more.
func summarize(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

// CheckVoterChange checks that giving broker id the vote (voter true) or
// taking it away (false) in the configuration servers leaves at least one
// voter and a majority of live voters. live says whether a server's node
// runs (as the leader sees it).
func CheckVoterChange(servers []Server, live func(int32) bool, id int32, voter bool) error {
	var after, up []int32
	for _, s := range servers {
		if s.ID != id && s.Voter {
			after = append(after, s.ID)
		}
	}
	if voter {
		after = append(after, id)
	}
	slices.Sort(after)
	if len(after) == 0 {
		return fmt.Errorf("%w: broker %d is the last voter: the Raft group would have none", ErrMembershipChange, id)
	}
	for _, v := range after {
		if live(v) {
			up = append(up, v)
		}
	}
	if need := len(after)/2 + 1; len(up) < need {
		return fmt.Errorf("%w: after the change the voters would be %v, of which %v are live: a majority needs %d; bring the down voters back, or change a down voter first",
			ErrMembershipChange, after, up, need)
	}
	return nil
}

// RemoveBroker removes a stopped, drained broker from the registry and
// from the Raft group (see the rules above). Running it again after a
// failure finishes what is left (a broker already unregistered is still
// taken out of the Raft group).
func (n *Node) RemoveBroker(ctx context.Context, id int32) error {
	_, _, err := n.write(ctx, request{op: opRemoveBroker, broker: id})
	return err
}

// PromoteVoter makes the registered, alive non-voter id a Raft voter.
func (n *Node) PromoteVoter(ctx context.Context, id int32) error {
	_, _, err := n.write(ctx, request{op: opPromoteVoter, broker: id})
	return err
}

// DemoteVoter makes the voter id a non-voter.
func (n *Node) DemoteVoter(ctx context.Context, id int32) error {
	_, _, err := n.write(ctx, request{op: opDemoteVoter, broker: id})
	return err
}

// live reports whether broker id's Raft node runs, as this leader sees it.
func (n *Node) live(id int32) bool { return id == n.self.ID || n.HeardFrom(id) }

// membershipState is what a membership change is checked against.
func (n *Node) membershipState(ctx context.Context, id int32) (*Metadata, []Server, *Server, error) {
	if err := n.barrier(ctx); err != nil {
		return nil, nil, nil, err
	}
	servers, err := n.Servers()
	if err != nil {
		return nil, nil, nil, err
	}
	for i := range servers {
		if servers[i].ID == id {
			return n.fsm.Metadata(), servers, &servers[i], nil
		}
	}
	return n.fsm.Metadata(), servers, nil, nil
}

// errAlive refuses the removal of a running broker.
func errAlive(id int32) error {
	return fmt.Errorf("%w: broker %d is alive: stop it first (it is removed once stopped and drained)", ErrMembershipChange, id)
}

func (n *Node) removeBroker(ctx context.Context, id int32) (Result, error) {
	md, servers, srv, err := n.membershipState(ctx, id)
	if err != nil {
		return Result{}, fmt.Errorf("remove broker %d: %w", id, err)
	}
	b, registered := md.Brokers[id]
	_, removed := md.Removed[id]
	switch {
	case !registered && !removed && srv == nil:
		return Result{}, fmt.Errorf("remove broker %d: %w: neither registered nor in the Raft group", id, ErrUnknownBroker)
	case registered && b.State == BrokerAlive:
		// Whether or not it leads the controller: one answer for a
		// running broker.
		return Result{}, fmt.Errorf("remove broker %d: %w", id, errAlive(id))
	case id == n.self.ID:
		return Result{}, fmt.Errorf("remove broker %d: %w: it is the controller leader's broker; stop it first", id, ErrMembershipChange)
	case srv != nil && !registered && n.HeardFrom(id):
		return Result{}, fmt.Errorf("remove broker %d: %w: its Raft node still answers: stop it first", id, ErrMembershipChange)
	}
	if srv != nil && srv.Voter {
		if err := CheckVoterChange(servers, n.live, id, false); err != nil {
			return Result{}, fmt.Errorf("remove broker %d: %w", id, err)
		}
	}
	var res Result
	if registered {
		if res, err = n.apply(ctx, UnregisterBroker{ID: id, Epoch: b.Epoch}); err != nil {
			return Result{}, fmt.Errorf("remove broker %d: %w", id, err)
		}
		n.log.Info("broker unregistered", zap.Int32("peer", id), zap.Int64("broker_epoch", b.Epoch))
	}
	if srv != nil {
		f := n.raft.RemoveServer(raft.ServerID(strconv.Itoa(int(id))), 0, n.timeout(ctx))
		if err := n.wait(ctx, f); err != nil {
			return res, fmt.Errorf("remove broker %d from the Raft group (it is unregistered; run the removal again): %w", id, err)
		}
		n.log.Info("controller member removed", zap.Int32("peer", id), zap.Bool("voter", srv.Voter))
	}
	return res, nil
}

func (n *Node) promoteVoter(ctx context.Context, id int32) (Result, error) {
	md, servers, srv, err := n.membershipState(ctx, id)
	if err != nil {
		return Result{}, fmt.Errorf("add voter %d: %w", id, err)
	}
	b, ok := md.Brokers[id]
	switch {
	case !ok:
		return Result{}, fmt.Errorf("add voter %d: %w", id, ErrUnknownBroker)
	case b.State != BrokerAlive:
		return Result{}, fmt.Errorf("add voter %d: %w: broker %d is not alive", id, ErrMembershipChange, id)
	case srv == nil:
		return Result{}, fmt.Errorf("add voter %d: %w: broker %d is not in the Raft group yet (it joins as a non-voter when it starts)", id, ErrMembershipChange, id)
	case srv.Voter:
		return Result{}, fmt.Errorf("add voter %d: %w: broker %d is already a voter", id, ErrMembershipChange, id)
	case b.RaftAddr == "":
		return Result{}, fmt.Errorf("add voter %d: %w: broker %d registered no Raft address", id, ErrMembershipChange, id)
	case !n.HeardFrom(id):
		return Result{}, fmt.Errorf("add voter %d: %w: its Raft node does not answer the controller leader", id, ErrMembershipChange)
	}
	if err := CheckVoterChange(servers, n.live, id, true); err != nil {
		return Result{}, fmt.Errorf("add voter %d: %w", id, err)
	}
	f := n.raft.AddVoter(raft.ServerID(strconv.Itoa(int(id))), raft.ServerAddress(b.RaftAddr), 0, n.timeout(ctx))
	if err := n.wait(ctx, f); err != nil {
		return Result{}, fmt.Errorf("add voter %d at %s: %w", id, b.RaftAddr, err)
	}
	n.log.Info("controller voter added", zap.Int32("peer", id), zap.String("raft_addr", b.RaftAddr))
	return Result{Index: f.Index()}, nil
}

func (n *Node) demoteVoter(ctx context.Context, id int32) (Result, error) {
	_, servers, srv, err := n.membershipState(ctx, id)
	if err != nil {
		return Result{}, fmt.Errorf("remove voter %d: %w", id, err)
	}
	switch {
	case srv == nil:
		return Result{}, fmt.Errorf("remove voter %d: %w: not in the Raft group", id, ErrUnknownBroker)
	case !srv.Voter:
		return Result{}, fmt.Errorf("remove voter %d: %w: broker %d is not a voter", id, ErrMembershipChange, id)
	}
	if err := CheckVoterChange(servers, n.live, id, false); err != nil {
		return Result{}, fmt.Errorf("remove voter %d: %w", id, err)
	}
	if id == n.self.ID {
		// A leader that demotes itself steps down the moment the change
		// commits, failing the writes in flight (leadership lost) and
		// leaving the group without a leader for an election timeout.
		// Hand leadership to a voter first; the caller's write then
		// finds the new leader, which demotes this node.
		if err := n.wait(ctx, n.raft.LeadershipTransfer()); err != nil {
			return Result{}, fmt.Errorf("remove voter %d: hand controller leadership over first: %w", id, err)
		}
		n.log.Info("controller leadership handed over before demoting this node")
		return Result{}, fmt.Errorf("remove voter %d: leadership handed over: %w", id, raft.ErrNotLeader)
	}
	f := n.raft.DemoteVoter(raft.ServerID(strconv.Itoa(int(id))), 0, n.timeout(ctx))
	if err := n.wait(ctx, f); err != nil {
		return Result{}, fmt.Errorf("remove voter %d: %w", id, err)
	}
	n.log.Info("controller voter demoted to non-voter", zap.Int32("peer", id))
	return Result{Index: f.Index()}, nil
}
