package broker

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

func TestCreateTopicsErrors(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("exists", 1)
	tests := []struct {
		name  string
		topic protocol.CreatableTopic
		code  protocol.ErrorCode
	}{
		{"exists", protocol.CreatableTopic{Name: "exists", Partitions: 1, ReplicationFactor: 1}, protocol.ErrTopicAlreadyExists},
		{"bad name", protocol.CreatableTopic{Name: "a/b", Partitions: 1, ReplicationFactor: 1}, protocol.ErrInvalidTopic},
		{"empty name", protocol.CreatableTopic{Name: "", Partitions: 1, ReplicationFactor: 1}, protocol.ErrInvalidTopic},
		{"zero partitions", protocol.CreatableTopic{Name: "p0", Partitions: 0, ReplicationFactor: 1}, protocol.ErrInvalidPartitions},
		{"negative partitions", protocol.CreatableTopic{Name: "pn", Partitions: -5, ReplicationFactor: 1}, protocol.ErrInvalidPartitions},
		{"rf above brokers", protocol.CreatableTopic{Name: "rf", Partitions: 1, ReplicationFactor: 2}, protocol.ErrInvalidReplicationFactor},
		{"unknown config", protocol.CreatableTopic{Name: "cfg", Partitions: 1, ReplicationFactor: 1,
			Configs: []protocol.Config{{Name: "no.such.key", Value: "1"}}}, protocol.ErrInvalidConfig},
		{"bad config value", protocol.CreatableTopic{Name: "cfg", Partitions: 1, ReplicationFactor: 1,
			Configs: []protocol.Config{{Name: "fsync", Value: "sometimes"}}}, protocol.ErrInvalidConfig},
		{"config combination", protocol.CreatableTopic{Name: "cfg", Partitions: 1, ReplicationFactor: 1,
			Configs: []protocol.Config{{Name: "segment.bytes", Value: "4096"}, {Name: "max.message.bytes", Value: "10000"}}}, protocol.ErrInvalidConfig},
		{"defaults", protocol.CreatableTopic{Name: "dflt", Partitions: -1, ReplicationFactor: -1}, protocol.NoError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp protocol.CreateTopicsResponse
			c.call(&protocol.CreateTopicsRequest{Topics: []protocol.CreatableTopic{tt.topic}}, &resp)
			if got := resp.Topics[0].ErrorCode; got != tt.code {
				t.Fatalf("code %v, want %v (%s)", got, tt.code, resp.Topics[0].ErrorMessage)
			}
		})
	}
	// Validate-only creates nothing; a name twice in one request is refused.
	var resp protocol.CreateTopicsResponse
	c.call(&protocol.CreateTopicsRequest{ValidateOnly: true, Topics: []protocol.CreatableTopic{
		{Name: "dry", Partitions: 1, ReplicationFactor: 1}, {Name: "exists", Partitions: 1, ReplicationFactor: 1}}}, &resp)
	if resp.Topics[0].ErrorCode != protocol.NoError || resp.Topics[1].ErrorCode != protocol.ErrTopicAlreadyExists {
		t.Fatalf("validate only: %+v", resp.Topics)
	}
	if _, ok := b.store.Metadata().Topics["dry"]; ok {
		t.Fatal("validate-only created the topic")
	}
	c.call(&protocol.CreateTopicsRequest{Topics: []protocol.CreatableTopic{
		{Name: "twice", Partitions: 1, ReplicationFactor: 1}, {Name: "twice", Partitions: 1, ReplicationFactor: 1}}}, &resp)
	if resp.Topics[0].ErrorCode != protocol.ErrInvalidRequest || resp.Topics[1].ErrorCode != protocol.ErrInvalidRequest {
		t.Fatalf("duplicate names: %+v", resp.Topics)
	}
}

func TestDeleteTopicRemovesData(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, nil)
	c := dial(t, b.Addr())
	c.createTopic("gone", 2)
	c.produce("gone", 0, protocol.AcksLeader, makeBatch(t, record.None, "g", 3, 0))
	var resp protocol.DeleteTopicsResponse
	c.call(&protocol.DeleteTopicsRequest{Topics: []string{"gone", "never", "bad/name"}}, &resp)
	codes := []protocol.ErrorCode{protocol.NoError, protocol.ErrUnknownTopicOrPartition, protocol.ErrInvalidTopic}
	for i, want := range codes {
		if resp.Topics[i].ErrorCode != want {
			t.Fatalf("topic %s: %v, want %v", resp.Topics[i].Name, resp.Topics[i].ErrorCode, want)
		}
	}
	for _, p := range []string{"gone-0", "gone-1"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Fatalf("%s still there after delete: %v", p, err)
		}
	}
	if r := c.produce("gone", 0, protocol.AcksLeader, makeBatch(t, record.None, "g", 1, 0)); r.ErrorCode != protocol.ErrUnknownTopicOrPartition {
		t.Fatalf("produce to deleted topic: %v", r.ErrorCode)
	}
	// Re-created under the same name, it starts empty.
	c.createTopic("gone", 1)
	if got := c.fetch("gone", 0, 0); got.HighWatermark != 0 || len(got.Records) != 0 {
		t.Fatalf("re-created topic not empty: %+v", got)
	}
}

