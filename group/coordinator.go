package group

import (
	"crypto/rand"
	"encoding/base64"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Coordinator holds the groups of one offsets partition. See the package
// comment for its contract: not safe for concurrent use, time from the
// caller, changes returned as Records.
type Coordinator struct {
	cfg    Config
	groups map[string]*consumerGroup

	// topics is the broker's view of the topics (name → partitions), set
	// with SetTopics; topicsVersion counts its changes so groups resolve
	// their subscriptions again only after one.
	topics        map[string]int32
	topicsVersion uint64

	out []Record // the records of the call in progress

	// classicVersion counts changes that may complete a classic join or
	// sync (ClassicVersion); joinSeq orders classic joins.
	classicVersion uint64
	joinSeq        int64
	queues         map[string]*queueGroup // queue groups by id (queuegroup.go)
	queueCfgs      map[string]QueueConfig // their own settings (SetQueueConfigs)
}

// New returns an empty Coordinator (a new one, or one to Replay into).
func New(cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg.WithDefaults(), groups: make(map[string]*consumerGroup), topics: map[string]int32{}, queues: map[string]*queueGroup{}}, nil
}

// SetTopics gives the coordinator the cluster's topics and their partition
// counts (the map is kept; the caller must not change it afterwards). A
// group whose subscribed topics changed gets a new epoch at its next
// heartbeat.
func (c *Coordinator) SetTopics(topics map[string]int32) {
	if maps.Equal(topics, c.topics) {
		return
	}
	c.topics = topics
	c.topicsVersion++
}

// memberState is where a member is in its reconciliation.
type memberState int8

const (
	// stable: the member holds its whole target at the group's target epoch.
	stateStable memberState = iota
	// unrevoked: the member must give up the partitions in revoking first;
	// its epoch stays until it reports them gone.
	stateUnrevoked
	// unreleased: at the target epoch, but some target partitions are still
	// held by other members; they come as those members revoke them.
	stateUnreleased
)

func (s memberState) String() string {
	switch s {
	case stateUnrevoked:
		return "unrevoked-partitions"
	case stateUnreleased:
		return "unreleased-partitions"
	}
	return "stable"
}

type member struct {
	id         string
	instanceID string
	rackID     string
	clientID   string
	clientHost string
	topicNames []string // sorted
	topicRegex string
	re         *regexp.Regexp // compiled topicRegex; nil when none
	// filter is the last heartbeat's RegexFilter (filtered: it had one;
	// both are lost on replay, until the member's next heartbeat), and
	// regexMatched what the regex gave through it then.
	filter           func(topic string) bool
	filtered         bool
	regexMatched     map[string]bool
	assignor         string
	rebalanceTimeout time.Duration

	epoch     int32
	prevEpoch int32
	state     memberState
	assigned  partSet // what the member holds
	revoking  partSet // what it must give up (stateUnrevoked)
	target    partSet // its part of the group's target assignment

	sessionEnd     time.Time
	revokeDeadline time.Time
}

type offsetValue struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitTime  time.Time
}

type consumerGroup struct {
	id              string
	epoch           int32
	assignmentEpoch int32
	members         map[string]*member
	owners          map[tp]string // partition → member holding it (assigned or revoking)
	offsets         map[tp]offsetValue

	stored bool // a group record is in the log (so deleting writes a tombstone)

	// classic is set for a classic-protocol group (classic.go); its
	// members are there, and members above stays empty.
	classic *classicGroup

	// subscribed is the resolved subscription at the group epoch: each
	// subscribed topic and its partitions; resolvedAt is the topics
	// version it was computed at.
	subscribed map[string]int32
	resolvedAt uint64
}

func (c *Coordinator) group(id string, create bool) *consumerGroup {
	g := c.groups[id]
	if g == nil && create {
		g = &consumerGroup{id: id, members: map[string]*member{}, owners: map[tp]string{}, offsets: map[tp]offsetValue{}}
		c.groups[id] = g
	}
	return g
}

// setHeld changes what m holds, keeping g.owners true.
func (g *consumerGroup) setHeld(m *member, assigned, revoking partSet) {
	for k := range m.assigned {
		if g.owners[k] == m.id {
			delete(g.owners, k)
		}
	}
	for k := range m.revoking {
		if g.owners[k] == m.id {
			delete(g.owners, k)
		}
	}
	m.assigned, m.revoking = assigned, revoking
	for k := range assigned {
		g.owners[k] = m.id
	}
	for k := range revoking {
		g.owners[k] = m.id
	}
}

