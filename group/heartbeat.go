package group

import (
	"maps"
	"regexp"
	"slices"
	"time"
)

// Member epochs with a meaning of their own in a heartbeat.
const (
	EpochJoin        int32 = 0  // join (or rejoin after being fenced)
	EpochLeave       int32 = -1 // leave for good
	EpochStaticLeave int32 = -2 // a static member leaves for now, keeping its partitions until its session ends
)

// Heartbeat is a ConsumerGroupHeartbeat request (KIP-848). Fields left nil
// are unchanged since the member's last heartbeat.
type Heartbeat struct {
	GroupID string
	// MemberID is "" or an id of the member's choosing (KIP-1082) when
	// joining: for "" the server issues one.
	MemberID    string
	MemberEpoch int32
	InstanceID  string // static membership; "" none
	RackID      string
	ClientID    string
	ClientHost  string
	// RebalanceTimeout is how long the member may take to revoke; 0 means
	// the configured default.
	RebalanceTimeout time.Duration
	// SubscribedTopicNames and SubscribedTopicRegex: a joining member must
	// give one of them. The regex is RE2, matched against whole topic
	// names; internal topics (names starting "__") never match.
	SubscribedTopicNames []string
	SubscribedTopicRegex *string
	// RegexFilter says which topics the member's regex may give it: the
	// broker's authorizer (Kafka's rule: only topics the member's
	// principal may describe). nil: every topic. It must be safe to call
	// from any goroutine, under the coordinator's lock, for as long as the
	// member stays (each heartbeat replaces it), and cheap: it is asked
	// for every existing topic the regex matches whenever the group's
	// subscription is resolved.
	RegexFilter    func(topic string) bool
	ServerAssignor string // "" unchanged (default uniform)
	// OwnedPartitions is what the member holds now; nil: not reported.
	// A member reports it after it revoked partitions.
	OwnedPartitions []TopicPartitions
}

// HeartbeatResult is the answer to a heartbeat.
type HeartbeatResult struct {
	MemberID          string
	MemberEpoch       int32
	HeartbeatInterval time.Duration
	// Assignment is the partitions the member may consume now (after
	// giving up anything not in it).
	Assignment []TopicPartitions
}

// Heartbeat handles a member's heartbeat at now: join, leave or the
// periodic one, and returns the member's assignment and the records to
// append before answering.
func (c *Coordinator) Heartbeat(now time.Time, req Heartbeat) (HeartbeatResult, []Record, error) {
	c.out = nil
	res, err := c.heartbeat(now, req)
	if err != nil {
		c.out = nil // refusals change nothing
		return HeartbeatResult{MemberEpoch: -1}, nil, err
	}
	return res, c.take(), nil
}

func (c *Coordinator) heartbeat(now time.Time, req Heartbeat) (HeartbeatResult, error) {
	if req.GroupID == "" {
		return HeartbeatResult{}, refuse(ErrInvalidGroupID, "empty group id")
	}
	strs := []string{req.GroupID, req.MemberID, req.InstanceID, req.RackID, req.ClientID, req.ClientHost, req.ServerAssignor}
	if req.SubscribedTopicRegex != nil {
		strs = append(strs, *req.SubscribedTopicRegex)
	}
	for _, t := range req.OwnedPartitions {
		strs = append(strs, t.Topic)
	}
	if err := checkLengths(append(strs, req.SubscribedTopicNames...)...); err != nil {
		return HeartbeatResult{}, err
	}
	var re *regexp.Regexp
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + *req.SubscribedTopicRegex + ")$"); err != nil {
			return HeartbeatResult{}, refuse(ErrInvalidRegularExpression, "%q: %v", *req.SubscribedTopicRegex, err)
		}
	}
	if req.ServerAssignor != "" && req.ServerAssignor != AssignorUniform && req.ServerAssignor != AssignorRange {
		return HeartbeatResult{}, refuse(ErrUnsupportedAssignor, "%q (have %q, %q)", req.ServerAssignor, AssignorUniform, AssignorRange)
	}
	if req.RebalanceTimeout < 0 {
		return HeartbeatResult{}, refuse(ErrInvalidRequest, "negative rebalance timeout")
	}
	switch e := req.MemberEpoch; {
	case e == EpochLeave || e == EpochStaticLeave:
		return c.leave(now, req)
	case e == EpochJoin:
		return c.join(now, req, re)
	case e > 0:
		return c.beat(now, req, re)
	default:
		return HeartbeatResult{}, refuse(ErrInvalidRequest, "member epoch %d", e)
	}
}

