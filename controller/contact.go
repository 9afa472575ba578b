package controller

import (
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
type contactTransport struct {
	*raft.NetworkTransport

	mu   sync.Mutex
	last map[raft.ServerID]time.Time
}

func newContactTransport(t *raft.NetworkTransport) *contactTransport {
	return &contactTransport{NetworkTransport: t, last: map[raft.ServerID]time.Time{}}
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
