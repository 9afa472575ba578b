package protocol

// ControllerForwardRequest carries a metadata write to the controller
// leader. Payload is opaque to the protocol: the bytes of the controller's
// forward request, answered by the bytes its HandleForward returns.
type ControllerForwardRequest struct {
	Payload []byte
}

// Key returns ControllerForward.
func (*ControllerForwardRequest) Key() APIKey { return ControllerForward }

// Append encodes the body.
func (r *ControllerForwardRequest) Append(dst []byte, version int16) []byte {
	return appendBytes(dst, r.Payload)
}

// Decode parses the body. Payload aliases the input.
func (r *ControllerForwardRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(ControllerForward, false, version); err != nil {
		return err
	}
	r.Payload = d.bytes("payload")
	return d.finish()
}

// ControllerForwardResponse is the leader's answer. A non-zero ErrorCode
// means the request never reached the controller (the broker could not
// serve the API), so nothing was proposed; a refusal by the controller
// travels inside Payload.
type ControllerForwardResponse struct {
	ErrorCode ErrorCode
	Payload   []byte
}

// Key returns ControllerForward.
func (*ControllerForwardResponse) Key() APIKey { return ControllerForward }

// Append encodes the body.
func (r *ControllerForwardResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendBytes(dst, r.Payload)
}

// Decode parses the body. Payload aliases the input.
func (r *ControllerForwardResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(ControllerForward, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Payload = nil
		return d.err
	}
	r.Payload = d.bytes("payload")
	return d.finish()
}

// DescribeClusterRequest asks a broker for the cluster as it knows it.
type DescribeClusterRequest struct{}

// Key returns DescribeCluster.
func (*DescribeClusterRequest) Key() APIKey { return DescribeCluster }

// Append encodes the (empty) body.
func (*DescribeClusterRequest) Append(dst []byte, version int16) []byte { return dst }

// Decode checks the body is empty.
func (*DescribeClusterRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(DescribeCluster, false, version); err != nil {
		return err
	}
	return d.finish()
}

// Broker states in DescribeCluster, as the controller records them.
const (
	BrokerStateAlive   int8 = 1
	BrokerStateOffline int8 = 2
)

// DescribeClusterResponse is the answering broker's view of the cluster:
// the controller leader, the members of the Raft group and every
// registered broker.
type DescribeClusterResponse struct {
	ErrorCode    ErrorCode
	ClusterID    string
	ControllerID int32 // the Raft leader's broker id; -1 when none is known
	// RaftTerm (version 1) is the answering broker's current Raft term:
	// it counts elections, so a term that moves between two answers from
	// the same leader's broker means leadership was contested. 0 from a
	// version 0 answer.
	RaftTerm int64
	Servers  []RaftServer
	Brokers  []ClusterBroker
	// CommandLevel (version 2) is the cluster's finalized controller
	// command version, 0 when none yet or from an older answer.
	CommandLevel int8
	// CommandVersions (version 2) is, for each Raft member and registered
	// broker by id, the range of command versions it supports (0-0 when
	// unknown: down, or a build before the gate).
	CommandVersions []NodeCommandVersions
}

// NodeCommandVersions is the range of controller command versions one
// node supports.
type NodeCommandVersions struct {
	ID  int32
	Min int8
	Max int8
}

func (v *NodeCommandVersions) append(dst []byte) []byte {
	return appendInt8(appendInt8(appendInt32(dst, v.ID), v.Min), v.Max)
}

func (v *NodeCommandVersions) decode(d *Decoder) {
	v.ID, v.Min, v.Max = d.int32("id"), d.int8("min"), d.int8("max")
}

// RaftServer is one member of the controller's Raft group.
type RaftServer struct {
	ID       int32
	RaftAddr string
	Voter    bool
}

// ClusterBroker is one registered broker.
type ClusterBroker struct {
	ID       int32
	Addr     string // client address, host:port
	Rack     string
	RaftAddr string
	Epoch    int64
	State    int8 // BrokerStateAlive or BrokerStateOffline
}

// Key returns DescribeCluster.
func (*DescribeClusterResponse) Key() APIKey { return DescribeCluster }

// Append encodes the body.
func (r *DescribeClusterResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	dst = appendString(dst, r.ClusterID)
	dst = appendInt32(dst, r.ControllerID)
	if version >= 1 {
		dst = appendInt64(dst, r.RaftTerm)
	}
	dst = appendArray(dst, r.Servers, (*RaftServer).append)
	dst = appendArray(dst, r.Brokers, (*ClusterBroker).append)
	if version >= 2 {
		dst = appendInt8(dst, r.CommandLevel)
		dst = appendArray(dst, r.CommandVersions, (*NodeCommandVersions).append)
	}
	return dst
}

