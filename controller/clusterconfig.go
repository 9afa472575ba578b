package controller

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Cluster configs: settings of the whole cluster, kept in the metadata
// (Metadata.Configs, explicit values only) so that every broker and
// every replica of the controller reads the same value. Kafka keeps its
// equivalents as dynamic broker configs at the cluster default.
const (
	// ConfigReassignmentThrottle bounds, in bytes per second, what each
	// broker as a leader serves to the replicas moves add (Kafka's
	// leader.replication.throttled.rate). -1: unlimited.
	ConfigReassignmentThrottle = "reassignment.throttle.bytes.per.sec"
	// ConfigMaxMoves bounds the partitions moving at once in the cluster;
	// moves beyond it are queued (Partition.Queued).
	ConfigMaxMoves = "reassignment.max.moves"
	// ConfigMaxMovesPerBroker bounds the moves at once that add a replica
	// to, or remove one from, each broker.
	ConfigMaxMovesPerBroker = "reassignment.max.moves.per.broker"
	// ConfigAutoBalance is whether the controller moves replicas by
	// itself (autobalance.go): off, on-join (the default), or continuous.
	// A cluster whose metadata has no value for it, including one made
	// before on-join became the default, balances on join.
	ConfigAutoBalance = "auto.balance"
	// ConfigAutoBalanceBrokerDown is how long, in milliseconds, a broker
	// must have been seen not alive before auto.balance=continuous
	// re-creates its replicas on the others.
	ConfigAutoBalanceBrokerDown = "auto.balance.broker.down.ms"
	// ConfigAutoBalanceDiskThreshold is the percentage of its disk above
	// which auto.balance=continuous moves replicas off a broker.
	ConfigAutoBalanceDiskThreshold = "auto.balance.disk.threshold.percent"
	// ConfigBrokersDraining lists, comma-separated, the brokers being
	// drained (sluice cluster drain): no new replica is placed on them
	// (topic creation, partition growth, auto.balance, sluice cluster
	// rebalance), and auto.balance (on-join or continuous) moves their
	// replicas away. Being a cluster config, the mark is in the Raft
	// metadata: it survives a controller failover and outlives the
	// command that set it. sluice cluster remove clears a removed
	// broker's id.
	ConfigBrokersDraining = "brokers.draining"
)

// Values of ConfigAutoBalance.
const (
	AutoBalanceOff        = "off"
	AutoBalanceOnJoin     = "on-join"
	AutoBalanceContinuous = "continuous"
)

var clusterConfigDefs = map[string]ConfigDef{
	ConfigReassignmentThrottle: {Key: ConfigReassignmentThrottle, Default: "52428800",
		Doc: "bytes per second each broker as a leader serves to the replicas partition moves add (50 MiB/s); -1: unlimited", kind: kindInt, min: -1},
	ConfigMaxMoves: {Key: ConfigMaxMoves, Default: "50",
		Doc: "partitions moving at once in the cluster; further moves wait in a queue", kind: kindInt, min: 1},
	ConfigMaxMovesPerBroker: {Key: ConfigMaxMovesPerBroker, Default: "5",
		Doc: "moves at once that add a replica to, or remove one from, each broker; further moves wait in a queue", kind: kindInt, min: 1},
	ConfigAutoBalance: {Key: ConfigAutoBalance, Default: AutoBalanceOnJoin,
		Doc: "on-join (the default): while nothing moves, the controller evens replica and preferred-leader counts across the alive brokers (a broker that joined gets its share); " +
			"continuous: on-join, the replicas of a broker down longer than auto.balance.broker.down.ms are re-created on the alive brokers, and a broker above auto.balance.disk.threshold.percent sheds replicas; off: only operators move partitions",
		kind: kindEnum, enum: []string{AutoBalanceOff, AutoBalanceOnJoin, AutoBalanceContinuous}},
	ConfigAutoBalanceBrokerDown: {Key: ConfigAutoBalanceBrokerDown, Default: "900000",
		Doc: "with auto.balance=continuous, how long (ms) a broker must have been down before its replicas are re-created on the alive brokers (15 min)", kind: kindInt, min: 0},
	ConfigAutoBalanceDiskThreshold: {Key: ConfigAutoBalanceDiskThreshold, Default: "85",
		Doc: "with auto.balance=continuous, the disk usage (percent of the file system of a broker's data directory) above which replicas are moved off it to brokers below it", kind: kindInt, min: 1},
	ConfigBrokersDraining: {Key: ConfigBrokersDraining, Default: "",
		Doc:  "comma-separated ids of the brokers being drained (sluice cluster drain sets it): no new replica is placed on them, and auto.balance (on-join, continuous) moves their replicas away",
		kind: kindBrokerIDs},
}

