package controller

import (
	"reflect"
	"strings"
	"testing"
)

// up is broker id registering again with a report of its log of t-0
// (topic id 1): how it stopped (prev), whether under the same kernel boot,
// and the log's last epoch and end offset.
func up(id int32, prev int64, sameBoot bool, lastEpoch int32, end int64, truncated bool) RegisterBroker {
	return RegisterBroker{ID: id, Addr: string(rune('a'+id-1)) + ":1", PreviousEpoch: prev, SameBoot: sameBoot, LogsReported: true,
		Logs: []ReplicaLog{{Topic: "t", TopicID: 1, EndOffset: end, LastEpoch: lastEpoch, RecoveryTruncated: truncated}}}
}

// crashed is broker id back from a SIGKILL under the same boot, rebooted
// is it back after its machine restarted; both with a log of t-0 ending
// at end in leader epoch 0.
func crashed(id int32, end int64) RegisterBroker {
	return up(id, PreviousEpochUnclean, true, 0, end, false)
}
func rebooted(id int32, end int64) RegisterBroker {
	return up(id, PreviousEpochUnclean, false, 0, end, false)
}

// wiped is broker id back with an empty data directory.
func wiped(id int32) RegisterBroker {
	return RegisterBroker{ID: id, Addr: string(rune('a'+id-1)) + ":1", PreviousEpoch: PreviousEpochEmpty, LogsReported: true}
}

