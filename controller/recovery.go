package controller

import (
	"fmt"
	"slices"
)

// Balanced recovery: what the controller does with a partition whose last
// in-sync replica restarted and may have lost committed records (R11), so
// that no replica is eligible to lead, once every replica of its last ISR
// is back (the rules are in election.go's header). The model is Kafka 4's
// unclean recovery (KIP-966), strategy "balanced": elect the returned
// replica with the highest (last leader epoch, end offset), the one that
// lost least, and say how many committed offsets it may lack. A machine
// crash of every in-sync replica (a rack's power, a kernel panic
// everywhere) thus costs the records none of them synced, and the
// partition is back as soon as they all are, instead of never.

// ReplicaEnd is what a replica of a partition reported of its log when its
// broker last registered (RegisterBroker.Logs): a candidate of a balanced
// recovery.
type ReplicaEnd struct {
	Broker int32 `json:"broker"`
	// LastEpoch is the leader epoch of the log's last batch (-1: empty).
	LastEpoch int32 `json:"last_epoch"`
	EndOffset int64 `json:"end_offset"`
	// InISR: it was in the partition's ISR when it registered (it left
	// the ISR by restarting, or is its last member), so it is one of the
	// last ISR a balanced recovery waits for.
	InISR bool `json:"in_isr,omitempty"`
	// Wiped: its data directory was empty at that start (new or wiped):
	// never a candidate.
	Wiped bool `json:"wiped,omitempty"`
}

// Recovery is a partition that a balanced recovery gave a leader, for
// the controller leader's warning (Result.Recovered).
type Recovery struct {
	Topic       string
	Partition   int32
	Leader      int32
	LeaderEpoch int32 // the new leader epoch
	// LastEpoch and EndOffset are what the leader reported of its log.
	LastEpoch int32
	EndOffset int64
	// CommittedHW is the partition's before the election; MayLack the
	// committed offsets the leader's log lacks, CommittedHW - EndOffset
	// when that is positive, else 0.
	CommittedHW int64
	MayLack     int64
	// Reason is why the last in-sync replica was not eligible, when the
	// recovery followed its refusal ("" when it followed a config change
	// or another replica's return).
	Reason string
}

// noteRestart records, in p (a copy the caller owns), what broker id
// reported of its replica of p at its registration; call it before the
// registration changes p's ISR.
func noteRestart(t *Topic, p *Partition, id int32, back *restart) {
	l := back.log(t, p)
	e := ReplicaEnd{Broker: id, LastEpoch: l.LastEpoch, EndOffset: l.EndOffset, InISR: contains(p.ISR, id),
		Wiped: back.previousEpoch == PreviousEpochEmpty}
	rs := slices.Clone(p.Restarted)
	i, found := slices.BinarySearchFunc(rs, id, func(r ReplicaEnd, id int32) int { return int(r.Broker) - int(id) })
	if found {
		e.InISR = e.InISR || rs[i].InISR
		rs[i] = e
	} else {
		rs = slices.Insert(rs, i, e)
	}
	p.Restarted = rs
}

// restarted returns p's entry for broker id, or nil.
func (p *Partition) restarted(id int32) *ReplicaEnd {
	for i := range p.Restarted {
		if p.Restarted[i].Broker == id {
			return &p.Restarted[i]
		}
	}
	return nil
}

// inLastISR reports whether replica r is in p's last ISR: its ISR, and
// the restarted replicas that left it by restarting.
func (p *Partition) inLastISR(r int32) bool {
	if contains(p.ISR, r) {
		return true
	}
	e := p.restarted(r)
	return e != nil && e.InISR
}

// recoveryCandidate returns the replica a balanced recovery of p would
// elect, or nil, and the replicas of p's last ISR that are not back yet
// (not alive, or not registered with a report since the partition's data
// last moved on): while there are any, there is no candidate.
func recoveryCandidate(m *Metadata, p *Partition) (*ReplicaEnd, []int32) {
	var waiting []int32
	for _, r := range p.Replicas {
		if p.inLastISR(r) && (!m.isAlive(r) || p.restarted(r) == nil) {
			waiting = append(waiting, r)
		}
	}
	if len(waiting) > 0 {
		return nil, waiting
	}
	var best *ReplicaEnd
	for _, r := range p.Replicas { // replica order: a tie goes to the first
		e := p.restarted(r)
		if e == nil || e.Wiped || !m.usable(p, r) {
			continue
		}
		if best == nil || e.LastEpoch > best.LastEpoch || e.LastEpoch == best.LastEpoch && e.EndOffset > best.EndOffset {
			best = e
		}
	}
	return best, nil
}

