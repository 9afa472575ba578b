package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/protocol"
)

// describeFixture is a topic of two partitions on brokers 1..4: broker 1
// answers for its replicas, broker 2 answers without holding p1, broker 3
// is down, broker 4 does not serve DescribeReplicas, and broker 5 is not
// alive at all (absent from the answers).
func describeFixture() (client.TopicDescription, []client.PartitionOffset, []client.PartitionOffset, []client.BrokerReplicas) {
	d := client.TopicDescription{Name: "orders", Partitions: []client.PartitionDescription{
		{Partition: 0, Leader: 1, LeaderEpoch: 4, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, OfflineReplicas: []int32{3}},
		{Partition: 1, Leader: -1, LeaderEpoch: 2, Replicas: []int32{2, 4, 5}, ISR: []int32{2},
			Err: protocol.ErrLeaderNotAvailable.Err(), Note: "no in-sync replica alive: waiting for replicas [2] of the last ISR"},
	}}
	starts := []client.PartitionOffset{{Partition: 0, Offset: 10}, {Partition: 1, Offset: -1, Err: protocol.ErrLeaderNotAvailable.Err()}}
	ends := []client.PartitionOffset{{Partition: 0, Offset: 2000}, {Partition: 1, Offset: -1, Err: protocol.ErrLeaderNotAvailable.Err()}}
	brokers := []client.BrokerReplicas{
		{Broker: 1, Replicas: []client.ReplicaInfo{
			{Topic: "orders", Partition: 0, Leader: true, LeaderEpoch: 4, StartOffset: 10, EndOffset: 2000, HighWatermark: 1990, SyncedOffset: 1995},
			{Topic: "other", Partition: 1, LeaderEpoch: 9, EndOffset: 7},
		}},
		{Broker: 2, Replicas: []client.ReplicaInfo{
			{Topic: "orders", Partition: 0, LeaderEpoch: 4, StartOffset: 10, EndOffset: 1990, HighWatermark: 1990, SyncedOffset: 1990},
		}},
		{Broker: 3, Err: errors.New("broker 3: describe replicas: dial tcp: connection refused")},
		{Broker: 4, Err: fmt.Errorf("broker 4: %w", protocol.ErrUnsupportedVersion.Err())},
	}
	return d, starts, ends, brokers
}

func TestTopicViewReplicaStatus(t *testing.T) {
	d, starts, ends, brokers := describeFixture()
	tj := topicView(d, starts, ends, replicaStatus(brokers, nil), []client.ConfigEntry{{Key: "retention.ms", Value: "1000"}})
	if len(tj.Partitions) != 2 || tj.Configs["retention.ms"] != "1000" {
		t.Fatalf("view: %+v", tj)
	}
	p0, p1 := tj.Partitions[0], tj.Partitions[1]
	if p0.StartOffset != 10 || p0.EndOffset != 2000 || fmt.Sprint(p0.OfflineReplicas) != "[3]" || p0.Error != "" {
		t.Errorf("p0: %+v", p0)
	}
	if p1.StartOffset != -1 || p1.EndOffset != -1 || p1.OfflineReplicas == nil || !strings.Contains(p1.Error, "LEADER_NOT_AVAILABLE") {
		t.Errorf("p1: %+v", p1)
	}
	want := [][]replicaJSON{
		{
			{Broker: 1, Role: roleLeader, LeaderEpoch: 4, StartOffset: 10, EndOffset: 2000, HighWatermark: 1990, SyncedOffset: 1995},
			{Broker: 2, Role: roleFollower, LeaderEpoch: 4, StartOffset: 10, EndOffset: 1990, HighWatermark: 1990, SyncedOffset: 1990},
			{Broker: 3, Role: roleUnreachable, LeaderEpoch: -1, StartOffset: -1, EndOffset: -1, HighWatermark: -1, SyncedOffset: -1,
				Error: "broker 3: describe replicas: dial tcp: connection refused"},
		},
		{
			{Broker: 2, Role: roleMissing, LeaderEpoch: -1, StartOffset: -1, EndOffset: -1, HighWatermark: -1, SyncedOffset: -1},
			{Broker: 4, Role: roleUnknown, LeaderEpoch: -1, StartOffset: -1, EndOffset: -1, HighWatermark: -1, SyncedOffset: -1,
				Error: brokers[3].Err.Error()},
			{Broker: 5, Role: roleUnreachable, LeaderEpoch: -1, StartOffset: -1, EndOffset: -1, HighWatermark: -1, SyncedOffset: -1,
				Error: "not among the alive brokers"},
		},
	}
	for i, p := range tj.Partitions {
		if fmt.Sprint(p.ReplicaStatus) != fmt.Sprint(want[i]) {
			t.Errorf("partition %d replicas:\n got %+v\nwant %+v", i, p.ReplicaStatus, want[i])
		}
	}
}

