package controller

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Topic config keys. The names are shared by the CLI (--config key=value),
// the protocol and the docs.
const (
	ConfigRetentionMs       = "retention.ms"
	ConfigRetentionBytes    = "retention.bytes"
	ConfigSegmentBytes      = "segment.bytes"
	ConfigSegmentMs         = "segment.ms"
	ConfigFsync             = "fsync"
	ConfigFsyncIntervalMs   = "fsync.interval.ms"
	ConfigMaxMessageBytes   = "max.message.bytes"
	ConfigMinInsyncReplica  = "min.insync.replicas"
	ConfigUncleanElection   = "unclean.leader.election"
	ConfigUncleanRecovery   = "unclean.recovery.strategy"
	ConfigCleanupPolicy     = "cleanup.policy"
	ConfigMinCompactionLag  = "min.compaction.lag.ms"
	ConfigMaxCompactionLag  = "max.compaction.lag.ms"
	ConfigMinCleanableRatio = "min.cleanable.dirty.ratio"
	ConfigDeleteRetentionMs = "delete.retention.ms"
	// ConfigProducerIDExpirationMs overrides the broker's
	// ProducerIDExpiration for a topic's partitions.
	ConfigProducerIDExpirationMs = "producer.id.expiration.ms"
)

// Values of ConfigCleanupPolicy.
const (
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
	CleanupCompactDelete = "compact,delete"
)

// Values of ConfigFsync.
const (
	FsyncAlways   = "always"
	FsyncInterval = "interval"
)

// Values of ConfigUncleanRecovery: what the controller does with a
// partition none of whose replicas is eligible to lead (R11) once every
// replica of its last ISR is back (see election.go).
const (
	// RecoveryBalanced elects the returned replica with the highest
	// (last leader epoch, end offset), as Kafka's unclean recovery
	// "balanced" strategy does, and says how many committed offsets it
	// may lack.
	RecoveryBalanced = "balanced"
	// RecoveryManual leaves the partition offline for an operator.
	RecoveryManual = "manual"
)

type configKind uint8

const (
	kindInt configKind = iota + 1
	kindBool
	kindEnum
	kindRatio     // a decimal in [0, 1]
	kindDurations // ParseQueueBackoff's list
	kindTopic     // a topic name (ValidateTopicName), or "" for none
	kindBrokerIDs // comma-separated broker ids (ParseBrokerIDs), or "" for none
)

// ConfigDef describes one topic config key.
type ConfigDef struct {
	Key string
	// Default is the value of a topic that does not set the key, except
	// where Doc says it depends on the topic (min.insync.replicas: then
	// it is the value for a replication factor below 3, and Topic.Config
	// gives a topic's own).
	Default string
	Doc     string
	kind    configKind
	min     int64 // kindInt: smallest allowed value
	max     int64 // kindInt: largest allowed value; 0: none
	enum    []string
}

var topicConfigDefs = map[string]ConfigDef{
	ConfigRetentionMs:      {Key: ConfigRetentionMs, Default: "604800000", Doc: "delete closed segments whose newest record is older than this (ms); -1 keeps forever", kind: kindInt, min: -1},
	ConfigRetentionBytes:   {Key: ConfigRetentionBytes, Default: "-1", Doc: "delete the oldest closed segments while a partition is larger than this (bytes); -1 keeps all", kind: kindInt, min: -1},
	ConfigSegmentBytes:     {Key: ConfigSegmentBytes, Default: "1073741824", Doc: "roll to a new segment at this size (bytes)", kind: kindInt, min: 4096},
	ConfigSegmentMs:        {Key: ConfigSegmentMs, Default: "604800000", Doc: "roll to a new segment when the active one's first record is older than this (ms)", kind: kindInt, min: 1},
	ConfigFsync:            {Key: ConfigFsync, Default: FsyncInterval, Doc: "always: acknowledge only after fsync (group commit); interval: fsync in the background and rely on replication", kind: kindEnum, enum: []string{FsyncAlways, FsyncInterval}},
	ConfigFsyncIntervalMs:  {Key: ConfigFsyncIntervalMs, Default: "1000", Doc: "with fsync=interval, fsync at least this often (ms)", kind: kindInt, min: 1},
	ConfigMaxMessageBytes:  {Key: ConfigMaxMessageBytes, Default: "1048588", Doc: "largest record batch accepted (bytes, after compression)", kind: kindInt, min: 128},
	ConfigMinInsyncReplica: {Key: ConfigMinInsyncReplica, Default: "1", Doc: "with acks=all, refuse writes while fewer replicas are in sync; default 2 when the replication factor is 3 or more, else 1; never above the replication factor", kind: kindInt, min: 1},
	ConfigUncleanElection:  {Key: ConfigUncleanElection, Default: "false", Doc: "allow a replica outside the ISR to become leader (may lose acknowledged records)", kind: kindBool},
	ConfigCleanupPolicy: {Key: ConfigCleanupPolicy, Default: CleanupDelete, Doc: "delete: retention deletes old segments; compact: keep the latest record per key (offsets kept, tombstones removed after delete.retention.ms), no deletion by age or size; compact,delete: both",
		kind: kindEnum, enum: []string{CleanupDelete, CleanupCompact, CleanupCompactDelete, "delete,compact"}},
	ConfigMinCompactionLag:  {Key: ConfigMinCompactionLag, Default: "0", Doc: "with compact, never compact away a record younger than this (ms)", kind: kindInt, min: 0},
	ConfigMaxCompactionLag:  {Key: ConfigMaxCompactionLag, Default: "-1", Doc: "with compact, clean a partition whose oldest uncompacted record is older than this (ms), whatever its dirty ratio; -1 never", kind: kindInt, min: -1},
	ConfigMinCleanableRatio: {Key: ConfigMinCleanableRatio, Default: "0.5", Doc: "with compact, clean a partition once this fraction of its cleanable bytes is not yet compacted", kind: kindRatio},
	ConfigDeleteRetentionMs: {Key: ConfigDeleteRetentionMs, Default: "86400000", Doc: "with compact, remove a tombstone (null value) this long (ms) after its segment was first compacted; -1 keeps them", kind: kindInt, min: -1},
	ConfigUncleanRecovery: {Key: ConfigUncleanRecovery, Default: RecoveryBalanced, Doc: "when no replica may lead without risking committed records (a machine crash of every in-sync replica): balanced elects the best replica once every replica of the last ISR is back and says how much it may lack; manual waits for an operator",
		kind: kindEnum, enum: []string{RecoveryBalanced, RecoveryManual}},
	ConfigProducerIDExpirationMs: {Key: ConfigProducerIDExpirationMs, Default: "86400000", Doc: "forget an idempotent producer's state on a partition this long after the max timestamp of its last batch (ms); a producer that comes back later re-initialises; the broker's --producer-id-expiration when the topic does not set it",
		kind: kindInt, min: 1},
}

