package controller

import (
	"fmt"
	"slices"
	"strconv"
)

// Leader election and ISR rules, applied inside Apply so that every
// replica of the metadata elects the same leaders. The rules:
//
//   - A broker that fails, shuts down (FenceBroker) or restarts
//     (RegisterBroker of a registered id: its old incarnation is gone, R10)
//     leaves every ISR it is in, except where it is the last member: that
//     ISR is kept as the "last known ISR", the only replica known to hold
//     every committed record.
//   - A partition it led, or one without a leader, gets the first replica
//     in replica order that is in the ISR and on an alive broker.
//   - A restarted broker that is the whole last known ISR of a partition
//     without a leader leads it again only if it cannot have lost committed
//     data (R11). First, by how it stopped: cleanly (PreviousEpoch is its
//     last registered epoch); or uncleanly but under the kernel boot its
//     previous run ran under (RegisterBroker.SameBoot: a process crash,
//     which loses nothing the process wrote, as the page cache survives
//     it); or uncleanly but the topic syncs every write (fsync=always, R2)
//     or has a single replica. A wiped broker never does. Second, by what
//     it found in its log at this start, when it reported it
//     (RegisterBroker.Logs): not if recovery truncated the log (what it
//     dropped may have been committed), and not if the log ends below the
//     partition's CommittedHW, the highest high watermark its leaders
//     reported (ReportHighWatermarks, AlterPartition).
//   - Every registration with a log report notes, in each partition the
//     broker holds a replica of, what that replica reported (last epoch,
//     end offset, wiped, whether it was in the ISR):
//     Partition.Restarted, until the partition's data moves on under a
//     running leader (an AlterPartition, a raised CommittedHW) or an
//     election outside the ISR. The partition's last ISR is its ISR and
//     the restarted replicas that were in it.
//   - A refusal sticks (Partition.NoCleanLeader): the refused replica may
//     lack committed records whatever it does next, so no later restart,
//     registration of a running broker, other broker's fence or
//     registration, or preferred-leader election gives the partition a
//     leader by the rules above; only an unclean election or a balanced
//     recovery does.
//   - With unclean.leader.election=true and no ISR member alive, the first
//     alive replica leads, alone in the ISR (it may lack acknowledged
//     records); CommittedHW, NoCleanLeader and Restarted start again.
//   - Balanced recovery (unclean.recovery.strategy=balanced, the default;
//     recovery.go), as Kafka 4's unclean recovery "balanced": a partition
//     still without a leader after a registration of one of its
//     replicas, every replica of whose last ISR is alive and has
//     registered since with a report, is led, alone in the ISR, by the
//     alive restarted replica that was not wiped with the highest
//     (LastEpoch, EndOffset), the first in replica order on a tie. It may
//     lack the committed offsets between its end offset and CommittedHW:
//     Result.Recovered and Partition.RecoveryMayLack say how many, and
//     CommittedHW drops to its end offset. NoCleanLeader and Restarted
//     start again; RecoveredEpoch records the new leader epoch. Setting
//     the strategy to balanced runs the recovery at once (AlterConfigs).
//     With manual the partition waits for an operator.
//   - A replica whose log went offline after a storage error
//     (ReportOfflineReplicas: a full disk, an I/O error; Kafka's log
//     directory failure) is never elected, by any rule here, and never
//     added to an ISR. It leaves the ISR at once, except where it is the
//     last member (kept as the last known ISR, as for a fence), and a
//     partition it led gets the first usable in-sync replica, as for a
//     fence. The mark (Partition.Offline) goes when the broker registers
//     again with a log report: it restarted and reopened its logs, and
//     the rules for a restart apply; or when the running broker reopened
//     the log (ReportOnlineReplicas): then it follows and rejoins the ISR
//     by catching up, and where it is the last ISR member of a partition
//     without a leader it leads again only if its reopened log cannot
//     lack a committed record: recovery cut nothing, it ends at or above
//     CommittedHW, and the partition was not refused (NoCleanLeader).
//   - Otherwise the partition stays without a leader (-1) and says so:
//     RegisterBroker's Result.Offline names each partition a restarted
//     broker may not lead, why, and which replicas of the last ISR a
//     balanced recovery still waits for; the controller leader logs it,
//     and PartitionNote says it for topic describe and cluster status.

// restart is what a RegisterBroker of a registered broker tells the
// elections: the epoch its old incarnation had, and what it says of its
// data. offline collects the partitions it was refused.
type restart struct {
	oldEpoch      int64
	previousEpoch int64
	sameBoot      bool
	logsReported  bool
	logs          map[partitionKey]ReplicaLog
	offline       []Ineligible
	recovered     []Recovery
}

