package controller

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"

	"github.com/sluicemq/sluice/auth"
)

// BrokerState is a broker's membership state.
type BrokerState uint8

// Broker states.
const (
	BrokerAlive BrokerState = iota + 1
	BrokerOffline
)

func (s BrokerState) String() string {
	switch s {
	case BrokerAlive:
		return "alive"
	case BrokerOffline:
		return "offline"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Broker is one registered broker.
type Broker struct {
	ID       int32  `json:"id"`
	Addr     string `json:"addr"` // client address, host:port
	Rack     string `json:"rack,omitempty"`
	RaftAddr string `json:"raft_addr,omitempty"` // host:port of its Raft transport
	// GossipAddr is its serf address, host:port.
	GossipAddr string `json:"gossip_addr,omitempty"`
	// DirID identifies its data directory (RegisterBroker.DirID).
	DirID string      `json:"dir_id,omitempty"`
	Epoch int64       `json:"epoch"` // new on every registration (R10)
	State BrokerState `json:"state"`
}

// Partition is one partition's replication state.
type Partition struct {
	Index          int32   `json:"index"`
	Replicas       []int32 `json:"replicas"` // preferred leader first
	ISR            []int32 `json:"isr"`
	Leader         int32   `json:"leader"` // -1 when none
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"` // bumped on every change
	// CommittedHW is the highest high watermark the partition's leaders
	// reported (ReportHighWatermarks, AlterPartition): every record below
	// it was committed. It only rises, except that an unclean election
	// resets it to 0 (the history it measured is gone). A restarted
	// replica whose log ends below it may not lead (R11).
	CommittedHW int64 `json:"committed_hw"`
	// NoCleanLeader: the partition's last in-sync replica restarted and
	// was refused leadership, as it may lack committed records (R11).
	// Nothing makes it eligible again (not a clean restart, not a report
	// that no longer shows the truncation, not another broker's comings
	// and goings); only an unclean election gives the partition a leader.
	NoCleanLeader bool `json:"no_clean_leader,omitempty"`
	// Restarted lists the replicas that registered (restarted) since the
	// partition's data last moved on under a running leader, each with
	// what it reported of its log at its latest registration, by broker
	// id. They are the candidates of a balanced recovery (R11, see
	// election.go). An ISR change, a raised CommittedHW or an election
	// outside the ISR empties it.
	Restarted []ReplicaEnd `json:"restarted,omitempty"`
	// RecoveredEpoch, when not 0, is the leader epoch a balanced recovery
	// elected a leader in, and RecoveryMayLack how many offsets below the
	// partition's committed high watermark that leader's log lacked: what
	// may have been lost. They stay until the next election outside the
	// ISR (another recovery, or an unclean election).
	RecoveredEpoch  int32 `json:"recovered_epoch,omitempty"`
	RecoveryMayLack int64 `json:"recovery_may_lack,omitempty"`
	// Offline lists, by broker id, the replicas whose log went offline
	// after a storage error, as their broker reported
	// (ReportOfflineReplicas): they neither lead nor join the ISR. A
	// replica stays here until its broker registers again with a log
	// report (a restart, which reopens its logs).
	Offline []OfflineMark `json:"offline,omitempty"`
	// Adding and Removing are a move in progress (AlterReassignment,
	// move.go), as Kafka's reassignment: Replicas is then the target
	// list followed by the replicas being removed; Adding are the
	// target's replicas that are new, Removing the old ones not in the
	// target. Both empty: no move.
	Adding   []int32 `json:"adding,omitempty"`
	Removing []int32 `json:"removing,omitempty"`
	// Queued is the target of a move waiting for the cluster's move
	// limits (reassignment.max.moves, .per.broker); it starts when
	// moves end. Empty: none. A partition is moving or queued, not both.
	Queued []int32 `json:"queued,omitempty"`
}

// OfflineMark is a replica whose log is offline, and why.
type OfflineMark struct {
	Broker int32  `json:"broker"`
	Reason string `json:"reason"`
}

// offline returns the mark of replica r of p, or nil.
func (p *Partition) offline(r int32) *OfflineMark {
	for i := range p.Offline {
		if p.Offline[i].Broker == r {
			return &p.Offline[i]
		}
	}
	return nil
}

// IsOffline reports whether replica r of p has its log offline.
func (p *Partition) IsOffline(r int32) bool { return p.offline(r) != nil }

// Topic is one topic.
type Topic struct {
	ID         uint64            `json:"id"`
	Name       string            `json:"name"`
	Configs    map[string]string `json:"configs,omitempty"` // explicit overrides only
	Partitions []Partition       `json:"partitions"`
}

// Config returns the topic's value for key, or the default. The default
// of min.insync.replicas depends on the replication factor (MinInsync).
func (t *Topic) Config(key string) string {
	if v, ok := t.Configs[key]; ok {
		return v
	}
	if key == ConfigMinInsyncReplica {
		return strconv.Itoa(MinInsync(t))
	}
	return topicConfigDefs[key].Default
}

// Metadata is an immutable snapshot of the cluster metadata. Never modify a
// Metadata obtained from a store; Clone it.
type Metadata struct {
	// Version increases with every change applied.
	Version      uint64            `json:"version"`
	ControllerID int32             `json:"controller_id"`
	Brokers      map[int32]*Broker `json:"brokers"`
	Topics       map[string]*Topic `json:"topics"`
	NextTopicID  uint64            `json:"next_topic_id"`
	// NextProducerID is the first producer id no AllocateProducerIDs has
	// given out yet: every id below it belongs to a block, every id from
	// it up is free. It only grows.
	NextProducerID int64 `json:"next_producer_id"`
	// Users holds each user's SCRAM credentials by mechanism (salts and
	// derived keys, never passwords; kept out of JSON). Security
	// commands replace the maps they change, never modify them.
	Users map[string]map[auth.Mechanism]auth.Credential `json:"-"`
	// ACLs holds every ACL once, in canonical order (compareACL).
	ACLs []auth.ACL `json:"acls,omitempty"`
	// Configs holds the cluster configs set explicitly (clusterconfig.go);
	// commands replace the map, never modify it.
	Configs map[string]string `json:"configs,omitempty"`
	// GroupConfigs holds the group configs set explicitly, by group id
	// (groupconfig.go); commands replace the outer map and the inner map
	// they change, never modify them.
	GroupConfigs map[string]map[string]string `json:"group_configs,omitempty"`
	// Removed holds the brokers an operator removed from the cluster
	// (UnregisterBroker), by id: a process restarted on the data
	// directory it had then is refused registration (ErrBrokerRemoved);
	// one on an empty directory joins as a new broker, with an epoch
	// above the removed one's (R10), and clears the entry. Commands
	// replace the map, never modify it.
	Removed map[int32]RemovedBroker `json:"removed,omitempty"`
	// CommandLevel is the finalized command version: commands are
	// written at it and snapshots in its layout (features.go). 0 until
	// the first command of a fresh cluster. Not in a snapshot's body: a
	// snapshot's layout version is the level.
	CommandLevel uint8 `json:"command_level"`
}

// RemovedBroker is what the metadata keeps of a removed broker.
type RemovedBroker struct {
	DirID string `json:"dir_id,omitempty"`
	Epoch int64  `json:"epoch"` // its last epoch
}

// ProducerIDBlock is a range of producer ids allocated to one broker:
// First to First+Count-1.
type ProducerIDBlock struct {
	First int64
	Count int32
}

// MaxProducerIDBlock bounds AllocateProducerIDs.Count.
const MaxProducerIDBlock = 1 << 20

// NewMetadata returns an empty snapshot.
func NewMetadata() *Metadata {
	return &Metadata{Brokers: map[int32]*Broker{}, Topics: map[string]*Topic{}, NextTopicID: 1, ControllerID: -1}
}

// Clone returns a deep copy.
func (m *Metadata) Clone() *Metadata {
	c := *m
	c.Brokers = make(map[int32]*Broker, len(m.Brokers))
	for id, b := range m.Brokers {
		bb := *b
		c.Brokers[id] = &bb
	}
	c.Topics = make(map[string]*Topic, len(m.Topics))
	for name, t := range m.Topics {
		c.Topics[name] = t.clone()
	}
	if m.Users != nil {
		c.Users = make(map[string]map[auth.Mechanism]auth.Credential, len(m.Users))
		for u, creds := range m.Users {
			cc := make(map[auth.Mechanism]auth.Credential, len(creds))
			for mech, cr := range creds {
				cc[mech] = cloneCredential(cr)
			}
			c.Users[u] = cc
		}
	}
	c.ACLs = slices.Clone(m.ACLs)
	c.Configs = maps.Clone(m.Configs)
	if m.GroupConfigs != nil {
		c.GroupConfigs = make(map[string]map[string]string, len(m.GroupConfigs))
		for g, cfg := range m.GroupConfigs {
			c.GroupConfigs[g] = maps.Clone(cfg)
		}
	}
	c.Removed = maps.Clone(m.Removed)
	return &c
}

func (t *Topic) clone() *Topic {
	c := *t
	if t.Configs != nil {
		c.Configs = make(map[string]string, len(t.Configs))
		for k, v := range t.Configs {
			c.Configs[k] = v
		}
	}
	c.Partitions = make([]Partition, len(t.Partitions))
	for i, p := range t.Partitions {
		p.Replicas = append([]int32(nil), p.Replicas...)
		p.ISR = append([]int32(nil), p.ISR...)
		p.Restarted = slices.Clone(p.Restarted)
		p.Offline = slices.Clone(p.Offline)
		p.Adding = slices.Clone(p.Adding)
		p.Removing = slices.Clone(p.Removing)
		p.Queued = slices.Clone(p.Queued)
		c.Partitions[i] = p
	}
	return &c
}

// cloneOne is clone for a change to partition i alone: the other
// partitions are copied as values, sharing their slices with t (no
// change replaces a slice in place: every one assigns a new one), and
// Configs is shared. Applying one partition's change to a topic of
// thousands of partitions then costs a copy of the array, not thousands
// of allocations.
func (t *Topic) cloneOne(i int) *Topic {
	c := *t
	c.Partitions = slices.Clone(t.Partitions)
	c.ownPartition(i)
	return &c
}

// ownPartition gives partition i of t, a copy, slices of its own: the
// copy of the array shares them with the original.
func (t *Topic) ownPartition(i int) {
	p := &t.Partitions[i]
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = slices.Clone(p.ISR)
	p.Restarted = slices.Clone(p.Restarted)
	p.Offline = slices.Clone(p.Offline)
	p.Adding = slices.Clone(p.Adding)
	p.Removing = slices.Clone(p.Removing)
	p.Queued = slices.Clone(p.Queued)
}

// TopicNames returns the topic names, sorted.
func (m *Metadata) TopicNames() []string {
	names := make([]string, 0, len(m.Topics))
	for n := range m.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// AliveBrokers returns the alive brokers' ids, sorted.
func (m *Metadata) AliveBrokers() []int32 {
	ids := make([]int32, 0, len(m.Brokers))
	for id, b := range m.Brokers {
		if b.State == BrokerAlive {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// PlacementBrokers returns, sorted, the brokers new replicas may be
// placed on: the alive ones not being drained (ConfigBrokersDraining).
func (m *Metadata) PlacementBrokers() []int32 {
	draining := m.DrainingBrokers()
	return slices.DeleteFunc(m.AliveBrokers(), func(id int32) bool { return slices.Contains(draining, id) })
}
