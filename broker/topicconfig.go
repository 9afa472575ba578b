package broker

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/log"
)

// configSource says where a topic config value came from.
type configSource uint8

const (
	fromBuiltin configSource = iota // controller's default
	fromBroker                      // Config.TopicDefaults
	fromTopic                       // the topic's own override
)

// topicValue returns a topic config key's effective value: the topic's
// override, else the broker's default, else the built-in default. t may be
// nil (the broker defaults alone).
func topicValue(t *controller.Topic, defaults map[string]string, key string) (string, configSource) {
	if t != nil {
		if v, ok := t.Configs[key]; ok {
			return v, fromTopic
		}
	}
	if v, ok := defaults[key]; ok {
		return v, fromBroker
	}
	if t == nil {
		t = &controller.Topic{}
	}
	// The topic's own default: some depend on it (min.insync.replicas on
	// the replication factor).
	return t.Config(key), fromBuiltin
}

// topicValues binds topicValue to one topic.
func topicValues(t *controller.Topic, defaults map[string]string) func(string) string {
	return func(key string) string {
		v, _ := topicValue(t, defaults, key)
		return v
	}
}

// partitionConfig is what the broker derives from a topic's configs.
type partitionConfig struct {
	log                log.Config
	maxMessageBytes    int
	producerExpiration time.Duration // producer.id.expiration.ms
}

// logConfig maps the topic config keys onto a log.Config and checks the
// combination (a valid key can still make an invalid log, e.g.
// max.message.bytes above segment.bytes).
func logConfig(get func(string) string) (partitionConfig, error) {
	var pc partitionConfig
	var err error
	num := func(key string) int64 {
		if err != nil {
			return 0
		}
		n, e := strconv.ParseInt(get(key), 10, 64)
		if e != nil {
			err = fmt.Errorf("%w: %s=%q: not an integer", controller.ErrInvalidConfig, key, get(key))
		}
		return n
	}
	ms := func(key string) time.Duration {
		n := num(key)
		if n < 0 {
			return -1
		}
		return time.Duration(n) * time.Millisecond
	}
	pc.log.SegmentBytes = num(controller.ConfigSegmentBytes)
	pc.log.SegmentAge = ms(controller.ConfigSegmentMs)
	pc.log.RetentionAge = ms(controller.ConfigRetentionMs)
	pc.log.RetentionBytes = num(controller.ConfigRetentionBytes)
	if pc.log.RetentionBytes == 0 {
		// The log reads 0 as "default"; retention.bytes=0 means keep as
		// little as possible, which 1 byte expresses: every closed segment.
		pc.log.RetentionBytes = 1
	}
	pc.log.FlushInterval = ms(controller.ConfigFsyncIntervalMs)
	pc.producerExpiration = ms(controller.ConfigProducerIDExpirationMs)
	pc.log.MinCompactionLag = ms(controller.ConfigMinCompactionLag)
	// The log reads 0 as "default" for these two; 0 means "at once",
	// which a nanosecond expresses (the log counts in milliseconds).
	pc.log.MaxCompactionLag = orNow(ms(controller.ConfigMaxCompactionLag))
	pc.log.DeleteRetention = orNow(ms(controller.ConfigDeleteRetentionMs))
	maxMsg := num(controller.ConfigMaxMessageBytes)
	if err != nil {
		return pc, err
	}
	policy, e := log.ParseCleanupPolicy(get(controller.ConfigCleanupPolicy))
	if e != nil {
		return pc, fmt.Errorf("%w: %s: %w", controller.ErrInvalidConfig, controller.ConfigCleanupPolicy, e)
	}
	pc.log.CleanupPolicy = policy
	ratio, e := strconv.ParseFloat(get(controller.ConfigMinCleanableRatio), 64)
	if e != nil || !(ratio >= 0 && ratio <= 1) {
		return pc, fmt.Errorf("%w: %s=%q: want a number from 0 to 1", controller.ErrInvalidConfig, controller.ConfigMinCleanableRatio, get(controller.ConfigMinCleanableRatio))
	}
	// The log reads 0 as "default"; a ratio of 0 means any dirty byte
	// makes the log due, which the smallest positive ratio expresses.
	pc.log.MinCleanableDirtyRatio = max(ratio, math.SmallestNonzeroFloat64)
	pol, e := log.ParseFsyncPolicy(get(controller.ConfigFsync))
	if e != nil {
		return pc, fmt.Errorf("%w: %s: %w", controller.ErrInvalidConfig, controller.ConfigFsync, e)
	}
	pc.log.Fsync = pol
	if maxMsg > 1<<31-1 {
		return pc, fmt.Errorf("%w: %s=%d: above 2 GiB", controller.ErrInvalidConfig, controller.ConfigMaxMessageBytes, maxMsg)
	}
	pc.maxMessageBytes = int(maxMsg)
	pc.log.MaxBatchBytes = int(maxMsg)
	if e := pc.log.Validate(); e != nil {
		return pc, fmt.Errorf("%w: %w", controller.ErrInvalidConfig, e)
	}
	return pc, nil
}

// orNow maps a zero duration to the smallest positive one.
func orNow(d time.Duration) time.Duration {
	if d == 0 {
		return time.Nanosecond
	}
	return d
}

// sameLogConfig reports whether two configs ask for the same log
// behaviour (Logger and clock aside).
// samePartitionConfig reports whether a and b are the same topic config
// to a partition: its log's and the producer and message limits.
func samePartitionConfig(a, b partitionConfig) bool {
	return sameLogConfig(a.log, b.log) && a.maxMessageBytes == b.maxMessageBytes && a.producerExpiration == b.producerExpiration
}

func sameLogConfig(a, b log.Config) bool {
	return a.SegmentBytes == b.SegmentBytes && a.SegmentAge == b.SegmentAge &&
		a.RetentionBytes == b.RetentionBytes && a.RetentionAge == b.RetentionAge &&
		a.Fsync == b.Fsync && a.FlushInterval == b.FlushInterval && a.FlushBytes == b.FlushBytes &&
		a.MaxBatchBytes == b.MaxBatchBytes && a.IndexIntervalBytes == b.IndexIntervalBytes &&
		a.MaxIndexBytes == b.MaxIndexBytes && a.CleanupPolicy == b.CleanupPolicy &&
		a.MinCompactionLag == b.MinCompactionLag && a.MaxCompactionLag == b.MaxCompactionLag &&
		a.MinCleanableDirtyRatio == b.MinCleanableDirtyRatio && a.DeleteRetention == b.DeleteRetention
}
