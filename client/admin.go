package client

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/sluicemq/sluice/protocol"
)

// Admin calls go to any broker (which forwards cluster changes to the
// controller), except ListOffsets, which asks each partition's leader.
// Topic config keys are plain strings, as the broker names them
// ("retention.ms", "segment.bytes", ...): the client does not duplicate
// the broker's table of keys.

// adminTimeoutMs is the time the broker may take to apply a cluster
// change before answering (the requests' timeout_ms).
func (c *Client) adminTimeoutMs() int32 { return int32(c.cfg.requestTimeout.Milliseconds()) }

// TopicSpec describes a topic to create. Partitions and ReplicationFactor
// <= 0 take the broker's defaults.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
}

// CreateTopics creates topics. The error joins a *TopicError per topic
// that failed (errors.Is(err, protocol.ErrTopicAlreadyExists) works).
func (c *Client) CreateTopics(ctx context.Context, specs ...TopicSpec) error {
	req := &protocol.CreateTopicsRequest{TimeoutMs: c.adminTimeoutMs()}
	for _, s := range specs {
		t := protocol.CreatableTopic{Name: s.Name, Partitions: s.Partitions, ReplicationFactor: s.ReplicationFactor}
		if t.Partitions <= 0 {
			t.Partitions = -1
		}
		if t.ReplicationFactor <= 0 {
			t.ReplicationFactor = -1
		}
		keys := make([]string, 0, len(s.Configs))
		for k := range s.Configs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Configs = append(t.Configs, protocol.Config{Name: k, Value: s.Configs[k]})
		}
		req.Topics = append(req.Topics, t)
	}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.CreateTopicsResponse) }, false)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	err = topicErrors(m.(*protocol.CreateTopicsResponse).Topics)
	c.meta.requestRefresh()
	return err
}

// DeleteTopics deletes topics, with errors as CreateTopics.
func (c *Client) DeleteTopics(ctx context.Context, names ...string) error {
	req := &protocol.DeleteTopicsRequest{Topics: names, TimeoutMs: c.adminTimeoutMs()}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.DeleteTopicsResponse) }, false)
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	err = topicErrors(m.(*protocol.DeleteTopicsResponse).Topics)
	c.meta.requestRefresh()
	return err
}

func topicErrors(ts []protocol.TopicError) error {
	var errs []error
	for _, t := range ts {
		if t.ErrorCode != protocol.NoError {
			errs = append(errs, &TopicError{Topic: t.Name, Err: t.ErrorCode.ErrWithDetail(t.ErrorMessage)})
		}
	}
	return errors.Join(errs...)
}

// metadataOf asks any broker for the metadata of topics (all for nil).
func (c *Client) metadataOf(ctx context.Context, topics []string) (*protocol.MetadataResponse, error) {
	req := &protocol.MetadataRequest{Topics: topics, AllTopics: topics == nil}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.MetadataResponse) }, true)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return m.(*protocol.MetadataResponse), nil
}

