package group

import (
	"maps"
	"slices"
	"time"
)

// The classic group protocol (Kafka's JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup), served to Kafka clients by the same Coordinator and
// offsets as the KIP-848 groups. The members choose a protocol (an
// assignor, for protocol type "consumer") and their leader computes the
// assignment; the coordinator only runs the rebalance barrier and hands
// the leader's assignment out. A group id is either a consumer group
// (KIP-848 members) or a classic one: a JoinGroup to a consumer group
// with members is ErrInconsistentGroupProtocol, a heartbeat joining a
// classic group with members ErrGroupIDNotFound (Kafka's rules with
// migration off); an empty group of either kind becomes the other on
// its first join.
//
// States, as Kafka's:
//
//	Empty ──join──▶ PreparingRebalance ──every member joined, or the
//	rebalance timeout──▶ CompletingRebalance ──leader's SyncGroup──▶ Stable
//
// A join, a leave, a session expiry or a changed subscription in
// CompletingRebalance or Stable starts a new rebalance. Completing one
// bumps the generation; the leader (kept while it stays, else the first
// member to join) receives every member's metadata for the chosen
// protocol. Joins and follower syncs wait: the first call answers "not
// done" and the caller asks again (JoinGroupResult, SyncGroupResult) after
// ClassicVersion changes. Requests carry the generation; a wrong one is
// ErrIllegalGeneration, one during a rebalance ErrRebalanceInProgress.
//
// Persistence: the group (generation, protocol, leader, members with
// their metadata and assignment) is one record (key type 4), written when
// the group is created or converted, when the leader's SyncGroup makes it
// Stable and when it becomes Empty. A new coordinator resumes the last
// written generation in Stable (or Empty), each member with a fresh
// session; a rebalance in progress is not stored, and its members rejoin
// when their generation is refused.

// Classic group states, as Kafka names them.
const (
	ClassicEmpty               = "Empty"
	ClassicPreparingRebalance  = "PreparingRebalance"
	ClassicCompletingRebalance = "CompletingRebalance"
	ClassicStable              = "Stable"
)

// Group types, as ListGroups reports them.
const (
	TypeConsumer = "consumer"
	TypeClassic  = "classic"
)

// ClassicProtocol is one protocol a member supports (an assignor name)
// and its metadata (for protocol type "consumer": the subscription).
type ClassicProtocol struct {
	Name     string
	Metadata []byte
}

// JoinGroup is a classic JoinGroup request.
type JoinGroup struct {
	GroupID    string
	MemberID   string // "" for a new member
	InstanceID string // static membership; "" none
	ClientID   string
	ClientHost string
	// SessionTimeout must be within Config's classic bounds;
	// RebalanceTimeout 0 means SessionTimeout (JoinGroup v0).
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	ProtocolType     string
	Protocols        []ClassicProtocol
	// RequireKnownMemberID (JoinGroup v4+): a new member without an
	// instance id gets its id with ErrMemberIDRequired and joins again
	// with it.
	RequireKnownMemberID bool
	// SkipAssignmentOK (JoinGroup v9+, KIP-814): the member can be told
	// to skip the assignment. A static leader that rejoins a Stable group
	// with the same metadata then keeps the generation, as a static
	// follower does; older members' leaders rebalance instead.
	SkipAssignmentOK bool
}

// ClassicMember is a member as the leader sees it in a JoinGroup answer.
type ClassicMember struct {
	MemberID   string
	InstanceID string
	Metadata   []byte
}

// JoinResult is the answer to a JoinGroup.
type JoinResult struct {
	MemberID     string
	Generation   int32
	ProtocolType string
	Protocol     string
	LeaderID     string
	// Members is every member with its metadata, for the leader only.
	Members []ClassicMember
	// SkipAssignment (KIP-814): the leader rejoined a Stable group and
	// keeps the generation's assignment; Members are for its metadata
	// tracking, not to assign.
	SkipAssignment bool
}

