package client

import (
	"hash/crc32"
	"slices"
	"sync"

	"github.com/sluicemq/sluice/protocol"
)

// fakeReplicas teaches a fakeCluster DescribeReplicas and ElectLeaders,
// through its hook (the fake's own handlers stay untouched). Each broker
// describes the partitions it leads, from the fake's logs; elections move
// a partition's leadership to its preferred replica unless that broker is
// marked down.
type fakeReplicas struct {
	fc        *fakeCluster
	mu        sync.Mutex
	preferred map[TopicPartition]int32 // default: the current leader
	down      map[int32]bool           // not alive or not in the ISR
	describes []protocol.DescribeReplicasRequest
	elects    []protocol.ElectLeadersRequest
}

// serveReplicas installs fakeReplicas as fc's hook. A test that needs
// its own hook as well calls fr.hook from it.
func (fc *fakeCluster) serveReplicas() *fakeReplicas {
	fr := &fakeReplicas{fc: fc, preferred: map[TopicPartition]int32{}, down: map[int32]bool{}}
	fc.setHook(fr.hook)
	return fr
}

func (fr *fakeReplicas) hook(b *fakeBroker, _ protocol.APIKey, req protocol.Message) action {
	switch r := req.(type) {
	case *protocol.DescribeReplicasRequest:
		fr.mu.Lock()
		fr.describes = append(fr.describes, protocol.DescribeReplicasRequest{Topics: slices.Clone(r.Topics), ChecksumUpTo: r.ChecksumUpTo})
		fr.mu.Unlock()
		return action{resp: fr.describe(b, r)}
	case *protocol.ElectLeadersRequest:
		fr.mu.Lock()
		fr.elects = append(fr.elects, protocol.ElectLeadersRequest{Topics: slices.Clone(r.Topics), TimeoutMs: r.TimeoutMs})
		fr.mu.Unlock()
		return action{resp: fr.elect(r)}
	}
	return action{}
}

// topicNames returns the asked topics, or all (sorted) for none.
// Callers hold fc.mu.
func (fr *fakeReplicas) topicNames(asked []string) []string {
	if len(asked) > 0 {
		return asked
	}
	var names []string
	for n := range fr.fc.topics {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (fr *fakeReplicas) describe(b *fakeBroker, r *protocol.DescribeReplicasRequest) *protocol.DescribeReplicasResponse {
	fc := fr.fc
	fc.mu.Lock()
	defer fc.mu.Unlock()
	resp := &protocol.DescribeReplicasResponse{BrokerID: b.id}
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for _, name := range fr.topicNames(r.Topics) {
		t := fc.topics[name]
		if t == nil {
			continue
		}
		for i, p := range t.parts {
			if p.leader != b.id {
				continue
			}
			ri := protocol.ReplicaInfo{Topic: name, Partition: int32(i), Leader: true, LeaderEpoch: p.epoch,
				EndOffset: p.next, HighWatermark: p.next, SyncedOffset: p.next, ChecksumEnd: -1}
			if r.ChecksumUpTo >= 0 {
				for _, bt := range p.batches {
					if bt.NextOffset() > r.ChecksumUpTo {
						break
					}
					ri.Checksum = crc32.Update(ri.Checksum, castagnoli, bt)
					ri.ChecksumEnd = bt.NextOffset()
				}
			}
			resp.Replicas = append(resp.Replicas, ri)
		}
	}
	return resp
}

func (fr *fakeReplicas) elect(r *protocol.ElectLeadersRequest) *protocol.ElectLeadersResponse {
	fc := fr.fc
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fr.mu.Lock()
	defer fr.mu.Unlock()
	resp := &protocol.ElectLeadersResponse{}
	for _, name := range fr.topicNames(r.Topics) {
		t := fc.topics[name]
		if t == nil {
			resp.Results = append(resp.Results, protocol.ElectionResult{Topic: name, Partition: -1,
				ErrorCode: protocol.ErrUnknownTopicOrPartition, Leader: -1})
			continue
		}
		for i, p := range t.parts {
			res := protocol.ElectionResult{Topic: name, Partition: int32(i)}
			pref, ok := fr.preferred[TopicPartition{name, int32(i)}]
			switch {
			case !ok || pref == p.leader:
				res.ErrorCode = protocol.ErrElectionNotNeeded
			case fr.down[pref]:
				res.ErrorCode, res.Message = protocol.ErrPreferredLeaderNotAvailable, "preferred replica is down"
			default:
				p.leader = pref
				p.epoch++
			}
			res.Leader = p.leader
			resp.Results = append(resp.Results, res)
		}
	}
	return resp
}
