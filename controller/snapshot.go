package controller

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sort"
)

// A snapshot is the whole metadata plus the log index it reflects:
//
//	magic "SLMS" | version u8 | body length u32 | body | crc32c u32
//
// The CRC-32C covers version, length and body. The body is the index as a
// uvarint followed by the metadata (appendMetadata). ControllerID is not in
// it: who leads is Raft's state, not the log's.
//
// Version 2 added each broker's GossipAddr and DirID and each partition's
// CommittedHW and NoCleanLeader; version 3 each partition's
// RecoveredEpoch, RecoveryMayLack and Restarted; version 4 each
// partition's Offline; version 5 NextProducerID, at the end; version 6
// the users' SCRAM credentials and the ACLs after it; version 7 the
// moves in progress and queued (appendMoves) and the cluster configs, at
// the end; version 8 the group configs (appendGroupConfigs), after them;
// version 9 the removed brokers (appendRemoved), at the end; version 10
// is version 9's layout (command version 10 added a cluster config key).
// Older snapshots still restore, with the fields they lack empty.
//
// A snapshot is written in the layout of the finalized command level
// (Metadata.CommandLevel; snapshot and command versions have gone
// together since version 2), so every replica the level allows can
// restore it, and it restores that level: the layout version is the
// level. Metadata of a level below MinCommandLevel is written in layout
// MinCommandLevel, and of level 0 (nothing applied yet) in the newest.
const (
	snapshotMagic   = "SLMS"
	snapshotVersion = 10
	// snapshotVersion1 and snapshotVersion2 are the earlier layouts: each
	// adds fields at the end of a broker or a partition.
	snapshotVersion1 = 1
	snapshotVersion2 = 2
	snapshotHeader   = len(snapshotMagic) + 1 + 4
	// maxSnapshot bounds what Restore reads; metadata for 100k partitions
	// is a few MiB.
	maxSnapshot = 1 << 30
)

// appendMetadata appends m's canonical encoding in the newest layout:
// brokers by id, topics by name, configs by key. Equal metadata has equal
// bytes, which tests use to compare replicas.
func appendMetadata(b []byte, m *Metadata) []byte { return appendMetadataAt(b, m, snapshotVersion) }

// snapshotLayout is the layout a snapshot of metadata at command level
// is written in.
func snapshotLayout(level uint8) uint8 {
	switch {
	case level == 0 || level >= snapshotVersion:
		return snapshotVersion
	case level < MinCommandLevel:
		return MinCommandLevel
	}
	return level
}

// appendMetadataAt appends m's canonical encoding in layout v (from
// MinCommandLevel): the sections of later layouts are left out. They are
// empty at level v: the commands that fill them are refused below the
// level that introduced them.
func appendMetadataAt(b []byte, m *Metadata, v uint8) []byte {
	b = binary.AppendUvarint(b, m.Version)
	b = binary.AppendUvarint(b, m.NextTopicID)
	ids := make([]int32, 0, len(m.Brokers))
	for id := range m.Brokers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		br := m.Brokers[id]
		b = binary.AppendVarint(b, int64(br.ID))
		b = appendString(b, br.Addr)
		b = appendString(b, br.Rack)
		b = appendString(b, br.RaftAddr)
		b = binary.AppendVarint(b, br.Epoch)
		b = append(b, byte(br.State))
		b = appendString(b, br.GossipAddr)
		b = appendString(b, br.DirID)
	}
	names := m.TopicNames()
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, name := range names {
		t := m.Topics[name]
		b = binary.AppendUvarint(b, t.ID)
		b = appendString(b, t.Name)
		b = appendConfigs(b, t.Configs)
		b = binary.AppendUvarint(b, uint64(len(t.Partitions)))
		for i := range t.Partitions {
			p := &t.Partitions[i]
			b = binary.AppendVarint(b, int64(p.Index))
			b = appendInt32s(b, p.Replicas)
			b = appendInt32s(b, p.ISR)
			b = binary.AppendVarint(b, int64(p.Leader))
			b = binary.AppendVarint(b, int64(p.LeaderEpoch))
			b = binary.AppendVarint(b, int64(p.PartitionEpoch))
			b = binary.AppendVarint(b, p.CommittedHW)
			b = appendBool(b, p.NoCleanLeader)
			b = binary.AppendVarint(b, int64(p.RecoveredEpoch))
			b = binary.AppendVarint(b, p.RecoveryMayLack)
			b = binary.AppendUvarint(b, uint64(len(p.Restarted)))
			for _, r := range p.Restarted {
				b = binary.AppendVarint(b, int64(r.Broker))
				b = binary.AppendVarint(b, int64(r.LastEpoch))
				b = binary.AppendVarint(b, r.EndOffset)
				b = appendBool(b, r.InISR)
				b = appendBool(b, r.Wiped)
			}
			if v < 4 {
				continue
			}
			b = binary.AppendUvarint(b, uint64(len(p.Offline)))
			for _, o := range p.Offline {
				b = binary.AppendVarint(b, int64(o.Broker))
				b = appendString(b, o.Reason)
			}
		}
	}
	for _, s := range []struct {
		from   uint8
		append func([]byte, *Metadata) []byte
	}{
		{5, func(b []byte, m *Metadata) []byte { return binary.AppendVarint(b, m.NextProducerID) }},
		{6, appendSecurity},
		{7, func(b []byte, m *Metadata) []byte { return appendConfigs(appendMoves(b, m), m.Configs) }},
		{8, appendGroupConfigs},
		{9, appendRemoved},
	} {
		if v >= s.from {
			b = s.append(b, m)
		}
	}
	return b
}