func (c *Coordinator) removeMember(g *consumerGroup, m *member) {
	g.setHeld(m, nil, nil)
	delete(g.members, m.id)
	c.memberRecord(g, m.id, nil)
	g.epoch++
	c.groupRecord(g)
}

// resolve returns the group's subscribed topics now, and whether they
// differ from those of its epoch.
func (c *Coordinator) resolve(g *consumerGroup) (map[string]int32, bool) {
	sub := make(map[string]int32)
	for _, m := range g.members {
		for t := range c.memberTopics(m) {
			sub[t] = c.topics[t]
		}
	}
	return sub, !maps.Equal(sub, g.subscribed)
}

// memberTopics is the set of existing topics m subscribes to.
func (c *Coordinator) memberTopics(m *member) map[string]bool {
	out := make(map[string]bool)
	for _, t := range m.topicNames {
		if _, ok := c.topics[t]; ok {
			out[t] = true
		}
	}
	for t := range c.regexTopics(m) {
		out[t] = true
	}
	return out
}

// regexTopics is the set of existing topics m's regex gives it: those it
// matches (never an internal one) that its filter allows. With
// Config.RegexNeedsFilter, a member that has not heartbeated since this
// coordinator loaded it has no filter yet and gets none.
func (c *Coordinator) regexTopics(m *member) map[string]bool {
	out := make(map[string]bool)
	if m.re == nil || (c.cfg.RegexNeedsFilter && !m.filtered) {
		return out
	}
	for t := range c.topics {
		if !strings.HasPrefix(t, "__") && m.re.MatchString(t) && (m.filter == nil || m.filter(t)) {
			out[t] = true
		}
	}
	return out
}

// updateTarget bumps the group epoch if the subscribed topics changed and
// recomputes the target assignment if the epoch moved past it.
func (c *Coordinator) updateTarget(g *consumerGroup) {
	if g.resolvedAt != c.topicsVersion || g.subscribed == nil || g.epoch > g.assignmentEpoch {
		sub, changed := c.resolve(g)
		g.resolvedAt = c.topicsVersion
		// A group just replayed has no resolution yet: its stored target
		// is for the topics of its epoch, so the first one bumps nothing.
		if changed && g.subscribed != nil && g.epoch == g.assignmentEpoch && len(g.members) > 0 {
			g.epoch++
		}
		g.subscribed = sub
	}
	if g.epoch <= g.assignmentEpoch {
		return
	}
	ids := slices.Sorted(maps.Keys(g.members))
	in := make([]assignMember, 0, len(ids))
	name := DefaultAssignor
	for _, id := range ids {
		m := g.members[id]
		in = append(in, assignMember{id: id, topics: c.memberTopics(m), prev: m.target})
		if m.assignor != "" {
			name = m.assignor
		}
	}
	target := assign(name, in, g.subscribed)
	for _, id := range ids {
		m := g.members[id]
		if !target[id].equal(m.target) {
			m.target = target[id]
			c.memberRecord(g, id, m)
		}
	}
	g.assignmentEpoch = g.epoch
	c.groupRecord(g)
}

// reconcile moves m toward its target (see the package comment). owned is
// what the member reported holding (nil: not reported).
func (c *Coordinator) reconcile(g *consumerGroup, m *member, owned partSet, now time.Time) {
	before := struct {
		epoch int32
		state memberState
		n, r  int
	}{m.epoch, m.state, len(m.assigned), len(m.revoking)}
	if m.state == stateUnrevoked {
		if owned == nil || intersects(owned, m.revoking) {
			return
		}
		g.setHeld(m, m.assigned, nil)
		m.state = stateStable
	}
	if m.epoch != g.assignmentEpoch || m.state != stateStable {
		retained, revoke := make(partSet), make(partSet)
		for k := range m.assigned {
			if _, ok := m.target[k]; ok {
				retained[k] = struct{}{}
			} else {
				revoke[k] = struct{}{}
			}
		}
		if len(revoke) > 0 {
			g.setHeld(m, retained, revoke)
			m.state = stateUnrevoked
			m.revokeDeadline = now.Add(m.rebalanceTimeout)
		} else {
			waiting := false
			for k := range m.target {
				if _, ok := retained[k]; ok {
					continue
				}
				if o, held := g.owners[k]; held && o != m.id {
					waiting = true
					continue
				}
				retained[k] = struct{}{}
			}
			g.setHeld(m, retained, nil)
			if m.epoch != g.assignmentEpoch {
				m.prevEpoch, m.epoch = m.epoch, g.assignmentEpoch
			}
			m.state = stateStable
			if waiting {
				m.state = stateUnreleased
			}
		}
	}
	if before.epoch != m.epoch || before.state != m.state || before.n != len(m.assigned) || before.r != len(m.revoking) {
		c.memberRecord(g, m.id, m)
	}
}