// TopicConfigDefs returns every topic config key with its default and doc,
// sorted by key.
func TopicConfigDefs() []ConfigDef {
	defs := make([]ConfigDef, 0, len(topicConfigDefs))
	for _, d := range topicConfigDefs {
		defs = append(defs, d)
	}
	sort.Slice(defs, func(i, j int) bool { return defs[i].Key < defs[j].Key })
	return defs
}

// ValidateConfig checks one topic config key and value.
func ValidateConfig(key, value string) error { return validateIn(topicConfigDefs, key, value) }

// validateIn checks one key and value against defs.
func validateIn(defs map[string]ConfigDef, key, value string) error {
	d, ok := defs[key]
	if !ok {
		return fmt.Errorf("%w: unknown key %q", ErrInvalidConfig, key)
	}
	switch d.kind {
	case kindInt:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %s=%q: not an integer", ErrInvalidConfig, key, value)
		}
		if n < d.min {
			return fmt.Errorf("%w: %s=%d: below the minimum %d", ErrInvalidConfig, key, n, d.min)
		}
		if d.max != 0 && n > d.max {
			return fmt.Errorf("%w: %s=%d: above the maximum %d", ErrInvalidConfig, key, n, d.max)
		}
	case kindDurations:
		if _, err := ParseQueueBackoff(value); err != nil {
			return err
		}
	case kindTopic:
		if value == "" {
			return nil
		}
		if err := ValidateTopicName(value); err != nil {
			return fmt.Errorf("%w: %s=%q: %v", ErrInvalidConfig, key, value, err)
		}
		if strings.HasPrefix(value, "__") {
			return fmt.Errorf("%w: %s=%q: names starting with __ are internal topics'", ErrInvalidConfig, key, value)
		}
	case kindBrokerIDs:
		if _, err := ParseBrokerIDs(value); err != nil {
			return fmt.Errorf("%s=%q: %w", key, value, err)
		}
	case kindRatio:
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return fmt.Errorf("%w: %s=%q: want a number from 0 to 1", ErrInvalidConfig, key, value)
		}
	case kindBool:
		if _, err := strconv.ParseBool(value); err != nil {
			return fmt.Errorf("%w: %s=%q: want true or false", ErrInvalidConfig, key, value)
		}
	case kindEnum:
		for _, v := range d.enum {
			if v == value {
				return nil
			}
		}
		return fmt.Errorf("%w: %s=%q: want one of %v", ErrInvalidConfig, key, value, d.enum)
	}
	return nil
}

// ValidateConfigs checks every topic config key and value, in key order
// so the error is deterministic.
func ValidateConfigs(cfg map[string]string) error { return validateAllIn(topicConfigDefs, cfg) }

func validateAllIn(defs map[string]ConfigDef, cfg map[string]string) error {
	for _, k := range sortedKeys(cfg) {
		if err := validateIn(defs, k, cfg[k]); err != nil {
			return err
		}
	}
	return nil
}

// MaxTopicNameLen is the longest topic name accepted.
const MaxTopicNameLen = 249

// ValidateTopicName checks a topic name: 1 to 249 characters from
// [a-zA-Z0-9._-], not "." or "..". Names are also directory names on disk,
// which is why the alphabet is this small.
func ValidateTopicName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	}
	if len(name) > MaxTopicNameLen {
		return fmt.Errorf("%w: %d characters, at most %d", ErrInvalidTopic, len(name), MaxTopicNameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q: character %q at %d; allowed: letters, digits, '.', '_', '-'", ErrInvalidTopic, name, c, i)
		}
	}
	return nil
}