// Ineligible is a partition left without a leader because its last
// in-sync replica, restarted, may have lost committed records (R11).
type Ineligible struct {
	Topic     string
	Partition int32
	Broker    int32
	Reason    string
	// EndOffset and RecoveryTruncated are what the broker reported of its
	// log (EndOffset -1: it reported nothing); CommittedHW is the
	// partition's, before the election.
	EndOffset         int64
	RecoveryTruncated bool
	CommittedHW       int64
	// Strategy is the topic's unclean.recovery.strategy; with balanced,
	// Waiting lists the replicas of the last ISR the recovery waits for
	// (empty: none of those back holds data).
	Strategy string
	Waiting  []int32
}

// log returns what the broker reported of its replica of p: a replica
// with no entry, or one for a deleted topic of the same name, has no data.
func (r *restart) log(t *Topic, p *Partition) ReplicaLog {
	l, ok := r.logs[partitionKey{t.Name, p.Index}]
	if !ok || l.TopicID != t.ID {
		return ReplicaLog{Topic: t.Name, TopicID: t.ID, Partition: p.Index, LastEpoch: -1}
	}
	return l
}

// ineligible returns why the restarted broker, the last known ISR of p,
// may have lost a committed record of p (R11), or "" when it cannot have.
func (r *restart) ineligible(t *Topic, p *Partition) string {
	if p.NoCleanLeader {
		return "it was refused leadership before: its log may lack committed records"
	}
	switch {
	case r.previousEpoch == r.oldEpoch:
		// A clean stop, or the same process re-registered.
	case r.previousEpoch == PreviousEpochUnclean:
		if !r.sameBoot && t.Config(ConfigFsync) != FsyncAlways && len(p.Replicas) != 1 {
			return "stopped uncleanly with a reboot since (or an unknown boot), and the topic neither syncs every write nor has a single replica"
		}
	case r.previousEpoch == PreviousEpochEmpty:
		return "its data directory was empty (new or wiped)"
	default:
		return fmt.Sprintf("its previous epoch %d is not its last one (%d)", r.previousEpoch, r.oldEpoch)
	}
	if !r.logsReported {
		return ""
	}
	l := r.log(t, p)
	switch {
	case l.RecoveryTruncated:
		return "log recovery truncated its log at this start"
	case l.EndOffset < p.CommittedHW:
		return "its log ends below the committed high watermark"
	}
	return ""
}

// fenceAll applies the loss of broker id's current incarnation to every
// partition of n (in topic name order), replacing each topic it changes.
// back is set when the broker is registering again; then only partitions
// it is a replica of are considered.
func fenceAll(n *Metadata, id int32, back *restart) {
	for _, name := range n.TopicNames() {
		t := n.Topics[name]
		var nt *Topic
		for i := range t.Partitions {
			p := t.Partitions[i] // its slices are only ever replaced, never written
			if back != nil && !contains(p.Replicas, id) {
				continue
			}
			if !fencePartition(n, t, &p, id, back) {
				continue
			}
			if nt == nil {
				nt = t.clone()
				n.Topics[name] = nt
			}
			nt.Partitions[i] = p
		}
	}
}

