package kafka

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A Kafka client sets a queue group's settings with IncrementalAlterConfigs
// on a GROUP resource, under Kafka's share-group names and sluice's, and
// reads them back with DescribeConfigs under both; the sluice client
// sees the same values. A bad value is INVALID_CONFIG; the legacy
// AlterConfigs is refused for groups, as in Kafka.
func TestFranzGroupConfigs(t *testing.T) {
	ctx := testContext(t)
	kc := startKafkaCluster(t, 1)
	cl := newClient(t, kc.seeds())

	alter := func(name, value string) error {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		r := kmsg.NewIncrementalAlterConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "workers"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = name, &value
		r.Configs = append(r.Configs, c)
		req.Resources = append(req.Resources, r)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err := alter("share.record.lock.duration.ms", "15000"); err != nil {
		t.Fatal(err)
	}
	if err := alter("queue.backoff.ms", "100,1000"); err != nil {
		t.Fatal(err)
	}
	if err := alter("share.delivery.count.limit", "1000"); !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("a limit of 1000: %v, want INVALID_CONFIG", err)
	}

	dreq := kmsg.NewPtrDescribeConfigsRequest()
	dr := kmsg.NewDescribeConfigsRequestResource()
	dr.ResourceType, dr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "workers"
	dreq.Resources = append(dreq.Resources, dr)
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil || len(dresp.Resources) != 1 || dresp.Resources[0].ErrorCode != 0 {
		t.Fatalf("describe: %+v, %v", dresp, err)
	}
	got := map[string]string{}
	for _, c := range dresp.Resources[0].Configs {
		if c.Value != nil && c.Source == kmsg.ConfigSourceGroupConfig {
			got[c.Name] = *c.Value
		}
	}
	if len(got) != 3 || got["share.record.lock.duration.ms"] != "15000" || got["queue.lease.ms"] != "15000" || got["queue.backoff.ms"] != "100,1000" {
		t.Fatalf("described %v", got)
	}
	entries, err := kc.Client().DescribeQueueGroupConfigs(ctx, "workers", "queue.lease.ms")
	if err != nil || len(entries) != 1 || entries[0].Value != "15000" || entries[0].IsDefault {
		t.Fatalf("sluice client: %+v, %v", entries, err)
	}

	legacy := kmsg.NewPtrAlterConfigsRequest()
	lr := kmsg.NewAlterConfigsRequestResource()
	lr.ResourceType, lr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "workers"
	legacy.Resources = append(legacy.Resources, lr)
	lresp, err := legacy.RequestWith(ctx, cl)
	if err != nil || len(lresp.Resources) != 1 || lresp.Resources[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("legacy AlterConfigs of a group: %+v, %v", lresp, err)
	}
}
