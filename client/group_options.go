package client

import (
	"fmt"
	"regexp"
	"time"
)

// groupConfig is a ConsumerGroup's configuration; read-only after New.
type groupConfig struct {
	id                 string
	topics             []string
	regex              string
	instanceID         string
	rackID             string
	assignor           string
	rebalanceTimeout   time.Duration
	autoCommit         bool
	autoCommitInterval time.Duration
	reset              Offset
	onAssigned         func([]TopicPartition)
	onRevoked          func([]TopicPartition)
	onLost             func([]TopicPartition)
}

// Defaults of the group options.
const (
	DefaultAutoCommitInterval = 5 * time.Second
	DefaultRebalanceTimeout   = 5 * time.Minute
)

// GroupOpt configures a ConsumerGroup.
type GroupOpt func(*groupConfig)

// ConsumerGroup makes the Client a member of consumer group id: the
// group's coordinator assigns it partitions of the subscribed topics
// (GroupTopics, GroupTopicRegex; at least one is required), Poll returns
// their records, and offsets are committed to the group — automatically
// (AutoCommit, the default) or with Commit, CommitRecords and
// CommitOffsets.
//
// The member joins in the background from New on, heartbeats at the
// interval the coordinator gives, and leaves the group on Close. See
// group.go's comment, and docs/client-groups.md, for the delivery guarantee
// (at least once) and what each commit covers.
func ConsumerGroup(id string, opts ...GroupOpt) Opt {
	return func(c *config) {
		g := &groupConfig{id: id, autoCommit: true, autoCommitInterval: DefaultAutoCommitInterval,
			rebalanceTimeout: DefaultRebalanceTimeout, reset: AtEnd()}
		for _, o := range opts {
			o(g)
		}
		c.group = g
	}
}

// GroupTopics subscribes to topics by name.
func GroupTopics(topics ...string) GroupOpt {
	return func(g *groupConfig) { g.topics = append(g.topics, topics...) }
}

// GroupTopicRegex subscribes to every topic whose whole name matches the
// RE2 regular expression re, now and as topics are created. Internal
// topics (names starting "__") never match.
func GroupTopicRegex(re string) GroupOpt { return func(g *groupConfig) { g.regex = re } }

// GroupInstanceID makes the member static: a member that closes (which
// then does not leave the group) and comes back with the same instance id
// within the coordinator's session timeout gets its partitions back with
// no reassignment. Default: dynamic.
func GroupInstanceID(id string) GroupOpt { return func(g *groupConfig) { g.instanceID = id } }

// GroupRack names the member's rack, for rack-aware assignors.
func GroupRack(rack string) GroupOpt { return func(g *groupConfig) { g.rackID = rack } }

// GroupAssignor names the server-side assignor ("uniform", "range");
// default the group's.
func GroupAssignor(name string) GroupOpt { return func(g *groupConfig) { g.assignor = name } }

// RebalanceTimeout is how long the member may take to give up a revoked
// partition, and how long the application may go without calling Poll
// before the member leaves the group (Kafka's max.poll.interval.ms): a
// member stuck in processing gives its partitions up (committing what
// was consumed, not what the last Poll returned) and joins again on its
// next Poll. A partition the coordinator takes away is given up inside
// the next Poll, so this also bounds how long its move waits for the
// application. Default 5m.
func RebalanceTimeout(d time.Duration) GroupOpt {
	return func(g *groupConfig) { g.rebalanceTimeout = d }
}

// AutoCommit sets whether the member commits consumed offsets by itself:
// every interval, when a partition is revoked, and on Close. A record is
// consumed once Poll is called again after it was returned (see
// ConsumerGroup). AutoCommit(false, 0) leaves commits to Commit,
// CommitRecords and CommitOffsets. Default on, every 5s.
func AutoCommit(on bool, interval time.Duration) GroupOpt {
	return func(g *groupConfig) { g.autoCommit, g.autoCommitInterval = on, interval }
}

// GroupResetOffset is where a newly assigned partition with no committed
// offset starts: AtStart() or AtEnd() (Kafka's auto.offset.reset
// earliest / latest). Default AtEnd().
func GroupResetOffset(o Offset) GroupOpt { return func(g *groupConfig) { g.reset = o } }

// OnAssigned sets a function called with partitions as the member starts
// consuming them: their committed offsets were looked up, and fetching
// them starts once it returns, so no Poll returns their records before
// it. It runs on the member's own goroutine, which does not heartbeat
// meanwhile: it must return well within the session timeout and must not
// call Commit or Close.
func OnAssigned(fn func([]TopicPartition)) GroupOpt {
	return func(g *groupConfig) { g.onAssigned = fn }
}

// OnRevoked sets a function called with partitions the member gives up,
// after fetching them stopped and, with AutoCommit, their consumed
// offsets were committed, and before the coordinator hears they are
// released. Partitions the coordinator takes away are revoked inside the
// application's next Poll, on its goroutine, as Kafka's
// onPartitionsRevoked: no Poll returns their records once it ran, and it
// may commit them (Commit, CommitOffsets) — their next owner starts
// there. On Close, and when the member leaves after RebalanceTimeout
// without a Poll, it runs on the member's goroutine with the rules of
// OnAssigned (then it must not call Commit).
func OnRevoked(fn func([]TopicPartition)) GroupOpt { return func(g *groupConfig) { g.onRevoked = fn } }

// OnLost sets a function called with partitions the member lost without
// giving them up: the coordinator fenced it or forgot it (another member
// may already own them), or it left the group after RebalanceTimeout
// without a Poll. Nothing was committed for them. Same rules as
// OnAssigned.
func OnLost(fn func([]TopicPartition)) GroupOpt { return func(g *groupConfig) { g.onLost = fn } }

// validate names the first bad group option.
func (g *groupConfig) validate() error {
	bad := func(opt, format string, args ...any) error {
		return fmt.Errorf("client: option ConsumerGroup: %s: %s", opt, fmt.Sprintf(format, args...))
	}
	switch {
	case g.id == "":
		return bad("id", "empty")
	case len(g.topics) == 0 && g.regex == "":
		return bad("GroupTopics", "subscribe to topics by name (GroupTopics) or by a regular expression (GroupTopicRegex)")
	case g.rebalanceTimeout <= 0 || g.rebalanceTimeout.Milliseconds() > 1<<31-1:
		return bad("RebalanceTimeout", "%v, must be positive and fit in i32 milliseconds", g.rebalanceTimeout)
	case g.autoCommit && g.autoCommitInterval <= 0:
		return bad("AutoCommit", "interval %v, must be positive", g.autoCommitInterval)
	case g.reset.kind != offsetStart && g.reset.kind != offsetEnd:
		return bad("GroupResetOffset", "%v, must be AtStart() or AtEnd()", g.reset)
	}
	for _, t := range g.topics {
		if t == "" {
			return bad("GroupTopics", "an empty topic name")
		}
	}
	if g.regex != "" {
		if _, err := regexp.Compile(g.regex); err != nil {
			return bad("GroupTopicRegex", "%q does not compile: %v", g.regex, err)
		}
	}
	return nil
}
