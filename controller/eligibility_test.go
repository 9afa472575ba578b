package controller

import (
	"errors"
	"reflect"
	"testing"
)

// reportHW is broker id's report of t-0's high watermark in the leader
// epoch t-0 is at in m, with the broker's current epoch.
func reportHW(m *Metadata, id int32, hw int64) ReportHighWatermarks {
	t := m.Topics["t"]
	return ReportHighWatermarks{BrokerID: id, BrokerEpoch: m.Brokers[id].Epoch, Entries: []HighWatermark{
		{Topic: "t", TopicID: t.ID, Partition: 0, LeaderEpoch: t.Partitions[0].LeaderEpoch, HighWatermark: hw}}}
}

// withCommittedHW applies setup to three brokers, then broker leader's
// report of t-0's high watermark hw, then stops.
func withCommittedHW(t *testing.T, setup []Command, leader int32, hw int64, stops ...Command) *Metadata {
	t.Helper()
	m := applyAll(t, threeBrokers(t), setup...)
	m = applyAll(t, m, reportHW(m, leader, hw))
	if got := m.Topics["t"].Partitions[0].CommittedHW; got != hw {
		t.Fatalf("setup: committed HW %d, want %d", got, hw)
	}
	return applyAll(t, m, stops...)
}

// manual is the config of a topic that waits for an operator when no
// replica is eligible to lead (R11).
var manual = map[string]string{ConfigUncleanRecovery: RecoveryManual}

// back is broker 3 registering again with a report of its log of t-0
// (topic id 1).
func back(prev int64, end int64, truncated bool) RegisterBroker {
	return RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: prev, LogsReported: true,
		Logs: []ReplicaLog{{Topic: "t", TopicID: 1, Partition: 0, EndOffset: end, RecoveryTruncated: truncated}}}
}

