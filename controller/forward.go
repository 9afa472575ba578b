package controller

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// Errors of the Raft controller.
var (
	// ErrNotLeader: the node asked to run a write is not the Raft leader.
	// The write was not proposed; retrying on the leader is safe.
	ErrNotLeader = errors.New("not the controller leader")
	// ErrNoLeader: no controller leader is known (an election is running,
	// or this node cannot reach a quorum).
	ErrNoLeader = errors.New("no controller leader")
	// ErrLeaderUnreachable: a Forwarder could not send the request (the
	// connection failed before it was written). Nothing was proposed; the
	// node retries until its context ends.
	ErrLeaderUnreachable = errors.New("controller leader unreachable")
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
// into a command: CreateTopic is forwarded as its spec, because the leader
// places the replicas.
type request struct {
	op      requestOp
	command Command   // opCommand
	spec    TopicSpec // opCreateTopic
	server  Server    // opAddVoter, opAddNonvoter
}

type requestOp uint8

const (
	opCommand     requestOp = 1
	opCreateTopic requestOp = 2
	opAddVoter    requestOp = 3
	opAddNonvoter requestOp = 4
)

// forwardVersion is the first byte of every request and response.
const forwardVersion = 1

func appendRequest(b []byte, r request) []byte {
	b = append(b, forwardVersion, byte(r.op))
	switch r.op {
	case opCommand:
		b = AppendCommand(b, r.command)
	case opCreateTopic:
		b = appendString(b, r.spec.Name)
		b = binary.AppendVarint(b, int64(r.spec.Partitions))
		b = binary.AppendVarint(b, int64(r.spec.ReplicationFactor))
		b = appendConfigs(b, r.spec.Configs)
	case opAddVoter, opAddNonvoter:
		b = binary.AppendVarint(b, int64(r.server.ID))
		b = appendString(b, r.server.Addr)
	}
	return b
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
	res    Result
	err    error
	leader Server // the leader as the answering node knows it, with ErrNotLeader
}

// errorCodes lists the errors a response can carry so the caller can still
// branch with errors.Is. Append only: a code's meaning never changes.
var errorCodes = []error{
	nil,
	ErrTopicExists, ErrUnknownTopic, ErrInvalidTopic, ErrInvalidPartitions,
	ErrInvalidReplicationFactor, ErrInvalidConfig, ErrUnknownBroker,
	ErrStaleBrokerEpoch, ErrUnknownPartition, ErrStalePartitionEpoch,
	ErrInvalidPartition, ErrInvalidBroker, ErrCorrupt, ErrNotLeader,
	ErrNoLeader, ErrClosed, context.DeadlineExceeded, context.Canceled,
	ErrLeaderUnreachable, raft.ErrLeadershipLost,
}

// codeOther is an error outside errorCodes: only its message travels.
const codeOther = 255

func errorCode(err error) byte {
	if err == nil {
		return 0
	}
	for i, e := range errorCodes[1:] {
		if errors.Is(err, e) {
			return byte(i + 1)
		}
	}
	return codeOther
}

// remoteError is an error that came back from the leader: its message as
// the leader wrote it, matching the sentinel it was built from.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

func appendResponse(b []byte, r response) []byte {
	b = append(b, forwardVersion)
	b = binary.AppendUvarint(b, r.res.Index)
	b = binary.AppendVarint(b, r.res.BrokerEpoch)
	b = binary.AppendUvarint(b, r.res.TopicID)
	b = append(b, errorCode(r.err))
	msg := ""
	if r.err != nil {
		msg = r.err.Error()
	}
	b = appendString(b, msg)
	b = binary.AppendVarint(b, int64(r.leader.ID))
	return appendString(b, r.leader.Addr)
}

func decodeResponse(b []byte) (response, error) {
	d := &decoder{b: b}
	if v := d.byte(); d.err == nil && v != forwardVersion {
		d.fail("response version %d, this build knows %d", v, forwardVersion)
	}
	var r response
	r.res = Result{Index: d.uvarint(), BrokerEpoch: d.varint(), TopicID: d.uvarint()}
	code, msg := d.byte(), d.string()
	r.leader = Server{ID: d.int32(), Addr: d.string(), Voter: true}
	if err := d.end(); err != nil {
		return response{}, fmt.Errorf("decode forwarded response: %w", err)
	}
	switch {
	case code == 0:
	case int(code) < len(errorCodes):
		r.err = &remoteError{msg: msg, kind: errorCodes[code]}
	default:
		r.err = errors.New(msg)
	}
	return r, nil
}
