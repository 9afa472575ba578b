package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// Kafka's config resource types the listener knows.
const (
	resourceTopic  = kmsg.ConfigResourceTypeTopic
	resourceBroker = kmsg.ConfigResourceTypeBroker
)

// createTopics creates topics through the core (Broker.CreateTopics),
// -1 partitions or replication factor taking the broker's defaults.
// Manual replica assignments are refused: placement is the controller's.
func (s *Server) createTopics(ctx context.Context, sess *broker.Session, req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	ctx, cancel := ctxTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	topics := make([]broker.NewTopic, 0, len(req.Topics))
	refused := make([]error, len(req.Topics))
	for i, t := range req.Topics {
		if refused[i] = sess.CanCreateTopic(t.Topic); refused[i] != nil {
			continue
		}
		if len(t.ReplicaAssignment) > 0 {
			refused[i] = &protocol.Error{Code: protocol.ErrInvalidReplicaAssignment,
				Detail: "manual replica assignment is not supported: give a partition count and replication factor"}
			continue
		}
		nt := broker.NewTopic{Name: t.Topic, Partitions: t.NumPartitions, ReplicationFactor: t.ReplicationFactor}
		for _, c := range t.Configs {
			if c.Value != nil { // null: the default
				nt.Configs = append(nt.Configs, broker.TopicConfig{Name: c.Name, Value: *c.Value})
			}
		}
		topics = append(topics, nt)
	}
	errs := withRefused(refused, s.b.CreateTopics(ctx, topics, req.ValidateOnly))
	for i, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		err := errs[i]
		rt.ErrorCode, rt.ErrorMessage = errorCode(err)
		if err == nil && req.Version < 1 {
			rt.ErrorMessage = nil
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// createPartitions grows topics through the core (Broker.CreatePartitions).
// Manual assignments of the new partitions are refused: placement is the
// controller's.
func (s *Server) createPartitions(ctx context.Context, sess *broker.Session, req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	ctx, cancel := ctxTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	counts := make([]broker.PartitionCount, 0, len(req.Topics))
	refused := make([]error, len(req.Topics))
	for i, t := range req.Topics {
		if refused[i] = sess.CanAlterTopic(t.Topic); refused[i] != nil {
			continue
		}
		if len(t.Assignment) > 0 {
			refused[i] = &protocol.Error{Code: protocol.ErrInvalidReplicaAssignment,
				Detail: "manual replica assignment is not supported: give the partition count"}
			continue
		}
		counts = append(counts, broker.PartitionCount{Topic: t.Topic, Count: t.Count})
	}
	errs := withRefused(refused, s.b.CreatePartitions(ctx, counts, req.ValidateOnly))
	for i, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		err := errs[i]
		rt.ErrorCode, rt.ErrorMessage = errorCode(err)
		if err == nil {
			rt.ErrorMessage = nil
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// withRefused merges the errors of the entries a handler refused itself
// (refused, nil where it passed the entry on) with the core's errors for
// the entries passed on, in order: one error per entry of the request.
func withRefused(refused, core []error) []error {
	out := make([]error, len(refused))
	k := 0
	for i, err := range refused {
		if err == nil {
			err = core[k]
			k++
		}
		out[i] = err
	}
	return out
}

// deleteTopics deletes topics by name through the core.
func (s *Server) deleteTopics(ctx context.Context, sess *broker.Session, req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := ctxTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	errs := make([]error, len(req.TopicNames))
	var allowed []string
	var at []int // allowed[k] answers errs[at[k]]
	for i, name := range req.TopicNames {
		if errs[i] = sess.CanDeleteTopic(name); errs[i] == nil {
			allowed, at = append(allowed, name), append(at, i)
		}
	}
	for k, err := range s.b.DeleteTopics(ctx, allowed) {
		errs[at[k]] = err
	}
	for i, name := range req.TopicNames {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic = &name
		rt.ErrorCode = codeOf(errs[i])
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// describeConfigs reports topic configs through the core
// (Broker.DescribeTopicConfigs): a key set on the topic as a dynamic
// topic config, the others as defaults. A broker resource is answered
// with no configs (the broker's settings are flags, not Kafka configs).
func (s *Server) describeConfigs(sess *broker.Session, req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		switch r.ResourceType {
		case resourceBroker:
			rr.ErrorCode, rr.ErrorMessage = errorCode(sess.CanDescribeClusterConfigs())
		case resourceTopic:
			if err := sess.CanDescribeConfigs(r.ResourceName); err != nil {
				rr.ErrorCode, rr.ErrorMessage = errorCode(err)
				break
			}
			values, err := s.b.DescribeTopicConfigs(r.ResourceName, r.ConfigNames)
			rr.ErrorCode, rr.ErrorMessage = errorCode(err)
			for _, v := range values {
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				value := v.Value
				c.Name, c.Value, c.IsDefault = v.Name, &value, v.IsDefault
				c.Source = kmsg.ConfigSourceDynamicTopicConfig
				if v.IsDefault {
					c.Source = kmsg.ConfigSourceDefaultConfig
				}
				rr.Configs = append(rr.Configs, c)
			}
		case resourceGroup:
			s.describeGroupConfigs(sess, r, &rr)
		default:
			rr.ErrorCode, rr.ErrorMessage = errorCode(unsupportedResource(r.ResourceType))
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func unsupportedResource(t kmsg.ConfigResourceType) error {
	return &protocol.Error{Code: protocol.ErrInvalidRequest, Detail: fmt.Sprintf("config resource type %v is not supported; topics are, and groups with IncrementalAlterConfigs", t)}
}

// alterConfigs replaces a topic's configs (Kafka's non-incremental
// AlterConfigs): the keys named are set, every other key set on the topic
// goes back to its default. Through the core (Broker.AlterTopicConfigs).
func (s *Server) alterConfigs(ctx context.Context, sess *broker.Session, req *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	md := s.b.Metadata()
	changes := make([]broker.ConfigAlteration, len(req.Resources))
	for i, r := range req.Resources {
		c := broker.ConfigAlteration{Topic: r.ResourceName, Set: map[string]string{}}
		for _, kv := range r.Configs {
			if kv.Value != nil {
				c.Set[kv.Name] = *kv.Value
			}
		}
		if t, ok := md.Topics[r.ResourceName]; ok {
			for key := range t.Configs {
				if _, set := c.Set[key]; !set {
					c.Remove = append(c.Remove, key)
				}
			}
		}
		changes[i] = c
	}
	refused := make([]error, len(changes))
	for i, r := range req.Resources {
		if r.ResourceType == resourceGroup {
			refused[i] = unsupportedResource(r.ResourceType) // as Kafka: groups only incrementally
		}
	}
	errs := s.alter(ctx, sess, changes, req.ValidateOnly, refused,
		func(i int) kmsg.ConfigResourceType { return req.Resources[i].ResourceType })
	for i, r := range req.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		rr.ErrorCode, rr.ErrorMessage = errorCode(errs[i])
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// incrementalAlterConfigs sets (op 0) and deletes (op 1) topic config
// keys through the core. APPEND and SUBTRACT (list-valued configs) are
// refused: no sluice topic config is a list.
func (s *Server) incrementalAlterConfigs(ctx context.Context, sess *broker.Session, req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	changes := make([]broker.ConfigAlteration, len(req.Resources))
	refused := make([]error, len(req.Resources))
	for i, r := range req.Resources {
		c := broker.ConfigAlteration{Topic: r.ResourceName, Set: map[string]string{}}
		for _, kv := range r.Configs {
			switch {
			case kv.Op == kmsg.IncrementalAlterConfigOpSet && kv.Value != nil:
				c.Set[kv.Name] = *kv.Value
			case kv.Op == kmsg.IncrementalAlterConfigOpDelete:
				c.Remove = append(c.Remove, kv.Name)
			default:
				refused[i] = &protocol.Error{Code: protocol.ErrInvalidRequest,
					Detail: fmt.Sprintf("config %q: operation %v is not supported (SET with a value and DELETE are)", kv.Name, kv.Op)}
			}
		}
		changes[i] = c
	}
	errs := s.alter(ctx, sess, changes, req.ValidateOnly, refused,
		func(i int) kmsg.ConfigResourceType { return req.Resources[i].ResourceType })
	for i, r := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		rr.ErrorCode, rr.ErrorMessage = errorCode(errs[i])
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// alter applies the topic changes not already refused in errs
// (Broker.AlterTopicConfigs) and group changes (alterGroupConfigs), and
// fills errs, one per change: other resources are refused.
func (s *Server) alter(ctx context.Context, sess *broker.Session, changes []broker.ConfigAlteration, validateOnly bool, errs []error,
	typeOf func(int) kmsg.ConfigResourceType) []error {
	ctx, cancel := ctxTimeout(ctx, 0)
	defer cancel()
	var topics []broker.ConfigAlteration
	var at []int
	for i, c := range changes {
		if errs[i] != nil {
			continue
		}
		if typeOf(i) == resourceGroup {
			errs[i] = s.alterGroupConfigs(ctx, sess, c, validateOnly)
			continue
		}
		if t := typeOf(i); t != resourceTopic {
			// A broker resource is the cluster's: checked first, as Kafka does.
			if errs[i] = sess.CanAlterClusterConfigs(); errs[i] == nil || t != resourceBroker {
				errs[i] = unsupportedResource(t)
			}
			continue
		}
		if errs[i] = sess.CanAlterConfigs(c.Topic); errs[i] != nil {
			continue
		}
		topics, at = append(topics, c), append(at, i)
	}
	for k, err := range s.b.AlterTopicConfigs(ctx, topics, validateOnly) {
		errs[at[k]] = err
	}
	return errs
}

// deleteRecords moves partitions' log start offsets through the core
// (Broker.DeleteRecords, on the leader; -1 is the high watermark); the
// low watermark answered is the leader's new log start offset. Needs
// delete on the topic, as in Kafka.
func (s *Server) deleteRecords(sess *broker.Session, req *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	var cu broker.CatchUp
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		refused := sess.CanDeleteTopic(t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition, rp.LowWatermark = p.Partition, -1
			err := refused
			if err == nil {
				rp.LowWatermark, err = s.b.DeleteRecords(&cu, t.Topic, p.Partition, p.Offset)
			}
			rp.ErrorCode = codeOf(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