func (c *Coordinator) leave(now time.Time, req Heartbeat) (HeartbeatResult, error) {
	g, m, err := c.memberOf(req.GroupID, req.MemberID)
	if err != nil {
		return HeartbeatResult{}, err
	}
	if req.MemberEpoch == EpochStaticLeave && m.instanceID != "" {
		// Kept, partitions and all, until its session ends or its
		// instance comes back: nothing changes.
		return HeartbeatResult{MemberID: m.id, MemberEpoch: EpochStaticLeave}, nil
	}
	c.removeMember(g, m)
	c.updateTarget(g)
	return HeartbeatResult{MemberID: m.id, MemberEpoch: EpochLeave}, nil
}

func (c *Coordinator) join(now time.Time, req Heartbeat, re *regexp.Regexp) (HeartbeatResult, error) {
	g := c.group(req.GroupID, false)
	if len(req.SubscribedTopicNames) == 0 && re == nil {
		return HeartbeatResult{}, refuse(ErrInvalidRequest, "a joining member subscribes to topic names or a regular expression")
	}
	if g != nil && g.classic != nil {
		if g.hasClassicMembers() {
			return HeartbeatResult{}, refuse(ErrGroupIDNotFound, "group %q is a classic group with members, not a consumer group", req.GroupID)
		}
		// An empty classic group becomes a consumer group (its group
		// record, written below, supersedes the classic one on replay).
		if g.classic.stored {
			c.out = append(c.out, Record{Key: classicKey(g.id)})
		}
		g.classic = nil
	}
	if g == nil {
		g = c.group(req.GroupID, true)
	}
	var old *member
	if m := g.members[req.MemberID]; m != nil {
		// Rejoin of a member that lost its state (fenced): it starts over.
		c.removeMember(g, m)
	} else if req.InstanceID != "" {
		for _, m := range g.members {
			if m.instanceID == req.InstanceID {
				old = m
			}
		}
	}
	if old == nil && len(g.members) >= c.cfg.MaxMembers {
		return HeartbeatResult{}, refuse(ErrGroupMaxSizeReached, "group %q has %d members", g.id, len(g.members))
	}
	id := req.MemberID
	if id == "" {
		id = c.cfg.NewMemberID()
	}
	m := &member{id: id, rebalanceTimeout: c.cfg.RebalanceTimeout}
	if old != nil {
		// Static membership: the new instance takes the old one's place,
		// epoch and partitions, and fences the old member id.
		*m = *old
		m.id = id
		assigned, revoking := old.assigned, old.revoking
		g.setHeld(old, nil, nil)
		delete(g.members, old.id)
		c.memberRecord(g, old.id, nil)
		g.members[id] = m
		m.assigned, m.revoking = nil, nil
		g.setHeld(m, assigned, revoking)
	} else {
		g.members[id] = m
		g.epoch++
		c.groupRecord(g)
	}
	return c.update(now, g, m, req, re)
}

func (c *Coordinator) beat(now time.Time, req Heartbeat, re *regexp.Regexp) (HeartbeatResult, error) {
	g, m, err := c.memberOf(req.GroupID, req.MemberID)
	if err != nil {
		return HeartbeatResult{}, err
	}
	if req.MemberEpoch != m.epoch {
		// A member whose last answer was lost still has the previous
		// epoch; it is accepted if it holds nothing it should not.
		lost := req.MemberEpoch == m.prevEpoch && req.OwnedPartitions != nil && subset(setOf(req.OwnedPartitions), m.assigned)
		if !lost {
			return HeartbeatResult{}, refuse(ErrFencedMemberEpoch, "member %q sent epoch %d, its epoch is %d: rejoin with epoch 0", m.id, req.MemberEpoch, m.epoch)
		}
	}
	return c.update(now, g, m, req, re)
}

