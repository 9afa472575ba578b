package controller

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Growing a topic and moving partitions (issue 20).
//
// CreatePartitions adds partitions to a topic, placed as creation places
// them (Place over the alive brokers in rack order, starting where the
// topic's own placement started), so a grown topic looks like one
// created with the larger count. Partitions are never removed: keyed
// records map to hash(key) mod partitions, and a smaller count would
// send a key's records to a partition that does not hold its history.
//
// A move (AlterReassignment) is Kafka's reassignment, kept in the
// partition itself so that it survives a controller failover:
//
//   - Start: the target replica list is given. Adding are its replicas
//     that are new, Removing the current replicas not in it, and
//     Replicas becomes the target followed by Removing. The adding
//     replicas' brokers see themselves in Replicas, create the replica
//     and follow the leader; the leader adds them to the ISR once they
//     caught up, as any follower (never before: acks=all waits only on
//     the ISR, so an adding replica never holds up a produce, and the
//     ISR never holds a replica that is not caught up).
//   - Completion, inside the Apply of the change that put the last
//     adding replica in the ISR (or of the start, when nothing is
//     added): Replicas becomes the target, the removing replicas leave
//     the ISR, and if the leader is being removed leadership moves to
//     the first target replica that is in the ISR and usable, in the
//     same change (a preferred-leader election onto the target; the new
//     leader is in the ISR, so it holds every committed record, R11).
//     The removed replicas' brokers close them and delete their data.
//     A move waits while the partition has no leader, or while no
//     target replica could lead.
//   - Cancel: Replicas goes back to the replicas that are not adding
//     (the target's kept replicas in target order, then the removing
//     ones: as Kafka, the original order is not kept), the adding
//     replicas leave the ISR and are deleted by their brokers, and if an
//     adding replica leads, leadership moves to the first original
//     replica in the ISR. A cancel that would leave no original replica
//     in the ISR, or none to lead, is refused: the move must finish.
//
// A new target for a partition that is moving is refused
// (ErrReassignmentInProgress): cancel first. The same target again, as
// a start retried after a lost answer sends it, is accepted and changes
// nothing, as a target equal to the replicas is: a start is idempotent.

// CreatePartitions adds partitions to a topic: Replicas holds the replica
// lists of the new ones, preferred leader first. From is the partition
// count the proposer saw and TopicID its topic id: the command is refused
// with ErrStalePartitionEpoch when the topic has since grown or been
// created again. New in CommandVersion 7.
type CreatePartitions struct {
	Topic    string
	TopicID  uint64
	From     int32
	Replicas [][]int32
}

// AlterReassignment starts a move of one partition to Target (its new
// replica list, preferred leader first), or cancels the partition's move
// when Target is empty. TopicID, when not 0, must be the topic's id. New
// in CommandVersion 7.
type AlterReassignment struct {
	Topic     string
	TopicID   uint64
	Partition int32
	Target    []int32
}

// Kind implements Command.
func (CreatePartitions) Kind() CommandKind { return KindCreatePartitions }

// Kind implements Command.
func (AlterReassignment) Kind() CommandKind { return KindAlterReassignment }

func (c CreatePartitions) appendBody(b []byte) []byte {
	b = appendString(b, c.Topic)
	b = binary.AppendUvarint(b, c.TopicID)
	b = binary.AppendVarint(b, int64(c.From))
	b = binary.AppendUvarint(b, uint64(len(c.Replicas)))
	for _, r := range c.Replicas {
		b = appendInt32s(b, r)
	}
	return b
}

func (c AlterReassignment) appendBody(b []byte) []byte {
	b = appendString(b, c.Topic)
	b = binary.AppendUvarint(b, c.TopicID)
	b = binary.AppendVarint(b, int64(c.Partition))
	return appendInt32s(b, c.Target)
}

func decodeCreatePartitions(d *decoder) CreatePartitions {
	c := CreatePartitions{Topic: d.string(), TopicID: d.uvarint(), From: d.int32()}
	// A replica list is at least 1 byte (its length).
	if n := d.count(1); n > 0 {
		c.Replicas = make([][]int32, n)
		for i := range c.Replicas {
			c.Replicas[i] = d.int32s()
		}
	}
	return c
}