// TestBalancedRecovery checks R11 when every broker of a partition
// crashes at once and comes back (t-0: replicas 1, 2, 3, led by 1, ISR
// all three, committed HW 100): under the same boot the last ISR member
// is eligible; after a reboot no one is, and once every replica of the
// last ISR is back the balanced strategy elects the one with the highest
// (last epoch, end offset), while manual waits for an operator.
func TestBalancedRecovery(t *testing.T) {
	const reboot = "stopped uncleanly with a reboot since (or an unknown boot), and the topic neither syncs every write nor has a single replica"
	for _, tc := range []struct {
		name    string
		configs map[string]string
		empty   bool      // nothing was ever committed (no high watermark report)
		setup   []Command // after the committed HW report
		cmd     Command
		leader  int32
		isr     []int32
		// mayLack is the recovery's (-1: no recovery); committedHW is
		// t-0's after cmd.
		mayLack     int64
		committedHW int64
		// refused is the reason Result.Offline gives for t-0 ("": none);
		// waiting the replicas it waits for.
		refused string
		waiting []int32
		note    string // in PartitionNote
	}{
		{name: "same boot: the last ISR member leads, as after a clean stop",
			setup: []Command{crashed(2, 100), crashed(1, 100)}, cmd: crashed(3, 100),
			leader: 3, isr: []int32{3}, mayLack: -1, committedHW: 100},
		{name: "same boot, last ISR member in a later order: it leads",
			setup: []Command{crashed(3, 100), crashed(2, 100)}, cmd: crashed(1, 104),
			leader: 1, isr: []int32{1}, mayLack: -1, committedHW: 100},
		{name: "same boot but its log ends below the committed HW: balanced picks the best",
			setup: []Command{crashed(2, 100), crashed(1, 100)}, cmd: crashed(3, 60),
			leader: 1, isr: []int32{1}, mayLack: 0, committedHW: 100, note: "balanced recovery at leader epoch"},
		{name: "same boot, recovery truncated the last member's log: balanced picks the longest",
			setup: []Command{crashed(2, 99), crashed(1, 98)}, cmd: up(3, PreviousEpochUnclean, true, 0, 97, true),
			leader: 2, isr: []int32{2}, mayLack: 1, committedHW: 99},
		{name: "reboot, all back: the longest log leads, lacking the rest",
			setup: []Command{rebooted(2, 90), rebooted(1, 97)}, cmd: rebooted(3, 80),
			leader: 1, isr: []int32{1}, mayLack: 3, committedHW: 97, note: "may lack 3 committed offsets"},
		{name: "reboot: a later last epoch beats a longer log",
			setup: []Command{up(2, PreviousEpochUnclean, false, 1, 50, false), rebooted(1, 97)}, cmd: rebooted(3, 80),
			leader: 2, isr: []int32{2}, mayLack: 50, committedHW: 50},
		{name: "reboot, a tie: the first in replica order",
			setup: []Command{rebooted(3, 95), rebooted(2, 95)}, cmd: rebooted(1, 90),
			leader: 2, isr: []int32{2}, mayLack: 5, committedHW: 95},
		{name: "reboot, nothing lost: a recovery that lacks nothing",
			setup: []Command{rebooted(2, 100), rebooted(1, 100)}, cmd: rebooted(3, 100),
			leader: 1, isr: []int32{1}, mayLack: 0, committedHW: 100, note: "may lack 0 committed offsets"},
		{name: "reboot, a replica of the last ISR down again: the refused member waits for it",
			setup: []Command{rebooted(2, 90), FenceBroker{ID: 2, Epoch: 2}, rebooted(1, 97)}, cmd: rebooted(3, 80),
			leader: -1, isr: []int32{3}, mayLack: -1, committedHW: 100, refused: reboot, waiting: []int32{2},
			note: "waits for replicas [2] of the last ISR"},
		{name: "reboot, the awaited replica returns: balanced elects",
			setup: []Command{rebooted(2, 90), FenceBroker{ID: 2, Epoch: 2}, rebooted(1, 97), rebooted(3, 80)}, cmd: rebooted(2, 99),
			leader: 2, isr: []int32{2}, mayLack: 1, committedHW: 99},
		{name: "last ISR member fenced before it returns: no leader, waiting for it",
			setup: []Command{rebooted(2, 90), rebooted(1, 97)}, cmd: FenceBroker{ID: 3, Epoch: 1},
			leader: -1, isr: []int32{3}, mayLack: -1, committedHW: 100, note: "no in-sync replica alive: waiting for replicas [3] of the last ISR"},
		{name: "manual: stays offline, waiting for an operator",
			configs: manual, setup: []Command{rebooted(2, 90), rebooted(1, 97)}, cmd: rebooted(3, 80),
			leader: -1, isr: []int32{3}, mayLack: -1, committedHW: 100, refused: reboot, note: "waiting for an operator"},
		{name: "manual, then balanced: recovers at once",
			configs: manual, setup: []Command{rebooted(2, 90), rebooted(1, 97), rebooted(3, 80)},
			cmd:    AlterConfigs{Name: "t", Remove: []string{ConfigUncleanRecovery}},
			leader: 1, isr: []int32{1}, mayLack: 3, committedHW: 97},
		{name: "a wiped replica is no candidate",
			setup: []Command{wiped(1), rebooted(2, 40)}, cmd: rebooted(3, 30),
			leader: 2, isr: []int32{2}, mayLack: 60, committedHW: 40},
		{name: "every replica wiped: offline, nothing to elect",
			setup: []Command{wiped(1), wiped(2)}, cmd: wiped(3),
			leader: -1, isr: []int32{3}, mayLack: -1, committedHW: 100, refused: "its data directory was empty (new or wiped)", waiting: nil,
			note: "no returned replica holds data"},
		{name: "an empty partition after a reboot: led again, nothing to lack",
			empty: true, setup: []Command{up(2, PreviousEpochUnclean, false, -1, 0, false), up(1, PreviousEpochUnclean, false, -1, 0, false)},
			cmd:    up(3, PreviousEpochUnclean, false, -1, 0, false),
			leader: 1, isr: []int32{1}, mayLack: 0, committedHW: 0},
		{name: "empty logs after a reboot of a written partition: led again, lacking everything",
			setup:  []Command{up(2, PreviousEpochUnclean, false, -1, 0, false), up(1, PreviousEpochUnclean, false, -1, 0, false)},
			cmd:    up(3, PreviousEpochUnclean, false, -1, 0, false),
			leader: 1, isr: []int32{1}, mayLack: 100, committedHW: 0},
		{name: "a replica out of the ISR that came back is a candidate too",
			setup:  []Command{AlterPartition{Topic: "t", Leader: 1, ISR: []int32{1}}, rebooted(2, 100), rebooted(3, 100)},
			cmd:    rebooted(1, 90),
			leader: 2, isr: []int32{2}, mayLack: 0, committedHW: 100},
		{name: "an unclean election comes first where the topic allows it",
			configs: map[string]string{ConfigUncleanElection: "true"}, setup: []Command{rebooted(2, 90), rebooted(1, 97)}, cmd: rebooted(3, 80),
			leader: 1, isr: []int32{1}, mayLack: -1, committedHW: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setup := []Command{CreateTopic{Name: "t", Configs: tc.configs, Replicas: [][]int32{{1, 2, 3}}}}
			var m *Metadata
			if tc.empty {
				m = applyAll(t, threeBrokers(t), setup...)
			} else {
				m = withCommittedHW(t, setup, 1, 100)
			}
			m = applyAll(t, m, tc.setup...)
			next, res := applyChecked(t, m, tc.cmd)
			tt := next.Topics["t"]
			p := tt.Partitions[0]
			if p.Leader != tc.leader || !reflect.DeepEqual(p.ISR, tc.isr) || p.CommittedHW != tc.committedHW {
				t.Fatalf("leader %d, ISR %v, committed HW %d; want %d, %v, %d (partition %+v)",
					p.Leader, p.ISR, p.CommittedHW, tc.leader, tc.isr, tc.committedHW, p)
			}
			if tc.mayLack < 0 {
				if len(res.Recovered) != 0 || p.RecoveredEpoch != 0 {
					t.Errorf("recovered %+v, recovered epoch %d; want no recovery", res.Recovered, p.RecoveredEpoch)
				}
			} else {
				before := m.Topics["t"].Partitions[0]
				want := []Recovery{{Topic: "t", Leader: tc.leader, LeaderEpoch: p.LeaderEpoch, EndOffset: tc.committedHW,
					CommittedHW: before.CommittedHW, MayLack: tc.mayLack}}
				if len(res.Recovered) == 1 {
					want[0].LastEpoch, want[0].EndOffset, want[0].Reason = res.Recovered[0].LastEpoch, res.Recovered[0].EndOffset, res.Recovered[0].Reason
				}
				if !reflect.DeepEqual(res.Recovered, want) {
					t.Errorf("recovered %+v, want %+v", res.Recovered, want)
				}
				if p.RecoveredEpoch != p.LeaderEpoch || p.LeaderEpoch <= before.LeaderEpoch || p.RecoveryMayLack != tc.mayLack ||
					p.NoCleanLeader || p.Restarted != nil {
					t.Errorf("partition %+v after the recovery (leader epoch before %d)", p, before.LeaderEpoch)
				}
			}
			var refused *Ineligible
			for i := range res.Offline {
				if res.Offline[i].Topic == "t" {
					refused = &res.Offline[i]
				}
			}
			switch {
			case tc.refused == "" && refused != nil:
				t.Errorf("refused %+v", *refused)
			case tc.refused != "" && refused == nil:
				t.Errorf("not refused, want %q", tc.refused)
			case refused != nil && (refused.Reason != tc.refused || !reflect.DeepEqual(refused.Waiting, tc.waiting) ||
				refused.Strategy != tt.Config(ConfigUncleanRecovery)):
				t.Errorf("refused %+v, want reason %q waiting for %v", *refused, tc.refused, tc.waiting)
			}
			note := PartitionNote(next, tt, &p)
			if tc.note == "" && p.Leader >= 0 && p.RecoveredEpoch == 0 && note != "" || !strings.Contains(note, tc.note) {
				t.Errorf("note %q, want it to contain %q", note, tc.note)
			}
		})
	}
}

