package broker

import (
	"sort"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// handleControllerForward runs a metadata write forwarded by another
// broker on this broker's controller node. Whatever happens there —
// refused, not the leader any more — is inside the answer's payload.
func (c *conn) handleControllerForward(h *protocol.RequestHeader, resp *response) error {
	var req protocol.ControllerForwardRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	// Not bound by the connection, as for the other admin requests: the
	// forwarding broker bounds its own wait.
	ctx, cancel := adminContext(0)
	defer cancel()
	out := protocol.ControllerForwardResponse{Payload: c.b.node.HandleForward(ctx, req.Payload)}
	c.encode(resp, h, &out)
	return nil
}

// handleDescribeCluster answers with this broker's view of the cluster:
// the controller leader, the Raft group and the registered brokers.
func (c *conn) handleDescribeCluster(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DescribeClusterRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	c.encode(resp, h, c.b.describeCluster())
	return nil
}

func (b *Broker) describeCluster() *protocol.DescribeClusterResponse {
	out := &protocol.DescribeClusterResponse{ClusterID: b.cfg.ClusterID, ControllerID: -1, RaftTerm: int64(b.node.Term())}
	if leader, ok := b.node.Leader(); ok {
		out.ControllerID = leader.ID
	}
	// An error here (Raft shutting down) leaves the server list empty; the
	// brokers are still worth reporting.
	servers, _ := b.node.Servers()
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	for _, s := range servers {
		out.Servers = append(out.Servers, protocol.RaftServer{ID: s.ID, RaftAddr: s.Addr, Voter: s.Voter})
	}
	md := b.node.Metadata()
	ids := make([]int32, 0, len(md.Brokers))
	for id := range md.Brokers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		br := md.Brokers[id]
		state := protocol.BrokerStateOffline
		if br.State == controller.BrokerAlive {
			state = protocol.BrokerStateAlive
		}
		out.Brokers = append(out.Brokers, protocol.ClusterBroker{ID: br.ID, Addr: br.Addr, Rack: br.Rack,
			RaftAddr: br.RaftAddr, Epoch: br.Epoch, State: state})
	}
	// As for the servers, an error leaves the gate's nodes out.
	f, _ := b.node.Features()
	out.CommandLevel = int8(f.Finalized)
	for _, n := range f.Nodes {
		v := protocol.NodeCommandVersions{ID: n.ID}
		if n.Known {
			v.Min, v.Max = int8(n.Supported.Min), int8(n.Supported.Max)
		}
		out.CommandVersions = append(out.CommandVersions, v)
	}
	return out
}

// handleAlterClusterMembership removes a broker, or promotes or demotes a
// Raft voter, through the controller leader (Broker.AlterClusterMembership).
func (c *conn) handleAlterClusterMembership(h *protocol.RequestHeader, resp *response) error {
	var req protocol.AlterClusterMembershipRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	ctx, cancel := adminContext(req.TimeoutMs)
	defer cancel()
	var out protocol.AlterClusterMembershipResponse
	if req.Op == protocol.MembershipFinalizeCommandVersion {
		out.ErrorCode, out.ErrorMessage = ErrorCode(c.b.FinalizeCommandVersion(ctx, req.CommandVersion))
	} else {
		out.ErrorCode, out.ErrorMessage = ErrorCode(c.b.AlterClusterMembership(ctx, req.Op, req.BrokerID))
	}
	c.encode(resp, h, &out)
	return nil
}