// Decode parses the body.
func (r *DescribeClusterResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(DescribeCluster, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		*r = DescribeClusterResponse{ErrorCode: r.ErrorCode, Servers: r.Servers[:0], Brokers: r.Brokers[:0], CommandVersions: r.CommandVersions[:0]}
		return d.err
	}
	r.ClusterID = d.string("cluster_id", r.ClusterID)
	r.ControllerID = d.int32("controller_id")
	r.RaftTerm = 0
	if version >= 1 {
		r.RaftTerm = d.int64("raft_term")
	}
	r.Servers = decodeArray(d, "servers", 7, r.Servers, (*RaftServer).decode)
	r.Brokers = decodeArray(d, "brokers", 21, r.Brokers, (*ClusterBroker).decode)
	r.CommandLevel, r.CommandVersions = 0, r.CommandVersions[:0]
	if version >= 2 {
		r.CommandLevel = d.int8("command_level")
		r.CommandVersions = decodeArray(d, "command_versions", 6, r.CommandVersions, (*NodeCommandVersions).decode)
	}
	return d.finish()
}

func (s *RaftServer) append(dst []byte) []byte {
	dst = appendInt32(dst, s.ID)
	dst = appendString(dst, s.RaftAddr)
	return appendBool(dst, s.Voter)
}

func (s *RaftServer) decode(d *Decoder) {
	s.ID = d.int32("id")
	s.RaftAddr = d.string("raft_addr", s.RaftAddr)
	s.Voter = d.bool("voter")
}

func (b *ClusterBroker) append(dst []byte) []byte {
	dst = appendInt32(dst, b.ID)
	dst = appendString(dst, b.Addr)
	dst = appendString(dst, b.Rack)
	dst = appendString(dst, b.RaftAddr)
	dst = appendInt64(dst, b.Epoch)
	return appendInt8(dst, b.State)
}

func (b *ClusterBroker) decode(d *Decoder) {
	b.ID = d.int32("id")
	b.Addr = d.string("addr", b.Addr)
	b.Rack = d.string("rack", b.Rack)
	b.RaftAddr = d.string("raft_addr", b.RaftAddr)
	b.Epoch = d.int64("epoch")
	b.State = d.int8("state")
}

// Operations of AlterClusterMembership.
const (
	// MembershipRemove removes a stopped, drained broker from the broker
	// registry and from the Raft group (voter or non-voter).
	MembershipRemove int8 = 1
	// MembershipAddVoter promotes a registered, alive non-voter to a Raft
	// voter.
	MembershipAddVoter int8 = 2
	// MembershipRemoveVoter demotes a Raft voter to a non-voter.
	MembershipRemoveVoter int8 = 3
	// MembershipFinalizeCommandVersion (version 1) raises the cluster's
	// finalized controller command version to CommandVersion (0: the
	// newest the answering broker's build knows); BrokerID is not used.
	MembershipFinalizeCommandVersion int8 = 4
)

// AlterClusterMembershipRequest changes who is in the cluster: remove a
// broker, promote a non-voter to voter, demote a voter. Any broker takes
// it and forwards it to the controller leader, which checks it (a
// refusal names why) and applies it.
type AlterClusterMembershipRequest struct {
	Op        int8 // MembershipRemove, MembershipAddVoter, MembershipRemoveVoter or MembershipFinalizeCommandVersion
	BrokerID  int32
	TimeoutMs int32
	// CommandVersion (version 1) is the level of
	// MembershipFinalizeCommandVersion.
	CommandVersion int8
}

// Key returns AlterClusterMembership.
func (*AlterClusterMembershipRequest) Key() APIKey { return AlterClusterMembership }

// Append encodes the body.
func (r *AlterClusterMembershipRequest) Append(dst []byte, version int16) []byte {
	dst = appendInt8(dst, r.Op)
	dst = appendInt32(dst, r.BrokerID)
	dst = appendInt32(dst, r.TimeoutMs)
	if version >= 1 {
		dst = appendInt8(dst, r.CommandVersion)
	}
	return dst
}

// Decode parses the body.
func (r *AlterClusterMembershipRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(AlterClusterMembership, false, version); err != nil {
		return err
	}
	r.Op = d.int8("op")
	r.BrokerID = d.int32("broker_id")
	r.TimeoutMs = d.int32("timeout_ms")
	r.CommandVersion = 0
	if version >= 1 {
		r.CommandVersion = d.int8("command_version")
	}
	return d.finish()
}

// AlterClusterMembershipResponse is the outcome; ErrorMessage says why a
// change was refused.
type AlterClusterMembershipResponse struct {
	ErrorCode    ErrorCode
	ErrorMessage string
}

// Key returns AlterClusterMembership.
func (*AlterClusterMembershipResponse) Key() APIKey { return AlterClusterMembership }

// Append encodes the body.
func (r *AlterClusterMembershipResponse) Append(dst []byte, version int16) []byte {
	dst = appendInt16(dst, int16(r.ErrorCode))
	return appendString(dst, r.ErrorMessage)
}

// Decode parses the body.
func (r *AlterClusterMembershipResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(AlterClusterMembership, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage = ""
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	return d.finish()
}