// recoverBalanced gives p (a copy the caller owns, without a leader) a
// leader by a balanced recovery if t's strategy is balanced and p has a
// candidate: it leads alone in the ISR, the committed HW drops to its end
// offset if that is lower, and the refusal and the restarted replicas are
// forgotten. The caller bumps the epochs and sets RecoveredEpoch. It
// returns the recovery, or nil and the replicas of the last ISR it waits
// for.
func recoverBalanced(m *Metadata, t *Topic, p *Partition) (*Recovery, []int32) {
	if t.Config(ConfigUncleanRecovery) != RecoveryBalanced {
		return nil, nil
	}
	best, waiting := recoveryCandidate(m, p)
	if best == nil {
		return nil, waiting
	}
	rec := &Recovery{Topic: t.Name, Partition: p.Index, Leader: best.Broker, LastEpoch: best.LastEpoch, EndOffset: best.EndOffset,
		CommittedHW: p.CommittedHW, MayLack: max(0, p.CommittedHW-best.EndOffset)}
	p.Leader, p.ISR = best.Broker, []int32{best.Broker}
	p.CommittedHW = min(p.CommittedHW, best.EndOffset)
	p.NoCleanLeader, p.Restarted = false, nil
	p.RecoveryMayLack = rec.MayLack
	return rec, nil
}

// recoverOffline runs a balanced recovery on every partition of t (a copy
// the caller owns) without a leader, now that t's strategy became
// balanced: what the next registration of a replica would do, done when
// the operator changes the setting.
func recoverOffline(m *Metadata, t *Topic) []Recovery {
	var out []Recovery
	for i := range t.Partitions {
		p := &t.Partitions[i]
		if p.Leader != -1 {
			continue
		}
		rec, _ := recoverBalanced(m, t, p)
		if rec == nil {
			continue
		}
		p.LeaderEpoch++
		p.PartitionEpoch++
		p.RecoveredEpoch, rec.LeaderEpoch = p.LeaderEpoch, p.LeaderEpoch
		out = append(out, *rec)
	}
	return out
}

// PartitionNote says, for topic describe and cluster status, why p of t
// has no leader (which replicas of its last ISR it waits for, or that it
// waits for an operator), and whether its leader came from a balanced
// recovery and how many committed offsets that leader may lack, and which
// replicas have their log offline and why; "" when there is nothing to
// say.
func PartitionNote(m *Metadata, t *Topic, p *Partition) string {
	var note string
	if p.Leader == -1 {
		best, waiting := recoveryCandidate(m, p)
		switch {
		case p.NoCleanLeader && t.Config(ConfigUncleanRecovery) == RecoveryManual:
			note = "no eligible leader: its last in-sync replica restarted and may have lost committed records (R11); waiting for an operator (" +
				ConfigUncleanRecovery + "=" + RecoveryManual + ")"
		case p.NoCleanLeader && len(waiting) > 0:
			note = fmt.Sprintf("no eligible leader: its last in-sync replica restarted and may have lost committed records (R11); "+
				"a balanced recovery waits for replicas %v of the last ISR to return", waiting)
		case p.NoCleanLeader && best == nil:
			note = "no eligible leader: its last in-sync replica restarted and may have lost committed records (R11), " +
				"and no returned replica holds data; only an unclean election (" + ConfigUncleanElection + "=true) gives it a leader"
		case len(waiting) > 0 && slices.ContainsFunc(p.ISR, p.IsOffline):
			note = fmt.Sprintf("no usable in-sync replica: waiting for replicas %v of the last ISR (one whose log is offline returns when its broker restarts)", waiting)
		case len(waiting) > 0:
			note = fmt.Sprintf("no in-sync replica alive: waiting for replicas %v of the last ISR", waiting)
		}
	}
	if p.RecoveredEpoch > 0 {
		rec := fmt.Sprintf("leader elected by a balanced recovery at leader epoch %d: may lack %d committed offsets", p.RecoveredEpoch, p.RecoveryMayLack)
		if note != "" {
			rec = note + "; earlier, " + rec
		}
		note = rec
	}
	for _, o := range p.Offline {
		off := fmt.Sprintf("replica %d offline: %s", o.Broker, o.Reason)
		if note != "" {
			off = note + "; " + off
		}
		note = off
	}
	return note
}