// ClusterConfigDefs returns every cluster config key with its default and
// doc, sorted by key.
func ClusterConfigDefs() []ConfigDef {
	defs := slices.Collect(maps.Values(clusterConfigDefs))
	sort.Slice(defs, func(i, j int) bool { return defs[i].Key < defs[j].Key })
	return defs
}

// ValidateClusterConfigs checks a cluster config change: every key set or
// removed is known, every value set valid.
func ValidateClusterConfigs(set map[string]string, remove []string) error {
	if err := validateAllIn(clusterConfigDefs, set); err != nil {
		return err
	}
	for _, k := range remove {
		if _, ok := clusterConfigDefs[k]; !ok {
			return fmt.Errorf("%w: unknown key %q", ErrInvalidConfig, k)
		}
	}
	return nil
}

// ClusterConfig returns the cluster's value for key, or its default.
func (m *Metadata) ClusterConfig(key string) string {
	if v, ok := m.Configs[key]; ok {
		return v
	}
	return clusterConfigDefs[key].Default
}

// clusterInt returns an integer cluster config (validated on the way in;
// the default should a stored value not parse).
func (m *Metadata) clusterInt(key string) int64 {
	if n, err := strconv.ParseInt(m.ClusterConfig(key), 10, 64); err == nil {
		return n
	}
	n, _ := strconv.ParseInt(clusterConfigDefs[key].Default, 10, 64)
	return n
}

// AutoBalanceBrokerDown is ConfigAutoBalanceBrokerDown's value.
func (m *Metadata) AutoBalanceBrokerDown() time.Duration {
	return time.Duration(m.clusterInt(ConfigAutoBalanceBrokerDown)) * time.Millisecond
}

// AutoBalanceDiskThreshold is ConfigAutoBalanceDiskThreshold's value as
// a fraction.
func (m *Metadata) AutoBalanceDiskThreshold() float64 {
	return float64(m.clusterInt(ConfigAutoBalanceDiskThreshold)) / 100
}

// DrainingBrokers is ConfigBrokersDraining's value: the ids, sorted,
// without repeats (validated on the way in; an id that does not parse is
// skipped).
func (m *Metadata) DrainingBrokers() []int32 {
	ids, _ := ParseBrokerIDs(m.ClusterConfig(ConfigBrokersDraining))
	return ids
}

// ParseBrokerIDs parses a comma-separated list of broker ids ("" for
// none) into sorted ids without repeats.
func ParseBrokerIDs(s string) ([]int32, error) {
	var ids []int32
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: broker id %q: want an integer from 0", ErrInvalidConfig, f)
		}
		ids = append(ids, int32(n))
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// FormatBrokerIDs is ParseBrokerIDs' inverse: ids, comma-separated.
func FormatBrokerIDs(ids []int32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(int(id))
	}
	return strings.Join(parts, ",")
}

// ReassignmentThrottle is ConfigReassignmentThrottle's value.
func (m *Metadata) ReassignmentThrottle() int64 { return m.clusterInt(ConfigReassignmentThrottle) }

// AlterClusterConfigs sets cluster config keys and removes others (back to
// their defaults); Set is applied before Remove. Raising a move limit
// starts the queued moves that fit. New in CommandVersion 7.
type AlterClusterConfigs struct {
	Set    map[string]string
	Remove []string
}

// Kind implements Command.
func (AlterClusterConfigs) Kind() CommandKind { return KindAlterClusterConfigs }

func (c AlterClusterConfigs) appendBody(b []byte) []byte {
	return appendStringSet(appendConfigs(b, c.Set), c.Remove)
}

func applyAlterClusterConfigs(m *Metadata, c AlterClusterConfigs) (*Metadata, error) {
	if err := ValidateClusterConfigs(c.Set, c.Remove); err != nil {
		return nil, err
	}
	n := edit(m)
	n.Configs = alterConfigs(maps.Clone(m.Configs), c.Set, c.Remove)
	startQueued(n)
	return n, nil
}