func intersects(a, b partSet) bool {
	for k := range b {
		if _, ok := a[k]; ok {
			return true
		}
	}
	return false
}

func randomMemberID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Tick runs the timers at now: members whose session ended or who did not
// revoke within their rebalance timeout are removed, and offsets of empty
// groups older than the retention expire. It returns the records to
// append.
func (c *Coordinator) Tick(now time.Time) []Record {
	c.out = nil
	for _, id := range slices.Sorted(maps.Keys(c.groups)) {
		g := c.groups[id]
		for _, mid := range slices.Sorted(maps.Keys(g.members)) {
			m := g.members[mid]
			if now.After(m.sessionEnd) || m.state == stateUnrevoked && now.After(m.revokeDeadline) {
				c.removeMember(g, m)
			}
		}
		if len(g.members) > 0 {
			c.updateTarget(g)
		}
		if g.classic != nil {
			c.tickClassic(now, g)
		}
		c.expireOffsets(g, now)
		if len(g.members) == 0 && len(g.offsets) == 0 && !g.hasClassicMembers() {
			c.dropGroup(g)
		}
	}
	return c.take()
}

// expireOffsets removes the offsets committed OffsetsRetention ago or
// earlier that the group no longer needs: all of them while it has no
// members, else those of topics it does not subscribe to (Kafka's rule,
// KIP-496).
func (c *Coordinator) expireOffsets(g *consumerGroup, now time.Time) {
	if g.hasClassicMembers() {
		return // its subscriptions are opaque (the members' metadata): all are needed
	}
	var expired []tp
	for k, v := range g.offsets {
		if now.Sub(v.commitTime) < c.cfg.OffsetsRetention {
			continue
		}
		if _, subscribed := g.subscribed[k.topic]; len(g.members) == 0 || !subscribed {
			expired = append(expired, k)
		}
	}
	sortTPs(expired)
	for _, k := range expired {
		delete(g.offsets, k)
		c.offsetRecord(g.id, k, nil)
	}
}

func keysOf(m map[tp]offsetValue) map[tp]struct{} {
	out := make(map[tp]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

// dropGroup forgets an empty group with no offsets.
func (c *Coordinator) dropGroup(g *consumerGroup) {
	if g.classic != nil && g.classic.stored {
		c.out = append(c.out, Record{Key: classicKey(g.id)})
	}
	if g.stored {
		c.out = append(c.out, Record{Key: groupKey(g.id)})
	}
	delete(c.groups, g.id)
}

// take returns the records of the call and forgets them.
func (c *Coordinator) take() []Record {
	out := c.out
	c.out = nil
	return out
}

// groupRecord queues g's group record.
func (c *Coordinator) groupRecord(g *consumerGroup) {
	g.stored = true
	c.out = append(c.out, Record{Key: groupKey(g.id), Value: groupValue(g)})
}

// memberRecord queues a member's record; nil m writes its tombstone.
func (c *Coordinator) memberRecord(g *consumerGroup, id string, m *member) {
	var v []byte
	if m != nil {
		v = memberValue(m)
	}
	c.out = append(c.out, Record{Key: memberKey(g.id, id), Value: v})
}

// offsetRecord queues an offset commit record; nil v writes its tombstone.
func (c *Coordinator) offsetRecord(groupID string, k tp, v *offsetValue) {
	var val []byte
	if v != nil {
		val = offsetValueBytes(*v)
	}
	c.out = append(c.out, Record{Key: offsetKey(groupID, k.topic, k.part), Value: val})
}

// hasClassicMembers reports whether g is a classic group with members (or
// member ids given out and not yet used).
func (g *consumerGroup) hasClassicMembers() bool {
	return g.classic != nil && (len(g.classic.members) > 0 || len(g.classic.pending) > 0)
}
