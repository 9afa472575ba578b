package controller

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Group configs: settings of one group, by group id, kept in the metadata
// (Metadata.GroupConfigs, explicit values only) as Kafka keeps them
// (KIP-848's GROUP config resource, type 32; KIP-932's share.* keys).
// Today every key is a queue group's (docs/queues.md); a group without
// a key set has the brokers' value (group.Config.Queue, whose defaults
// are the Default of each key here).
//
// The bounds are constants, not broker flags: they are checked in Apply,
// which must decide the same on every replica of the controller.
const (
	// ConfigQueueLeaseMs is how long a member holds a record it received
	// before it is delivered again (Kafka's share.record.lock.duration.ms).
	ConfigQueueLeaseMs = "queue.lease.ms"
	// ConfigQueueMaxDeliveryAttempts is how many times a record is
	// delivered before it is dead-lettered (Kafka's
	// share.delivery.count.limit).
	ConfigQueueMaxDeliveryAttempts = "queue.max.delivery.attempts"
	// ConfigQueueBackoffMs is a comma list of delays (ms) before the 2nd,
	// 3rd, ... delivery of a record; the last repeats. Empty: at once.
	ConfigQueueBackoffMs = "queue.backoff.ms"
	// ConfigQueueMaxInFlight caps the records of a partition the group
	// holds between its window's start and end.
	ConfigQueueMaxInFlight = "queue.max.in.flight"
	// ConfigQueueDLQTopic names the topic the group's dead letters go to,
	// from every topic it reads. Empty: <topic>.dlq.
	ConfigQueueDLQTopic = "queue.dlq.topic"
)

// Bounds of the queue group configs, and why.
const (
	// MinQueueLease: a waiting receive looks every 20 ms and the window
	// of an acquisition is written with acks=all (milliseconds, more
	// under load) before the member sees a record; below a second those
	// costs become a sizeable part of the lease and members lose leases
	// to ordinary jitter. Kafka's floor is 15 s, for the poll loop of
	// its Java client; sluice's clients renew on request.
	MinQueueLease = time.Second
	// MaxQueueLease: a record held past its processing time by a member
	// that died blocks its window's start that long (and with it, at the
	// cap, the partition); work that takes longer renews its lease.
	MaxQueueLease = time.Hour
	// MaxQueueDeliveryAttempts bounds the retries of a poison record.
	// The floor is 1 (no redelivery: a record released, or whose lease
	// ran out, goes to the dead letters), where Kafka's is 2.
	MaxQueueDeliveryAttempts = 100
	// MaxQueueBackoff bounds one backoff delay; MaxQueueBackoffSteps the
	// list.
	MaxQueueBackoff      = time.Hour
	MaxQueueBackoffSteps = 32
	// MaxQueueInFlight bounds the window: the coordinator writes a
	// partition's whole window (about 3 bytes a record at worst) with
	// every acquisition and outcome, so 10,000 keeps one write of several
	// partitions far below the offsets topic's max.message.bytes.
	MaxQueueInFlight = 10000
	// MaxGroupIDLen bounds the id of a group with configs.
	MaxGroupIDLen = 255
	// MaxGroupsWithConfigs bounds Metadata.GroupConfigs, which every
	// broker holds in memory and every snapshot carries.
	MaxGroupsWithConfigs = 100000
)

