package broker

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

func TestLogConfigCompaction(t *testing.T) {
	get := func(kv map[string]string) func(string) string {
		return topicValues(&controller.Topic{Configs: kv}, nil)
	}
	pc, err := logConfig(get(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c := pc.log.WithDefaults(); c.CleanupPolicy != log.CleanupDelete || c.MinCleanableDirtyRatio != 0.5 ||
		c.DeleteRetention != 24*time.Hour || c.MaxCompactionLag != -1 || c.MinCompactionLag != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	pc, err = logConfig(get(map[string]string{
		"cleanup.policy": "compact,delete", "min.compaction.lag.ms": "1000", "max.compaction.lag.ms": "60000",
		"min.cleanable.dirty.ratio": "0.25", "delete.retention.ms": "5000",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c := pc.log; c.CleanupPolicy != log.CleanupCompact|log.CleanupDelete || c.MinCompactionLag != time.Second ||
		c.MaxCompactionLag != time.Minute || c.MinCleanableDirtyRatio != 0.25 || c.DeleteRetention != 5*time.Second {
		t.Fatalf("set: %+v", c)
	}
	if sameLogConfig(pc.log, log.Config{}) {
		t.Fatal("a compaction config reads as the same log config as none")
	}
	// Zeros mean "at once", not the log's defaults.
	pc, err = logConfig(get(map[string]string{"cleanup.policy": "compact", "max.compaction.lag.ms": "0", "delete.retention.ms": "0", "min.cleanable.dirty.ratio": "0"}))
	if err != nil {
		t.Fatal(err)
	}
	if c := pc.log.WithDefaults(); c.MaxCompactionLag <= 0 || c.MaxCompactionLag >= time.Millisecond ||
		c.DeleteRetention <= 0 || c.DeleteRetention >= time.Millisecond || c.MinCleanableDirtyRatio != math.SmallestNonzeroFloat64 {
		t.Fatalf("zeros: %+v", c)
	}
	for _, bad := range []map[string]string{
		{"cleanup.policy": "compact,compact"},
		{"min.cleanable.dirty.ratio": "1.5"},
		{"min.compaction.lag.ms": "60000", "max.compaction.lag.ms": "1000"},
	} {
		if _, err := logConfig(get(bad)); !errors.Is(err, controller.ErrInvalidConfig) {
			t.Fatalf("%v: %v, want ErrInvalidConfig", bad, err)
		}
	}
}

// A compacted topic refuses a record without a key (INVALID_RECORD,
// nothing written), as Kafka does; keyed records and other topics are
// unaffected.
func TestCompactedTopicRefusesKeylessRecords(t *testing.T) {
	b := startBroker(t, "", nil)
	ctx := context.Background()
	errs := b.CreateTopics(ctx, []NewTopic{
		{Name: "table", Partitions: 1, ReplicationFactor: -1, Configs: []TopicConfig{{"cleanup.policy", "compact"}}},
		{Name: "events", Partitions: 1, ReplicationFactor: -1},
	}, false)
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("create: %v", errs)
	}
	bld := record.NewBuilder(record.None)
	bld.Append(1, []byte("k"), []byte("v"), nil)
	bld.Append(1, nil, []byte("no key"), nil)
	keyless, err := bld.AppendBatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "partitions led", func() error {
		_, err := b.Append(nil, "events", 0, keyless, AcksLeader)
		return err
	})
	_, err = b.Append(nil, "table", 0, keyless, AcksLeader)
	if code, _ := ErrorCode(err); code != protocol.ErrInvalidRecord || !strings.Contains(err.Error(), "without a key") {
		t.Fatalf("keyless record to a compacted topic: %v (code %v), want INVALID_RECORD", err, code)
	}
	if _, err := b.Append(nil, "table", 0, makeBatch(t, record.None, "v", 2, 0), AcksLeader); err != nil {
		t.Fatalf("keyed records: %v", err)
	}
}
