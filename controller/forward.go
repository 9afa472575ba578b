package controller

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Forwarder carries a write from a node that is not the Raft leader to the
// node it believes leads, where Node.HandleForward runs it. Requests and
// responses are opaque bytes, so any transport can carry them: the sluice
// protocol between brokers, or a direct call inside one process.
//
// An error from Forward means the outcome is unknown (the request may have
// been applied), unless it matches ErrLeaderUnreachable: then the request
// was surely not sent. A refusal by the leader comes back inside the
// response.
type Forwarder interface {
	Forward(ctx context.Context, to Server, req []byte) ([]byte, error)
}

// A request is a write as a client asks for it, before the leader turns it
// into commands: CreateTopic is forwarded as its spec, because the leader
// places the replicas; a preferred-leader election as its topics, because
// the leader plans it on metadata that holds every committed command.
type request struct {
	op      requestOp
	command Command          // opCommand
	spec    TopicSpec        // opCreateTopic
	server  Server           // opAddVoter, opAddNonvoter
	topics  []string         // opElectPreferred; empty: all
	changes []AlterPartition // opAlterPartitions
	broker  int32            // opRemoveBroker, opPromoteVoter, opDemoteVoter, opCheckLevel
	level   uint8            // opFinalizeLevel; opCheckLevel: the asking node's newest
}

type requestOp uint8

const (
	opCommand     requestOp = 1
	opCreateTopic requestOp = 2
	opAddVoter    requestOp = 3
	opAddNonvoter requestOp = 4
	// opElectPreferred: PlanPreferredLeaders, then each change.
	opElectPreferred requestOp = 5
	// opAlterPartitions: many AlterPartition changes, proposed back to
	// back; one Election per change in the response.
	opAlterPartitions requestOp = 6
	// opReadIndex: nothing proposed; the response's index is the last
	// command the leader applied after a barrier (Node.Sync).
	opReadIndex requestOp = 7
	// Membership changes (remove.go): the leader checks them on its
	// metadata and Raft configuration.
	opRemoveBroker requestOp = 8
	opPromoteVoter requestOp = 9
	opDemoteVoter  requestOp = 10
	// opFinalizeLevel: raise the finalized command version (features.go).
	opFinalizeLevel requestOp = 11
	// opCheckLevel: refused when the finalized command version is above
	// the asking node's newest (features.go); nothing is proposed.
	opCheckLevel requestOp = 12
)

// forwardVersion is the first byte of every request and response.
const forwardVersion = 1

// responseVersion2 is the layout of a response whose result carries a
// producer id block (AllocateProducerIDs): the block follows the topic
// id. Every other response keeps version 1, so a node of an earlier build
// that forwards to this one reads its answers; only a node of this build
// or later asks for producer ids.
const responseVersion2 = 2

// appendRequest is appendRequestAt at CommandVersion, for tests.
func appendRequest(b []byte, r request) []byte {
	b, err := appendRequestAt(b, r, CommandVersion)
	if err != nil {
		panic(err) // every command is in CommandVersion
	}
	return b
}