var groupConfigDefs = map[string]ConfigDef{
	ConfigQueueLeaseMs: {Key: ConfigQueueLeaseMs, Default: "30000",
		Doc:  "how long a member holds a record it received (ms) before it is delivered again; 1000 to 3600000 (1 s to 1 h)",
		kind: kindInt, min: MinQueueLease.Milliseconds(), max: MaxQueueLease.Milliseconds()},
	ConfigQueueMaxDeliveryAttempts: {Key: ConfigQueueMaxDeliveryAttempts, Default: "5",
		Doc:  "deliveries of a record before it is archived and copied to the dead-letter topic; 1 to 100",
		kind: kindInt, min: 1, max: MaxQueueDeliveryAttempts},
	ConfigQueueBackoffMs: {Key: ConfigQueueBackoffMs, Default: "",
		Doc:  "comma list of delays (ms) before the 2nd, 3rd, ... delivery of a record, the last repeating (e.g. 1000,5000,30000); empty: at once; at most 32 delays of at most 3600000",
		kind: kindDurations},
	ConfigQueueMaxInFlight: {Key: ConfigQueueMaxInFlight, Default: "2000",
		Doc:  "records of a partition between the window's start (the oldest not settled) and its end; past it no new record is delivered (describe shows AT-CAP); 1 to 10000",
		kind: kindInt, min: 1, max: MaxQueueInFlight},
	ConfigQueueDLQTopic: {Key: ConfigQueueDLQTopic, Default: "",
		Doc:  "the topic the group's dead letters go to (created on first use), from every topic it reads; empty: <topic>.dlq",
		kind: kindTopic},
}

// groupConfigAliases maps Kafka's share-group config names (KIP-932) to
// sluice's keys: either name sets and describes the same value.
var groupConfigAliases = map[string]string{
	"share.record.lock.duration.ms": ConfigQueueLeaseMs,
	"share.delivery.count.limit":    ConfigQueueMaxDeliveryAttempts,
}

// GroupConfigDefs returns every group config key with its default and
// doc, sorted by key.
func GroupConfigDefs() []ConfigDef {
	defs := slices.Collect(maps.Values(groupConfigDefs))
	sort.Slice(defs, func(i, j int) bool { return defs[i].Key < defs[j].Key })
	return defs
}

// GroupConfigAliases returns Kafka's names of group config keys, by key.
func GroupConfigAliases() map[string]string {
	out := make(map[string]string, len(groupConfigAliases))
	for alias, key := range groupConfigAliases {
		out[key] = alias
	}
	return out
}

// GroupConfigKey returns the key a group config name stands for: name
// itself, or the key of a Kafka alias.
func GroupConfigKey(name string) string {
	if k, ok := groupConfigAliases[name]; ok {
		return k
	}
	return name
}

// NormalizeGroupConfigs checks a group config change and returns it with
// Kafka's aliases replaced by sluice's keys: the group id is valid, every
// key known, every value valid, no key set twice (under both names) or
// both set and removed.
func NormalizeGroupConfigs(group string, set map[string]string, remove []string) (map[string]string, []string, error) {
	if group == "" || len(group) > MaxGroupIDLen {
		return nil, nil, fmt.Errorf("%w: group id of %d bytes: want 1 to %d", ErrInvalidConfig, len(group), MaxGroupIDLen)
	}
	var nset map[string]string
	if len(set) > 0 {
		nset = make(map[string]string, len(set))
	}
	for _, name := range sortedKeys(set) {
		k := GroupConfigKey(name)
		if _, dup := nset[k]; dup {
			return nil, nil, fmt.Errorf("%w: group %q: %s set twice (as %s and its alias)", ErrInvalidConfig, group, k, k)
		}
		if err := validateIn(groupConfigDefs, k, set[name]); err != nil {
			return nil, nil, fmt.Errorf("group %q: %w", group, err)
		}
		nset[k] = set[name]
	}
	var nremove []string
	for _, name := range remove {
		k := GroupConfigKey(name)
		if _, ok := groupConfigDefs[k]; !ok {
			return nil, nil, fmt.Errorf("%w: group %q: unknown key %q", ErrInvalidConfig, group, name)
		}
		if _, both := nset[k]; both {
			return nil, nil, fmt.Errorf("%w: group %q: %s both set and removed", ErrInvalidConfig, group, k)
		}
		nremove = append(nremove, k)
	}
	return nset, nremove, nil
}

