package broker

import (
	"context"
	"fmt"
	"maps"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// The admin half of the broker core: the metadata view and topic admin,
// as plain Go calls. Changes go through the controller (Raft); each call
// applies what it changed to this broker's partitions before returning,
// so a produce sent after the answer finds a created topic and a deleted
// topic's data is gone.

// Metadata returns this broker's current view of the cluster metadata, an
// immutable snapshot.
func (b *Broker) Metadata() *controller.Metadata { return b.store.Metadata() }

// NewTopic is a topic a client asks to create. Partitions and
// ReplicationFactor -1 take the broker's defaults. Configs is a list as
// clients send it; a key named twice is refused.
type NewTopic struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           []TopicConfig
}

// TopicConfig is one topic config key and its value.
type TopicConfig struct {
	Name  string
	Value string
}

// CreateTopics creates topics, or with validateOnly checks that it could.
// It returns one error per topic, in order (nil: created). A topic named
// twice in one call is refused both times.
func (b *Broker) CreateTopics(ctx context.Context, topics []NewTopic, validateOnly bool) []error {
	count := make(map[string]int, len(topics))
	for _, t := range topics {
		count[t.Name]++
	}
	errs := make([]error, len(topics))
	created := false
	for i, t := range topics {
		if count[t.Name] > 1 {
			errs[i] = &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: "topic named more than once in the request"}
			continue
		}
		spec, err := b.topicSpec(t)
		if err == nil && validateOnly {
			err = validateCreate(b.store.Metadata(), spec)
		} else if err == nil {
			_, err = b.store.CreateTopic(ctx, spec)
		}
		errs[i] = err
		if err == nil && !validateOnly {
			created = true
			b.logger.Info("topic created", zap.String("topic", spec.Name), zap.Int32("partitions", spec.Partitions),
				zap.Int16("replication_factor", spec.ReplicationFactor))
		}
	}
	if created {
		b.parts.reconcile(b.store.Metadata())
	}
	return errs
}

// topicSpec turns a NewTopic into a spec with the broker's defaults for
// -1 counts, and checks its configs.
func (b *Broker) topicSpec(t NewTopic) (controller.TopicSpec, error) {
	spec := controller.TopicSpec{Name: t.Name, Partitions: t.Partitions, ReplicationFactor: t.ReplicationFactor}
	if spec.Partitions == -1 {
		spec.Partitions = b.cfg.DefaultPartitions
	}
	if spec.ReplicationFactor == -1 {
		spec.ReplicationFactor = b.cfg.DefaultReplicationFactor
	}
	if err := controller.ValidateTopicName(t.Name); err != nil {
		return spec, err
	}
	if len(t.Configs) > 0 {
		spec.Configs = make(map[string]string, len(t.Configs))
		for _, kv := range t.Configs {
			if _, dup := spec.Configs[kv.Name]; dup {
				return spec, fmt.Errorf("%w: key %q given twice", controller.ErrInvalidConfig, kv.Name)
			}
			spec.Configs[kv.Name] = kv.Value
		}
	}
	return spec, b.checkTopicConfigs(&controller.Topic{Name: t.Name, Configs: spec.Configs})
}

// validateCreate checks what CreateTopic would, without creating.
func validateCreate(md *controller.Metadata, spec controller.TopicSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if _, ok := md.Topics[spec.Name]; ok {
		return fmt.Errorf("%w: %q", controller.ErrTopicExists, spec.Name)
	}
	_, err := controller.PlaceNew(md, spec.Partitions, spec.ReplicationFactor, 0)
	return err
}

// checkTopicConfigs validates a topic's explicit configs, each alone and
// in combination with the broker defaults (as the log will see them).
func (b *Broker) checkTopicConfigs(t *controller.Topic) error {
	if err := controller.ValidateConfigs(t.Configs); err != nil {
		return err
	}
	_, err := logConfig(topicValues(t, b.cfg.TopicDefaults))
	return err
}