// ListTopics returns the names of all topics, sorted.
func (c *Client) ListTopics(ctx context.Context) ([]string, error) {
	resp, err := c.metadataOf(ctx, nil)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.ErrorCode == protocol.NoError {
			names = append(names, t.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// TopicDescription is a topic's partitions as the cluster reports them.
type TopicDescription struct {
	Name       string
	Internal   bool
	Partitions []PartitionDescription // by partition id
}

// PartitionDescription is one partition's leadership and replicas. Leader
// is -1 while the partition is offline; Err is the partition's error, if
// any (LEADER_NOT_AVAILABLE, say).
type PartitionDescription struct {
	Partition       int32
	Leader          int32
	LeaderEpoch     int32
	Replicas        []int32
	ISR             []int32
	OfflineReplicas []int32
	// Note is the controller's word on the partition, from brokers that
	// speak Metadata version 2: why it has no leader, or that its leader
	// came from a balanced unclean recovery and how many committed
	// offsets it may lack. "" when there is nothing to say.
	Note string
	Err  error
}

// DescribeTopic returns a topic's partitions, leaders, replicas and ISR.
func (c *Client) DescribeTopic(ctx context.Context, topic string) (TopicDescription, error) {
	resp, err := c.metadataOf(ctx, []string{topic})
	if err != nil {
		return TopicDescription{}, err
	}
	for _, t := range resp.Topics {
		if t.Name != topic {
			continue
		}
		if t.ErrorCode != protocol.NoError {
			return TopicDescription{}, &TopicError{Topic: topic, Err: t.ErrorCode.Err()}
		}
		d := TopicDescription{Name: t.Name, Internal: t.Internal}
		for _, p := range t.Partitions {
			d.Partitions = append(d.Partitions, PartitionDescription{Partition: p.Partition, Leader: p.Leader,
				LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR, OfflineReplicas: p.OfflineReplicas,
				Note: p.Note, Err: p.ErrorCode.Err()})
		}
		sort.Slice(d.Partitions, func(i, j int) bool { return d.Partitions[i].Partition < d.Partitions[j].Partition })
		return d, nil
	}
	return TopicDescription{}, &TopicError{Topic: topic, Err: protocol.ErrUnknownTopicOrPartition.Err()}
}

// ConfigEntry is one topic config value as the broker reports it.
type ConfigEntry struct {
	Key       string
	Value     string // "" when Sensitive
	IsDefault bool
	ReadOnly  bool
	Sensitive bool
}

// DescribeConfigs returns a topic's configs: the keys named, or all of
// them when none are.
func (c *Client) DescribeConfigs(ctx context.Context, topic string, keys ...string) ([]ConfigEntry, error) {
	return c.describeConfigs(ctx, protocol.ResourceTopic, topic, keys)
}

// DescribeClusterConfigs returns the cluster configs (settings of the
// whole cluster, such as reassignment.throttle.bytes.per.sec): the keys
// named, or all of them when none are.
func (c *Client) DescribeClusterConfigs(ctx context.Context, keys ...string) ([]ConfigEntry, error) {
	return c.describeConfigs(ctx, protocol.ResourceBroker, "", keys)
}

// describeConfigs describes one config resource: a topic, or the cluster
// (a broker resource with no name).
func (c *Client) describeConfigs(ctx context.Context, typ protocol.ResourceType, topic string, keys []string) ([]ConfigEntry, error) {
	req := &protocol.DescribeConfigsRequest{Resources: []protocol.DescribeConfigsResource{
		{Type: typ, Name: topic, ConfigNames: keys}}}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.DescribeConfigsResponse) }, true)
	if err != nil {
		return nil, fmt.Errorf("describe configs: %w", err)
	}
	for _, r := range m.(*protocol.DescribeConfigsResponse).Resources {
		if r.Name != topic {
			continue
		}
		if r.ErrorCode != protocol.NoError {
			return nil, resourceError(typ, topic, r.ErrorCode.ErrWithDetail(r.ErrorMessage))
		}
		out := make([]ConfigEntry, 0, len(r.Configs))
		for _, e := range r.Configs {
			out = append(out, ConfigEntry{Key: e.Name, Value: e.Value, IsDefault: e.IsDefault, ReadOnly: e.ReadOnly, Sensitive: e.Sensitive})
		}
		return out, nil
	}
	return nil, resourceError(typ, topic, errors.New("missing from the describe configs response"))
}

// resourceError names the config resource an error is about: a
// TopicError for a topic (and the cluster, as before group configs).
func resourceError(typ protocol.ResourceType, name string, err error) error {
	if typ == protocol.ResourceGroup {
		return fmt.Errorf("group %q: %w", name, err)
	}
	return &TopicError{Topic: name, Err: err}
}

// DescribeQueueGroupConfigs returns a queue group's settings (lease,
// delivery limit, backoff, in-flight cap, dead-letter topic; see
// docs/queues.md): the keys named, or all when none are, each with its
// value and whether it is the brokers' default.
func (c *Client) DescribeQueueGroupConfigs(ctx context.Context, group string, keys ...string) ([]ConfigEntry, error) {
	return c.describeConfigs(ctx, protocol.ResourceGroup, group, keys)
}

// AlterQueueGroupConfigs applies changes to a queue group's settings;
// keys not named keep their values. The cluster checks every value
// (bounds in docs/queues.md) and refuses the whole change with
// INVALID_CONFIG naming the key and why.
func (c *Client) AlterQueueGroupConfigs(ctx context.Context, group string, changes ...ConfigChange) error {
	return c.alterConfigs(ctx, protocol.ResourceGroup, group, changes)
}

// ConfigChange is one change for AlterConfigs: set Key to Value, or with
// Delete revert it to the default.
type ConfigChange struct {
	Key    string
	Value  string
	Delete bool
}

// SetConfig is a ConfigChange setting key to value.
func SetConfig(key, value string) ConfigChange { return ConfigChange{Key: key, Value: value} }

// DeleteConfig is a ConfigChange reverting key to its default.
func DeleteConfig(key string) ConfigChange { return ConfigChange{Key: key, Delete: true} }

