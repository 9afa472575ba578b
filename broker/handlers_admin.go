package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/protocol"
)

// The admin handlers translate between the sluice protocol and the admin
// half of the broker core (core_admin.go).

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

// handleCreateTopics creates topics through the core.
func (c *conn) handleCreateTopics(h *protocol.RequestHeader, resp *response) error {
	var req protocol.CreateTopicsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	ctx, cancel := adminContext(req.TimeoutMs)
	defer cancel()
	topics := make([]NewTopic, len(req.Topics))
	for i, t := range req.Topics {
		topics[i] = NewTopic{Name: t.Name, Partitions: t.Partitions, ReplicationFactor: t.ReplicationFactor}
		for _, kv := range t.Configs {
			topics[i].Configs = append(topics[i].Configs, TopicConfig{Name: kv.Name, Value: kv.Value})
		}
	}
	errs := make([]error, len(topics))
	var allowed []NewTopic
	var at []int // allowed[k] answers errs[at[k]]
	for i, t := range topics {
		if errs[i] = c.sess.CanCreateTopic(t.Name); errs[i] == nil {
			allowed, at = append(allowed, t), append(at, i)
		}
	}
	for k, err := range c.b.CreateTopics(ctx, allowed, req.ValidateOnly) {
		errs[at[k]] = err
	}
	out := protocol.CreateTopicsResponse{Topics: make([]protocol.TopicError, len(req.Topics))}
	for i, t := range req.Topics {
		out.Topics[i].Name = t.Name
		out.Topics[i].ErrorCode, out.Topics[i].ErrorMessage = ErrorCode(errs[i])
	}
	c.encode(resp, h, &out)
	return nil
}

// handleDeleteTopics deletes topics and their data through the core.
func (c *conn) handleDeleteTopics(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DeleteTopicsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	ctx, cancel := adminContext(req.TimeoutMs)
	defer cancel()
	errs := make([]error, len(req.Topics))
	var allowed []string
	var at []int // allowed[k] answers errs[at[k]]
	for i, name := range req.Topics {
		if errs[i] = c.sess.CanDeleteTopic(name); errs[i] == nil {
			allowed, at = append(allowed, name), append(at, i)
		}
	}
	for k, err := range c.b.DeleteTopics(ctx, allowed) {
		errs[at[k]] = err
	}
	out := protocol.DeleteTopicsResponse{Topics: make([]protocol.TopicError, len(req.Topics))}
	for i, name := range req.Topics {
		out.Topics[i].Name = name
		out.Topics[i].ErrorCode, out.Topics[i].ErrorMessage = ErrorCode(errs[i])
	}
	c.encode(resp, h, &out)
	return nil
}

// errTopicResourcesOnly answers config requests for other resource types.
var errTopicResourcesOnly = errors.New("only topics, groups and the cluster (broker resource, empty name) have configs on this broker")

// isCluster reports whether a config resource names the cluster: a
// broker resource with an empty name, Kafka's cluster-wide default.
func isCluster(t protocol.ResourceType, name string) bool {
	return t == protocol.ResourceBroker && name == ""
}

// handleDescribeConfigs returns the effective configs of topics, groups
// and the cluster.
func (c *conn) handleDescribeConfigs(h *protocol.RequestHeader, resp *response) error {
	var req protocol.DescribeConfigsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := protocol.DescribeConfigsResponse{Resources: make([]protocol.DescribeConfigsResult, len(req.Resources))}
	for i, r := range req.Resources {
		res := &out.Resources[i]
		res.Type, res.Name = r.Type, r.Name
		var values []ConfigValue
		var err error
		switch {
		case isCluster(r.Type, r.Name):
			if err = c.sess.CanCluster(auth.OpDescribeConfigs); err == nil {
				values = c.b.DescribeClusterConfigs(r.ConfigNames)
			}
		case r.Type == protocol.ResourceTopic:
			if err = c.sess.CanDescribeConfigs(r.Name); err == nil {
				values, err = c.b.DescribeTopicConfigs(r.Name, r.ConfigNames)
			}
		case r.Type == protocol.ResourceGroup:
			if err = c.sess.CanGroup(r.Name, auth.OpDescribeConfigs); err == nil {
				values, err = c.b.DescribeGroupConfigs(r.Name, r.ConfigNames)
			}
		default:
			err = &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: errTopicResourcesOnly.Error()}
		}
		if err != nil {
			res.ErrorCode, res.ErrorMessage = ErrorCode(err)
			continue
		}
		res.Configs = make([]protocol.ConfigEntry, len(values))
		for j, v := range values {
			res.Configs[j] = protocol.ConfigEntry{Name: v.Name, Value: v.Value, IsDefault: v.IsDefault}
		}
	}
	c.encode(resp, h, &out)
	return nil
}

// handleAlterConfigs changes the configs of topics, groups and the
// cluster incrementally through the
// core.
func (c *conn) handleAlterConfigs(h *protocol.RequestHeader, resp *response) error {
	var req protocol.AlterConfigsRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	ctx, cancel := adminContext(0)
	defer cancel()
	out := protocol.AlterConfigsResponse{Resources: make([]protocol.ResourceError, len(req.Resources))}
	var changes []ConfigAlteration
	var at []int // changes[k] answers out.Resources[at[k]]
	for i, r := range req.Resources {
		res := &out.Resources[i]
		res.Type, res.Name = r.Type, r.Name
		if r.Type != protocol.ResourceTopic && r.Type != protocol.ResourceGroup && !isCluster(r.Type, r.Name) {
			res.ErrorCode, res.ErrorMessage = protocol.ErrInvalidRequest, errTopicResourcesOnly.Error()
			continue
		}
		var err error
		switch {
		case isCluster(r.Type, r.Name):
			err = c.sess.CanCluster(auth.OpAlterConfigs)
		case r.Type == protocol.ResourceGroup:
			err = c.sess.CanGroup(r.Name, auth.OpAlterConfigs)
		default:
			err = c.sess.CanAlterConfigs(r.Name)
		}
		if err != nil {
			res.ErrorCode, res.ErrorMessage = ErrorCode(err)
			continue
		}
		change, err := alteration(r)
		switch {
		case err != nil:
		case isCluster(r.Type, r.Name):
			err = c.b.AlterClusterConfigs(ctx, change.Set, change.Remove, req.ValidateOnly)
		case r.Type == protocol.ResourceGroup:
			err = c.b.AlterGroupConfigs(ctx, r.Name, change.Set, change.Remove, req.ValidateOnly)
		}
		if err != nil || r.Type != protocol.ResourceTopic {
			res.ErrorCode, res.ErrorMessage = ErrorCode(err)
			continue
		}
		changes, at = append(changes, change), append(at, i)
	}
	for k, err := range c.b.AlterTopicConfigs(ctx, changes, req.ValidateOnly) {
		res := &out.Resources[at[k]]
		res.ErrorCode, res.ErrorMessage = ErrorCode(err)
	}
	c.encode(resp, h, &out)
	return nil
}

// alteration translates one resource's config operations.
func alteration(r protocol.AlterConfigsResource) (ConfigAlteration, error) {
	a := ConfigAlteration{Topic: r.Name, Set: map[string]string{}}
	for _, cf := range r.Configs {
		switch cf.Op {
		case protocol.ConfigSet:
			a.Set[cf.Name] = cf.Value
		case protocol.ConfigDelete:
			a.Remove = append(a.Remove, cf.Name)
		default:
			return a, &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: fmt.Sprintf("config %q: unknown operation %d", cf.Name, cf.Op)}
		}
	}
	return a, nil
}