// A replica its broker reports as failed shows its error, and a failure
// of DescribeReplicas as a whole makes every replica unreachable with it.
func TestReplicaStatusErrors(t *testing.T) {
	brokers := []client.BrokerReplicas{{Broker: 1, Replicas: []client.ReplicaInfo{
		{Topic: "t", Partition: 0, Err: protocol.ErrStorageError.Err()}}}}
	if r := replicaStatus(brokers, nil)("t", 0, 1); r.Role != roleError || !strings.Contains(r.Error, "STORAGE_ERROR") || r.EndOffset != -1 {
		t.Errorf("failed replica: %+v", r)
	}
	all := errors.New("describe replicas: metadata: no broker reachable")
	if r := replicaStatus(brokers, all)("t", 0, 1); r.Role != roleUnreachable || r.Error != all.Error() {
		t.Errorf("DescribeReplicas failed: %+v", r)
	}
}

func TestPrintTopic(t *testing.T) {
	d, starts, ends, brokers := describeFixture()
	entries := []client.ConfigEntry{{Key: "retention.ms", Value: "1000", IsDefault: true}}
	var out bytes.Buffer
	if err := printTopic(&out, topicView(d, starts, ends, replicaStatus(brokers, nil), entries), entries); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	for _, want := range [][]string{
		{"topic orders: 2 partitions"},
		{"PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "OFFLINE", "START", "END", "ERROR"},
		{"0", "1", "4", "[1 2 3]", "[1 2]", "[3]", "10", "2000"},
		{"1", "-1", "2", "[2 4 5]", "[2]", "[]", "-1", "-1", "LEADER_NOT_AVAILABLE"},
		{"note:", "partition", "1:", "no in-sync replica alive: waiting for replicas [2] of the last ISR"},
		{"replicas:"},
		{"PARTITION", "BROKER", "ROLE", "EPOCH", "START", "END", "HW", "SYNCED", "ERROR"},
		{"0", "1", "leader", "4", "10", "2000", "1990", "1995"},
		{"0", "2", "follower", "4", "10", "1990", "1990", "1990"},
		{"0", "3", "unreachable", "-", "-", "-", "-", "-", "connection refused"},
		{"1", "2", "missing", "-", "-", "-", "-", "-"},
		{"1", "4", "unknown", "-", "-", "-", "-", "-", "UNSUPPORTED_VERSION"},
		{"1", "5", "unreachable", "-", "-", "-", "-", "-", "not among the alive brokers"},
		{"configs:"},
		{"retention.ms=1000 (default)"},
	} {
		if !hasLine(lines, want) {
			t.Errorf("no line with %q in order:\n%s", want, out.String())
		}
	}
}

// hasLine reports whether a line holds the fields in order, each starting
// a whitespace-separated field (the table's columns).
func hasLine(lines []string, fields []string) bool {
	for _, l := range lines {
		rest := " " + l
		ok := true
		for _, f := range fields {
			i := strings.Index(rest, " "+f)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+1+len(f):]
		}
		if ok {
			return true
		}
	}
	return false
}

