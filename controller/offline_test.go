package controller

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// offlineReport is broker id's ReportOfflineReplicas for partitions of
// topic, at its current epoch.
func offlineReport(m *Metadata, id int32, topic string, partitions ...int32) ReportOfflineReplicas {
	c := ReportOfflineReplicas{BrokerID: id, BrokerEpoch: m.Brokers[id].Epoch}
	for _, p := range partitions {
		c.Entries = append(c.Entries, OfflineReplica{Topic: topic, TopicID: m.Topics[topic].ID, Partition: p, Reason: "no space left on device"})
	}
	return c
}

// TestReportOfflineReplicas: a replica whose log went offline leaves the
// ISR at once, loses leadership to an in-sync replica, is never elected
// or added back while marked, and is shown; its broker's restart with a
// log report clears the mark.
func TestReportOfflineReplicas(t *testing.T) {
	m := applyAll(t, threeBrokers(t), CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}, {2, 3, 1}}},
		CreateTopic{Name: "s", Replicas: [][]int32{{1}}})

	// Broker 1 leads partition 0 and follows in partition 1.
	m, _ = applyChecked(t, m, offlineReport(m, 1, "t", 0, 1))
	m, _ = applyChecked(t, m, offlineReport(m, 1, "s", 0))
	p0, p1 := m.Topics["t"].Partitions[0], m.Topics["t"].Partitions[1]
	if p0.Leader != 2 || !reflect.DeepEqual(p0.ISR, []int32{2, 3}) || p0.LeaderEpoch != 1 || p0.PartitionEpoch != 1 {
		t.Fatalf("partition 0 after its leader's log went offline: %+v; want leader 2, ISR [2 3], epochs 1", p0)
	}
	if p1.Leader != 2 || !reflect.DeepEqual(p1.ISR, []int32{2, 3}) || p1.LeaderEpoch != 0 || p1.PartitionEpoch != 1 {
		t.Fatalf("partition 1 after a follower's log went offline: %+v; want leader 2, ISR [2 3], leader epoch 0", p1)
	}
	if !p0.IsOffline(1) || p0.IsOffline(2) {
		t.Fatalf("offline marks %+v", p0.Offline)
	}
	if note := PartitionNote(m, m.Topics["t"], &p0); !strings.Contains(note, "replica 1 offline: no space left on device") {
		t.Fatalf("note %q", note)
	}

	// Marked twice, or stale: nothing changes.
	if next, _, err := Apply(m, offlineReport(m, 1, "t", 0)); err != nil || next != m {
		t.Fatalf("second report: %v, changed=%v", err, next != m)
	}
	if _, _, err := Apply(m, ReportOfflineReplicas{BrokerID: 1, BrokerEpoch: 9}); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Fatalf("report from another epoch: %v, want ErrStaleBrokerEpoch", err)
	}

	// It is not added back, nor made leader, while marked.
	if _, _, err := Apply(m, AlterPartition{Topic: "t", Partition: 0, PartitionEpoch: 1, Leader: 2, ISR: []int32{2, 3, 1}, BrokerEpochs: []int64{1, 1, 1}}); !errors.Is(err, ErrInvalidPartition) {
		t.Fatalf("offline replica back in the ISR: %v, want ErrInvalidPartition", err)
	}
	if got := PlanPreferredLeaders(m, nil); len(got) != 0 {
		t.Fatalf("preferred leader elections of offline replicas: %+v", got)
	}
	// Nor by an unclean election when every ISR member goes.
	m = applyAll(t, m, AlterConfigs{Name: "t", Set: map[string]string{ConfigUncleanElection: "true"}})
	m, _ = applyChecked(t, m, FenceBroker{ID: 2, Epoch: 1})
	m, _ = applyChecked(t, m, FenceBroker{ID: 3, Epoch: 1})
	if p := m.Topics["t"].Partitions[0]; p.Leader != -1 {
		t.Fatalf("partition 0 with only an offline replica alive: %+v; want no leader", p)
	}

	// The single replica of s-0 led it: no leader now, its ISR is kept
	// as the last known one.
	if p := m.Topics["s"].Partitions[0]; p.Leader != -1 || !reflect.DeepEqual(p.ISR, []int32{1}) || p.LeaderEpoch != 1 {
		t.Fatalf("s-0: %+v; want no leader, ISR [1]", p)
	}
	if note := PartitionNote(m, m.Topics["s"], &m.Topics["s"].Partitions[0]); !strings.Contains(note, "no usable in-sync replica") ||
		!strings.Contains(note, "replica 1 offline") {
		t.Fatalf("s-0 note %q", note)
	}

	// Broker 1 restarts with its logs reopened: the mark goes, and it
	// leads what it may lead again.
	m, _ = applyChecked(t, m, RegisterBroker{ID: 1, Addr: "a:1", PreviousEpoch: 1, LogsReported: true,
		Logs: []ReplicaLog{{Topic: "s", TopicID: m.Topics["s"].ID, Partition: 0, EndOffset: 0, LastEpoch: -1}}})
	for _, name := range m.TopicNames() {
		for _, p := range m.Topics[name].Partitions {
			if len(p.Offline) != 0 {
				t.Fatalf("%s-%d after the restart: offline %+v", name, p.Index, p.Offline)
			}
		}
	}
	if p := m.Topics["s"].Partitions[0]; p.Leader != 1 {
		t.Fatalf("s-0 after a clean restart: %+v; want leader 1", p)
	}
}