// AlterConfigs applies changes to a topic's configs; keys not named keep
// their values.
func (c *Client) AlterConfigs(ctx context.Context, topic string, changes ...ConfigChange) error {
	return c.alterConfigs(ctx, protocol.ResourceTopic, topic, changes)
}

// AlterClusterConfigs applies changes to the cluster configs; keys not
// named keep their values.
func (c *Client) AlterClusterConfigs(ctx context.Context, changes ...ConfigChange) error {
	return c.alterConfigs(ctx, protocol.ResourceBroker, "", changes)
}

// alterConfigs changes one config resource: a topic, or the cluster (a
// broker resource with no name).
func (c *Client) alterConfigs(ctx context.Context, typ protocol.ResourceType, topic string, changes []ConfigChange) error {
	res := protocol.AlterConfigsResource{Type: typ, Name: topic}
	for _, ch := range changes {
		ac := protocol.AlterableConfig{Name: ch.Key, Op: protocol.ConfigSet, Value: ch.Value}
		if ch.Delete {
			ac.Op, ac.Value = protocol.ConfigDelete, ""
		}
		res.Configs = append(res.Configs, ac)
	}
	req := &protocol.AlterConfigsRequest{Resources: []protocol.AlterConfigsResource{res}}
	m, err := c.roundTrip(ctx, anyBroker, req, func() protocol.Message { return new(protocol.AlterConfigsResponse) }, true)
	if err != nil {
		return fmt.Errorf("alter configs: %w", err)
	}
	for _, r := range m.(*protocol.AlterConfigsResponse).Resources {
		if r.Name == topic && r.ErrorCode != protocol.NoError {
			return resourceError(typ, topic, r.ErrorCode.ErrWithDetail(r.ErrorMessage))
		}
	}
	return nil
}

// PartitionOffset is one partition's answer to ListOffsets: the offset and
// the timestamp of the record found (-1 for start and end queries), or the
// partition's error.
type PartitionOffset struct {
	Partition int32
	Offset    int64
	Timestamp int64
	Err       error
}

// ListOffsets returns, for every partition of topic, the offset at: the
// log start (AtStart), the end (AtEnd) or the first record at or after a
// time (AtTime; offset -1 when there is none). Each leader is asked for its
// partitions. A partition without a known leader, or whose answer says the
// metadata is stale (NOT_LEADER_OR_FOLLOWER and the like), gets its error
// and starts a metadata refresh, so that the caller's retry goes to the
// partition's current leader.
func (c *Client) ListOffsets(ctx context.Context, topic string, at Offset) ([]PartitionOffset, error) {
	if at.kind == offsetExact {
		return nil, errors.New("list offsets: At(offset) is not a query; use AtStart, AtEnd or AtTime")
	}
	ti, err := c.topicInfo(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := make([]PartitionOffset, len(ti.partitions))
	byLeader := map[int32]*protocol.ListOffsetsRequest{}
	for i := range out {
		out[i] = PartitionOffset{Partition: int32(i), Offset: -1, Timestamp: -1}
		leader, epoch, ok := c.meta.leader(topic, int32(i))
		if !ok {
			out[i].Err = protocol.ErrLeaderNotAvailable.Err()
			c.meta.requestRefresh()
			continue
		}
		req := byLeader[leader]
		if req == nil {
			req = &protocol.ListOffsetsRequest{ReplicaID: -1, Isolation: c.cfg.isolation,
				Topics: []protocol.ListOffsetsTopic{{Name: topic}}}
			byLeader[leader] = req
		}
		req.Topics[0].Partitions = append(req.Topics[0].Partitions,
			protocol.ListOffsetsPartition{Partition: int32(i), CurrentLeaderEpoch: epoch, Timestamp: at.listTimestamp()})
	}
	for leader, req := range byLeader {
		m, err := c.roundTrip(ctx, leader, req, func() protocol.Message { return new(protocol.ListOffsetsResponse) }, true)
		if err != nil {
			for _, p := range req.Topics[0].Partitions {
				out[p.Partition].Err = err
			}
			continue
		}
		for _, p := range req.Topics[0].Partitions {
			r := findListOffsets(m.(*protocol.ListOffsetsResponse), TopicPartition{topic, p.Partition})
			switch {
			case r == nil:
				out[p.Partition].Err = errors.New("missing from the list offsets response")
			case r.ErrorCode != protocol.NoError:
				out[p.Partition].Err = r.ErrorCode.Err()
				if staleMetadata(r.ErrorCode) {
					c.meta.requestRefresh()
				}
			default:
				out[p.Partition].Offset, out[p.Partition].Timestamp = r.Offset, r.Timestamp
			}
		}
	}
	return out, nil
}