// TestRestartEligibility checks R11 for a restarted broker that is the
// last in-sync replica of t-0: besides how it stopped, what its log holds
// decides whether it may lead.
//
// The topics wait for an operator (unclean.recovery.strategy=manual), so
// that a refusal leaves the partition offline; TestBalancedRecovery checks
// what the default strategy does next.
func TestRestartEligibility(t *testing.T) {
	rf1 := []Command{CreateTopic{Name: "t", Configs: manual, Replicas: [][]int32{{3}}}}
	rf1Unclean := []Command{CreateTopic{Name: "t", Configs: map[string]string{ConfigUncleanElection: "true"}, Replicas: [][]int32{{3}}}}
	rf3 := []Command{CreateTopic{Name: "t", Configs: manual, Replicas: [][]int32{{3, 1, 2}}}}
	fence3 := FenceBroker{ID: 3, Epoch: 1}
	for _, tc := range []struct {
		name   string
		m      func(t *testing.T) *Metadata
		cmd    RegisterBroker
		leader int32
		// committedHW is t-0's after cmd; reason, when set, is the
		// refusal Result.Offline must carry.
		committedHW int64
		reason      string
	}{
		{"rf 1 crash, log ends at the committed HW: leads",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf1, 3, 10, fence3) },
			back(PreviousEpochUnclean, 10, false), 3, 10, ""},
		{"rf 1 crash, log ends above the committed HW: leads",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf1, 3, 10, fence3) },
			back(PreviousEpochUnclean, 12, false), 3, 10, ""},
		{"rf 1 crash, log ends below the committed HW: no leader",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf1, 3, 10, fence3) },
			back(PreviousEpochUnclean, 9, false), -1, 10, "its log ends below the committed high watermark"},
		{"rf 1 crash, recovery truncated the log: no leader",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf1, 3, 10, fence3) },
			back(PreviousEpochUnclean, 10, true), -1, 10, "log recovery truncated its log at this start"},
		{"rf 1 crash, recovery truncated above the committed HW: no leader",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf1, 3, 10, fence3) },
			back(PreviousEpochUnclean, 30, true), -1, 10, "log recovery truncated its log at this start"},
		{"rf 1 crash, truncated, nothing committed yet: no leader",
			func(t *testing.T) *Metadata { return applyAll(t, threeBrokers(t), rf1[0], fence3) },
			back(PreviousEpochUnclean, 0, true), -1, 0, "log recovery truncated its log at this start"},
		{"rf 1, refused before, back with a clean report: still no leader",
			func(t *testing.T) *Metadata {
				m := withCommittedHW(t, rf1, 3, 10, fence3)
				return applyAll(t, m, back(PreviousEpochUnclean, 10, true), FenceBroker{ID: 3, Epoch: 2})
			},
			back(2, 10, false), -1, 10, "it was refused leadership before: its log may lack committed records"},
		{"rf 1, refused before, registered again without a report (a flap): still no leader",
			func(t *testing.T) *Metadata {
				m := withCommittedHW(t, rf1, 3, 10, fence3)
				return applyAll(t, m, back(PreviousEpochUnclean, 9, false), FenceBroker{ID: 3, Epoch: 2})
			},
			RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: 2}, -1, 10, "it was refused leadership before: its log may lack committed records"},
		{"rf 1 unclean election after a refusal: leads, the refusal forgotten",
			func(t *testing.T) *Metadata {
				m := withCommittedHW(t, rf1, 3, 10, fence3)
				return applyAll(t, m, back(PreviousEpochUnclean, 9, false), FenceBroker{ID: 3, Epoch: 2},
					AlterConfigs{Name: "t", Set: map[string]string{ConfigUncleanElection: "true"}})
			},
			back(2, 9, false), 3, 0, ""},
		{"rf 1, the log missing from the report: no data, no leader",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf1, 3, 10, fence3) },
			RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: PreviousEpochUnclean, LogsReported: true}, -1, 10,
			"its log ends below the committed high watermark"},
		{"rf 1, the log of a deleted topic of the same name: no data, no leader",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf1, 3, 10, fence3) },
			RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: PreviousEpochUnclean, LogsReported: true,
				Logs: []ReplicaLog{{Topic: "t", TopicID: 9, EndOffset: 50}}}, -1, 10, "its log ends below the committed high watermark"},
		{"rf 1, no log and nothing committed: leads",
			func(t *testing.T) *Metadata { return applyAll(t, threeBrokers(t), rf1[0], fence3) },
			RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: PreviousEpochUnclean, LogsReported: true}, 3, 0, ""},
		{"rf 1, a registration without a report (a flap): the stop rule alone",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf1, 3, 10, fence3) },
			RegisterBroker{ID: 3, Addr: "c:1", PreviousEpoch: 1}, 3, 10, ""},
		{"rf 1 unclean election: the truncated replica leads, committed HW restarts",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf1Unclean, 3, 10, fence3) },
			back(PreviousEpochUnclean, 9, true), 3, 0, ""},
		{"rf 3 clean stop of the last ISR member, log below the committed HW: no leader",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf3, 3, 10, stopAllInTurn...) },
			back(1, 4, false), -1, 10, "its log ends below the committed high watermark"},
		{"rf 3 clean stop of the last ISR member, log complete: leads",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf3, 3, 10, stopAllInTurn...) },
			back(1, 10, false), 3, 10, ""},
		{"rf 3 crash with fsync=interval: the stop rule refuses first",
			func(t *testing.T) *Metadata { return withCommittedHW(t, rf3, 3, 10, stopAllInTurn...) },
			back(PreviousEpochUnclean, 10, false), -1, 10, "stopped uncleanly with a reboot since (or an unknown boot), and the topic neither syncs every write nor has a single replica"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m(t)
			next, res := applyChecked(t, m, tc.cmd)
			p := next.Topics["t"].Partitions[0]
			if p.Leader != tc.leader || p.CommittedHW != tc.committedHW || p.NoCleanLeader != (tc.leader == -1) {
				t.Errorf("leader %d, committed HW %d, no clean leader %v; want %d, %d, %v",
					p.Leader, p.CommittedHW, p.NoCleanLeader, tc.leader, tc.committedHW, tc.leader == -1)
			}
			if tc.reason == "" {
				if len(res.Offline) != 0 {
					t.Errorf("offline reported: %+v", res.Offline)
				}
				return
			}
			before := m.Topics["t"].Partitions[0]
			want := []Ineligible{{Topic: "t", Partition: 0, Broker: 3, Reason: tc.reason, EndOffset: -1, CommittedHW: before.CommittedHW,
				Strategy: RecoveryManual}}
			if tc.cmd.LogsReported {
				l := (&restart{logs: map[partitionKey]ReplicaLog{}}).log(next.Topics["t"], &p)
				for _, r := range tc.cmd.Logs {
					if r.TopicID == next.Topics["t"].ID {
						l = r
					}
				}
				want[0].EndOffset, want[0].RecoveryTruncated = l.EndOffset, l.RecoveryTruncated
			}
			if !reflect.DeepEqual(res.Offline, want) {
				t.Errorf("offline %+v, want %+v", res.Offline, want)
			}
		})
	}
}

