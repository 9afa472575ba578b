package controller

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// contactTransport is the node's Raft transport, noting when each peer
// last answered an AppendEntries: on the leader, a heartbeat (every tenth
// of the heartbeat timeout) or a replication call. An answer is evidence
// that the peer's process runs and its Raft link works, whatever serf
// says of its gossip (Membership.fence). Raft's pipelined replication
// calls are not counted; heartbeats go on beside them.
//
// It also keeps a node whose store fails out of elections (storeHealth):
// while standErr returns an error, the node's requests for votes and
// pre-votes fail before they are sent, so it wins none, and a TimeoutNow
// (a leader handing it leadership) is refused, so it starts no election
// that would raise the term of the others and unseat their leader.
type contactTransport struct {
	*raft.NetworkTransport
	standErr func() error // nil error: the node may stand for election

	mu   sync.Mutex
	last map[raft.ServerID]time.Time

	rpcs chan raft.RPC // Consumer: the inner one's, TimeoutNow filtered
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newContactTransport(t *raft.NetworkTransport, standErr func() error) *contactTransport {
	ct := &contactTransport{NetworkTransport: t, standErr: standErr, last: map[raft.ServerID]time.Time{},
		rpcs: make(chan raft.RPC), stop: make(chan struct{})}
	ct.wg.Add(1)
	go ct.filter()
	return ct
}

// filter passes the inner transport's RPCs on to Raft, answering a
// TimeoutNow itself while the node may not stand.
func (t *contactTransport) filter() {
	defer t.wg.Done()
	in := t.NetworkTransport.Consumer()
	for {
		select {
		case rpc := <-in:
			if _, ok := rpc.Command.(*raft.TimeoutNowRequest); ok {
				if err := t.standErr(); err != nil {
					rpc.Respond(nil, fmt.Errorf("refusing leadership: %w", err))
					continue
				}
			}
			select {
			case t.rpcs <- rpc:
			case <-t.stop:
				return
			}
		case <-t.stop:
			return
		}
	}
}

// Consumer returns the RPCs for Raft to handle.
func (t *contactTransport) Consumer() <-chan raft.RPC { return t.rpcs }

// Close stops the filter and closes the inner transport. Idempotent; Raft
// calls it at the end of its shutdown.
func (t *contactTransport) Close() error {
	t.once.Do(func() {
		close(t.stop)
		t.wg.Wait()
	})
	return t.NetworkTransport.Close()
}

// RequestVote asks a peer for its vote, unless the node may not stand.
func (t *contactTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if err := t.standErr(); err != nil {
		return fmt.Errorf("not standing for election: %w", err)
	}
	return t.NetworkTransport.RequestVote(id, target, args, resp)
}

// RequestPreVote asks a peer for its pre-vote, unless the node may not
// stand.
func (t *contactTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if err := t.standErr(); err != nil {
		return fmt.Errorf("not standing for election: %w", err)
	}
	return t.NetworkTransport.RequestPreVote(id, target, args, resp)
}

// AppendEntries sends the call and notes an answer.
func (t *contactTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		now := time.Now()
		t.mu.Lock()
		t.last[id] = now
		t.mu.Unlock()
	}
	return err
}

// lastContact returns when peer id last answered an AppendEntries from
// this node; false if it never did.
func (t *contactTransport) lastContact(id int32) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.last[raft.ServerID(strconv.Itoa(int(id)))]
	return at, ok
}

// HeardFrom reports whether this node, as Raft leader, had an answer from
// broker id's node within the last heartbeat timeout: its process runs
// and reaches this one over Raft. False on a node that does not lead.
func (n *Node) HeardFrom(id int32) bool {
	if !n.IsLeader() {
		return false
	}
	at, ok := n.trans.lastContact(id)
	return ok && time.Since(at) < n.cfg.HeartbeatTimeout
}