// fencePartition applies the loss of broker id's incarnation to p, a copy
// the caller owns, and reports whether p changed. Broker states in m are
// the new ones; id's old incarnation is never a candidate, its new one
// (back set) only as described in the package rules above.
func fencePartition(m *Metadata, t *Topic, p *Partition, id int32, back *restart) bool {
	// changed bumps the partition epoch (leader or ISR moved); noted is a
	// change of the election state alone.
	changed, noted := false, false
	if back != nil && back.logsReported {
		noteRestart(t, p, id, back)
		noted = true
		if p.IsOffline(id) {
			// It restarted and reopened its logs: what they hold is in
			// its report, judged below like any restart's.
			p.Offline = slices.DeleteFunc(slices.Clone(p.Offline), func(o OfflineMark) bool { return o.Broker == id })
			if len(p.Offline) == 0 {
				p.Offline = nil
			}
		}
	}
	if len(p.ISR) > 1 && contains(p.ISR, id) {
		p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
		changed = true
	}
	old := p.Leader
	if p.Leader == id {
		p.Leader = -1
	}
	var rec *Recovery
	if p.Leader == -1 {
		p.Leader = cleanLeader(m, p, id)
		var refused *Ineligible
		if p.Leader == -1 && back != nil && len(p.ISR) == 1 && p.ISR[0] == id {
			if why := back.ineligible(t, p); why == "" {
				p.Leader = id
			} else {
				refused = &Ineligible{Topic: t.Name, Partition: p.Index, Broker: id, Reason: why, EndOffset: -1, CommittedHW: p.CommittedHW,
					Strategy: t.Config(ConfigUncleanRecovery)}
				if back.logsReported {
					l := back.log(t, p)
					refused.EndOffset, refused.RecoveryTruncated = l.EndOffset, l.RecoveryTruncated
				}
				if !p.NoCleanLeader {
					p.NoCleanLeader, noted = true, true
				}
			}
		}
		if p.Leader == -1 && uncleanElection(t) && !anyUsable(m, p, p.ISR, id) {
			if l := firstUsable(m, p); l >= 0 {
				leadUncleanly(p, l)
				refused = nil
			}
		}
		if p.Leader == -1 && back != nil {
			var waiting []int32
			if rec, waiting = recoverBalanced(m, t, p); rec != nil {
				if refused != nil {
					rec.Reason = refused.Reason
				}
				refused = nil
			} else if refused != nil {
				refused.Waiting = waiting
			}
		}
		if refused != nil {
			back.offline = append(back.offline, *refused)
		}
	}
	// A new incarnation leading again is a new leader: its epoch is new.
	if p.Leader != old || old == id {
		p.LeaderEpoch++
		changed = true
	}
	if changed {
		p.PartitionEpoch++
	}
	if rec != nil {
		p.RecoveredEpoch, rec.LeaderEpoch = p.LeaderEpoch, p.LeaderEpoch
		back.recovered = append(back.recovered, *rec)
	}
	return changed || noted
}

// markOffline marks replica id of p (a copy the caller owns) offline
// with reason and applies the rules above: it leaves the ISR unless it is
// the last member, and a partition it led gets the first usable in-sync
// replica, or, if the topic allows an unclean election and no in-sync
// replica is usable, the first usable replica. It reports whether p
// changed: false when id holds no replica of p or is marked already.
func markOffline(m *Metadata, t *Topic, p *Partition, id int32, reason string) bool {
	if !contains(p.Replicas, id) || p.IsOffline(id) {
		return false
	}
	i, _ := slices.BinarySearchFunc(p.Offline, id, func(o OfflineMark, id int32) int { return int(o.Broker) - int(id) })
	p.Offline = slices.Insert(slices.Clone(p.Offline), i, OfflineMark{Broker: id, Reason: reason})
	changed := false
	if len(p.ISR) > 1 && contains(p.ISR, id) {
		p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
		changed = true
	}
	if p.Leader == id {
		p.Leader = cleanLeader(m, p, id)
		if p.Leader == -1 && uncleanElection(t) && !anyUsable(m, p, p.ISR, id) {
			if l := firstUsable(m, p); l >= 0 {
				leadUncleanly(p, l)
			}
		}
		p.LeaderEpoch++
		changed = true
	}
	if changed {
		p.PartitionEpoch++
	}
	return true
}

// markOnline clears the offline mark of replica id of p (a copy the
// caller owns), whose broker reopened its log and found l in it, and
// elects it where it is the last ISR member of p without a leader and l
// cannot lack a committed record (see the rules above). It reports
// whether p changed: false when id is not marked offline in p.
func markOnline(m *Metadata, p *Partition, id int32, l ReplicaLog) bool {
	if !p.IsOffline(id) {
		return false
	}
	p.Offline = slices.DeleteFunc(slices.Clone(p.Offline), func(o OfflineMark) bool { return o.Broker == id })
	if len(p.Offline) == 0 {
		p.Offline = nil
	}
	if p.Leader == -1 && len(p.ISR) == 1 && p.ISR[0] == id && m.isAlive(id) && !p.NoCleanLeader &&
		!l.RecoveryTruncated && l.EndOffset >= p.CommittedHW {
		p.Leader = id
		p.LeaderEpoch++
		p.PartitionEpoch++
	}
	return true
}

// electOffline gives each partition of t (a copy the caller owns) that has
// no leader one, now that t allows unclean elections: an alive ISR member
// if the partition may still have a clean leader, else the first alive
// replica, alone in the ISR — what the next fence or registration would
// do, done when the operator turns the setting on rather than later.
func electOffline(m *Metadata, t *Topic) {
	for i := range t.Partitions {
		p := &t.Partitions[i]
		if p.Leader != -1 {
			continue
		}
		if l := cleanLeader(m, p, -1); l >= 0 {
			p.Leader = l
		} else if l = firstUsable(m, p); l >= 0 {
			leadUncleanly(p, l)
		} else {
			continue
		}
		p.LeaderEpoch++
		p.PartitionEpoch++
	}
}