func decodeAlterReassignment(d *decoder) AlterReassignment {
	return AlterReassignment{Topic: d.string(), TopicID: d.uvarint(), Partition: d.int32(), Target: d.int32s()}
}

// PlanCreatePartitions turns a request to grow topic to count partitions
// into a command, placing the new partitions over m's alive brokers that
// are not being drained as creation would have placed them (PlaceNew).
func PlanCreatePartitions(m *Metadata, topic string, count int32) (CreatePartitions, error) {
	t, ok := m.Topics[topic]
	if !ok {
		return CreatePartitions{}, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	have := int32(len(t.Partitions))
	if count <= have || count > MaxPartitions {
		return CreatePartitions{}, fmt.Errorf("%w: %d, topic %q has %d; partitions can only be added, up to %d",
			ErrInvalidPartitions, count, topic, have, MaxPartitions)
	}
	placed, err := PlaceNew(m, count, int16(t.ReplicationFactor()), int(t.ID))
	if err != nil {
		return CreatePartitions{}, err
	}
	return CreatePartitions{Topic: topic, TopicID: t.ID, From: have, Replicas: placed[have:]}, nil
}

func applyCreatePartitions(m *Metadata, c CreatePartitions) (*Metadata, error) {
	t, ok := m.Topics[c.Topic]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, c.Topic)
	}
	if (c.TopicID != 0 && c.TopicID != t.ID) || int(c.From) != len(t.Partitions) {
		return nil, fmt.Errorf("%w: topic %q (id %d) has %d partitions, the change was planned on %d (id %d)",
			ErrStalePartitionEpoch, c.Topic, t.ID, len(t.Partitions), c.From, c.TopicID)
	}
	if len(c.Replicas) < 1 || len(t.Partitions)+len(c.Replicas) > MaxPartitions {
		return nil, fmt.Errorf("%w: %d new partitions on %d, want 1 to %d in all", ErrInvalidPartitions, len(c.Replicas), len(t.Partitions), MaxPartitions)
	}
	rf := t.ReplicationFactor()
	nt := t.clone()
	for i, replicas := range c.Replicas {
		index := int32(len(t.Partitions) + i)
		if len(replicas) != rf {
			return nil, fmt.Errorf("%w: new partition %d has %d replicas, the topic %d", ErrInvalidReplicationFactor, index, len(replicas), rf)
		}
		if err := checkReplicas(m, replicas); err != nil {
			return nil, fmt.Errorf("partition %d: %w", index, err)
		}
		nt.Partitions = append(nt.Partitions, newPartition(m, index, replicas))
	}
	n := edit(m)
	n.Topics[c.Topic] = nt
	return n, nil
}

// newPartition is a new partition's state: its alive replicas in the
// ISR, the first of them leading; with none alive, every replica in the
// ISR and no leader (the first to come back leads, as for creation).
func newPartition(m *Metadata, index int32, replicas []int32) Partition {
	p := Partition{Index: index, Replicas: slices.Clone(replicas), Leader: -1}
	for _, r := range replicas {
		if m.Brokers[r].State == BrokerAlive {
			p.ISR = append(p.ISR, r)
		}
	}
	if len(p.ISR) > 0 {
		p.Leader = p.ISR[0]
	} else {
		p.ISR = slices.Clone(replicas)
	}
	return p
}

// Moving reports whether a move of p is in progress.
func (p *Partition) Moving() bool { return len(p.Adding) > 0 || len(p.Removing) > 0 }

// Target returns p's replica list once its move (if any) completes:
// Replicas without the removing replicas.
func (p *Partition) Target() []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return contains(p.Removing, r) })
}

