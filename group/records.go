package group

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/sluicemq/sluice/record"
)

// Record is one record for the offsets topic: a key and a value, nil for
// a tombstone (the key's state is deleted; compaction later drops it).
//
// Every key starts with an int16 type, every value with an int16 version
// (0 today); strings are an int16 length and bytes, lists an int32 count,
// all big-endian:
//
//	type 1  offset commit   key: group, topic, partition int32
//	                        value: offset int64, leaderEpoch int32,
//	                               metadata string, commitTimeMs int64
//	type 2  group metadata  key: group
//	                        value: epoch int32, assignmentEpoch int32
//	type 3  member          key: group, memberID
//	                        value: instanceID, rackID, clientID, clientHost,
//	                               rebalanceTimeoutMs int32,
//	                               topicNames [string], topicRegex string,
//	                               assignor string, epoch int32,
//	                               prevEpoch int32, state int8,
//	                               assigned, revoking, target: partitions
//	type 4  classic group   key: group
//	                        value: generation int32, protocolType,
//	                               protocol, leader string,
//	                               [memberID, instanceID, clientID,
//	                                clientHost string,
//	                                sessionTimeoutMs int32,
//	                                rebalanceTimeoutMs int32,
//	                                metadata bytes, assignment bytes]
//	type 5  queue partition key: group, topic, partition int32
//	                        value: deadLettered int64, then the
//	                               window (EncodeQueueState)
//	partitions: [topic string, [partition int32]]
//	bytes: an int32 length and the bytes
//
// A group's latest group (2) or classic (4) record says which kind it
// is: replaying one drops the other kind's state.
//
// The key is what compaction keeps the latest record of: one per committed
// partition, per group and per member. A reader skips a key type it does
// not know (a later version's), and refuses a value version it does not.
type Record struct {
	Key   []byte
	Value []byte
}

// Key types.
const (
	keyOffset  int16 = 1
	keyGroup   int16 = 2
	keyMember  int16 = 3
	keyClassic int16 = 4
	keyQueue   int16 = 5
)

const valueVersion int16 = 0

// ErrCorrupt is the sentinel of a record of the offsets topic that does
// not decode; the error says which field.
var ErrCorrupt = errors.New("corrupt group record")

var be = binary.BigEndian

type enc []byte

func (e enc) i8(v int8) enc      { return append(e, byte(v)) }
func (e enc) i16(v int16) enc    { return be.AppendUint16(e, uint16(v)) }
func (e enc) i32(v int32) enc    { return be.AppendUint32(e, uint32(v)) }
func (e enc) i64(v int64) enc    { return be.AppendUint64(e, uint64(v)) }
func (e enc) str(s string) enc   { return append(e.i16(int16(len(s))), s...) }
func (e enc) bytes(b []byte) enc { return append(e.i32(int32(len(b))), b...) }

func (e enc) parts(s partSet) enc {
	l := s.list()
	e = e.i32(int32(len(l)))
	for _, t := range l {
		e = e.str(t.Topic).i32(int32(len(t.Partitions)))
		for _, p := range t.Partitions {
			e = e.i32(p)
		}
	}
	return e
}

func offsetKey(group, topic string, part int32) []byte {
	return enc(nil).i16(keyOffset).str(group).str(topic).i32(part)
}

func groupKey(group string) []byte { return enc(nil).i16(keyGroup).str(group) }

func memberKey(group, id string) []byte { return enc(nil).i16(keyMember).str(group).str(id) }

func classicKey(group string) []byte { return enc(nil).i16(keyClassic).str(group) }

func classicValue(cg *classicGroup) []byte {
	e := enc(nil).i16(valueVersion).i32(cg.generation).str(cg.protocolType).str(cg.protocol).str(cg.leader).i32(int32(len(cg.members)))
	for _, id := range slices.Sorted(maps.Keys(cg.members)) {
		m := cg.members[id]
		e = e.str(m.id).str(m.instanceID).str(m.clientID).str(m.clientHost).
			i32(int32(m.sessionTimeout.Milliseconds())).i32(int32(m.rebalanceTimeout.Milliseconds())).
			bytes(m.metadataFor(cg.protocol)).bytes(m.assignment)
	}
	return e
}

func offsetValueBytes(v offsetValue) []byte {
	return enc(nil).i16(valueVersion).i64(v.offset).i32(v.leaderEpoch).str(v.metadata).i64(v.commitTime.UnixMilli())
}

func groupValue(g *consumerGroup) []byte {
	return enc(nil).i16(valueVersion).i32(g.epoch).i32(g.assignmentEpoch)
}

func memberValue(m *member) []byte {
	e := enc(nil).i16(valueVersion).str(m.instanceID).str(m.rackID).str(m.clientID).str(m.clientHost).
		i32(int32(m.rebalanceTimeout.Milliseconds())).i32(int32(len(m.topicNames)))
	for _, t := range m.topicNames {
		e = e.str(t)
	}
	e = e.str(m.topicRegex).str(m.assignor).i32(m.epoch).i32(m.prevEpoch).i8(int8(m.state))
	return e.parts(m.assigned).parts(m.revoking).parts(m.target)
}