// update applies what a heartbeat says of the member, then brings the
// target assignment up to date and reconciles the member.
func (c *Coordinator) update(now time.Time, g *consumerGroup, m *member, req Heartbeat, re *regexp.Regexp) (HeartbeatResult, error) {
	changed := false
	if req.SubscribedTopicNames != nil {
		names := slices.Clone(req.SubscribedTopicNames)
		slices.Sort(names)
		names = slices.Compact(names)
		if !slices.Equal(names, m.topicNames) {
			m.topicNames, changed = names, true
		}
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != m.topicRegex {
		m.topicRegex, m.re, changed = *req.SubscribedTopicRegex, re, true
	}
	// The filter is the caller's now (an ACL may have changed since the
	// last heartbeat, or the member is new to this coordinator); what the
	// regex gives the member through it is compared with what it gave at
	// the last heartbeat, so a change moves the group to a new epoch.
	m.filter, m.filtered = req.RegexFilter, req.RegexFilter != nil
	if m.re != nil {
		matched := c.regexTopics(m)
		if !maps.Equal(matched, m.regexMatched) {
			m.regexMatched, changed = matched, true
		}
	}
	if req.ServerAssignor != "" && req.ServerAssignor != m.assignor {
		m.assignor, changed = req.ServerAssignor, true
	}
	info := [...]struct {
		dst *string
		v   string
	}{{&m.instanceID, req.InstanceID}, {&m.rackID, req.RackID}, {&m.clientID, req.ClientID}, {&m.clientHost, req.ClientHost}}
	stored := false
	for _, f := range info {
		if f.v != "" && *f.dst != f.v {
			*f.dst, stored = f.v, true
		}
	}
	if req.RebalanceTimeout > 0 && req.RebalanceTimeout != m.rebalanceTimeout {
		m.rebalanceTimeout, stored = req.RebalanceTimeout, true
	}
	if changed {
		if g.epoch == g.assignmentEpoch {
			g.epoch++
			c.groupRecord(g)
		}
	}
	if changed || stored || req.MemberEpoch == EpochJoin {
		c.memberRecord(g, m.id, m)
	}
	m.sessionEnd = now.Add(c.cfg.SessionTimeout)
	c.updateTarget(g)
	var owned partSet
	if req.OwnedPartitions != nil {
		owned = setOf(req.OwnedPartitions)
	}
	c.reconcile(g, m, owned, now)
	interval := c.cfg.HeartbeatInterval
	if m.state != stateStable || m.epoch != g.assignmentEpoch {
		interval = c.cfg.ReconcileInterval
	}
	return HeartbeatResult{
		MemberID:          m.id,
		MemberEpoch:       m.epoch,
		HeartbeatInterval: interval,
		Assignment:        m.assigned.list(),
	}, nil
}

func subset(a, b partSet) bool {
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// maxString is the longest string the records of the offsets topic hold
// (an int16 length).
const maxString = 1<<15 - 1

func checkLengths(strs ...string) error {
	for _, s := range strs {
		if len(s) > maxString {
			return refuse(ErrInvalidRequest, "a name of %d bytes (at most %d)", len(s), maxString)
		}
	}
	return nil
}

// memberOf finds a member, or refuses with ErrUnknownMemberID.
func (c *Coordinator) memberOf(groupID, memberID string) (*consumerGroup, *member, error) {
	g := c.group(groupID, false)
	if g == nil || g.members[memberID] == nil {
		return nil, nil, refuse(ErrUnknownMemberID, "member %q of group %q", memberID, groupID)
	}
	return g, g.members[memberID], nil
}
