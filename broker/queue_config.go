package broker

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
)

// The settings of each queue group (docs/queues.md): the group configs
// of the cluster metadata (controller/groupconfig.go) over the broker's
// Config.Group.Queue. The broker reads them from its local metadata,
// never through Raft, and gives them to its coordinators
// (group.Coordinator.SetQueueConfigs) when they load and before each
// queue call that follows a change.

// queueConfigCache holds the queue groups' settings parsed from one
// metadata version; gen changes only when the group configs did.
type queueConfigCache struct {
	mu      sync.Mutex
	version uint64                       // the metadata version read
	raw     map[string]map[string]string // its GroupConfigs
	cfgs    map[string]group.QueueConfig // parsed, over Config.Group.Queue
	gen     uint64
}

// queueConfigs returns the settings of the queue groups that have their
// own, and their generation.
func (b *Broker) queueConfigs() (map[string]group.QueueConfig, uint64) {
	md := b.store.Metadata()
	qc := &b.queueCfgs
	qc.mu.Lock()
	defer qc.mu.Unlock()
	if qc.gen != 0 && md.Version == qc.version {
		return qc.cfgs, qc.gen
	}
	qc.version = md.Version
	if qc.gen != 0 && maps.EqualFunc(qc.raw, md.GroupConfigs, maps.Equal) {
		return qc.cfgs, qc.gen
	}
	qc.raw = md.GroupConfigs
	qc.cfgs = make(map[string]group.QueueConfig, len(md.GroupConfigs))
	for id, raw := range md.GroupConfigs {
		qc.cfgs[id] = queueConfigOf(b.cfg.Group.Queue, raw)
	}
	qc.gen++
	return qc.cfgs, qc.gen
}

// queueConfig returns the settings of queue group id.
func (b *Broker) queueConfig(id string) group.QueueConfig {
	cfgs, _ := b.queueConfigs()
	if cfg, ok := cfgs[id]; ok {
		return cfg
	}
	return b.cfg.Group.Queue.WithDefaults()
}

// syncQueueConfigs gives co's Coordinator the queue settings when they
// changed since it last had them; the caller holds co.mu.
func (b *Broker) syncQueueConfigs(co *coordinator) {
	cfgs, gen := b.queueConfigs()
	if co.c != nil && co.queueCfgGen != gen {
		co.c.SetQueueConfigs(cfgs)
		co.queueCfgGen = gen
	}
}

// queueConfigOf is base with the keys of raw (validated when they were
// set) over it.
func queueConfigOf(base group.QueueConfig, raw map[string]string) group.QueueConfig {
	cfg := base.WithDefaults()
	if v, ok := raw[controller.ConfigQueueLeaseMs]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			cfg.Lease = time.Duration(n) * time.Millisecond
		}
	}
	if v, ok := raw[controller.ConfigQueueMaxDeliveryAttempts]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			cfg.MaxDeliveries = n
		}
	}
	if v, ok := raw[controller.ConfigQueueMaxInFlight]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			cfg.MaxInFlight = n
		}
	}
	if v, ok := raw[controller.ConfigQueueBackoffMs]; ok {
		if d, err := controller.ParseQueueBackoff(v); err == nil {
			cfg.Backoff = d
		}
	}
	return cfg.WithDefaults()
}

// deadLetterTopic is where queue group id's dead letters of topic go:
// its queue.dlq.topic, else <topic>.dlq. A configured topic that is the
// one read (a loop) is not used.
func (b *Broker) deadLetterTopic(id, topic string) string {
	if v, ok := b.store.Metadata().GroupConfig(id, controller.ConfigQueueDLQTopic); ok && v != "" {
		if v != topic {
			return v
		}
		b.logger.Warn("the group's dead-letter topic is the topic it reads; using the default", zap.String("group", id), zap.String("topic", topic))
	}
	return topic + DeadLetterSuffix
}

// AlterGroupConfigs sets a group's configs and reverts others to the
// brokers' values (controller/groupconfig.go), or with validateOnly
// checks that it could. Kafka's share.* names are accepted.
func (b *Broker) AlterGroupConfigs(ctx context.Context, id string, set map[string]string, remove []string, validateOnly bool) error {
	if _, _, err := controller.NormalizeGroupConfigs(id, set, remove); err != nil || validateOnly {
		return err
	}
	if _, err := b.store.Propose(ctx, controller.AlterGroupConfigs{Group: id, Set: set, Remove: remove}); err != nil {
		return err
	}
	b.logger.Info("group config altered", zap.String("group", id), zap.Any("set", set), zap.Strings("removed", remove))
	return nil
}

// DescribeGroupConfigs returns a group's effective configs: the keys
// named (or their Kafka names), or all when none are, by key, each with
// whether it is the brokers' value. Unknown keys are left out, as for
// topics. queue.dlq.topic is "" when the dead letters go to <topic>.dlq.
func (b *Broker) DescribeGroupConfigs(id string, keys []string) ([]ConfigValue, error) {
	if id == "" || len(id) > controller.MaxGroupIDLen {
		return nil, &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: "group id of " + strconv.Itoa(len(id)) + " bytes"}
	}
	md := b.store.Metadata()
	base := b.cfg.Group.Queue.WithDefaults()
	backoff := make([]string, len(base.Backoff))
	for i, d := range base.Backoff {
		backoff[i] = strconv.FormatInt(d.Milliseconds(), 10)
	}
	defaults := map[string]string{
		controller.ConfigQueueLeaseMs:             strconv.FormatInt(base.Lease.Milliseconds(), 10),
		controller.ConfigQueueMaxDeliveryAttempts: strconv.Itoa(base.MaxDeliveries),
		controller.ConfigQueueMaxInFlight:         strconv.Itoa(base.MaxInFlight),
		controller.ConfigQueueBackoffMs:           strings.Join(backoff, ","),
		controller.ConfigQueueDLQTopic:            "",
	}
	want := make([]string, len(keys))
	for i, k := range keys {
		want[i] = controller.GroupConfigKey(k)
	}
	var out []ConfigValue
	for _, d := range controller.GroupConfigDefs() {
		if len(want) > 0 && !slices.Contains(want, d.Key) {
			continue
		}
		v, set := md.GroupConfig(id, d.Key)
		if !set {
			v = defaults[d.Key]
		}
		out = append(out, ConfigValue{Name: d.Key, Value: v, IsDefault: !set})
	}
	return out, nil
}
