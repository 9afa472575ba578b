package controller

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled, closed bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

func applyLog(t *testing.T, f *FSM, index uint64, c Command) ApplyResponse {
	t.Helper()
	resp, ok := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: AppendCommand(nil, c)}).(ApplyResponse)
	if !ok {
		t.Fatal("Apply did not return an ApplyResponse")
	}
	return resp
}

func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	var sink memSink
	if err := s.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// busyFSM returns an FSM after a mix of applied and refused commands.
func busyFSM(t *testing.T) *FSM {
	t.Helper()
	f := NewFSM()
	for i, c := range []Command{
		RegisterBroker{ID: 1, Addr: "a:1", Rack: "r1", RaftAddr: "a:2", GossipAddr: "a:3", DirID: "dir-a"},
		RegisterBroker{ID: 2, Addr: "b:1", Rack: "r2", RaftAddr: "b:2", GossipAddr: "b:3", DirID: "dir-b"},
		CreateTopic{Name: "t", Configs: map[string]string{ConfigFsync: FsyncAlways}, Replicas: [][]int32{{1, 2}, {2, 1}}},
		CreateTopic{Name: "t", Replicas: [][]int32{{1}}}, // refused
		CreateTopic{Name: "u", Replicas: [][]int32{{2}}},
		AlterPartition{Topic: "t", Partition: 1, Leader: 1, ISR: []int32{1}, HighWatermark: 3}, // a new leader: not its HW
		AlterPartition{Topic: "t", Partition: 1, PartitionEpoch: 1, Leader: 1, ISR: []int32{1}, HighWatermark: 5},
		ReportHighWatermarks{BrokerID: 1, BrokerEpoch: 1, Entries: []HighWatermark{{Topic: "t", TopicID: 1, Partition: 0, HighWatermark: 17}}},
		FenceBroker{ID: 2, Epoch: 1},
		RegisterBroker{ID: 2, Addr: "b:1"},
	} {
		applyLog(t, f, uint64(i+1), c)
	}
	return f
}