// dec reads fields, checking each length against what is left; the first
// failure sticks and names the field.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(field, why string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrCorrupt, field, why)
	}
	d.b = nil
}

func (d *dec) take(n int, field string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail(field, fmt.Sprintf("needs %d bytes, %d left", n, len(d.b)))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) i8(f string) int8 {
	if b := d.take(1, f); b != nil {
		return int8(b[0])
	}
	return 0
}

func (d *dec) i16(f string) int16 {
	if b := d.take(2, f); b != nil {
		return int16(be.Uint16(b))
	}
	return 0
}

func (d *dec) i32(f string) int32 {
	if b := d.take(4, f); b != nil {
		return int32(be.Uint32(b))
	}
	return 0
}

func (d *dec) i64(f string) int64 {
	if b := d.take(8, f); b != nil {
		return int64(be.Uint64(b))
	}
	return 0
}

func (d *dec) bytes(f string) []byte {
	n := d.i32(f)
	if n < 0 {
		d.fail(f, fmt.Sprintf("length %d", n))
		return nil
	}
	return bytes.Clone(d.take(int(n), f))
}

func (d *dec) str(f string) string {
	n := d.i16(f)
	if n < 0 {
		d.fail(f, fmt.Sprintf("length %d", n))
		return ""
	}
	return string(d.take(int(n), f))
}

// count reads a list's count and checks that count elements of at least
// min bytes each fit in what is left, before anything is allocated.
func (d *dec) count(f string, min int) int {
	n := d.i32(f)
	if d.err == nil && (n < 0 || int(n) > len(d.b)/min) {
		d.fail(f, fmt.Sprintf("count %d with %d bytes left", n, len(d.b)))
		return 0
	}
	return int(n)
}

func (d *dec) parts(f string) partSet {
	s := make(partSet)
	for range d.count(f, 2+4) {
		t := d.str(f + " topic")
		for range d.count(f+" partitions", 4) {
			s[tp{t, d.i32(f + " partition")}] = struct{}{}
		}
	}
	return s
}

func (d *dec) version(f string) {
	if v := d.i16(f); d.err == nil && v != valueVersion {
		d.fail(f, fmt.Sprintf("version %d unknown", v))
	}
}

func (d *dec) end(f string) {
	if d.err == nil && len(d.b) != 0 {
		d.fail(f, fmt.Sprintf("%d bytes left over", len(d.b)))
	}
}

// Replay applies one record of the offsets partition to the coordinator's
// state, as a new coordinator does reading its partition from the start;
// now starts the members' sessions. Records must come in log order. A
// record that does not decode is an error wrapping ErrCorrupt (the caller
// stops loading: the partition is not served from a partial state).
func (c *Coordinator) Replay(now time.Time, key, value []byte) error {
	d := dec{b: key}
	switch typ := d.i16("key type"); {
	case d.err != nil:
		return d.err
	case typ == keyOffset:
		g, t, p := d.str("key group"), d.str("key topic"), d.i32("key partition")
		d.end("offset key")
		if d.err != nil {
			return d.err
		}
		if value == nil {
			if gr := c.group(g, false); gr != nil {
				delete(gr.offsets, tp{t, p})
			}
			return nil
		}
		v := dec{b: value}
		v.version("offset version")
		o := offsetValue{offset: v.i64("offset"), leaderEpoch: v.i32("leader epoch"), metadata: v.str("metadata")}
		o.commitTime = time.UnixMilli(v.i64("commit time"))
		v.end("offset value")
		if v.err != nil {
			return v.err
		}
		c.group(g, true).offsets[tp{t, p}] = o
	case typ == keyGroup:
		g := d.str("key group")
		d.end("group key")
		if d.err != nil {
			return d.err
		}
		if value == nil {
			delete(c.groups, g)
			return nil
		}
		v := dec{b: value}
		v.version("group version")
		epoch, aEpoch := v.i32("group epoch"), v.i32("assignment epoch")
		v.end("group value")
		if v.err != nil {
			return v.err
		}
		gr := c.group(g, true)
		gr.epoch, gr.assignmentEpoch, gr.stored = epoch, aEpoch, true
		gr.classic = nil
	case typ == keyClassic:
		g := d.str("key group")
		d.end("classic key")
		if d.err != nil {
			return d.err
		}
		if value == nil {
			if gr := c.group(g, false); gr != nil {
				gr.classic = nil
			}
			return nil
		}
		cg, err := decodeClassic(now, value)
		if err != nil {
			return err
		}
		gr := c.group(g, true)
		gr.classic = cg
		// A group's members are of one kind: the classic record says
		// the consumer members left (their tombstones may be compacted).
		for id, m := range gr.members {
			gr.setHeld(m, nil, nil)
			delete(gr.members, id)
		}
	case typ == keyMember:
		g, id := d.str("key group"), d.str("key member")
		d.end("member key")
		if d.err != nil {
			return d.err
		}
		if value == nil {
			if gr := c.group(g, false); gr != nil && gr.members[id] != nil {
				gr.setHeld(gr.members[id], nil, nil)
				delete(gr.members, id)
			}
			return nil
		}
		m, err := decodeMember(value)
		if err != nil {
			return err
		}
		m.id = id
		m.sessionEnd = now.Add(c.cfg.SessionTimeout)
		m.revokeDeadline = now.Add(m.rebalanceTimeout)
		gr := c.group(g, true)
		if old := gr.members[id]; old != nil {
			gr.setHeld(old, nil, nil)
		}
		gr.members[id] = m
		assigned, revoking := m.assigned, m.revoking
		m.assigned, m.revoking = nil, nil
		gr.setHeld(m, assigned, revoking)
	case typ == keyQueue:
		g, t, p := d.str("key group"), d.str("key topic"), d.i32("key partition")
		d.end("queue key")
		if d.err != nil {
			return d.err
		}
		return c.replayQueue(g, t, p, value)
	}
	return nil
}