// TestRefusalSticks checks that once the last in-sync replica of t-0 was
// refused, no other path elects it: another replica's restart (a clean
// election over the ISR), a preferred-leader plan, or a hand-made leader
// change.
func TestRefusalSticks(t *testing.T) {
	m := withCommittedHW(t, []Command{CreateTopic{Name: "t", Configs: manual, Replicas: [][]int32{{3, 1, 2}}}}, 3, 10, stopAllInTurn...)
	m = applyAll(t, m, back(PreviousEpochUnclean, 10, true))
	if p := m.Topics["t"].Partitions[0]; p.Leader != -1 || !p.NoCleanLeader || !reflect.DeepEqual(p.ISR, []int32{3}) {
		t.Fatalf("setup: %+v", p)
	}
	m, _ = applyChecked(t, m, RegisterBroker{ID: 1, Addr: "a:1", PreviousEpoch: 1})
	if p := m.Topics["t"].Partitions[0]; p.Leader != -1 {
		t.Fatalf("another replica's restart elected %d", p.Leader)
	}
	if plan := PlanPreferredLeaders(m, nil); len(plan) != 0 {
		t.Fatalf("preferred-leader plan %+v", plan)
	}
	p := m.Topics["t"].Partitions[0]
	c := AlterPartition{Topic: "t", PartitionEpoch: p.PartitionEpoch, Leader: 3, ISR: []int32{3}}
	if _, _, err := Apply(m, c); !errors.Is(err, ErrInvalidPartition) {
		t.Fatalf("leader change on a partition without a leader: %v, want ErrInvalidPartition", err)
	}
}

// TestHighWatermarkReports checks which reports raise CommittedHW: only
// the current leader's, in its current leader epoch and broker epoch,
// and only upwards.
func TestHighWatermarkReports(t *testing.T) {
	// t-0: replicas 1, 2, 3, led by 1 at leader epoch 0, committed HW 10.
	base := func(t *testing.T) *Metadata {
		return withCommittedHW(t, []Command{CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}, {2, 3, 1}}}}, 1, 10)
	}
	entry := func(hw int64) HighWatermark { return HighWatermark{Topic: "t", TopicID: 1, HighWatermark: hw} }
	report := func(id int32, epoch int64, entries ...HighWatermark) ReportHighWatermarks {
		return ReportHighWatermarks{BrokerID: id, BrokerEpoch: epoch, Entries: entries}
	}
	for _, tc := range []struct {
		name  string
		setup []Command
		cmd   Command
		want  int64 // t-0's committed HW after cmd
		err   error
	}{
		{"leader raises", nil, report(1, 1, entry(15)), 15, nil},
		{"lower is ignored", nil, report(1, 1, entry(7)), 10, nil},
		{"equal is ignored", nil, report(1, 1, entry(10)), 10, nil},
		{"not the leader", nil, report(2, 1, entry(15)), 10, nil},
		{"an old leader epoch", []Command{FenceBroker{ID: 1, Epoch: 1}, RegisterBroker{ID: 1, Addr: "a:1", PreviousEpoch: 1}},
			report(1, 2, entry(15)), 10, nil},
		{"the leader again, in a later leader epoch", []Command{
			AlterPartition{Topic: "t", Leader: 2, ISR: []int32{1, 2, 3}},
			AlterPartition{Topic: "t", PartitionEpoch: 1, Leader: 1, ISR: []int32{1, 2, 3}}},
			report(1, 1, entry(15)), 10, nil},
		{"an old broker epoch", []Command{RegisterBroker{ID: 1, Addr: "a:1", PreviousEpoch: 1}},
			report(1, 1, entry(15)), 10, ErrStaleBrokerEpoch},
		{"an offline broker", []Command{FenceBroker{ID: 1, Epoch: 1}}, report(1, 1, entry(15)), 10, ErrStaleBrokerEpoch},
		{"an unknown broker", nil, report(7, 1, entry(15)), 10, ErrUnknownBroker},
		{"another topic id", nil, report(1, 1, HighWatermark{Topic: "t", TopicID: 2, HighWatermark: 15}), 10, nil},
		{"unknown partition and topic skipped, the rest applied", nil,
			report(1, 1, HighWatermark{Topic: "t", TopicID: 1, Partition: 5, HighWatermark: 15}, HighWatermark{Topic: "u", HighWatermark: 15}, entry(12)), 12, nil},
		{"the leader's ISR change raises", nil,
			AlterPartition{Topic: "t", Leader: 1, ISR: []int32{1, 2}, HighWatermark: 14}, 14, nil},
		{"the leader's ISR change never lowers", nil,
			AlterPartition{Topic: "t", Leader: 1, ISR: []int32{1, 2}, HighWatermark: 4}, 10, nil},
		{"a change of leader carries no high watermark", nil,
			AlterPartition{Topic: "t", Leader: 2, ISR: []int32{1, 2, 3}, HighWatermark: 14}, 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := applyAll(t, base(t), tc.setup...)
			next, _, err := Apply(m, tc.cmd)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got := next.Topics["t"].Partitions[0].CommittedHW; got != tc.want {
				t.Errorf("committed HW %d, want %d", got, tc.want)
			}
			if tc.want == 10 && tc.err == nil {
				if _, ok := tc.cmd.(ReportHighWatermarks); ok && next != m {
					t.Error("a report that raised nothing changed the metadata")
				}
			}
			if p, q := next.Topics["t"].Partitions[1], m.Topics["t"].Partitions[1]; p.CommittedHW != q.CommittedHW {
				t.Errorf("t-1 committed HW moved from %d to %d", q.CommittedHW, p.CommittedHW)
			}
			if err := checkInvariants(next); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A report changes no leader, ISR or epoch: the leaders' ISR changes,
// planned on the partition epoch, are not made stale by it.
func TestHighWatermarkReportKeepsEpochs(t *testing.T) {
	m := applyAll(t, threeBrokers(t), CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}}})
	next := applyAll(t, m, reportHW(m, 1, 10))
	p, q := next.Topics["t"].Partitions[0], m.Topics["t"].Partitions[0]
	q.CommittedHW = 10
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("partition %+v, want %+v", p, q)
	}
}