// appendRequestAt encodes r with its commands at command version level
// (the leader may run a build that knows no newer one); a command the
// level does not allow is refused (appendCommandAt).
func appendRequestAt(b []byte, r request, level uint8) ([]byte, error) {
	b = append(b, forwardVersion, byte(r.op))
	var err error
	switch r.op {
	case opCommand:
		b, err = appendCommandAt(b, r.command, level)
	case opCreateTopic:
		b = appendString(b, r.spec.Name)
		b = binary.AppendVarint(b, int64(r.spec.Partitions))
		b = binary.AppendVarint(b, int64(r.spec.ReplicationFactor))
		b = appendConfigs(b, r.spec.Configs)
	case opAddVoter, opAddNonvoter:
		b = binary.AppendVarint(b, int64(r.server.ID))
		b = appendString(b, r.server.Addr)
	case opElectPreferred:
		b = appendStringSet(b, r.topics)
	case opRemoveBroker, opPromoteVoter, opDemoteVoter:
		b = binary.AppendVarint(b, int64(r.broker))
	case opAlterPartitions:
		b = binary.AppendUvarint(b, uint64(len(r.changes)))
		for _, c := range r.changes {
			var cb []byte
			if cb, err = appendCommandAt(nil, c, level); err != nil {
				break
			}
			b = appendString(b, string(cb))
		}
	case opFinalizeLevel:
		b = append(b, r.level)
	case opCheckLevel:
		b = binary.AppendVarint(b, int64(r.broker))
		b = append(b, r.level)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

func decodeRequest(b []byte) (request, error) {
	d := &decoder{b: b}
	if v := d.byte(); d.err == nil && v != forwardVersion {
		d.fail("request version %d, this build knows %d", v, forwardVersion)
	}
	r := request{op: requestOp(d.byte())}
	if d.err == nil {
		switch r.op {
		case opCommand:
			r.command = decodeCommand(d)
		case opCreateTopic:
			r.spec.Name = d.string()
			r.spec.Partitions = d.int32()
			rf := d.int32()
			if rf < -1<<15 || rf >= 1<<15 {
				d.fail("replication factor %d out of range", rf)
			}
			r.spec.ReplicationFactor = int16(rf)
			r.spec.Configs = d.configs()
		case opAddVoter, opAddNonvoter:
			r.server = Server{ID: d.int32(), Addr: d.string(), Voter: r.op == opAddVoter}
		case opElectPreferred:
			r.topics = d.stringSet()
		case opAlterPartitions:
			r.changes = d.alterPartitions()
		case opReadIndex:
		case opRemoveBroker, opPromoteVoter, opDemoteVoter:
			r.broker = d.int32()
		case opFinalizeLevel:
			r.level = d.byte()
		case opCheckLevel:
			r.broker, r.level = d.int32(), d.byte()
		default:
			d.fail("unknown request op %d", r.op)
		}
	}
	if err := d.end(); err != nil {
		return request{}, fmt.Errorf("decode forwarded request: %w", err)
	}
	return r, nil
}

// response is the leader's answer to a forwarded request.
type response struct {
	res       Result
	err       error
	leader    Server     // the leader as the answering node knows it, with ErrNotLeader
	elections []Election // opElectPreferred, opAlterPartitions
}

func appendResponse(b []byte, r response) []byte {
	blk := r.res.ProducerIDs
	if blk.Count == 0 {
		b = append(b, forwardVersion)
	} else {
		b = append(b, responseVersion2)
	}
	b = binary.AppendUvarint(b, r.res.Index)
	b = binary.AppendVarint(b, r.res.BrokerEpoch)
	b = binary.AppendUvarint(b, r.res.TopicID)
	if blk.Count != 0 {
		b = binary.AppendVarint(b, blk.First)
		b = binary.AppendVarint(b, int64(blk.Count))
	}
	b = appendError(b, r.err)
	b = binary.AppendVarint(b, int64(r.leader.ID))
	b = appendString(b, r.leader.Addr)
	b = binary.AppendUvarint(b, uint64(len(r.elections)))
	for _, e := range r.elections {
		b = appendString(b, e.Topic)
		b = binary.AppendVarint(b, int64(e.Partition))
		b = binary.AppendVarint(b, int64(e.Leader))
		b = appendError(b, e.Err)
	}
	return b
}

func decodeResponse(b []byte) (response, error) {
	d := &decoder{b: b}
	v := d.byte()
	if d.err == nil && v != forwardVersion && v != responseVersion2 {
		d.fail("response version %d, this build knows %d and %d", v, forwardVersion, responseVersion2)
	}
	var r response
	r.res = Result{Index: d.uvarint(), BrokerEpoch: d.varint(), TopicID: d.uvarint()}
	if v == responseVersion2 {
		// A block of no ids is written as version 1: one encoding.
		r.res.ProducerIDs = ProducerIDBlock{First: d.varint(), Count: d.int32()}
		if d.err == nil && (r.res.ProducerIDs.First < 0 || r.res.ProducerIDs.Count < 1) {
			d.fail("producer id block %+v", r.res.ProducerIDs)
		}
	}
	r.err = d.error()
	r.leader = Server{ID: d.int32(), Addr: d.string(), Voter: true}
	// An election is at least 4 bytes: topic length, partition, leader,
	// error code.
	if n := d.count(4); n > 0 {
		r.elections = make([]Election, n)
		for i := range r.elections {
			r.elections[i] = Election{Topic: d.string(), Partition: d.int32(), Leader: d.int32(), Err: d.error()}
		}
	}
	if err := d.end(); err != nil {
		return response{}, fmt.Errorf("decode forwarded response: %w", err)
	}
	return r, nil
}