// TestReportOnlineReplicas: a broker that reopened an offline log clears
// its mark; the replica leads again only where it is the last ISR member
// of a partition without a leader and its log cannot lack a committed
// record.
func TestReportOnlineReplicas(t *testing.T) {
	m := applyAll(t, threeBrokers(t), CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}}},
		CreateTopic{Name: "s", Replicas: [][]int32{{1}, {1}, {1}}})
	m = applyAll(t, m, ReportHighWatermarks{BrokerID: 1, BrokerEpoch: 1, Entries: []HighWatermark{
		{Topic: "s", TopicID: m.Topics["s"].ID, Partition: 0, HighWatermark: 10},
		{Topic: "s", TopicID: m.Topics["s"].ID, Partition: 1, HighWatermark: 10},
		{Topic: "s", TopicID: m.Topics["s"].ID, Partition: 2, HighWatermark: 10}}})
	m, _ = applyChecked(t, m, offlineReport(m, 1, "t", 0))
	m, _ = applyChecked(t, m, offlineReport(m, 1, "s", 0, 1, 2))
	online := func(topic string, p int32, end int64, truncated bool) ReplicaLog {
		return ReplicaLog{Topic: topic, TopicID: m.Topics[topic].ID, Partition: p, EndOffset: end, RecoveryTruncated: truncated, LastEpoch: 0}
	}
	if _, _, err := Apply(m, ReportOnlineReplicas{BrokerID: 1, BrokerEpoch: 2}); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Fatalf("report from another epoch: %v, want ErrStaleBrokerEpoch", err)
	}
	m, _ = applyChecked(t, m, ReportOnlineReplicas{BrokerID: 1, BrokerEpoch: 1, Logs: []ReplicaLog{
		online("t", 0, 10, false), online("s", 0, 10, false), online("s", 1, 9, false), online("s", 2, 10, true)}})
	for _, tc := range []struct {
		topic  string
		p      int32
		leader int32
		isr    []int32
	}{
		{"t", 0, 2, []int32{2, 3}}, // rejoins by catching up
		{"s", 0, 1, []int32{1}},    // whole: leads again
		{"s", 1, -1, []int32{1}},   // ends below the committed high watermark
		{"s", 2, -1, []int32{1}},   // recovery cut its log
	} {
		p := m.Topics[tc.topic].Partitions[tc.p]
		if p.Leader != tc.leader || !reflect.DeepEqual(p.ISR, tc.isr) || len(p.Offline) != 0 {
			t.Errorf("%s-%d: leader %d, ISR %v, offline %+v; want leader %d, ISR %v, none offline", tc.topic, tc.p, p.Leader, p.ISR, p.Offline, tc.leader, tc.isr)
		}
	}
	// Not marked: nothing changes.
	if next, _, err := Apply(m, ReportOnlineReplicas{BrokerID: 1, BrokerEpoch: 1, Logs: []ReplicaLog{online("t", 0, 10, false)}}); err != nil || next != m {
		t.Fatalf("second report: %v, changed=%v", err, next != m)
	}
}
