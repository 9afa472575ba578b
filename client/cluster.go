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
	// Servers are the members of the controller's Raft group, by id.
	Servers []RaftServer
	// Brokers are every registered broker, alive or offline, by id.
	Brokers []BrokerDescription
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

// DescribeCluster asks any broker for the controller leader, the Raft
// voters and non-voters, and the registered brokers.
func (c *Client) DescribeCluster(ctx context.Context) (ClusterDescription, error) {
	m, err := c.roundTrip(ctx, anyBroker, &protocol.DescribeClusterRequest{},
		func() protocol.Message { return new(protocol.DescribeClusterResponse) }, true)
	if err != nil {
		return ClusterDescription{}, fmt.Errorf("describe cluster: %w", err)
	}
	r := m.(*protocol.DescribeClusterResponse)
	if r.ErrorCode != protocol.NoError {
		return ClusterDescription{}, fmt.Errorf("describe cluster: %w", r.ErrorCode.Err())
	}
	d := ClusterDescription{ClusterID: r.ClusterID, ControllerID: r.ControllerID}
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