// What restarted replicas reported is forgotten once the partition's data
// moves on under a running leader: its ISR change, or a raised committed
// HW. A restart keeps the broker's last report and whether it was ever in
// the last ISR.
func TestRestartedReplicasForgotten(t *testing.T) {
	base := func(t *testing.T) *Metadata {
		m := withCommittedHW(t, []Command{CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}}}}, 1, 100)
		m = applyAll(t, m, rebooted(2, 90))
		want := []ReplicaEnd{{Broker: 2, EndOffset: 90, InISR: true}}
		if got := m.Topics["t"].Partitions[0].Restarted; !reflect.DeepEqual(got, want) {
			t.Fatalf("restarted %+v, want %+v", got, want)
		}
		return m
	}
	m := applyAll(t, base(t), rebooted(2, 95))
	if got, want := m.Topics["t"].Partitions[0].Restarted, []ReplicaEnd{{Broker: 2, EndOffset: 95, InISR: true}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after a second restart out of the ISR: %+v, want %+v", got, want)
	}
	for _, c := range []Command{
		reportHW(base(t), 1, 101),
		AlterPartition{Topic: "t", PartitionEpoch: 1, Leader: 1, ISR: []int32{1, 3}},
	} {
		m := applyAll(t, base(t), c)
		if got := m.Topics["t"].Partitions[0].Restarted; got != nil {
			t.Errorf("after %v: restarted %+v, want none", c.Kind(), got)
		}
	}
	// A report that raises nothing is no news.
	m = applyAll(t, base(t), reportHW(base(t), 1, 100))
	if len(m.Topics["t"].Partitions[0].Restarted) != 1 {
		t.Errorf("a report at the committed HW forgot the restarted replicas")
	}
}