// SyncGroup is a classic SyncGroup request; Assignments are the leader's.
type SyncGroup struct {
	GroupID    string
	MemberID   string
	InstanceID string
	Generation int32
	// CheckProtocol (SyncGroup v5+): ProtocolType and Protocol must be
	// the group's, else ErrInconsistentGroupProtocol.
	CheckProtocol bool
	ProtocolType  string
	Protocol      string
	Assignments   []ClassicAssignment
}

// ClassicAssignment is one member's assignment, opaque to the coordinator.
type ClassicAssignment struct {
	MemberID   string
	Assignment []byte
}

// SyncResult is the answer to a SyncGroup.
type SyncResult struct {
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// ClassicHeartbeat is a classic Heartbeat request.
type ClassicHeartbeat struct {
	GroupID    string
	MemberID   string
	InstanceID string
	Generation int32
}

// LeavingMember is one member of a LeaveGroup: by member id, by instance
// id (static), or both.
type LeavingMember struct {
	MemberID   string
	InstanceID string
}

type classicMember struct {
	id               string
	instanceID       string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []ClassicProtocol
	assignment       []byte

	joined     bool  // sent a JoinGroup in the rebalance in progress
	joinSeq    int64 // order of joining, for choosing a leader
	sessionEnd time.Time
}

type classicGroup struct {
	state             string
	generation        int32
	protocolType      string
	protocol          string
	leader            string
	members           map[string]*classicMember
	pending           map[string]time.Time // member ids given with ErrMemberIDRequired → expiry
	rebalanceDeadline time.Time
	// initialUntil: the first rebalance of an empty group completes no
	// sooner (Config.ClassicInitialRebalanceDelay); zero outside it.
	initialUntil time.Time
	stored       bool // a classic record is in the log
}

func newClassic() *classicGroup {
	return &classicGroup{state: ClassicEmpty, members: map[string]*classicMember{}, pending: map[string]time.Time{}}
}

// ClassicVersion counts the changes of classic groups that may complete a
// waiting JoinGroup or SyncGroup: a caller that got "not done" asks again
// once it moved.
func (c *Coordinator) ClassicVersion() uint64 { return c.classicVersion }

// classicOf returns the classic group of id, converting an empty
// consumer group (or creating the group) when create is set.
func (c *Coordinator) classicOf(id string, create bool) (*consumerGroup, *classicGroup, error) {
	g := c.group(id, false)
	if g != nil && g.classic != nil {
		return g, g.classic, nil
	}
	if !create {
		return g, nil, nil
	}
	if g != nil && len(g.members) > 0 {
		return nil, nil, refuse(ErrInconsistentGroupProtocol, "group %q is a consumer group (KIP-848) with %d members", id, len(g.members))
	}
	if g == nil {
		g = c.group(id, true)
	}
	g.classic = newClassic()
	c.classicRecord(g)
	return g, g.classic, nil
}

// JoinGroup handles a JoinGroup at now. done is false when the member
// waits for the rebalance to complete: ask JoinGroupResult again after
// ClassicVersion changes. With ErrMemberIDRequired the result carries the
// member id to join with.
func (c *Coordinator) JoinGroup(now time.Time, req JoinGroup) (res JoinResult, done bool, recs []Record, err error) {
	c.out = nil
	res, done, err = c.joinGroup(now, req)
	if err != nil {
		c.out = nil
		return res, false, nil, err
	}
	return res, done, c.take(), nil
}

func (c *Coordinator) joinGroup(now time.Time, req JoinGroup) (JoinResult, bool, error) {
	if req.GroupID == "" {
		return JoinResult{}, false, refuse(ErrInvalidGroupID, "empty group id")
	}
	strs := []string{req.GroupID, req.MemberID, req.InstanceID, req.ClientID, req.ClientHost, req.ProtocolType}
	for _, p := range req.Protocols {
		strs = append(strs, p.Name)
	}
	if err := checkLengths(strs...); err != nil {
		return JoinResult{}, false, err
	}
	if req.SessionTimeout < c.cfg.ClassicMinSessionTimeout || req.SessionTimeout > c.cfg.ClassicMaxSessionTimeout {
		return JoinResult{}, false, refuse(ErrInvalidSessionTimeout, "%v, not within [%v, %v]", req.SessionTimeout, c.cfg.ClassicMinSessionTimeout, c.cfg.ClassicMaxSessionTimeout)
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return JoinResult{}, false, refuse(ErrInconsistentGroupProtocol, "a join names a protocol type and at least one protocol")
	}
	if err := c.checkClassicBytes(req); err != nil {
		return JoinResult{}, false, err
	}
	g0 := c.group(req.GroupID, false)
	if g0 != nil && g0.classic == nil && len(g0.members) > 0 {
		return JoinResult{}, false, refuse(ErrInconsistentGroupProtocol, "group %q is a consumer group (KIP-848) with %d members", req.GroupID, len(g0.members))
	}
	if g0 != nil && g0.classic != nil && len(g0.classic.members) > 0 {
		cg := g0.classic
		if req.ProtocolType != cg.protocolType || !cg.supportsAny(req.Protocols, req.MemberID) {
			return JoinResult{}, false, refuse(ErrInconsistentGroupProtocol, "group %q uses protocol type %q with protocols its members share; the join offers none of them", req.GroupID, cg.protocolType)
		}
	}
	if req.MemberID != "" {
		if g0 == nil || g0.classic == nil {
			return JoinResult{}, false, refuse(ErrUnknownMemberID, "member %q of group %q", req.MemberID, req.GroupID)
		}
		cg := g0.classic
		m := cg.members[req.MemberID]
		if m == nil {
			if _, ok := cg.pending[req.MemberID]; ok {
				delete(cg.pending, req.MemberID)
				return c.addClassicMember(now, g0, req.MemberID, req)
			}
			if req.InstanceID != "" && cg.byInstance(req.InstanceID) != nil {
				return JoinResult{}, false, refuse(ErrFencedInstanceID, "instance %q of group %q has another member id", req.InstanceID, req.GroupID)
			}
			return JoinResult{}, false, refuse(ErrUnknownMemberID, "member %q of group %q", req.MemberID, req.GroupID)
		}
		if req.InstanceID != "" && m.instanceID != req.InstanceID {
			return JoinResult{}, false, refuse(ErrFencedInstanceID, "member %q of group %q is instance %q, not %q", m.id, req.GroupID, m.instanceID, req.InstanceID)
		}
		return c.rejoin(now, g0, m, req)
	}
	g, cg, err := c.classicOf(req.GroupID, true)
	if err != nil {
		return JoinResult{}, false, err
	}
	// Kafka's member ids: the instance id (static) or the client id, a
	// dash, a unique part (kgo reads a static leader's from it).
	id := c.cfg.NewMemberID()
	if req.InstanceID != "" {
		id = req.InstanceID + "-" + id
	} else if req.ClientID != "" {
		id = req.ClientID + "-" + id
	}
	if req.InstanceID != "" {
		if old := cg.byInstance(req.InstanceID); old != nil {
			return c.replaceStatic(now, g, old, id, req)
		}
	} else if req.RequireKnownMemberID {
		if len(cg.members)+len(cg.pending) >= c.cfg.MaxMembers {
			return JoinResult{}, false, refuse(ErrGroupMaxSizeReached, "group %q has %d members", g.id, len(cg.members))
		}
		cg.pending[id] = now.Add(req.SessionTimeout)
		return JoinResult{MemberID: id, Generation: -1}, false, refuse(ErrMemberIDRequired, "join again with member id %q", id)
	}
	return c.addClassicMember(now, g, id, req)
}

// checkClassicBytes refuses a join that would take its group's members'
// metadata past ClassicMaxGroupBytes.
func (c *Coordinator) checkClassicBytes(req JoinGroup) error {
	size := 0
	for _, p := range req.Protocols {
		size += len(p.Name) + len(p.Metadata)
	}
	if g := c.group(req.GroupID, false); g != nil && g.classic != nil {
		for _, m := range g.classic.members {
			if m.id == req.MemberID {
				continue
			}
			for _, p := range m.protocols {
				size += len(p.Name) + len(p.Metadata)
			}
			size += len(m.assignment)
		}
	}
	if size > c.cfg.ClassicMaxGroupBytes {
		return refuse(ErrGroupMaxSizeReached, "group %q would hold %d bytes of member metadata, above %d", req.GroupID, size, c.cfg.ClassicMaxGroupBytes)
	}
	return nil
}

// supportsAny reports whether the group's members (but except) all
// support one of protos: the protocol of the next generation must be
// common to all.
func (cg *classicGroup) supportsAny(protos []ClassicProtocol, except string) bool {
	for _, p := range protos {
		all := true
		for _, m := range cg.members {
			if m.id != except && !slices.ContainsFunc(m.protocols, func(q ClassicProtocol) bool { return q.Name == p.Name }) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (cg *classicGroup) byInstance(instanceID string) *classicMember {
	for _, m := range cg.members {
		if m.instanceID == instanceID {
			return m
		}
	}
	return nil
}

func (c *Coordinator) addClassicMember(now time.Time, g *consumerGroup, id string, req JoinGroup) (JoinResult, bool, error) {
	cg := g.classic
	if len(cg.members) >= c.cfg.MaxMembers {
		return JoinResult{}, false, refuse(ErrGroupMaxSizeReached, "group %q has %d members", g.id, len(cg.members))
	}
	first := len(cg.members) == 0 && cg.state == ClassicEmpty
	if len(cg.members) == 0 {
		cg.protocolType = req.ProtocolType
	}
	m := &classicMember{id: id}
	m.update(req, now)
	cg.members[id] = m
	c.prepareRebalance(now, cg)
	if d := c.cfg.ClassicInitialRebalanceDelay; d > 0 && (first || !cg.initialUntil.IsZero()) {
		// Kafka's InitialDelayedJoin: each join extends the delay, up to
		// the rebalance timeout.
		cg.initialUntil = now.Add(d)
		if cg.initialUntil.After(cg.rebalanceDeadline) {
			cg.initialUntil = cg.rebalanceDeadline
		}
	}
	c.markJoined(cg, m)
	c.tryCompleteJoin(now, g)
	return c.joinAnswer(cg, m)
}

func (m *classicMember) update(req JoinGroup, now time.Time) {
	m.instanceID, m.clientID, m.clientHost = req.InstanceID, req.ClientID, req.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	m.protocolType = req.ProtocolType
	m.protocols = make([]ClassicProtocol, len(req.Protocols))
	for i, p := range req.Protocols {
		m.protocols[i] = ClassicProtocol{Name: p.Name, Metadata: slices.Clone(p.Metadata)}
	}
	m.sessionEnd = now.Add(m.sessionTimeout)
}

func (c *Coordinator) markJoined(cg *classicGroup, m *classicMember) {
	if !m.joined {
		c.joinSeq++
		m.joined, m.joinSeq = true, c.joinSeq
	}
}

// rejoin handles a JoinGroup of a known member.
func (c *Coordinator) rejoin(now time.Time, g *consumerGroup, m *classicMember, req JoinGroup) (JoinResult, bool, error) {
	cg := g.classic
	same := slices.EqualFunc(m.protocols, req.Protocols, func(a, b ClassicProtocol) bool {
		return a.Name == b.Name && string(a.Metadata) == string(b.Metadata)
	})
	m.update(req, now)
	switch {
	case cg.state == ClassicPreparingRebalance:
	case same && (m.id != cg.leader || cg.state == ClassicCompletingRebalance):
		// A member whose join answer was lost: the generation stands
		// (Kafka's rule; the leader of a Stable group rebalances, as
		// its join is how a leader asks for one).
		return c.joinAnswer(cg, m)
	default:
		c.prepareRebalance(now, cg)
	}
	c.markJoined(cg, m)
	c.tryCompleteJoin(now, g)
	return c.joinAnswer(cg, m)
}

// replaceStatic gives a static member's place (and assignment) to a new
// member id: the old id is fenced. A follower in a Stable group keeps
// its assignment without a rebalance (KIP-345), and so does its leader
// when it can be told to skip the assignment (KIP-814); otherwise the
// group rebalances.
func (c *Coordinator) replaceStatic(now time.Time, g *consumerGroup, old *classicMember, id string, req JoinGroup) (JoinResult, bool, error) {
	cg := g.classic
	m := &classicMember{id: id, assignment: old.assignment, joined: old.joined, joinSeq: old.joinSeq}
	m.update(req, now)
	delete(cg.members, old.id)
	cg.members[id] = m
	c.classicVersion++
	if cg.leader == old.id {
		cg.leader = id
	}
	// Kafka's rule: the restart stands without a rebalance while the
	// group would still choose its protocol. Its metadata may differ
	// (a restarted member owns nothing); its client compares what it
	// is given with its subscription and rejoins if they disagree.
	keeps := cg.protocol != "" && cg.chooseProtocol() == cg.protocol
	if cg.state == ClassicStable && keeps && (cg.leader != id || req.SkipAssignmentOK) {
		c.classicRecord(g)
		return c.joinAnswer(cg, m)
	}
	if cg.state != ClassicPreparingRebalance {
		c.prepareRebalance(now, cg)
	}
	c.markJoined(cg, m)
	c.tryCompleteJoin(now, g)
	return c.joinAnswer(cg, m)
}

// prepareRebalance starts a rebalance (if none is in progress): every
// member must join again within the longest rebalance timeout.
func (c *Coordinator) prepareRebalance(now time.Time, cg *classicGroup) {
	if cg.state == ClassicPreparingRebalance {
		return
	}
	var timeout time.Duration
	for _, m := range cg.members {
		m.joined = false
		timeout = max(timeout, m.rebalanceTimeout)
	}
	cg.state = ClassicPreparingRebalance
	cg.rebalanceDeadline = now.Add(timeout)
	c.classicVersion++
}

// tryCompleteJoin completes the rebalance in progress once every member
// joined, or at its deadline without those that did not.
func (c *Coordinator) tryCompleteJoin(now time.Time, g *consumerGroup) {
	cg := g.classic
	if cg.state != ClassicPreparingRebalance {
		return
	}
	all := true
	for _, m := range cg.members {
		if !m.joined {
			all = false
		}
	}
	if !all && now.Before(cg.rebalanceDeadline) || now.Before(cg.initialUntil) {
		return
	}
	cg.initialUntil = time.Time{}
	for _, id := range slices.Sorted(maps.Keys(cg.members)) {
		if !cg.members[id].joined {
			delete(cg.members, id)
		}
	}
	cg.generation++
	c.classicVersion++
	if len(cg.members) == 0 {
		cg.state, cg.protocol, cg.leader = ClassicEmpty, "", ""
		c.classicRecord(g)
		return
	}
	if cg.members[cg.leader] == nil {
		var first *classicMember
		for _, m := range cg.members {
			if first == nil || m.joinSeq < first.joinSeq {
				first = m
			}
		}
		cg.leader = first.id
	}
	cg.protocol = cg.chooseProtocol()
	cg.state = ClassicCompletingRebalance
	for _, m := range cg.members {
		m.joined = false
		m.assignment = nil
		m.sessionEnd = now.Add(m.sessionTimeout)
	}
}

// chooseProtocol is Kafka's vote: among the protocols every member
// supports, each member votes for the first of its own list; the most
// votes win, ties going to the leader's preference.
func (cg *classicGroup) chooseProtocol() string {
	leader := cg.members[cg.leader]
	common := func(name string) bool {
		for _, m := range cg.members {
			if !slices.ContainsFunc(m.protocols, func(p ClassicProtocol) bool { return p.Name == name }) {
				return false
			}
		}
		return true
	}
	votes := map[string]int{}
	for _, m := range cg.members {
		for _, p := range m.protocols {
			if common(p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, p := range leader.protocols {
		if votes[p.Name] > votes[best] {
			best = p.Name
		}
	}
	return best
}

// joinAnswer is m's answer: not done while it waits in a rebalance.
func (c *Coordinator) joinAnswer(cg *classicGroup, m *classicMember) (JoinResult, bool, error) {
	res := JoinResult{MemberID: m.id, Generation: cg.generation, ProtocolType: cg.protocolType, Protocol: cg.protocol, LeaderID: cg.leader}
	if cg.state == ClassicPreparingRebalance {
		return res, false, nil
	}
	if m.id == cg.leader {
		// Only replaceStatic answers a leader in Stable.
		res.SkipAssignment = cg.state == ClassicStable
		for _, id := range slices.Sorted(maps.Keys(cg.members)) {
			o := cg.members[id]
			res.Members = append(res.Members, ClassicMember{MemberID: o.id, InstanceID: o.instanceID, Metadata: o.metadataFor(cg.protocol)})
		}
	}
	return res, true, nil
}

func (m *classicMember) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// JoinGroupResult answers a member waiting in JoinGroup: done once the
// rebalance completed (ErrUnknownMemberID if the member was removed).
func (c *Coordinator) JoinGroupResult(groupID, memberID string) (JoinResult, bool, error) {
	_, cg, _ := c.classicOf(groupID, false)
	if cg == nil || cg.members[memberID] == nil {
		return JoinResult{MemberID: memberID, Generation: -1}, false, refuse(ErrUnknownMemberID, "member %q of group %q left the group while joining", memberID, groupID)
	}
	return c.joinAnswer(cg, cg.members[memberID])
}

// member finds a member of a classic group for a request with a
// generation, checking its instance id.
func (c *Coordinator) classicMemberOf(groupID, memberID, instanceID, what string) (*consumerGroup, *classicMember, error) {
	g, cg, _ := c.classicOf(groupID, false)
	if cg == nil {
		return nil, nil, refuse(ErrUnknownMemberID, "%s of member %q: group %q is not a classic group", what, memberID, groupID)
	}
	m := cg.members[memberID]
	if instanceID != "" {
		if o := cg.byInstance(instanceID); o != nil && o.id != memberID {
			return nil, nil, refuse(ErrFencedInstanceID, "%s: instance %q of group %q has another member id", what, instanceID, groupID)
		}
	}
	if m == nil {
		return nil, nil, refuse(ErrUnknownMemberID, "%s of member %q of group %q", what, memberID, groupID)
	}
	return g, m, nil
}

// SyncGroup handles a SyncGroup at now: the leader's stores the
// assignments and makes the group Stable (its record is written); a
// follower's is not done until then (ask SyncGroupResult again after
// ClassicVersion changes).
func (c *Coordinator) SyncGroup(now time.Time, req SyncGroup) (SyncResult, bool, []Record, error) {
	c.out = nil
	res, done, err := c.syncGroup(now, req)
	if err != nil {
		c.out = nil
		return SyncResult{}, false, nil, err
	}
	return res, done, c.take(), nil
}

func (c *Coordinator) syncGroup(now time.Time, req SyncGroup) (SyncResult, bool, error) {
	if req.GroupID == "" {
		return SyncResult{}, false, refuse(ErrInvalidGroupID, "empty group id")
	}
	g, m, err := c.classicMemberOf(req.GroupID, req.MemberID, req.InstanceID, "sync")
	if err != nil {
		return SyncResult{}, false, err
	}
	cg := g.classic
	if req.Generation != cg.generation {
		return SyncResult{}, false, refuse(ErrIllegalGeneration, "sync of member %q at generation %d, the group's is %d", m.id, req.Generation, cg.generation)
	}
	if req.CheckProtocol && (req.ProtocolType != cg.protocolType || req.Protocol != cg.protocol) {
		return SyncResult{}, false, refuse(ErrInconsistentGroupProtocol, "sync names protocol %q/%q, the group's is %q/%q", req.ProtocolType, req.Protocol, cg.protocolType, cg.protocol)
	}
	m.sessionEnd = now.Add(m.sessionTimeout)
	if cg.state == ClassicCompletingRebalance && m.id == cg.leader {
		size := len(classicValue(cg))
		for _, a := range req.Assignments {
			size += len(a.Assignment)
		}
		if size > c.cfg.ClassicMaxGroupBytes {
			return SyncResult{}, false, refuse(ErrInvalidRequest, "group %q with these assignments is %d bytes, above the %d a group may hold", g.id, size, c.cfg.ClassicMaxGroupBytes)
		}
		for _, a := range req.Assignments {
			if o := cg.members[a.MemberID]; o != nil {
				o.assignment = slices.Clone(a.Assignment)
			}
		}
		cg.state = ClassicStable
		c.classicVersion++
		c.classicRecord(g)
	}
	return c.syncAnswer(g, m, req.Generation)
}

func (c *Coordinator) syncAnswer(g *consumerGroup, m *classicMember, generation int32) (SyncResult, bool, error) {
	cg := g.classic
	switch {
	case cg.generation != generation || cg.state == ClassicPreparingRebalance:
		return SyncResult{}, false, refuse(ErrRebalanceInProgress, "group %q is rebalancing", g.id)
	case cg.state == ClassicCompletingRebalance:
		return SyncResult{}, false, nil
	}
	return SyncResult{ProtocolType: cg.protocolType, Protocol: cg.protocol, Assignment: m.assignment}, true, nil
}

// SyncGroupResult answers a follower waiting in SyncGroup.
func (c *Coordinator) SyncGroupResult(groupID, memberID string, generation int32) (SyncResult, bool, error) {
	g, m, err := c.classicMemberOf(groupID, memberID, "", "sync")
	if err != nil {
		return SyncResult{}, false, err
	}
	return c.syncAnswer(g, m, generation)
}

// Heartbeat of a classic member at now: its session is extended; during
// a rebalance the answer is ErrRebalanceInProgress (join again).
func (c *Coordinator) ClassicHeartbeat(now time.Time, req ClassicHeartbeat) error {
	c.out = nil
	if req.GroupID == "" {
		return refuse(ErrInvalidGroupID, "empty group id")
	}
	g, m, err := c.classicMemberOf(req.GroupID, req.MemberID, req.InstanceID, "heartbeat")
	if err != nil {
		return err
	}
	cg := g.classic
	if req.Generation != cg.generation {
		return refuse(ErrIllegalGeneration, "heartbeat of member %q at generation %d, the group's is %d", m.id, req.Generation, cg.generation)
	}
	m.sessionEnd = now.Add(m.sessionTimeout)
	if cg.state == ClassicPreparingRebalance {
		return refuse(ErrRebalanceInProgress, "group %q is rebalancing: join again", g.id)
	}
	return nil
}

// LeaveGroup removes members from a classic group; the result has one
// error per member, in order (nil: left).
func (c *Coordinator) LeaveGroup(now time.Time, groupID string, members []LeavingMember) ([]error, []Record, error) {
	c.out = nil
	if groupID == "" {
		return nil, nil, refuse(ErrInvalidGroupID, "empty group id")
	}
	g, cg, _ := c.classicOf(groupID, false)
	if cg == nil {
		return nil, nil, refuse(ErrUnknownMemberID, "group %q is not a classic group", groupID)
	}
	errs := make([]error, len(members))
	left := false
	for i, lm := range members {
		m := cg.members[lm.MemberID]
		if lm.InstanceID != "" {
			o := cg.byInstance(lm.InstanceID)
			switch {
			case o == nil:
				errs[i] = refuse(ErrUnknownMemberID, "instance %q of group %q", lm.InstanceID, groupID)
				continue
			case lm.MemberID != "" && o.id != lm.MemberID:
				errs[i] = refuse(ErrFencedInstanceID, "instance %q of group %q has another member id", lm.InstanceID, groupID)
				continue
			}
			m = o
		}
		if m == nil {
			if _, ok := cg.pending[lm.MemberID]; ok {
				delete(cg.pending, lm.MemberID)
				continue
			}
			errs[i] = refuse(ErrUnknownMemberID, "member %q of group %q", lm.MemberID, groupID)
			continue
		}
		delete(cg.members, m.id)
		left = true
	}
	if left {
		c.membersLeft(now, g)
	}
	return errs, c.take(), nil
}

// membersLeft rebalances a group after members left or expired.
func (c *Coordinator) membersLeft(now time.Time, g *consumerGroup) {
	cg := g.classic
	c.classicVersion++
	if cg.state != ClassicPreparingRebalance {
		if len(cg.members) == 0 && cg.state == ClassicEmpty {
			return
		}
		c.prepareRebalance(now, cg)
	}
	c.tryCompleteJoin(now, g)
}

// tickClassic runs a classic group's timers: expired sessions (of
// members not waiting in a join), expired pending member ids, the
// rebalance deadline.
func (c *Coordinator) tickClassic(now time.Time, g *consumerGroup) {
	cg := g.classic
	for id, exp := range cg.pending {
		if now.After(exp) {
			delete(cg.pending, id)
		}
	}
	expired := false
	for _, id := range slices.Sorted(maps.Keys(cg.members)) {
		m := cg.members[id]
		waiting := m.joined && cg.state == ClassicPreparingRebalance
		if !waiting && now.After(m.sessionEnd) {
			delete(cg.members, id)
			expired = true
		}
	}
	if expired {
		c.membersLeft(now, g)
	}
	c.tryCompleteJoin(now, g)
}

// classicFence checks an offset commit to a classic group (Kafka's
// validateOffsetCommit): without a generation only while the group is
// Empty; else a member at the current generation, outside a rebalance's
// completion.
func (c *Coordinator) classicFence(g *consumerGroup, memberID, instanceID string, generation int32) error {
	cg := g.classic
	if generation < 0 && cg.state == ClassicEmpty {
		return nil
	}
	if generation >= 0 || memberID != "" || instanceID != "" {
		_, m, err := c.classicMemberOf(g.id, memberID, instanceID, "commit")
		if err != nil {
			return err
		}
		if generation != cg.generation {
			return refuse(ErrIllegalGeneration, "commit of member %q at generation %d, the group's is %d", m.id, generation, cg.generation)
		}
	} else if cg.state != ClassicEmpty {
		return refuse(ErrUnknownMemberID, "group %q has members: a commit without a member id is refused", g.id)
	}
	if cg.state == ClassicCompletingRebalance {
		return refuse(ErrRebalanceInProgress, "group %q is completing a rebalance", g.id)
	}
	return nil
}

// ClassicDescription is a classic group as DescribeGroups shows it.
type ClassicDescription struct {
	GroupID      string
	State        string
	Generation   int32
	ProtocolType string
	Protocol     string
	Leader       string
	Members      []ClassicMemberDescription
}

// ClassicMemberDescription is one member of a ClassicDescription.
type ClassicMemberDescription struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	Metadata   []byte // for the group's protocol
	Assignment []byte
}

// DescribeClassic describes a classic group: ErrGroupIDNotFound if there
// is no group, ok false for a consumer (KIP-848) group.
func (c *Coordinator) DescribeClassic(id string) (ClassicDescription, bool, error) {
	g := c.group(id, false)
	if g == nil {
		return ClassicDescription{}, false, refuse(ErrGroupIDNotFound, "%q", id)
	}
	cg := g.classic
	if cg == nil {
		return ClassicDescription{}, false, nil
	}
	d := ClassicDescription{GroupID: id, State: cg.state, Generation: cg.generation, ProtocolType: cg.protocolType, Protocol: cg.protocol, Leader: cg.leader}
	for _, mid := range slices.Sorted(maps.Keys(cg.members)) {
		m := cg.members[mid]
		md := ClassicMemberDescription{MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost, Assignment: m.assignment}
		if cg.state != ClassicPreparingRebalance {
			md.Metadata = m.metadataFor(cg.protocol)
		}
		d.Members = append(d.Members, md)
	}
	return d, true, nil
}

// classicRecord queues the classic record of g.
func (c *Coordinator) classicRecord(g *consumerGroup) {
	g.classic.stored = true
	c.out = append(c.out, Record{Key: classicKey(g.id), Value: classicValue(g.classic)})
}