// ParseQueueBackoff parses a ConfigQueueBackoffMs value: comma-separated
// delays in milliseconds, each from 0 to MaxQueueBackoff, at most
// MaxQueueBackoffSteps of them; "" is none.
func ParseQueueBackoff(v string) ([]time.Duration, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) > MaxQueueBackoffSteps {
		return nil, fmt.Errorf("%w: %s: %d delays, at most %d", ErrInvalidConfig, ConfigQueueBackoffMs, len(parts), MaxQueueBackoffSteps)
	}
	out := make([]time.Duration, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || n < 0 || n > MaxQueueBackoff.Milliseconds() {
			return nil, fmt.Errorf("%w: %s=%q: delay %q: want milliseconds from 0 to %d", ErrInvalidConfig, ConfigQueueBackoffMs, v, p, MaxQueueBackoff.Milliseconds())
		}
		out[i] = time.Duration(n) * time.Millisecond
	}
	return out, nil
}

// GroupConfig returns the value of key set for group, and whether it is
// set (else the caller's default applies).
func (m *Metadata) GroupConfig(group, key string) (string, bool) {
	v, ok := m.GroupConfigs[group][GroupConfigKey(key)]
	return v, ok
}

// AlterGroupConfigs sets a group's config keys and removes others (back
// to the brokers' values); Set is applied before Remove. Kafka's aliases
// are accepted and stored under sluice's keys. A group left with no key
// leaves Metadata.GroupConfigs. New in CommandVersion 8.
type AlterGroupConfigs struct {
	Group  string
	Set    map[string]string
	Remove []string
}

// Kind implements Command.
func (AlterGroupConfigs) Kind() CommandKind { return KindAlterGroupConfigs }

func (c AlterGroupConfigs) appendBody(b []byte) []byte {
	b = appendString(b, c.Group)
	return appendStringSet(appendConfigs(b, c.Set), c.Remove)
}

func applyAlterGroupConfigs(m *Metadata, c AlterGroupConfigs) (*Metadata, error) {
	set, remove, err := NormalizeGroupConfigs(c.Group, c.Set, c.Remove)
	if err != nil {
		return nil, err
	}
	old, had := m.GroupConfigs[c.Group]
	if !had && len(set) > 0 && len(m.GroupConfigs) >= MaxGroupsWithConfigs {
		return nil, fmt.Errorf("%w: group %q: %d groups have configs, the most allowed", ErrInvalidConfig, c.Group, MaxGroupsWithConfigs)
	}
	cfg := alterConfigs(maps.Clone(old), set, remove)
	if !had && cfg == nil {
		return m, nil // nothing set, nothing to remove
	}
	n := edit(m)
	n.GroupConfigs = maps.Clone(m.GroupConfigs)
	if cfg == nil {
		delete(n.GroupConfigs, c.Group)
		if len(n.GroupConfigs) == 0 {
			n.GroupConfigs = nil
		}
	} else {
		if n.GroupConfigs == nil {
			n.GroupConfigs = map[string]map[string]string{}
		}
		n.GroupConfigs[c.Group] = cfg
	}
	return n, nil
}

// appendGroupConfigs writes Metadata.GroupConfigs by group id: a count,
// then each id and its configs.
func appendGroupConfigs(b []byte, m *Metadata) []byte {
	ids := slices.Sorted(maps.Keys(m.GroupConfigs))
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = appendConfigs(appendString(b, id), m.GroupConfigs[id])
	}
	return b
}

// decodeGroupConfigs reads what appendGroupConfigs wrote (snapshot
// version 8), refusing ids out of order and empty configs, so there is
// one encoding.
func decodeGroupConfigs(d *decoder, m *Metadata) {
	// An entry is at least 2 bytes: id length, config count.
	n := d.count(2)
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		id, cfg := d.string(), d.configs()
		if d.err != nil {
			return
		}
		if i > 0 && id <= prev || len(cfg) == 0 {
			d.fail("group configs of %q: after %q, or empty", id, prev)
			return
		}
		prev = id
		if m.GroupConfigs == nil {
			m.GroupConfigs = make(map[string]map[string]string, n)
		}
		m.GroupConfigs[id] = cfg
	}
}