func decodeClassic(now time.Time, value []byte) (*classicGroup, error) {
	v := dec{b: value}
	v.version("classic version")
	cg := newClassic()
	cg.stored = true
	cg.generation, cg.protocolType, cg.protocol, cg.leader = v.i32("generation"), v.str("protocol type"), v.str("protocol"), v.str("leader")
	for range v.count("classic members", 4*2+4*2+4*2) {
		m := &classicMember{id: v.str("member id"), instanceID: v.str("instance id"), clientID: v.str("client id"), clientHost: v.str("client host")}
		m.sessionTimeout = time.Duration(v.i32("session timeout")) * time.Millisecond
		m.rebalanceTimeout = time.Duration(v.i32("rebalance timeout")) * time.Millisecond
		m.protocolType = cg.protocolType
		m.protocols = []ClassicProtocol{{Name: cg.protocol, Metadata: v.bytes("metadata")}}
		m.assignment = v.bytes("assignment")
		m.sessionEnd = now.Add(m.sessionTimeout)
		if v.err == nil {
			cg.members[m.id] = m
		}
	}
	v.end("classic value")
	if v.err != nil {
		return nil, v.err
	}
	if len(cg.members) > 0 {
		cg.state = ClassicStable
		if cg.members[cg.leader] == nil {
			return nil, fmt.Errorf("%w: classic leader %q is not a member", ErrCorrupt, cg.leader)
		}
	}
	return cg, nil
}

func decodeMember(value []byte) (*member, error) {
	v := dec{b: value}
	v.version("member version")
	m := &member{instanceID: v.str("instance id"), rackID: v.str("rack id"), clientID: v.str("client id"), clientHost: v.str("client host")}
	m.rebalanceTimeout = time.Duration(v.i32("rebalance timeout")) * time.Millisecond
	n := v.count("topic names", 2)
	if n > 0 {
		m.topicNames = make([]string, 0, n)
	}
	for range n {
		m.topicNames = append(m.topicNames, v.str("topic name"))
	}
	m.topicRegex, m.assignor = v.str("topic regex"), v.str("assignor")
	m.epoch, m.prevEpoch = v.i32("member epoch"), v.i32("previous epoch")
	m.state = memberState(v.i8("state"))
	m.assigned, m.revoking, m.target = v.parts("assigned"), v.parts("revoking"), v.parts("target")
	v.end("member value")
	if v.err != nil {
		return nil, v.err
	}
	if m.state < stateStable || m.state > stateUnreleased {
		return nil, fmt.Errorf("%w: member state %d", ErrCorrupt, m.state)
	}
	if m.topicRegex != "" {
		re, err := regexp.Compile("^(?:" + m.topicRegex + ")$")
		if err != nil {
			return nil, fmt.Errorf("%w: topic regex: %v", ErrCorrupt, err)
		}
		m.re = re
	}
	return m, nil
}

// ReplayBatches replays every record of the record batches in b (as read
// from the offsets partition) with Replay, and returns the offset after
// the last record replayed.
func (c *Coordinator) ReplayBatches(now time.Time, b []byte, r *record.Reader) (next int64, err error) {
	next = -1
	for len(b) > 0 {
		batch, err := record.ParseHeader(b, 0)
		if err != nil {
			return next, fmt.Errorf("offsets partition: %w", err)
		}
		if err := r.Reset(batch); err != nil {
			return next, fmt.Errorf("offsets partition batch at %d: %w", batch.BaseOffset(), err)
		}
		for r.Next() {
			rec := r.Record()
			if err := c.Replay(now, rec.Key, rec.Value); err != nil {
				return next, fmt.Errorf("offsets partition record at %d: %w", rec.Offset, err)
			}
		}
		if err := r.Err(); err != nil {
			return next, fmt.Errorf("offsets partition batch at %d: %w", batch.BaseOffset(), err)
		}
		next = batch.NextOffset()
		b = b[batch.Size():]
	}
	return next, nil
}
