package client

import (
	"context"
	"fmt"

	"github.com/sluicemq/sluice/protocol"
)

// ClusterDescription is the cluster as one broker's controller knows it.
type ClusterDescription struct {
	ClusterID string
	// ControllerID is the controller (Raft) leader's broker id, -1 when
	// the answering broker knows none.
	ControllerID int32
	// RaftTerm is the answering broker's Raft term, which counts
	// elections; 0 from a broker too old to say.
	RaftTerm int64
	// Servers are the members of the controller's Raft group, by id.
	Servers []RaftServer
	// Brokers are every registered broker, alive or offline, by id.
	Brokers []BrokerDescription
	// CommandLevel is the cluster's finalized controller command
	// version: the controller writes its commands at it (0: none yet, or
	// a broker too old to say).
	CommandLevel uint8
	// CommandVersions are the controller command versions each Raft
	// member and registered broker supports, by id.
	CommandVersions []NodeCommandVersions
}

// NodeCommandVersions is the range of controller command versions one
// node supports; Known is false when its range is not in gossip (it is
// down, or runs a build before the gate).
type NodeCommandVersions struct {
	ID    int32 `json:"id"`
	Known bool  `json:"known"`
	Min   uint8 `json:"min,omitempty"`
	Max   uint8 `json:"max,omitempty"`
}

// RaftServer is one member of the controller's Raft group.
type RaftServer struct {
	ID       int32  `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
}

// BrokerDescription is one registered broker.
type BrokerDescription struct {
	ID       int32  `json:"id"`
	Addr     string `json:"addr"`
	Rack     string `json:"rack,omitempty"`
	RaftAddr string `json:"raft_addr"`
	// Epoch is new at every registration: a restarted broker has a higher
	// one.
	Epoch int64 `json:"epoch"`
	// State is "alive" or "offline".
	State string `json:"state"`
}

// DescribeCluster returns the controller leader, the Raft voters and
// non-voters, and the registered brokers, as the controller leader itself
// answers when it can be reached. A broker cut off from the Raft group
// knows no leader, or one that lost its leadership, and its metadata may
// be behind; so the first broker's answer is followed: the broker it
// names leader is asked, and its answer taken if it names itself. A
// broker that knows no leader, a named one that does not confirm, or
// one that cannot be reached, sends the question on to the leader it
// names, else to the next alive broker not asked yet. When no broker
// confirms, the first answer that named a leader is returned, else the
// first answer (ControllerID -1).
func (c *Client) DescribeCluster(ctx context.Context) (ClusterDescription, error) {
	m, err := c.roundTrip(ctx, anyBroker, &protocol.DescribeClusterRequest{},
		func() protocol.Message { return new(protocol.DescribeClusterResponse) }, true)
	if err != nil {
		return ClusterDescription{}, fmt.Errorf("describe cluster: %w", err)
	}
	first, err := clusterDescription(m.(*protocol.DescribeClusterResponse))
	if err != nil {
		return ClusterDescription{}, err
	}
	best, d := first, first
	asked := map[int32]bool{}
	for range len(first.Brokers) + 1 {
		id := d.ControllerID
		if id < 0 || asked[id] {
			id = -1
			for _, b := range first.Brokers {
				if b.State == "alive" && !asked[b.ID] {
					id = b.ID
					break
				}
			}
			if id < 0 {
				break
			}
		}
		asked[id] = true
		m, _, err := c.roundTripOnce(ctx, id, &protocol.DescribeClusterRequest{}, new(protocol.DescribeClusterResponse))
		if err == nil {
			d, err = clusterDescription(m.(*protocol.DescribeClusterResponse))
		}
		switch {
		case err != nil:
			d = ClusterDescription{ControllerID: -1}
		case d.ControllerID == id:
			return d, nil // the leader itself
		case best.ControllerID < 0 && d.ControllerID >= 0:
			best = d
		}
	}
	return best, nil
}

// clusterDescription reads one broker's DescribeCluster answer.
func clusterDescription(r *protocol.DescribeClusterResponse) (ClusterDescription, error) {
	if r.ErrorCode != protocol.NoError {
		return ClusterDescription{}, fmt.Errorf("describe cluster: %w", r.ErrorCode.Err())
	}
	d := ClusterDescription{ClusterID: r.ClusterID, ControllerID: r.ControllerID, RaftTerm: r.RaftTerm, CommandLevel: uint8(r.CommandLevel)}
	for _, v := range r.CommandVersions {
		d.CommandVersions = append(d.CommandVersions, NodeCommandVersions{ID: v.ID, Known: v.Min > 0, Min: uint8(v.Min), Max: uint8(v.Max)})
	}
	for _, s := range r.Servers {
		d.Servers = append(d.Servers, RaftServer{ID: s.ID, RaftAddr: s.RaftAddr, Voter: s.Voter})
	}
	for _, b := range r.Brokers {
		state := "offline"
		if b.State == protocol.BrokerStateAlive {
			state = "alive"
		}
		d.Brokers = append(d.Brokers, BrokerDescription{ID: b.ID, Addr: b.Addr, Rack: b.Rack, RaftAddr: b.RaftAddr,
			Epoch: b.Epoch, State: state})
	}
	return d, nil
}