// appendRemoved writes Metadata.Removed: a count, then each broker id
// (ascending) with the data directory id and epoch it was removed with.
func appendRemoved(b []byte, m *Metadata) []byte {
	ids := make([]int32, 0, len(m.Removed))
	for id := range m.Removed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendVarint(b, int64(id))
		b = appendString(b, m.Removed[id].DirID)
		b = binary.AppendVarint(b, m.Removed[id].Epoch)
	}
	return b
}

// decodeRemoved reads what appendRemoved wrote (version 8), refusing ids
// out of order so there is one encoding.
func decodeRemoved(d *decoder, m *Metadata) {
	// An entry is at least 3 bytes: id, directory id length, epoch.
	n := d.count(3)
	prev := int32(-1)
	for i := 0; i < n && d.err == nil; i++ {
		id, rb := d.int32(), RemovedBroker{DirID: d.string(), Epoch: d.varint()}
		if d.err != nil {
			return
		}
		if id <= prev {
			d.fail("removed broker %d not after %d", id, prev)
			return
		}
		prev = id
		if m.Removed == nil {
			m.Removed = map[int32]RemovedBroker{}
		}
		m.Removed[id] = rb
	}
}

// appendMoves writes the partitions that are moving or queued
// (Partition.Adding, Removing, Queued; move.go), by topic name and index:
// a count, then for each the topic, the index, the adding, the removing
// and the queued replicas. Nothing moving is one zero byte.
func appendMoves(b []byte, m *Metadata) []byte {
	type moving struct {
		topic string
		p     *Partition
	}
	var ms []moving
	for _, name := range m.TopicNames() {
		t := m.Topics[name]
		for i := range t.Partitions {
			if t.Partitions[i].Moving() || len(t.Partitions[i].Queued) > 0 {
				ms = append(ms, moving{name, &t.Partitions[i]})
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for _, mv := range ms {
		b = appendString(b, mv.topic)
		b = binary.AppendVarint(b, int64(mv.p.Index))
		b = appendInt32s(b, mv.p.Adding)
		b = appendInt32s(b, mv.p.Removing)
		b = appendInt32s(b, mv.p.Queued)
	}
	return b
}

// decodeMetadata reads what appendMetadata wrote (in the layout of
// snapshot version v), refusing duplicates and out-of-order entries so one
// metadata has one encoding.
func decodeMetadata(d *decoder, v byte) *Metadata {
	m := NewMetadata()
	m.Version = d.uvarint()
	m.NextTopicID = d.uvarint()
	nb := d.count(6)
	for i := 0; i < nb && d.err == nil; i++ {
		b := &Broker{ID: d.int32(), Addr: d.string(), Rack: d.string(), RaftAddr: d.string(), Epoch: d.varint(), State: BrokerState(d.byte())}
		if v >= snapshotVersion2 {
			b.GossipAddr, b.DirID = d.string(), d.string()
		}
		if d.err != nil {
			break
		}
		if _, dup := m.Brokers[b.ID]; dup {
			d.fail("broker %d twice", b.ID)
		}
		if b.State != BrokerAlive && b.State != BrokerOffline {
			d.fail("broker %d: state %d", b.ID, b.State)
		}
		m.Brokers[b.ID] = b
	}
	nt := d.count(4)
	prev := ""
	for i := 0; i < nt && d.err == nil; i++ {
		t := &Topic{ID: d.uvarint(), Name: d.string(), Configs: d.configs()}
		np := d.count(6)
		if d.err != nil {
			break
		}
		if i > 0 && t.Name <= prev {
			d.fail("topic %q not after %q", t.Name, prev)
			break
		}
		prev = t.Name
		t.Partitions = make([]Partition, np)
		for j := range t.Partitions {
			t.Partitions[j] = Partition{Index: d.int32(), Replicas: d.int32s(), ISR: d.int32s(), Leader: d.int32(), LeaderEpoch: d.int32(), PartitionEpoch: d.int32()}
			if v >= snapshotVersion2 {
				t.Partitions[j].CommittedHW, t.Partitions[j].NoCleanLeader = d.varint(), d.bool()
			}
			if v >= 3 {
				decodeRecovery(d, &t.Partitions[j])
			}
			if v >= 4 {
				decodeOffline(d, &t.Partitions[j])
			}
			if d.err == nil && t.Partitions[j].Index != int32(j) {
				d.fail("topic %q: partition %d at position %d", t.Name, t.Partitions[j].Index, j)
			}
		}
		m.Topics[t.Name] = t
	}
	if v >= 5 {
		if m.NextProducerID = d.varint(); m.NextProducerID < 0 {
			d.fail("next producer id %d", m.NextProducerID)
		}
	}
	if v >= 6 {
		decodeSecurity(d, m)
	}
	if v >= 7 {
		decodeMoves(d, m)
		m.Configs = d.configs()
	}
	if v >= 8 {
		decodeGroupConfigs(d, m)
	}
	if v >= 9 {
		decodeRemoved(d, m)
	}
	if d.err != nil {
		return nil
	}
	return m
}

// decodeRecovery reads a partition's balanced-recovery fields (version 3),
// refusing restarted replicas out of broker order so there is one encoding.
func decodeRecovery(d *decoder, p *Partition) {
	p.RecoveredEpoch, p.RecoveryMayLack = d.int32(), d.varint()
	// An entry is at least 5 bytes: broker, last epoch, end offset, two
	// flags.
	n := d.count(5)
	if n == 0 || d.err != nil {
		return
	}
	p.Restarted = make([]ReplicaEnd, n)
	for i := range p.Restarted {
		p.Restarted[i] = ReplicaEnd{Broker: d.int32(), LastEpoch: d.int32(), EndOffset: d.varint(), InISR: d.bool(), Wiped: d.bool()}
		if i > 0 && d.err == nil && p.Restarted[i].Broker <= p.Restarted[i-1].Broker {
			d.fail("restarted replica %d not after %d", p.Restarted[i].Broker, p.Restarted[i-1].Broker)
		}
	}
}

// decodeOffline reads a partition's offline replicas (version 4), refusing
// them out of broker order so there is one encoding.
func decodeOffline(d *decoder, p *Partition) {
	// An entry is at least 2 bytes: broker, reason length.
	n := d.count(2)
	if n == 0 || d.err != nil {
		return
	}
	p.Offline = make([]OfflineMark, n)
	for i := range p.Offline {
		p.Offline[i] = OfflineMark{Broker: d.int32(), Reason: d.string()}
		if i > 0 && d.err == nil && p.Offline[i].Broker <= p.Offline[i-1].Broker {
			d.fail("offline replica %d not after %d", p.Offline[i].Broker, p.Offline[i-1].Broker)
		}
	}
}

// decodeMoves reads what appendMoves wrote (version 7), refusing
// partitions out of order, unknown or without a move, so there is one
// encoding.
func decodeMoves(d *decoder, m *Metadata) {
	// An entry is at least 5 bytes: topic length, index, three counts.
	n := d.count(5)
	prevTopic, prevIndex := "", int32(-1)
	for i := 0; i < n && d.err == nil; i++ {
		name, index := d.string(), d.int32()
		adding, removing, queued := d.int32s(), d.int32s(), d.int32s()
		if d.err != nil {
			return
		}
		if name < prevTopic || name == prevTopic && index <= prevIndex {
			d.fail("move of %s-%d not after %s-%d", name, index, prevTopic, prevIndex)
			return
		}
		prevTopic, prevIndex = name, index
		t, ok := m.Topics[name]
		if !ok || index < 0 || int(index) >= len(t.Partitions) || len(adding)+len(removing)+len(queued) == 0 ||
			len(queued) > 0 && len(adding)+len(removing) > 0 {
			d.fail("move of %s-%d: no such partition, nothing moves, or moving and queued", name, index)
			return
		}
		p := &t.Partitions[index]
		p.Adding, p.Removing, p.Queued = adding, removing, queued
		decodeMove(d, p)
	}
}

// decodeMove checks a partition's move as decoded: adding replicas must
// be in the target, removing ones after it, as Apply leaves them.
func decodeMove(d *decoder, p *Partition) {
	target := len(p.Replicas) - len(p.Removing)
	if target < 1 {
		d.fail("partition %d: %d replicas, %d removing", p.Index, len(p.Replicas), len(p.Removing))
		return
	}
	for _, r := range p.Adding {
		if !contains(p.Replicas[:target], r) {
			d.fail("partition %d: adding replica %d not in the target %v", p.Index, r, p.Replicas[:target])
		}
	}
	if !slices.Equal(p.Removing, p.Replicas[target:]) {
		d.fail("partition %d: removing %v, replicas %v", p.Index, p.Removing, p.Replicas)
	}
}

// encodeSnapshot returns the snapshot of m at log index, in the layout of
// its command level.
func encodeSnapshot(m *Metadata, index uint64) []byte {
	v := snapshotLayout(m.CommandLevel)
	b := make([]byte, snapshotHeader, snapshotHeader+256)
	copy(b, snapshotMagic)
	b[len(snapshotMagic)] = v
	b = binary.AppendUvarint(b, index)
	b = appendMetadataAt(b, m, v)
	binary.BigEndian.PutUint32(b[len(snapshotMagic)+1:], uint32(len(b)-snapshotHeader))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[len(snapshotMagic):], crcTable))
}

// decodeSnapshot checks and decodes a snapshot. Errors match ErrCorrupt.
func decodeSnapshot(b []byte) (*Metadata, uint64, error) {
	return decodeSnapshotUpTo(b, snapshotVersion)
}

// decodeSnapshotUpTo decodes a snapshot of a layout up to max (a node
// standing in for an older build refuses newer ones). The metadata's
// command level is the layout version.
func decodeSnapshotUpTo(b []byte, max uint8) (*Metadata, uint64, error) {
	if len(b) < snapshotHeader+4 || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return nil, 0, fmt.Errorf("%w: snapshot: bad header", ErrCorrupt)
	}
	v := b[len(snapshotMagic)]
	if v < snapshotVersion1 || v > min(max, snapshotVersion) {
		return nil, 0, fmt.Errorf("%w: snapshot version %d, this build knows %d to %d", ErrCorrupt, v, snapshotVersion1, min(max, snapshotVersion))
	}
	n := binary.BigEndian.Uint32(b[len(snapshotMagic)+1:])
	if uint64(n) != uint64(len(b)-snapshotHeader-4) {
		return nil, 0, fmt.Errorf("%w: snapshot: body of %d bytes, header says %d", ErrCorrupt, len(b)-snapshotHeader-4, n)
	}
	end := len(b) - 4
	if got, want := crc32.Checksum(b[len(snapshotMagic):end], crcTable), binary.BigEndian.Uint32(b[end:]); got != want {
		return nil, 0, fmt.Errorf("%w: snapshot: crc %08x, stored %08x", ErrCorrupt, got, want)
	}
	d := &decoder{b: b[snapshotHeader:end]}
	index := d.uvarint()
	m := decodeMetadata(d, v)
	if err := d.end(); err != nil {
		return nil, 0, fmt.Errorf("snapshot: %w", err)
	}
	m.CommandLevel = v
	return m, index, nil
}

// readSnapshot reads a whole snapshot from r, at most maxSnapshot bytes,
// of a layout up to max.
func readSnapshot(r io.Reader, max uint8) (*Metadata, uint64, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSnapshot+1))
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: read: %w", err)
	}
	if len(b) > maxSnapshot {
		return nil, 0, fmt.Errorf("%w: snapshot larger than %d bytes", ErrCorrupt, maxSnapshot)
	}
	return decodeSnapshotUpTo(b, max)
}
