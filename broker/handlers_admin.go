package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// defaultAdminTimeout applies to admin requests that send no timeout.
const defaultAdminTimeout = 30 * time.Second

// adminContext bounds a metadata change by the request's timeout. It does
// not derive from the connection: a change asked for before shutdown is
// finished, not abandoned halfway.
func adminContext(timeoutMs int32) (context.Context, context.CancelFunc) {
	d := defaultAdminTimeout
	if timeoutMs > 0 {
		d = time.Duration(timeoutMs) * time.Millisecond
	}
	return context.WithTimeout(context.Background(), d)
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

// handleCreateTopics creates topics through the metadata store and opens
// their partitions before answering, so a produce sent after the answer
// finds them.
func (c *conn) handleCreateTopics(h *protocol.RequestHeader, resp *response) error {
	var req protocol.CreateTopicsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	ctx, cancel := adminContext(req.TimeoutMs)
	defer cancel()
	count := make(map[string]int, len(req.Topics))
	for _, t := range req.Topics {
		count[t.Name]++
	}
	out := protocol.CreateTopicsResponse{Topics: make([]protocol.TopicError, len(req.Topics))}
	created := false
	for i, t := range req.Topics {
		out.Topics[i].Name = t.Name
		if count[t.Name] > 1 {
			out.Topics[i].ErrorCode, out.Topics[i].ErrorMessage = protocol.ErrInvalidRequest, "topic named more than once in the request"
			continue
		}
		spec, err := c.b.topicSpec(t)
		if err == nil && req.ValidateOnly {
			err = validateCreate(c.b.store.Metadata(), spec)
		} else if err == nil {
			_, err = c.b.store.CreateTopic(ctx, spec)
		}
		out.Topics[i].ErrorCode, out.Topics[i].ErrorMessage = adminErrorCode(err)
		if err == nil && !req.ValidateOnly {
			created = true
			c.logger.Info("topic created", zap.String("topic", spec.Name), zap.Int32("partitions", spec.Partitions),
				zap.Int16("replication_factor", spec.ReplicationFactor))
		}
	}
	if created {
		c.b.parts.reconcile(c.b.store.Metadata())
	}
	c.encode(resp, h, &out)
	return nil
}

// topicSpec turns a CreateTopics entry into a spec with the broker's
// defaults for -1 counts, and checks its configs.
func (b *Broker) topicSpec(t protocol.CreatableTopic) (controller.TopicSpec, error) {
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
	_, err := controller.Place(md.AliveBrokers(), spec.Partitions, spec.ReplicationFactor, 0)
	return err
}

// handleDeleteTopics deletes topics and their data before answering.
func (c *conn) handleDeleteTopics(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DeleteTopicsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	ctx, cancel := adminContext(req.TimeoutMs)
	defer cancel()
	out := protocol.DeleteTopicsResponse{Topics: make([]protocol.TopicError, len(req.Topics))}
	deleted := false
	for i, name := range req.Topics {
		out.Topics[i].Name = name
		err := controller.ValidateTopicName(name)
		if err == nil {
			err = c.b.store.DeleteTopic(ctx, name)
		}
		out.Topics[i].ErrorCode, out.Topics[i].ErrorMessage = adminErrorCode(err)
		deleted = deleted || err == nil
	}
	if deleted {
		c.b.parts.reconcile(c.b.store.Metadata())
	}
	c.encode(resp, h, &out)
	return nil
}

// errTopicResourcesOnly answers config requests for other resource types.
var errTopicResourcesOnly = errors.New("only topic resources have configs on this broker")

// handleDescribeConfigs returns topics' effective configs.
func (c *conn) handleDescribeConfigs(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DescribeConfigsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	md := c.b.store.Metadata()
	defs := controller.TopicConfigDefs()
	out := protocol.DescribeConfigsResponse{Resources: make([]protocol.DescribeConfigsResult, len(req.Resources))}
	for i, r := range req.Resources {
		res := &out.Resources[i]
		res.Type, res.Name = r.Type, r.Name
		if r.Type != protocol.ResourceTopic {
			res.ErrorCode, res.ErrorMessage = protocol.ErrInvalidRequest, errTopicResourcesOnly.Error()
			continue
		}
		t, ok := md.Topics[r.Name]
		if !ok {
			res.ErrorCode, res.ErrorMessage = protocol.ErrUnknownTopicOrPartition, fmt.Sprintf("topic %q does not exist", r.Name)
			continue
		}
		names := r.ConfigNames
		if len(names) == 0 {
			for _, d := range defs {
				names = append(names, d.Key)
			}
		}
		res.Configs = []protocol.ConfigEntry{}
		for _, key := range names {
			if !knownKey(defs, key) {
				continue // unknown keys are left out, as Kafka does
			}
			v, src := topicValue(t, c.b.cfg.TopicDefaults, key)
			res.Configs = append(res.Configs, protocol.ConfigEntry{Name: key, Value: v, IsDefault: src != fromTopic})
		}
	}
	c.encode(resp, h, &out)
	return nil
}

func knownKey(defs []controller.ConfigDef, key string) bool {
	for _, d := range defs {
		if d.Key == key {
			return true
		}
	}
	return false
}

// handleAlterConfigs changes topics' configs incrementally and applies
// them to the open logs before answering.
func (c *conn) handleAlterConfigs(h *protocol.RequestHeader, resp *response) error {
	var req protocol.AlterConfigsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	ctx, cancel := adminContext(0)
	defer cancel()
	out := protocol.AlterConfigsResponse{Resources: make([]protocol.ResourceError, len(req.Resources))}
	altered := false
	for i, r := range req.Resources {
		res := &out.Resources[i]
		res.Type, res.Name = r.Type, r.Name
		if r.Type != protocol.ResourceTopic {
			res.ErrorCode, res.ErrorMessage = protocol.ErrInvalidRequest, errTopicResourcesOnly.Error()
			continue
		}
		set, remove, code, err := c.b.configChange(r)
		if err == nil && !req.ValidateOnly {
			err = c.b.store.AlterConfigs(ctx, r.Name, set, remove)
			if err == nil {
				altered = true
				c.logger.Info("topic config altered", zap.String("topic", r.Name), zap.Any("set", set), zap.Strings("removed", remove))
			}
		}
		if err != nil {
			if code == protocol.NoError {
				code, _ = adminErrorCode(err)
			}
			res.ErrorCode, res.ErrorMessage = code, err.Error()
		}
	}
	if altered {
		c.b.parts.reconcile(c.b.store.Metadata())
	}
	c.encode(resp, h, &out)
	return nil
}

// configChange checks one resource's changes against the topic as it is:
// each value alone and the resulting config as a whole.
func (b *Broker) configChange(r protocol.AlterConfigsResource) (set map[string]string, remove []string, code protocol.ErrorCode, err error) {
	t, ok := b.store.Metadata().Topics[r.Name]
	if !ok {
		return nil, nil, protocol.ErrUnknownTopicOrPartition, fmt.Errorf("%w: %q", controller.ErrUnknownTopic, r.Name)
	}
	next := &controller.Topic{Name: t.Name, Configs: make(map[string]string, len(t.Configs))}
	for k, v := range t.Configs {
		next.Configs[k] = v
	}
	set = map[string]string{}
	for _, cf := range r.Configs {
		switch cf.Op {
		case protocol.ConfigSet:
			set[cf.Name] = cf.Value
			next.Configs[cf.Name] = cf.Value
		case protocol.ConfigDelete:
			if !knownKey(controller.TopicConfigDefs(), cf.Name) {
				return nil, nil, protocol.ErrInvalidConfig, fmt.Errorf("%w: unknown key %q", controller.ErrInvalidConfig, cf.Name)
			}
			remove = append(remove, cf.Name)
			delete(next.Configs, cf.Name)
		default:
			return nil, nil, protocol.ErrInvalidRequest, fmt.Errorf("config %q: unknown operation %d", cf.Name, cf.Op)
		}
	}
	if err := b.checkTopicConfigs(next); err != nil {
		return nil, nil, protocol.ErrInvalidConfig, err
	}
	return set, remove, protocol.NoError, nil
}