func applyAlterReassignment(m *Metadata, c AlterReassignment) (*Metadata, error) {
	t, ok := m.Topics[c.Topic]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, c.Topic)
	}
	if c.TopicID != 0 && c.TopicID != t.ID {
		return nil, fmt.Errorf("%w: topic %q was created again (id %d, not %d)", ErrStalePartitionEpoch, c.Topic, t.ID, c.TopicID)
	}
	if c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownPartition, c.Topic, c.Partition)
	}
	nt := t.cloneOne(int(c.Partition))
	p := &nt.Partitions[c.Partition]
	ended := false
	switch {
	case len(c.Target) == 0 && len(p.Queued) > 0:
		p.Queued = nil
		p.PartitionEpoch++
	case len(c.Target) == 0:
		if !p.Moving() {
			return nil, fmt.Errorf("%w: %s-%d", ErrNoReassignment, c.Topic, c.Partition)
		}
		if err := revertMove(m, p); err != nil {
			return nil, fmt.Errorf("%s-%d: %w", c.Topic, c.Partition, err)
		}
		ended = true
	default:
		if (p.Moving() && slices.Equal(c.Target, p.Target())) || slices.Equal(c.Target, p.Queued) {
			// The same target again (a start retried after the leader
			// lost its leadership while committing it): it stands.
			return m, nil
		}
		if p.Moving() || len(p.Queued) > 0 {
			return nil, fmt.Errorf("%w: %s-%d is moving (or queued) to %v; cancel it first", ErrReassignmentInProgress, c.Topic, c.Partition,
				append(p.Target(), p.Queued...))
		}
		if len(c.Target) != t.ReplicationFactor() {
			return nil, fmt.Errorf("%w: %s-%d: %d replicas in %v, the topic has %d (a move keeps the replication factor)",
				ErrInvalidReassignment, c.Topic, c.Partition, len(c.Target), c.Target, t.ReplicationFactor())
		}
		if err := checkReplicas(m, c.Target); err != nil {
			return nil, fmt.Errorf("%w: %s-%d: %w", ErrInvalidReassignment, c.Topic, c.Partition, err)
		}
		if slices.Equal(c.Target, p.Replicas) {
			return m, nil
		}
		if newMoveCounts(m).fit(p.Replicas, c.Target, m) {
			ended = startMove(m, p, c.Target)
		} else {
			p.Queued = slices.Clone(c.Target)
			p.PartitionEpoch++
		}
	}
	n := edit(m)
	n.Topics[c.Topic] = nt
	if ended {
		startQueued(n)
	}
	return n, nil
}

// startMove starts p's move (a copy the caller owns) to target, and
// completes it at once when it can (nothing added); it reports whether
// the move is over.
func startMove(m *Metadata, p *Partition, target []int32) bool {
	p.Adding, p.Removing = nil, nil
	for _, r := range target {
		if !contains(p.Replicas, r) {
			p.Adding = append(p.Adding, r)
		}
	}
	for _, r := range p.Replicas {
		if !contains(target, r) {
			p.Removing = append(p.Removing, r)
		}
	}
	p.Replicas = append(slices.Clone(target), p.Removing...)
	p.PartitionEpoch++
	return completeMove(m, p) || !p.Moving()
}

// moveCounts is the moves in progress: in all, and by each broker a move
// adds a replica to or removes one from.
type moveCounts struct {
	all      int64
	byBroker map[int32]int64
}

func newMoveCounts(m *Metadata) *moveCounts {
	mc := &moveCounts{byBroker: map[int32]int64{}}
	for _, t := range m.Topics {
		for i := range t.Partitions {
			if p := &t.Partitions[i]; p.Moving() {
				mc.add(p.Adding, p.Removing)
			}
		}
	}
	return mc
}

func (mc *moveCounts) add(adding, removing []int32) {
	mc.all++
	for _, r := range adding {
		mc.byBroker[r]++
	}
	for _, r := range removing {
		mc.byBroker[r]++
	}
}