func TestFSMApply(t *testing.T) {
	f := NewFSM()
	changed := f.Changed()
	resp := applyLog(t, f, 1, RegisterBroker{ID: 1, Addr: "a:1"})
	if resp.Err != nil || resp.Result.BrokerEpoch != 1 || resp.Result.Index != 1 {
		t.Fatalf("response %+v", resp)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by a change")
	}
	changed = f.Changed()
	resp = applyLog(t, f, 2, DeleteTopic{Name: "nope"})
	if !errors.Is(resp.Err, ErrUnknownTopic) || resp.Result.Index != 2 {
		t.Fatalf("response %+v", resp)
	}
	garbage, ok := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: []byte{9, 9, 9}}).(ApplyResponse)
	if !ok || !errors.Is(garbage.Err, ErrCorrupt) {
		t.Fatalf("garbage command: %+v", garbage)
	}
	select {
	case <-changed:
		t.Fatal("Changed closed by refused commands")
	default:
	}
	if f.AppliedIndex() != 3 || f.Metadata().Version != 1 {
		t.Fatalf("applied %d, version %d; want 3 and 1", f.AppliedIndex(), f.Metadata().Version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.WaitApplied(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitApplied(ctx, 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for an index never applied: %v", err)
	}
}

func TestFSMSnapshotRestore(t *testing.T) {
	src := busyFSM(t)
	src.setController(2)
	snap := snapshotBytes(t, src)

	dst := NewFSM()
	dst.setController(1)
	changed := dst.Changed()
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by Restore")
	}
	if got, want := appendMetadata(nil, dst.Metadata()), appendMetadata(nil, src.Metadata()); !bytes.Equal(got, want) {
		t.Fatal("restored metadata differs")
	}
	if dst.AppliedIndex() != src.AppliedIndex() {
		t.Fatalf("restored index %d, want %d", dst.AppliedIndex(), src.AppliedIndex())
	}
	if dst.Metadata().ControllerID != 1 {
		t.Fatalf("restore changed the local controller id to %d", dst.Metadata().ControllerID)
	}
	// The restored FSM goes on applying like the original.
	c := CreateTopic{Name: "v", Replicas: [][]int32{{1, 2}}}
	applyLog(t, src, 9, c)
	applyLog(t, dst, 9, c)
	if !bytes.Equal(snapshotBytes(t, src), snapshotBytes(t, dst)) {
		t.Fatal("snapshots differ after the same command")
	}
}

// A snapshot keeps what elections and gossip need besides leaders and
// ISRs: the committed high watermarks, and the brokers' gossip addresses
// and data directory ids.
func TestSnapshotKeepsCommittedHWAndAddresses(t *testing.T) {
	src := busyFSM(t)
	md := src.Metadata()
	if md.Topics["t"].Partitions[0].CommittedHW != 17 || md.Topics["t"].Partitions[1].CommittedHW != 5 {
		t.Fatalf("setup: committed HWs %d, %d; want 17, 5", md.Topics["t"].Partitions[0].CommittedHW, md.Topics["t"].Partitions[1].CommittedHW)
	}
	m, index, err := decodeSnapshot(snapshotBytes(t, src))
	if err != nil {
		t.Fatal(err)
	}
	if index != src.AppliedIndex() {
		t.Fatalf("index %d, want %d", index, src.AppliedIndex())
	}
	md = md.Clone()
	md.ControllerID = m.ControllerID
	if !reflect.DeepEqual(m, md) {
		t.Fatalf("restored %+v\nwant %+v", m, md)
	}
}

// A version 1 snapshot (bytes written by the build before version 2)
// restores, with no committed high watermarks, gossip addresses or
// directory ids.
func TestSnapshotVersion1Restores(t *testing.T) {
	v1, err := hex.DecodeString("534c4d530100000043090402020203613a3102723103613a3202010403623a310003623a3202020101017401056673796e6306616c776179730200020204010202000202020402010202020205ceddf5")
	if err != nil {
		t.Fatal(err)
	}
	m, index, err := decodeSnapshot(v1)
	if err != nil {
		t.Fatal(err)
	}
	want := applyAll(t, NewMetadata(),
		RegisterBroker{ID: 1, Addr: "a:1", Rack: "r1", RaftAddr: "a:2"},
		RegisterBroker{ID: 2, Addr: "b:1", RaftAddr: "b:2"},
		CreateTopic{Name: "t", Configs: map[string]string{ConfigFsync: FsyncAlways}, Replicas: [][]int32{{1, 2}, {2, 1}}},
		FenceBroker{ID: 2, Epoch: 1})
	want.CommandLevel = 1 // the layout says the level
	if index != 9 || !reflect.DeepEqual(m, want) {
		t.Fatalf("index %d, metadata %+v; want 9, %+v", index, m, want)
	}
}

// A version 2 snapshot (bytes written by the build before version 3)
// restores, with no balanced-recovery state: a partition whose last ISR
// member was refused, committed HW 40.
func TestSnapshotVersion2Restores(t *testing.T) {
	v2, err := hex.DecodeString("534c4d53020000003b0b0702020203613a310003613a32040103613a330264310403623a310003623a32020203623a330264320101017400010002020401020102045001c5ab405e")
	if err != nil {
		t.Fatal(err)
	}
	m, index, err := decodeSnapshot(v2)
	if err != nil {
		t.Fatal(err)
	}
	want := NewMetadata()
	want.Version, want.NextTopicID = 7, 2
	want.Brokers[1] = &Broker{ID: 1, Addr: "a:1", RaftAddr: "a:2", GossipAddr: "a:3", DirID: "d1", Epoch: 2, State: BrokerAlive}
	want.Brokers[2] = &Broker{ID: 2, Addr: "b:1", RaftAddr: "b:2", GossipAddr: "b:3", DirID: "d2", Epoch: 1, State: BrokerOffline}
	want.Topics["t"] = &Topic{ID: 1, Name: "t", Partitions: []Partition{{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: -1,
		LeaderEpoch: 1, PartitionEpoch: 2, CommittedHW: 40, NoCleanLeader: true}}}
	want.CommandLevel = 2
	if index != 11 || !reflect.DeepEqual(m, want) {
		t.Fatalf("index %d, metadata %+v; want 11, %+v", index, m, want)
	}
}

// A snapshot keeps the balanced-recovery state: restarted replicas, and
// the epoch and possible loss of a recovery.
func TestSnapshotKeepsRecovery(t *testing.T) {
	m := applyAll(t, threeBrokers(t), CreateTopic{Name: "t", Replicas: [][]int32{{1, 2, 3}, {2, 3, 1}}})
	nt := m.Topics["t"].clone()
	nt.Partitions[0].Restarted = []ReplicaEnd{{Broker: 1, LastEpoch: 3, EndOffset: 70, InISR: true}, {Broker: 3, LastEpoch: -1, Wiped: true}}
	nt.Partitions[1].RecoveredEpoch, nt.Partitions[1].RecoveryMayLack = 4, 12
	nt.Partitions[1].Offline = []OfflineMark{{Broker: 2, Reason: "no space left on device"}, {Broker: 3, Reason: "input/output error"}}
	m.Topics["t"] = nt
	m.CommandLevel = CommandVersion
	got, index, err := decodeSnapshot(encodeSnapshot(m, 5))
	if err != nil || index != 5 || !reflect.DeepEqual(got, m) {
		t.Fatalf("restored %+v, %d, %v; want %+v", got, index, err, m)
	}
	// One encoding: restarted replicas out of broker order are refused.
	nt.Partitions[0].Restarted[0], nt.Partitions[0].Restarted[1] = nt.Partitions[0].Restarted[1], nt.Partitions[0].Restarted[0]
	if _, _, err := decodeSnapshot(encodeSnapshot(m, 5)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unsorted restarted replicas: %v, want ErrCorrupt", err)
	}
	nt.Partitions[0].Restarted[0], nt.Partitions[0].Restarted[1] = nt.Partitions[0].Restarted[1], nt.Partitions[0].Restarted[0]
	nt.Partitions[1].Offline[0], nt.Partitions[1].Offline[1] = nt.Partitions[1].Offline[1], nt.Partitions[1].Offline[0]
	if _, _, err := decodeSnapshot(encodeSnapshot(m, 5)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unsorted offline replicas: %v, want ErrCorrupt", err)
	}
}

func TestFSMRestoreRefusesDamage(t *testing.T) {
	good := snapshotBytes(t, busyFSM(t))
	crcOnly := func(b []byte) []byte {
		end := len(b) - 4
		return binary.BigEndian.AppendUint32(b[:end:end], crc32c(b[len(snapshotMagic):end]))
	}
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"future version", func(b []byte) []byte { b[4] = snapshotVersion + 1; return crcOnly(b) }},
		{"flipped body bit", func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }},
		{"flipped crc bit", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-5] }},
		{"length lies", func(b []byte) []byte { binary.BigEndian.PutUint32(b[5:], 3); return crcOnly(b) }},
		{"trailing body byte", func(b []byte) []byte {
			b = append(b[:len(b)-4:len(b)-4], 0)
			binary.BigEndian.PutUint32(b[5:], uint32(len(b)-snapshotHeader))
			return binary.BigEndian.AppendUint32(b, crc32c(b[len(snapshotMagic):]))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := busyFSM(t)
			before := appendMetadata(nil, f.Metadata())
			bad := tc.damage(append([]byte(nil), good...))
			err := f.Restore(io.NopCloser(bytes.NewReader(bad)))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Restore: %v, want ErrCorrupt", err)
			}
			if !bytes.Equal(appendMetadata(nil, f.Metadata()), before) {
				t.Fatal("a refused snapshot changed the metadata")
			}
		})
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot(NewMetadata(), 0))
	f.Add(encodeSnapshot(twoBrokers(f), 7))
	f.Add(encodeSnapshot(applyAll(f, twoBrokers(f), AlterGroupConfigs{Group: "g", Set: map[string]string{ConfigQueueLeaseMs: "1000", ConfigQueueDLQTopic: "d"}}), 8))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The CRC stops random bytes early; also decode the body as if
		// the CRC had matched, so the metadata decoder gets fuzzed too.
		for _, in := range [][]byte{b, encodeSnapshotRaw(b)} {
			m, index, err := decodeSnapshot(in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v does not match ErrCorrupt", err)
				}
				continue
			}
			again := encodeSnapshot(m, index)
			if in[len(snapshotMagic)] == snapshotVersion && !bytes.Equal(again, in) {
				t.Fatalf("decoded snapshot has another encoding")
			}
			if m2, index2, err := decodeSnapshot(again); err != nil || index2 != index || !reflect.DeepEqual(m2, m) {
				t.Fatalf("re-encoded snapshot decodes differently: %v", err)
			}
		}
	})
}

// encodeSnapshotRaw wraps body in a valid header and CRC.
func encodeSnapshotRaw(body []byte) []byte {
	b := append([]byte(snapshotMagic), snapshotVersion, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(snapshotMagic)+1:], uint32(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32c(b[len(snapshotMagic):]))
}