func TestRegisterRefusesBadLogReports(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  RegisterBroker
	}{
		{"logs without LogsReported", RegisterBroker{ID: 1, Addr: "a:1", Logs: []ReplicaLog{{Topic: "t"}}}},
		{"a log twice", RegisterBroker{ID: 1, Addr: "a:1", LogsReported: true, Logs: []ReplicaLog{{Topic: "t"}, {Topic: "t", EndOffset: 3}}}},
		{"negative end offset", RegisterBroker{ID: 1, Addr: "a:1", LogsReported: true, Logs: []ReplicaLog{{Topic: "t", EndOffset: -1}}}},
		{"negative partition", RegisterBroker{ID: 1, Addr: "a:1", LogsReported: true, Logs: []ReplicaLog{{Topic: "t", Partition: -1}}}},
	} {
		m := threeBrokers(t)
		if next, _, err := Apply(m, tc.cmd); !errors.Is(err, ErrInvalidBroker) || next != m {
			t.Errorf("%s: %v, want ErrInvalidBroker", tc.name, err)
		}
	}
}

// Turning unclean.leader.election on elects a leader for a partition left
// offline at once, not at the next fence or registration; turning it on
// for a topic whose partitions all have leaders changes nothing.
func TestUncleanElectionSetElectsOfflinePartitions(t *testing.T) {
	rf1 := CreateTopic{Name: "t", Configs: manual, Replicas: [][]int32{{3}}}
	m := withCommittedHW(t, []Command{rf1}, 3, 10, FenceBroker{ID: 3, Epoch: 1})
	m = applyAll(t, m, back(PreviousEpochUnclean, 9, false)) // refused: alive, offline
	p := m.Topics["t"].Partitions[0]
	if p.Leader != -1 || !m.isAlive(3) {
		t.Fatalf("setup: leader %d, broker 3 alive %v; want offline with 3 alive", p.Leader, m.isAlive(3))
	}
	on := AlterConfigs{Name: "t", Set: map[string]string{ConfigUncleanElection: "true"}}
	m = applyAll(t, m, on)
	got := m.Topics["t"].Partitions[0]
	if got.Leader != 3 || !reflect.DeepEqual(got.ISR, []int32{3}) || got.LeaderEpoch != p.LeaderEpoch+1 ||
		got.NoCleanLeader || got.CommittedHW != 0 {
		t.Fatalf("after turning unclean election on: %+v, want broker 3 leading alone in a new epoch, the refusal forgotten", got)
	}
	if err := checkInvariants(m); err != nil {
		t.Fatal(err)
	}
	again := applyAll(t, m, AlterConfigs{Name: "t", Remove: []string{ConfigUncleanElection}}, on)
	if g := again.Topics["t"].Partitions[0]; g.LeaderEpoch != got.LeaderEpoch || g.Leader != 3 {
		t.Fatalf("turning it on with a leader in place changed the partition: %+v", g)
	}
}
