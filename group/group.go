// Package group holds the group coordinators as state machines: the
// consumer group of KIP-848 (server-side assignment, member epochs,
// per-member reconciliation) and its committed offsets (this file and
// coordinator.go, heartbeat.go, assignor.go, offsets.go, records.go), and
// a queue group's per-partition window of record states (queue.go, whose
// own comment states its contract).
//
// A Coordinator holds the groups of one partition of the internal offsets
// topic (__consumer_offsets). It is pure and deterministic: every call
// takes the time (`now`) from its caller and it starts no goroutine; the
// broker drives its timers (Tick) from one goroutine it owns, and
// serializes every call (a Coordinator is not safe for concurrent use).
//
// Persistence goes through the caller: every call that changes state that
// must survive a failover returns the Records to append to the offsets
// partition (key/value pairs, records.go). The Coordinator applies a
// change to its memory when it returns the records; the caller appends
// them as leader with acks=all and answers the client only once they are
// committed. If the append fails, the caller drops the Coordinator and
// rebuilds it from the partition (Replay), which is the truth: state the
// log does not hold is never served after a failure.
//
// Rules of the consumer group (docs/groups.md has the protocol):
//   - A member joins with member epoch 0 and gets a member id from the
//     server; it leaves with epoch -1 (a static member with -2, keeping its
//     partitions until its session expires).
//   - The group epoch is bumped on every change of membership,
//     subscriptions or the subscribed topics' partitions; the target
//     assignment is then recomputed by the group's assignor (uniform,
//     sticky, or range) at that epoch.
//   - Each member is reconciled on its own heartbeat: partitions it must
//     give up are revoked first (its epoch stays); once it reports them
//     gone it moves to the target epoch and receives the partitions no
//     other member still holds. A partition is never held by two members.
//     Members the change does not affect keep their partitions.
//   - A member that does not heartbeat within the session timeout is
//     removed; one that does not revoke within its rebalance timeout is
//     removed too (fenced).
//   - Offset commits are fenced by the member epoch: an unknown member is
//     ErrUnknownMemberID, an older epoch ErrStaleMemberEpoch, a newer one
//     ErrFencedMemberEpoch (as Kafka); at its epoch a member commits only
//     the partitions it holds, each other one refused alone with
//     ErrStaleMemberEpoch (KIP-1251). A commit with no member (an
//     administrator's) is accepted only by an empty group.
//   - Offsets expire OffsetsRetention after their commit when their group
//     has no members or does not subscribe to their topic; offsets of
//     deleted topics are removed (DeleteTopics).
package group

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultSessionTimeout    = 45 * time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultReconcileInterval = 500 * time.Millisecond
	DefaultRebalanceTimeout  = 5 * time.Minute
	DefaultOffsetsRetention  = 7 * 24 * time.Hour
	DefaultMaxMetadataBytes  = 4096
	DefaultMaxMembers        = 1000
	DefaultMaxQueueGroups    = 1000
	DefaultAssignor          = AssignorUniform

	DefaultClassicMinSessionTimeout = 6 * time.Second
	DefaultClassicMaxSessionTimeout = 30 * time.Minute
	DefaultClassicMaxGroupBytes     = 1_000_000
	// DefaultClassicInitialRebalanceDelay is Kafka's
	// group.initial.rebalance.delay.ms, what `sluice broker` runs with;
	// Config's zero value has no delay.
	DefaultClassicInitialRebalanceDelay = 3 * time.Second
)