// DeleteTopics deletes topics and this broker's data of them. It returns
// one error per name, in order (nil: deleted).
func (b *Broker) DeleteTopics(ctx context.Context, names []string) []error {
	errs := make([]error, len(names))
	deleted := false
	for i, name := range names {
		err := controller.ValidateTopicName(name)
		if err == nil {
			err = b.store.DeleteTopic(ctx, name)
		}
		errs[i] = err
		deleted = deleted || err == nil
	}
	if deleted {
		b.parts.reconcile(b.store.Metadata())
	}
	return errs
}

// ConfigValue is a topic config as DescribeTopicConfigs reports it: the
// effective value and whether it is a default (the broker's or sluice's)
// rather than set on the topic.
type ConfigValue struct {
	Name      string
	Value     string
	IsDefault bool
}

// DescribeTopicConfigs returns a topic's effective configs: the keys
// named, or every key when none is. Unknown keys are left out, as Kafka
// does.
func (b *Broker) DescribeTopicConfigs(topic string, keys []string) ([]ConfigValue, error) {
	t, ok := b.store.Metadata().Topics[topic]
	if !ok {
		return nil, fmt.Errorf("%w: topic %q does not exist", controller.ErrUnknownTopic, topic)
	}
	defs := controller.TopicConfigDefs()
	if len(keys) == 0 {
		for _, d := range defs {
			keys = append(keys, d.Key)
		}
	}
	out := []ConfigValue{}
	for _, key := range keys {
		if !knownKey(defs, key) {
			continue
		}
		v, src := topicValue(t, b.cfg.TopicDefaults, key)
		out = append(out, ConfigValue{Name: key, Value: v, IsDefault: src != fromTopic})
	}
	return out, nil
}

func knownKey(defs []controller.ConfigDef, key string) bool {
	for _, d := range defs {
		if d.Key == key {
			return true
		}
	}
	return false
}

// ConfigAlteration is an incremental change of one topic's configs: keys
// to set, and keys to revert to their defaults.
type ConfigAlteration struct {
	Topic  string
	Set    map[string]string
	Remove []string
}

// AlterTopicConfigs changes topics' configs incrementally (keys not named
// keep their values), or with validateOnly checks that it could, and
// applies them to this broker's open logs before returning. Each change
// is checked against the topic as it is: each value alone and the
// resulting config as a whole. It returns one error per change, in order.
func (b *Broker) AlterTopicConfigs(ctx context.Context, changes []ConfigAlteration, validateOnly bool) []error {
	errs := make([]error, len(changes))
	altered := false
	for i, c := range changes {
		err := b.checkAlteration(c)
		if err == nil && !validateOnly {
			err = b.store.AlterConfigs(ctx, c.Topic, c.Set, c.Remove)
			if err == nil {
				altered = true
				b.logger.Info("topic config altered", zap.String("topic", c.Topic), zap.Any("set", c.Set), zap.Strings("removed", c.Remove))
			}
		}
		errs[i] = err
	}
	if altered {
		b.parts.reconcile(b.store.Metadata())
	}
	return errs
}

// checkAlteration checks one change against the topic as it is.
func (b *Broker) checkAlteration(c ConfigAlteration) error {
	t, ok := b.store.Metadata().Topics[c.Topic]
	if !ok {
		return fmt.Errorf("%w: %q", controller.ErrUnknownTopic, c.Topic)
	}
	next := &controller.Topic{Name: t.Name, Configs: maps.Clone(t.Configs)}
	if next.Configs == nil {
		next.Configs = map[string]string{}
	}
	maps.Copy(next.Configs, c.Set)
	for _, key := range c.Remove {
		if !knownKey(controller.TopicConfigDefs(), key) {
			return fmt.Errorf("%w: unknown key %q", controller.ErrInvalidConfig, key)
		}
		delete(next.Configs, key)
	}
	if err := b.checkTopicConfigs(next); err != nil {
		return &protocol.Error{Code: protocol.ErrInvalidConfig, Detail: err.Error()}
	}
	return nil
}