// fit reports whether a move from replicas to target stays within m's
// move limits, counting it in if so. A reorder (nothing added or
// removed) always fits: it moves no data.
func (mc *moveCounts) fit(replicas, target []int32, m *Metadata) bool {
	var touched []int32
	for _, r := range target {
		if !contains(replicas, r) {
			touched = append(touched, r)
		}
	}
	for _, r := range replicas {
		if !contains(target, r) {
			touched = append(touched, r)
		}
	}
	if len(touched) == 0 {
		return true
	}
	if mc.all+1 > m.clusterInt(ConfigMaxMoves) {
		return false
	}
	perBroker := m.clusterInt(ConfigMaxMovesPerBroker)
	for _, r := range touched {
		if mc.byBroker[r]+1 > perBroker {
			return false
		}
	}
	mc.all++
	for _, r := range touched {
		mc.byBroker[r]++
	}
	return true
}

// startQueued starts, in topic name and partition order, the queued moves
// of n (a copy the caller owns, whose topics it may replace) that fit the
// move limits now.
func startQueued(n *Metadata) {
	var mc *moveCounts
	for _, name := range n.TopicNames() {
		t := n.Topics[name]
		cloned := false
		for i := range t.Partitions {
			if len(t.Partitions[i].Queued) == 0 {
				continue
			}
			if mc == nil {
				mc = newMoveCounts(n)
			}
			if !mc.fit(t.Partitions[i].Replicas, t.Partitions[i].Queued, n) {
				continue
			}
			if !cloned {
				t = t.clone()
				n.Topics[name] = t
				cloned = true
			}
			p := &t.Partitions[i]
			target := p.Queued
			p.Queued = nil
			if startMove(n, p, target) {
				// Over at once: its slot is free again.
				mc = nil
			}
		}
	}
}

// completeMove completes p's move (a copy the caller owns) if every
// adding replica is in the ISR, a target replica is in it, and the
// partition has a leader that stays or a target replica to move
// leadership to (see the package rules above). It reports whether it did.
func completeMove(m *Metadata, p *Partition) bool {
	if !p.Moving() || p.Leader == -1 {
		return false
	}
	for _, r := range p.Adding {
		if !contains(p.ISR, r) {
			return false
		}
	}
	return endMove(m, p, p.Target(), slices.Clone(p.Removing))
}

// revertMove cancels p's move (a copy the caller owns), or says why it
// cannot (see the package rules above).
func revertMove(m *Metadata, p *Partition) error {
	origin := slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return contains(p.Adding, r) })
	if !endMove(m, p, origin, slices.Clone(p.Adding)) {
		return fmt.Errorf("%w: no original replica of %v in the ISR %v can lead; the move must finish", ErrInvalidReassignment, origin, p.ISR)
	}
	return nil
}

// endMove ends p's move with replicas as its list and the replicas gone
// out of it and of the ISR; a leader among those gone hands over to the
// first of replicas in the ISR that may lead. It changes nothing and
// returns false when no replica would be left in the ISR, or none to
// lead.
func endMove(m *Metadata, p *Partition, replicas, gone []int32) bool {
	isr := slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return contains(gone, r) })
	if len(isr) == 0 {
		return false
	}
	leader := p.Leader
	if contains(gone, leader) {
		i := slices.IndexFunc(replicas, func(r int32) bool { return contains(isr, r) && m.usable(p, r) })
		if i < 0 {
			return false
		}
		leader = replicas[i]
	}
	dropReplicas(p, gone)
	p.Replicas, p.ISR = replicas, isr
	if leader != p.Leader {
		p.Leader = leader
		p.LeaderEpoch++
	}
	p.PartitionEpoch++
	return true
}

// dropReplicas ends p's move, forgetting what p records of the replicas
// gone (offline marks, restart reports).
func dropReplicas(p *Partition, gone []int32) {
	p.Offline = slices.DeleteFunc(slices.Clone(p.Offline), func(o OfflineMark) bool { return contains(gone, o.Broker) })
	if len(p.Offline) == 0 {
		p.Offline = nil
	}
	p.Restarted = slices.DeleteFunc(slices.Clone(p.Restarted), func(r ReplicaEnd) bool { return contains(gone, r.Broker) })
	if len(p.Restarted) == 0 {
		p.Restarted = nil
	}
	p.Adding, p.Removing = nil, nil
}