// A partition directory left by a deleted topic of the same name (a crash
// between the metadata change and the removal) is never served as the new
// topic's data.
func TestStaleDirectoryOfSameNameIsDiscarded(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, nil)
	c := dial(t, b.Addr())
	c.createTopic("t", 1)
	c.produce("t", 0, protocol.AcksLeader, makeBatch(t, record.None, "old", 3, 0))
	c.nc.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(t.TempDir(), "t-0")
	if err := os.Rename(filepath.Join(dir, "t-0"), stale); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir, nil)
	c = dial(t, b.Addr())
	var resp protocol.DeleteTopicsResponse
	c.call(&protocol.DeleteTopicsRequest{Topics: []string{"t"}}, &resp)
	c.nc.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Put the old data back, as if its removal had not happened: the next
	// start removes it.
	stale2 := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(stale2, os.DirFS(stale)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(stale, filepath.Join(dir, "t-0")); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir, nil)
	if _, err := os.Stat(filepath.Join(dir, "t-0")); !os.IsNotExist(err) {
		t.Fatalf("orphan directory of a deleted topic kept at start: %v", err)
	}
	// And if it reappears when a topic of the same name is created (as
	// when the topic was deleted and re-created while this broker was
	// down), its topic id gives it away.
	if err := os.Rename(stale2, filepath.Join(dir, "t-0")); err != nil {
		t.Fatal(err)
	}
	c = dial(t, b.Addr())
	c.createTopic("t", 1)
	if got := c.fetch("t", 0, 0); got.HighWatermark != 0 {
		t.Fatalf("new topic serves old data: %+v", got)
	}
}

func TestDescribeAndAlterConfigs(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.TopicDefaults = map[string]string{"retention.bytes": "1000000"} })
	c := dial(t, b.Addr())
	c.createTopic("cfg", 1, protocol.Config{Name: "segment.bytes", Value: "2097152"})
	describe := func(names ...string) map[string]protocol.ConfigEntry {
		t.Helper()
		var resp protocol.DescribeConfigsResponse
		c.call(&protocol.DescribeConfigsRequest{Resources: []protocol.DescribeConfigsResource{
			{Type: protocol.ResourceTopic, Name: "cfg", ConfigNames: names}}}, &resp)
		if resp.Resources[0].ErrorCode != protocol.NoError {
			t.Fatalf("describe: %+v", resp.Resources[0])
		}
		out := map[string]protocol.ConfigEntry{}
		for _, e := range resp.Resources[0].Configs {
			out[e.Name] = e
		}
		return out
	}
	all := describe()
	if e := all["segment.bytes"]; e.Value != "2097152" || e.IsDefault {
		t.Fatalf("segment.bytes: %+v", e)
	}
	if e := all["retention.bytes"]; e.Value != "1000000" || !e.IsDefault {
		t.Fatalf("retention.bytes (broker default): %+v", e)
	}
	if e := all["fsync"]; e.Value != "interval" || !e.IsDefault {
		t.Fatalf("fsync: %+v", e)
	}

	alter := func(validateOnly bool, cfgs ...protocol.AlterableConfig) protocol.ResourceError {
		t.Helper()
		var resp protocol.AlterConfigsResponse
		c.call(&protocol.AlterConfigsRequest{ValidateOnly: validateOnly, Resources: []protocol.AlterConfigsResource{
			{Type: protocol.ResourceTopic, Name: "cfg", Configs: cfgs}}}, &resp)
		return resp.Resources[0]
	}
	if r := alter(false, protocol.AlterableConfig{Name: "retention.ms", Value: "60000"},
		protocol.AlterableConfig{Name: "segment.bytes", Op: protocol.ConfigDelete}); r.ErrorCode != protocol.NoError {
		t.Fatalf("alter: %+v", r)
	}
	got := describe("retention.ms", "segment.bytes", "no.such.key")
	if len(got) != 2 || got["retention.ms"].Value != "60000" || got["retention.ms"].IsDefault || !got["segment.bytes"].IsDefault {
		t.Fatalf("after alter: %+v", got)
	}
	if p := b.parts.get("cfg", 0); p.cfg.log.RetentionAge.Milliseconds() != 60000 || p.cfg.log.SegmentBytes != 1<<30 {
		t.Fatalf("log config not applied: %+v", p.cfg.log)
	}
	// The reopened log still takes appends.
	if r := c.produce("cfg", 0, protocol.AcksLeader, makeBatch(t, record.None, "x", 1, 0)); r.ErrorCode != protocol.NoError {
		t.Fatalf("produce after alter: %+v", r)
	}
	refusals := []struct {
		name string
		cfg  protocol.AlterableConfig
		code protocol.ErrorCode
	}{
		{"bad value", protocol.AlterableConfig{Name: "retention.ms", Value: "soon"}, protocol.ErrInvalidConfig},
		{"unknown key", protocol.AlterableConfig{Name: "nope", Value: "1"}, protocol.ErrInvalidConfig},
		{"unknown delete", protocol.AlterableConfig{Name: "nope", Op: protocol.ConfigDelete}, protocol.ErrInvalidConfig},
		{"bad op", protocol.AlterableConfig{Name: "retention.ms", Op: 9}, protocol.ErrInvalidRequest},
		{"combination", protocol.AlterableConfig{Name: "segment.bytes", Value: "4096"}, protocol.ErrInvalidConfig},
	}
	for _, tt := range refusals {
		if r := alter(false, tt.cfg); r.ErrorCode != tt.code {
			t.Errorf("%s: %v, want %v", tt.name, r.ErrorCode, tt.code)
		}
	}
	if r := alter(true, protocol.AlterableConfig{Name: "retention.ms", Value: "1"}); r.ErrorCode != protocol.NoError {
		t.Fatalf("validate only: %+v", r)
	}
	if v := describe("retention.ms")["retention.ms"].Value; v != "60000" {
		t.Fatalf("validate-only alter changed the value to %s", v)
	}

	var dresp protocol.DescribeConfigsResponse
	c.call(&protocol.DescribeConfigsRequest{Resources: []protocol.DescribeConfigsResource{
		{Type: protocol.ResourceTopic, Name: "missing"}, {Type: protocol.ResourceBroker, Name: "1"}}}, &dresp)
	if dresp.Resources[0].ErrorCode != protocol.ErrUnknownTopicOrPartition || dresp.Resources[1].ErrorCode != protocol.ErrInvalidRequest {
		t.Fatalf("describe errors: %+v", dresp.Resources)
	}
	var aresp protocol.AlterConfigsResponse
	c.call(&protocol.AlterConfigsRequest{Resources: []protocol.AlterConfigsResource{{Type: protocol.ResourceTopic, Name: "missing"}}}, &aresp)
	if aresp.Resources[0].ErrorCode != protocol.ErrUnknownTopicOrPartition {
		t.Fatalf("alter missing topic: %+v", aresp.Resources)
	}
}

