package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/controller"
)

// Group configs (KIP-848's GROUP config resource, type 32): a queue
// group's settings (docs/queues.md), through the same core calls as the
// sluice protocol's. Kafka's share-group names (share.record.lock.
// duration.ms, share.delivery.count.limit) are accepted when altering
// and described beside sluice's keys, so Kafka tools find them.

const resourceGroup = kmsg.ConfigResourceTypeGroupConfig

// describeGroupConfigs fills rr with group r's configs: the names asked
// for, or all of them, each Kafka alias too. Describing needs
// DESCRIBE_CONFIGS on the group.
func (s *Server) describeGroupConfigs(sess *broker.Session, r kmsg.DescribeConfigsRequestResource, rr *kmsg.DescribeConfigsResponseResource) {
	if err := sess.CanGroup(r.ResourceName, auth.OpDescribeConfigs); err != nil {
		rr.ErrorCode, rr.ErrorMessage = errorCode(err)
		return
	}
	values, err := s.b.DescribeGroupConfigs(r.ResourceName, r.ConfigNames)
	rr.ErrorCode, rr.ErrorMessage = errorCode(err)
	aliases := controller.GroupConfigAliases()
	for _, v := range values {
		names := []string{v.Name}
		if a, ok := aliases[v.Name]; ok {
			names = append(names, a)
		}
		for _, name := range names {
			if len(r.ConfigNames) > 0 && !slices.Contains(r.ConfigNames, name) {
				continue
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			value := v.Value
			c.Name, c.Value, c.IsDefault = name, &value, v.IsDefault
			c.Source = kmsg.ConfigSourceGroupConfig
			if v.IsDefault {
				c.Source = kmsg.ConfigSourceDefaultConfig
			}
			rr.Configs = append(rr.Configs, c)
		}
	}
}

// alterGroupConfigs applies one group's incremental change; it needs
// ALTER_CONFIGS on the group, as Kafka's IncrementalAlterConfigs does.
func (s *Server) alterGroupConfigs(ctx context.Context, sess *broker.Session, c broker.ConfigAlteration, validateOnly bool) error {
	if err := sess.CanGroup(c.Topic, auth.OpAlterConfigs); err != nil {
		return err
	}
	return s.b.AlterGroupConfigs(ctx, c.Topic, c.Set, c.Remove, validateOnly)
}