// The --json shape keeps its names: scripts read them.
func TestTopicJSONNames(t *testing.T) {
	d, starts, ends, brokers := describeFixture()
	b, err := json.Marshal(topicView(d, starts, ends, replicaStatus(brokers, nil), nil))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Partitions []map[string]any `json:"partitions"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"partition", "leader", "leader_epoch", "replicas", "isr", "offline_replicas", "start_offset",
		"end_offset", "replica_status"} {
		if _, ok := got.Partitions[0][k]; !ok {
			t.Errorf("partition lacks %q: %s", k, b)
		}
	}
	rs := got.Partitions[0]["replica_status"].([]any)[0].(map[string]any)
	for _, k := range []string{"broker", "role", "leader_epoch", "start_offset", "end_offset", "high_watermark", "synced_offset"} {
		if _, ok := rs[k]; !ok {
			t.Errorf("replica lacks %q: %v", k, rs)
		}
	}
}

// A compacted replica shows its cleaner state: the dirty ratio, the last
// clean, and a failing cleaner's error.
func TestPrintTopicCleaner(t *testing.T) {
	d := client.TopicDescription{Name: "accounts", Partitions: []client.PartitionDescription{
		{Partition: 0, Leader: 1, LeaderEpoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}}}
	offs := []client.PartitionOffset{{Partition: 0, Offset: 0}}
	brokers := []client.BrokerReplicas{
		{Broker: 1, Replicas: []client.ReplicaInfo{{Topic: "accounts", Leader: true, LeaderEpoch: 1, EndOffset: 9,
			Cleaner: &client.CleanerInfo{CleanBytes: 300, DirtyBytes: 100, LastClean: time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC)}}}},
		{Broker: 2, Replicas: []client.ReplicaInfo{{Topic: "accounts", LeaderEpoch: 1, EndOffset: 9,
			Cleaner: &client.CleanerInfo{DirtyBytes: 400, Failures: 3, Err: "no space left on device"}}}},
	}
	var out bytes.Buffer
	tj := topicView(d, offs, offs, replicaStatus(brokers, nil), nil)
	if err := printTopic(&out, tj, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	for _, want := range [][]string{
		{"cleaner:"},
		{"PARTITION", "BROKER", "DIRTY", "CLEAN BYTES", "DIRTY BYTES", "LAST CLEAN", "FAILURES", "ERROR"},
		{"0", "1", "25%", "300", "100", "2026-12-04T23:00:00Z", "0"},
		{"0", "2", "100%", "0", "400", "-", "3", "no space left on device"},
	} {
		if !hasLine(lines, want) {
			t.Errorf("no line with %q in order:\n%s", want, out.String())
		}
	}
	b, err := json.Marshal(tj)
	if err != nil || !strings.Contains(string(b), `"cleaner":{"dirty_ratio":0.25,"clean_bytes":300,"dirty_bytes":100,"last_clean":"2026-12-04T23:00:00Z","failures":0}`) {
		t.Fatalf("json %s, %v", b, err)
	}
	// A topic that is not compacted prints no cleaner table.
	out.Reset()
	d2, starts, ends, brokers2 := describeFixture()
	if err := printTopic(&out, topicView(d2, starts, ends, replicaStatus(brokers2, nil), nil), nil); err != nil || strings.Contains(out.String(), "cleaner:") {
		t.Fatalf("cleaner table for a topic not compacted:\n%s", out.String())
	}
}

// sluice topic delete-records against a broker process: the new log start
// is printed and consumers from the beginning start there; above the high
// watermark is refused with OFFSET_OUT_OF_RANGE; the flags are required.
func TestCLIDeleteRecords(t *testing.T) {
	bin, addr := binaryAndBroker(t)
	sluice(t, bin, addr, "", "topic", "create", "dr", "--partitions", "1")
	sluice(t, bin, addr, "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n", "produce", "dr")
	if out := sluice(t, bin, addr, "", "topic", "delete-records", "dr", "--partition", "0", "--before", "4"); out != "dr-0: log start offset 4\n" {
		t.Fatalf("delete-records: %q", out)
	}
	out := sluice(t, bin, addr, "", "consume", "dr", "--from-beginning", "--max-messages", "6", "--timeout", "10s", "--format", "{offset}:{value}")
	if got := strings.Fields(out); len(got) != 6 || got[0] != "4:4" || got[5] != "9:9" {
		t.Fatalf("consumed from the beginning after deleting below 4: %q", got)
	}
	_, errOut, err := sluiceResult(bin, addr, "", "topic", "delete-records", "dr", "--partition", "0", "--before", "11")
	if err == nil || !strings.Contains(errOut, "OFFSET_OUT_OF_RANGE") {
		t.Fatalf("delete-records above the high watermark: %v, stderr %q", err, errOut)
	}
	if _, errOut, err := sluiceResult(bin, addr, "", "topic", "delete-records", "dr", "--before", "1"); err == nil || !strings.Contains(errOut, "--partition") {
		t.Fatalf("delete-records without --partition: %v, stderr %q", err, errOut)
	}
	if out := sluice(t, bin, addr, "", "topic", "delete-records", "dr", "--partition", "0", "--before", "-1"); out != "dr-0: log start offset 10\n" {
		t.Fatalf("delete-records --before -1: %q", out)
	}
}