// Config holds the coordinator's timers and bounds. The zero value of a
// field means its default.
type Config struct {
	// SessionTimeout removes a member that has not heartbeated for it
	// (Kafka's group.consumer.session.timeout.ms, 45 s).
	SessionTimeout time.Duration
	// HeartbeatInterval is what members are told to heartbeat at (1 s;
	// Kafka's is 5 s). A member learns that a join or a leave moved its
	// partitions only at its next heartbeat, so joins and leaves take
	// effect within about this long; a heartbeat that changes nothing
	// writes no record, so a short interval costs little.
	HeartbeatInterval time.Duration
	// ReconcileInterval is the heartbeat interval told instead to a member
	// not yet at its target (it has partitions to revoke, or waits for
	// partitions others still hold), so that it reports and receives them
	// soon (500 ms; never above HeartbeatInterval).
	ReconcileInterval time.Duration
	// RebalanceTimeout is the time a member has to revoke partitions when it
	// does not give its own (5 min, the client's max.poll.interval.ms).
	RebalanceTimeout time.Duration
	// OffsetsRetention is how long the offsets of an empty group are kept
	// after their commit (offsets.retention.minutes, 7 days).
	OffsetsRetention time.Duration
	// MaxMetadataBytes bounds a committed offset's metadata string
	// (offset.metadata.max.bytes, 4096).
	MaxMetadataBytes int
	// MaxMembers bounds the members of one group (1000).
	MaxMembers int
	// NewMemberID issues member ids; nil means 16 random bytes, base64url.
	NewMemberID func() string
	// ClassicMinSessionTimeout and ClassicMaxSessionTimeout bound the
	// session timeout a classic member asks for (Kafka's
	// group.min.session.timeout.ms and group.max.session.timeout.ms:
	// 6 s and 30 min).
	ClassicMinSessionTimeout time.Duration
	ClassicMaxSessionTimeout time.Duration
	// ClassicMaxGroupBytes bounds what a classic group holds of its
	// members' protocol metadata and assignments (1,000,000): the group
	// is one record of the offsets topic, whose max.message.bytes
	// (1,048,588 by default) it must fit, and its memory is the
	// coordinator's. A join or a leader's sync past it is refused.
	ClassicMaxGroupBytes int
	// ClassicInitialRebalanceDelay delays the first rebalance of an empty
	// classic group so that members starting together join one
	// generation rather than one each (Kafka's
	// group.initial.rebalance.delay.ms): each join during the delay
	// extends it by as much, up to the rebalance timeout. Zero (unlike
	// the other fields) means none: the first join completes as soon as
	// its members have joined.
	ClassicInitialRebalanceDelay time.Duration
	// Queue holds the settings of every queue group (queuegroup.go)
	// that has none of its own (SetQueueConfigs).
	Queue QueueConfig
	// MaxQueueGroups bounds the queue groups one coordinator holds
	// (1000): each holds a window of up to Queue.MaxInFlight records
	// per partition read in memory. A new group past it is refused
	// (AdmitQueueGroup) with GROUP_MAX_SIZE_REACHED.
	MaxQueueGroups int
	// RegexNeedsFilter: a member subscribed by regex is given no topic by
	// it until a heartbeat brings its Heartbeat.RegexFilter. The broker
	// sets it when it authorizes requests: filters are not in the log, so
	// a coordinator that loaded its groups from it would otherwise assign
	// a member topics its principal may not describe until it heartbeats.
	RegexNeedsFilter bool
}

// Validate names the first bad field.
func (c Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"SessionTimeout", c.SessionTimeout}, {"HeartbeatInterval", c.HeartbeatInterval}, {"ReconcileInterval", c.ReconcileInterval}, {"RebalanceTimeout", c.RebalanceTimeout}, {"OffsetsRetention", c.OffsetsRetention},
		{"ClassicMinSessionTimeout", c.ClassicMinSessionTimeout}, {"ClassicMaxSessionTimeout", c.ClassicMaxSessionTimeout},
		{"ClassicInitialRebalanceDelay", c.ClassicInitialRebalanceDelay}} {
		if d.v < 0 {
			return fmt.Errorf("group config: %s %v is negative", d.name, d.v)
		}
	}
	if c.MaxQueueGroups < 0 {
		return fmt.Errorf("group config: MaxQueueGroups %d is negative", c.MaxQueueGroups)
	}
	if c.ClassicMaxGroupBytes < 0 {
		return fmt.Errorf("group config: ClassicMaxGroupBytes %d is negative", c.ClassicMaxGroupBytes)
	}
	if c.MaxMetadataBytes < 0 || c.MaxMetadataBytes > maxString || c.MaxMembers < 0 {
		return fmt.Errorf("group config: MaxMetadataBytes %d must be in [0, %d], MaxMembers %d not negative", c.MaxMetadataBytes, maxString, c.MaxMembers)
	}
	c = c.WithDefaults()
	if c.ClassicMinSessionTimeout > c.ClassicMaxSessionTimeout {
		return fmt.Errorf("group config: ClassicMinSessionTimeout %v is above ClassicMaxSessionTimeout %v", c.ClassicMinSessionTimeout, c.ClassicMaxSessionTimeout)
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("group config: HeartbeatInterval %v must be below SessionTimeout %v", c.HeartbeatInterval, c.SessionTimeout)
	}
	return nil
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	c.ReconcileInterval = min(c.ReconcileInterval, c.HeartbeatInterval)
	if c.OffsetsRetention == 0 {
		c.OffsetsRetention = DefaultOffsetsRetention
	}
	if c.MaxMetadataBytes == 0 {
		c.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if c.MaxMembers == 0 {
		c.MaxMembers = DefaultMaxMembers
	}
	if c.MaxQueueGroups == 0 {
		c.MaxQueueGroups = DefaultMaxQueueGroups
	}
	if c.NewMemberID == nil {
		c.NewMemberID = randomMemberID
	}
	if c.ClassicMinSessionTimeout == 0 {
		c.ClassicMinSessionTimeout = DefaultClassicMinSessionTimeout
	}
	if c.ClassicMaxSessionTimeout == 0 {
		c.ClassicMaxSessionTimeout = DefaultClassicMaxSessionTimeout
	}
	if c.ClassicMaxGroupBytes == 0 {
		c.ClassicMaxGroupBytes = DefaultClassicMaxGroupBytes
	}
	return c
}