// Deleting a topic while a connection has a long-poll on it and, queued
// behind that, a fetch holding Views of its log: the delete must not wait
// on the Views while blocking the long-poll that has to answer first.
func TestDeleteTopicWithFetchesInFlight(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.MaxFetchWait = time.Minute })
	admin, consumer := dial(t, b.Addr()), dial(t, b.Addr())
	admin.createTopic("busy", 1)
	batch := makeBatch(t, record.None, "b", 3, 0)
	admin.produce("busy", 0, protocol.AcksLeader, batch)
	pollCorr := consumer.send(fetchRequest("busy", 0, 3, 60000, 1))
	fetchCorr := consumer.send(fetchRequest("busy", 0, 0, 0, 0))
	poll.Until(t, 10*time.Second, "the long-poll", func() bool {
		p := b.parts.get("busy", 0)
		p.wmu.Lock()
		defer p.wmu.Unlock()
		return len(p.waiters) == 1
	})
	// And the fetch behind it handled (its response, holding Views, queued
	// while the writer waits for the long-poll): the scenario needs both
	// before the topic changes.
	poll.Until(t, 10*time.Second, "the queued fetch", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for c := range b.conns {
			if len(c.resps) > 0 {
				return true
			}
		}
		return false
	})
	for _, alter := range []bool{true, false} {
		if alter {
			// Reopening the log to apply a config has the same shape.
			var resp protocol.AlterConfigsResponse
			admin.call(&protocol.AlterConfigsRequest{Resources: []protocol.AlterConfigsResource{{Type: protocol.ResourceTopic, Name: "busy",
				Configs: []protocol.AlterableConfig{{Name: "retention.ms", Value: "123456"}}}}}, &resp)
			if resp.Resources[0].ErrorCode != protocol.NoError {
				t.Fatalf("alter: %+v", resp.Resources)
			}
			continue
		}
		var resp protocol.DeleteTopicsResponse
		admin.call(&protocol.DeleteTopicsRequest{Topics: []string{"busy"}}, &resp)
		if resp.Topics[0].ErrorCode != protocol.NoError {
			t.Fatalf("delete: %+v", resp.Topics)
		}
	}
	var fr protocol.FetchResponse
	consumer.recv(pollCorr, &fr)
	consumer.recv(fetchCorr, &fr)
	if p := onlyFetchPartition(t, &fr); p.ErrorCode != protocol.NoError {
		t.Fatalf("fetch queued behind the long-poll: %+v", p)
	}
}