// leadUncleanly makes l the leader of p alone in its ISR, by an unclean
// election: what was committed before may be lost, so the committed high
// watermark, any refusal and the restarted replicas start over.
func leadUncleanly(p *Partition, l int32) {
	p.Leader, p.ISR = l, []int32{l}
	p.CommittedHW, p.NoCleanLeader, p.Restarted = 0, false, nil
}

// cleanLeader returns the first replica, in replica order, that is in the
// ISR, alive and not except; -1 when there is none, or when the last ISR
// member was refused leadership (NoCleanLeader).
func cleanLeader(m *Metadata, p *Partition, except int32) int32 {
	if p.NoCleanLeader {
		return -1
	}
	for _, r := range p.Replicas {
		if r != except && contains(p.ISR, r) && m.usable(p, r) {
			return r
		}
	}
	return -1
}

// anyUsable reports whether a replica of p in ids other than except may
// lead (usable).
func anyUsable(m *Metadata, p *Partition, ids []int32, except int32) bool {
	return slices.ContainsFunc(ids, func(r int32) bool { return r != except && m.usable(p, r) })
}

// firstUsable returns the first replica of p, in replica order, that may
// lead (usable); -1 when none may.
func firstUsable(m *Metadata, p *Partition) int32 {
	for _, r := range p.Replicas {
		if m.usable(p, r) {
			return r
		}
	}
	return -1
}

// usable reports whether replica r of p may lead: its broker is alive and
// its log is not offline (ReportOfflineReplicas).
func (m *Metadata) usable(p *Partition, r int32) bool {
	return m.isAlive(r) && !p.IsOffline(r)
}

func (m *Metadata) isAlive(id int32) bool {
	b, ok := m.Brokers[id]
	return ok && b.State == BrokerAlive
}

// uncleanElection reports whether the topic lets a replica outside the
// ISR lead. Values were validated on the way in; anything else is false.
func uncleanElection(t *Topic) bool {
	v, err := strconv.ParseBool(t.Config(ConfigUncleanElection))
	return err == nil && v
}

// ReplicationFactor returns the topic's number of replicas per partition
// (0 for a topic without partitions, which Apply never creates): that of
// partition 0's target, as a move adds replicas for a while (move.go).
func (t *Topic) ReplicationFactor() int {
	if t == nil || len(t.Partitions) == 0 {
		return 0
	}
	return len(t.Partitions[0].Replicas) - len(t.Partitions[0].Removing)
}

// MinInsync returns the topic's min.insync.replicas: the explicit setting,
// else 2 when the replication factor is 3 or more and 1 below that; never
// above the replication factor (a topic must be writable with acks=all
// while every replica is in sync) and never below 1.
func MinInsync(t *Topic) int {
	rf := t.ReplicationFactor()
	n := 1
	if rf >= 3 {
		n = 2
	}
	if t != nil {
		if v, ok := t.Configs[ConfigMinInsyncReplica]; ok {
			if x, err := strconv.ParseInt(v, 10, 32); err == nil && x >= 1 {
				n = int(x)
			}
		}
	}
	return max(1, min(n, rf))
}

// PlanPreferredLeaders returns the changes that give leadership back to
// preferred replicas (the first of each replica list) in the named topics,
// or in all when topics is empty: one AlterPartition for each partition
// with a leader whose preferred replica is alive and in the ISR but does
// not lead, with the ISR unchanged. A partition without a leader is left
// to the election rules (R11): its alive ISR member, if any, was refused. Unknown topics are skipped. The order is by topic
// name, then partition.
func PlanPreferredLeaders(m *Metadata, topics []string) []AlterPartition {
	names := m.TopicNames()
	if len(topics) > 0 {
		names = slices.Clone(topics)
		slices.Sort(names)
		names = slices.Compact(names)
	}
	var out []AlterPartition
	for _, name := range names {
		t, ok := m.Topics[name]
		if !ok {
			continue
		}
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if len(p.Replicas) == 0 {
				continue
			}
			pref := p.Replicas[0]
			if p.Leader == -1 || p.Leader == pref || !contains(p.ISR, pref) || !m.usable(p, pref) {
				continue
			}
			out = append(out, AlterPartition{
				Topic: name, Partition: p.Index, PartitionEpoch: p.PartitionEpoch,
				Leader: pref, ISR: slices.Clone(p.ISR), TopicID: t.ID,
			})
		}
	}
	return out
}