// Error is a refusal of the coordinator; the broker maps each to its
// protocol code (Kafka's) with errors.Is. All are definite: nothing was
// changed.
type Error string

func (e Error) Error() string { return string(e) }

// The refusals.
const (
	ErrInvalidGroupID           Error = "invalid group id"
	ErrInvalidRequest           Error = "invalid request"
	ErrUnknownMemberID          Error = "unknown member id"
	ErrFencedMemberEpoch        Error = "fenced member epoch"
	ErrStaleMemberEpoch         Error = "stale member epoch"
	ErrInvalidRegularExpression Error = "invalid regular expression"
	ErrUnsupportedAssignor      Error = "unsupported assignor"
	ErrGroupIDNotFound          Error = "group id not found"
	ErrNonEmptyGroup            Error = "group not empty"
	ErrGroupMaxSizeReached      Error = "group max size reached"
	ErrOffsetMetadataTooLarge   Error = "offset metadata too large"

	// The classic protocol's (classic.go).
	ErrIllegalGeneration         Error = "illegal generation"
	ErrRebalanceInProgress       Error = "rebalance in progress"
	ErrInconsistentGroupProtocol Error = "inconsistent group protocol"
	ErrInvalidSessionTimeout     Error = "invalid session timeout"
	ErrMemberIDRequired          Error = "member id required"
	ErrFencedInstanceID          Error = "fenced instance id"
)

// Errors lists every refusal, for a caller's mapping table to check it
// has them all.
var Errors = []Error{ErrInvalidGroupID, ErrInvalidRequest, ErrUnknownMemberID, ErrFencedMemberEpoch, ErrStaleMemberEpoch,
	ErrInvalidRegularExpression, ErrUnsupportedAssignor, ErrGroupIDNotFound, ErrNonEmptyGroup, ErrGroupMaxSizeReached,
	ErrOffsetMetadataTooLarge, ErrIllegalGeneration, ErrRebalanceInProgress, ErrInconsistentGroupProtocol,
	ErrInvalidSessionTimeout, ErrMemberIDRequired, ErrFencedInstanceID}

// refuse wraps a refusal with its detail, keeping errors.Is on the code.
func refuse(code Error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", code, fmt.Sprintf(format, args...))
}

// TopicPartitions is a set of partitions of one topic, partitions sorted.
type TopicPartitions struct {
	Topic      string
	Partitions []int32
}

// tp is one partition of a topic.
type tp struct {
	topic string
	part  int32
}

// partSet is a set of partitions.
type partSet map[tp]struct{}

func setOf(tps []TopicPartitions) partSet {
	s := make(partSet)
	for _, t := range tps {
		for _, p := range t.Partitions {
			s[tp{t.Topic, p}] = struct{}{}
		}
	}
	return s
}

// list is the set as sorted TopicPartitions.
func (s partSet) list() []TopicPartitions {
	if len(s) == 0 {
		return nil
	}
	byTopic := make(map[string][]int32)
	for k := range s {
		byTopic[k.topic] = append(byTopic[k.topic], k.part)
	}
	out := make([]TopicPartitions, 0, len(byTopic))
	for t, ps := range byTopic {
		slices.Sort(ps)
		out = append(out, TopicPartitions{Topic: t, Partitions: ps})
	}
	slices.SortFunc(out, func(a, b TopicPartitions) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

func (s partSet) equal(o partSet) bool {
	if len(s) != len(o) {
		return false
	}
	for k := range s {
		if _, ok := o[k]; !ok {
			return false
		}
	}
	return true
}
