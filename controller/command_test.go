package controller

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/sluicemq/sluice/auth"
)

// sampleCommands has one command of every kind, with every field set.
func sampleCommands() []Command {
	return []Command{
		RegisterBroker{ID: 3, Addr: "10.0.0.3:9092", Rack: "r1", RaftAddr: "10.0.0.3:9093", PreviousEpoch: 6, GossipAddr: "10.0.0.3:9094", DirID: "d3",
			LogsReported: true, Logs: []ReplicaLog{{Topic: "orders", TopicID: 4, Partition: 2, EndOffset: 1 << 40, RecoveryTruncated: true, LastEpoch: 9},
				{Topic: "a", TopicID: 1, EndOffset: 0, LastEpoch: -1}}, SameBoot: true},
		FenceBroker{ID: 3, Epoch: 7},
		CreateTopic{Name: "orders", Configs: map[string]string{ConfigFsync: FsyncAlways, ConfigRetentionMs: "-1"}, Replicas: [][]int32{{1, 2}, {2, 3}, {3, 1}}},
		DeleteTopic{Name: "orders"},
		AlterConfigs{Name: "orders", Set: map[string]string{ConfigSegmentBytes: "1048576"}, Remove: []string{ConfigRetentionMs, ConfigFsync}},
		AlterPartition{Topic: "orders", Partition: 2, PartitionEpoch: 4, Leader: -1, ISR: []int32{3, 1}, BrokerEpochs: []int64{7, -1}, HighWatermark: 99, TopicID: 12},
		ReportHighWatermarks{BrokerID: 3, BrokerEpoch: 7, Entries: []HighWatermark{{Topic: "orders", TopicID: 4, Partition: 2, LeaderEpoch: 5, HighWatermark: 1 << 33}, {Topic: "a", TopicID: 1}}},
		ReportOfflineReplicas{BrokerID: 3, BrokerEpoch: 7, Entries: []OfflineReplica{{Topic: "orders", TopicID: 4, Partition: 2, Reason: "no space left on device"}, {Topic: "a", TopicID: 1}}},
		ReportOnlineReplicas{BrokerID: 3, BrokerEpoch: 7, Logs: []ReplicaLog{{Topic: "orders", TopicID: 4, Partition: 2, EndOffset: 1 << 40, RecoveryTruncated: true, LastEpoch: 9},
			{Topic: "a", TopicID: 1, LastEpoch: -1}}},
		AllocateProducerIDs{BrokerID: 3, BrokerEpoch: 7, Count: 1000},
		UpsertCredential{User: "alice", Credential: sampleCredential},
		DeleteCredential{User: "alice", Mechanism: auth.ScramSHA512},
		CreateACLs{ACLs: []auth.ACL{sampleACL, {Principal: "User:*", Host: "10.0.0.1", Resource: auth.ResourceGroup, Name: "g-",
			Pattern: auth.PatternPrefixed, Op: auth.OpRead, Permission: auth.Deny}}},
		DeleteACLs{ACLs: []auth.ACL{sampleACL}},
		CreatePartitions{Topic: "orders", TopicID: 4, From: 3, Replicas: [][]int32{{1, 2}, {2, 3}}},
		AlterReassignment{Topic: "orders", TopicID: 4, Partition: 2, Target: []int32{3, 4}},
		AlterClusterConfigs{Set: map[string]string{ConfigMaxMoves: "10"}, Remove: []string{ConfigReassignmentThrottle}},
		AlterGroupConfigs{Group: "workers", Set: map[string]string{ConfigQueueLeaseMs: "10000", ConfigQueueBackoffMs: "1000,5000"}, Remove: []string{ConfigQueueDLQTopic}},
		FinalizeCommandVersion{Level: 9},
	}
}

// sampleCredential is a valid SCRAM-SHA-256 credential with fixed bytes.
var sampleCredential = auth.Credential{Mechanism: auth.ScramSHA256, Salt: []byte("0123456789abcdef"), Iterations: auth.MinIterations,
	StoredKey: bytes.Repeat([]byte{1}, 32), ServerKey: bytes.Repeat([]byte{2}, 32)}

var sampleACL = auth.ACL{Principal: "User:alice", Host: "*", Resource: auth.ResourceTopic, Name: "orders",
	Pattern: auth.PatternLiteral, Op: auth.OpWrite, Permission: auth.Allow}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range sampleCommands() {
		t.Run(c.Kind().String(), func(t *testing.T) {
			b := AppendCommand(nil, c)
			if b[0] != CommandVersion || CommandKind(b[1]) != c.Kind() {
				t.Fatalf("header % x", b[:2])
			}
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatal(err)
			}
			want := c
			if a, ok := c.(AlterConfigs); ok {
				// Remove is a set: encoded sorted.
				a.Remove = []string{ConfigFsync, ConfigRetentionMs}
				want = a
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %#v, want %#v", got, want)
			}
			// One encoding per value: encoding again gives the same bytes.
			if again := AppendCommand(nil, got); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs:\n% x\n% x", again, b)
			}
			// Every truncation is refused, never a panic.
			for i := range b {
				if _, err := DecodeCommand(b[:i]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("truncated to %d bytes: %v, want ErrCorrupt", i, err)
				}
			}
			if _, err := DecodeCommand(append(b, 0)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trailing byte: %v, want ErrCorrupt", err)
			}
		})
	}
}

// Version 1 commands, written by builds before the log reports and high
// watermarks (bytes from that build), still decode, with the new fields
// zero.
func TestDecodeCommandVersion1(t *testing.T) {
	golden, err := hex.DecodeString("1601010603633a3102723103633a320c03633a330264330d01060174020804020402020e02")
	if err != nil {
		t.Fatal(err)
	}
	want := []Command{
		RegisterBroker{ID: 3, Addr: "c:1", Rack: "r1", RaftAddr: "c:2", PreviousEpoch: 6, GossipAddr: "c:3", DirID: "d3"},
		AlterPartition{Topic: "t", Partition: 1, PartitionEpoch: 4, Leader: 2, ISR: []int32{2, 1}, BrokerEpochs: []int64{7, 1}},
	}
	for _, w := range want {
		n := int(golden[0])
		b := golden[1 : 1+n]
		golden = golden[1+n:]
		if b[0] != commandVersion1 {
			t.Fatalf("golden command version %d", b[0])
		}
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("decoded %#v, want %#v", got, w)
		}
		// The same command now encodes as the current version, and
		// decodes alike.
		again, err := DecodeCommand(AppendCommand(nil, got))
		if err != nil || !reflect.DeepEqual(again, w) {
			t.Fatalf("version %d of %#v: %#v, %v", CommandVersion, w, again, err)
		}
	}
}

// A version 2 RegisterBroker, with a log report but no last epochs and no
// boot (bytes from the build before version 3), still decodes, with those
// zero.
func TestDecodeCommandVersion2(t *testing.T) {
	b, err := hex.DecodeString("02010603633a3102723103633a320003633a33026433010101740100b40101")
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != commandVersion2 {
		t.Fatalf("golden command version %d", b[0])
	}
	want := RegisterBroker{ID: 3, Addr: "c:1", Rack: "r1", RaftAddr: "c:2", GossipAddr: "c:3", DirID: "d3",
		LogsReported: true, Logs: []ReplicaLog{{Topic: "t", TopicID: 1, EndOffset: 90, RecoveryTruncated: true}}}
	got, err := DecodeCommand(b)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %#v, %v; want %#v", got, err, want)
	}
	again, err := DecodeCommand(AppendCommand(nil, got))
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("version %d of %#v: %#v, %v", CommandVersion, want, again, err)
	}
}

func TestCommandEncodingIsDeterministic(t *testing.T) {
	// Maps with the same contents, built in different orders, encode the
	// same: the encoding never depends on map iteration.
	keys := []string{ConfigRetentionMs, ConfigRetentionBytes, ConfigSegmentBytes, ConfigSegmentMs, ConfigFsync, ConfigMaxMessageBytes}
	var first []byte
	for i := range 20 {
		m := map[string]string{}
		for _, j := range rand.New(rand.NewPCG(uint64(i), 1)).Perm(len(keys)) {
			m[keys[j]] = fmt.Sprint(j)
		}
		b := AppendCommand(nil, AlterConfigs{Name: "t", Set: m, Remove: []string{"b", "a", "b"}})
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("encoding %d differs", i)
		}
	}
}

func TestDecodeCommandRefuses(t *testing.T) {
	valid := AppendCommand(nil, DeleteTopic{Name: "t"})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 0", append([]byte{0}, valid[1:]...)},
		{"version past the current", append([]byte{CommandVersion + 1}, valid[1:]...)},
		{"version 7 group configs", []byte{7, byte(KindAlterGroupConfigs), 1, 'g', 0, 0}},
		{"version 8 unregister broker", []byte{8, byte(KindUnregisterBroker), 2, 0}},
		{"version 6 reassignment", []byte{6, byte(KindAlterReassignment), 1, 't', 0, 0, 0}},
		{"huge new partition count", []byte{CommandVersion, byte(KindCreatePartitions), 1, 't', 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"version 5 credential", []byte{5, byte(KindDeleteCredential), 1, 'a', 1, 'b'}},
		{"version 5 ACLs", []byte{5, byte(KindCreateACLs), 0}},
		{"huge ACL count", []byte{CommandVersion, byte(KindCreateACLs), 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"credential truncated", []byte{CommandVersion, byte(KindUpsertCredential), 1, 'a', 2, 'S'}},
		{"version 4 producer ids", []byte{4, byte(KindAllocateProducerIDs), 2, 2, 2}},
		{"producer id count past int32", binary.AppendVarint([]byte{CommandVersion, byte(KindAllocateProducerIDs), 2, 2}, 1<<31)},
		{"producer ids truncated", []byte{CommandVersion, byte(KindAllocateProducerIDs), 2, 2}},
		{"version 1 report", []byte{1, byte(KindReportHighWatermarks), 2, 2, 0}},
		{"version 3 offline report", []byte{3, byte(KindReportOfflineReplicas), 2, 2, 0}},
		{"version 3 online report", []byte{3, byte(KindReportOnlineReplicas), 2, 2, 0}},
		{"huge offline count", []byte{CommandVersion, byte(KindReportOfflineReplicas), 2, 2, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"bool byte 2", []byte{CommandVersion, byte(KindRegisterBroker), 2, 1, 'a', 0, 0, 0, 0, 0, 2, 0}},
		{"huge log count", []byte{CommandVersion, byte(KindRegisterBroker), 2, 1, 'a', 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"huge report count", []byte{CommandVersion, byte(KindReportHighWatermarks), 2, 2, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"unknown kind", []byte{CommandVersion, 200}},
		{"kind 0", []byte{CommandVersion, 0}},
		{"huge string length", []byte{CommandVersion, byte(KindDeleteTopic), 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"huge replica count", []byte{CommandVersion, byte(KindCreateTopic), 1, 'a', 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"unsorted configs", []byte{CommandVersion, byte(KindAlterConfigs), 1, 't', 2, 1, 'b', 0, 1, 'a', 0, 0}},
		{"duplicate configs", []byte{CommandVersion, byte(KindAlterConfigs), 1, 't', 2, 1, 'a', 0, 1, 'a', 0, 0}},
		{"duplicate removes", []byte{CommandVersion, byte(KindAlterConfigs), 1, 't', 0, 2, 1, 'a', 1, 'a'}},
		{"int32 overflow", binary.AppendVarint([]byte{CommandVersion, byte(KindFenceBroker)}, 1<<33)},
	} {
		if c, err := DecodeCommand(tc.b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decoded %#v, %v; want ErrCorrupt", tc.name, c, err)
		}
	}
}

// twoBrokers returns metadata with brokers 1 and 2 alive and topic "t" of
// two partitions replicated on both.
func twoBrokers(t testing.TB) *Metadata {
	t.Helper()
	m := NewMetadata()
	for _, c := range []Command{
		RegisterBroker{ID: 1, Addr: "a:1"},
		RegisterBroker{ID: 2, Addr: "b:1"},
		CreateTopic{Name: "t", Replicas: [][]int32{{1, 2}, {2, 1}}},
	} {
		var err error
		if m, _, err = Apply(m, c); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cmd   Command
		err   error
		check func(t *testing.T, m *Metadata, res Result)
	}{
		{"register new", RegisterBroker{ID: 3, Addr: "c:1", Rack: "r", RaftAddr: "c:2"}, nil, func(t *testing.T, m *Metadata, res Result) {
			if b := m.Brokers[3]; res.BrokerEpoch != 1 || b.Epoch != 1 || b.State != BrokerAlive || b.RaftAddr != "c:2" {
				t.Errorf("broker %+v, result %+v", b, res)
			}
		}},
		{"re-register bumps epoch", RegisterBroker{ID: 1, Addr: "a:2"}, nil, func(t *testing.T, m *Metadata, res Result) {
			if b := m.Brokers[1]; res.BrokerEpoch != 2 || b.Epoch != 2 || b.Addr != "a:2" {
				t.Errorf("broker %+v, result %+v", b, res)
			}
		}},
		{"register negative id", RegisterBroker{ID: -1, Addr: "x:1"}, ErrInvalidBroker, nil},
		{"register bad previous epoch", RegisterBroker{ID: 3, Addr: "x:1", PreviousEpoch: -2}, ErrInvalidBroker, nil},
		{"register no address", RegisterBroker{ID: 4}, ErrInvalidBroker, nil},
		{"fence", FenceBroker{ID: 1, Epoch: 1}, nil, func(t *testing.T, m *Metadata, _ Result) {
			if m.Brokers[1].State != BrokerOffline {
				t.Error("broker 1 still alive")
			}
			// Broker 1 leaves both ISRs; broker 2 takes over the
			// partition 1 led.
			p0, p1 := m.Topics["t"].Partitions[0], m.Topics["t"].Partitions[1]
			if p0.Leader != 2 || p0.LeaderEpoch != 1 || p0.PartitionEpoch != 1 || !reflect.DeepEqual(p0.ISR, []int32{2}) {
				t.Errorf("partition led by the fenced broker: %+v", p0)
			}
			if p1.Leader != 2 || p1.LeaderEpoch != 0 || p1.PartitionEpoch != 1 || !reflect.DeepEqual(p1.ISR, []int32{2}) {
				t.Errorf("partition led by another broker: %+v", p1)
			}
		}},
		{"fence stale epoch", FenceBroker{ID: 1, Epoch: 0}, ErrStaleBrokerEpoch, nil},
		{"fence unknown", FenceBroker{ID: 9, Epoch: 1}, ErrUnknownBroker, nil},
		{"create", CreateTopic{Name: "u", Configs: map[string]string{ConfigFsync: FsyncAlways}, Replicas: [][]int32{{2}}}, nil, func(t *testing.T, m *Metadata, res Result) {
			u := m.Topics["u"]
			if u.ID != 2 || res.TopicID != 2 || m.NextTopicID != 3 || u.Partitions[0].Leader != 2 || u.Config(ConfigFsync) != FsyncAlways {
				t.Errorf("topic %+v, result %+v", u, res)
			}
		}},
		{"create existing", CreateTopic{Name: "t", Replicas: [][]int32{{1}}}, ErrTopicExists, nil},
		{"create bad name", CreateTopic{Name: "a b", Replicas: [][]int32{{1}}}, ErrInvalidTopic, nil},
		{"create bad config", CreateTopic{Name: "u", Configs: map[string]string{ConfigFsync: "never"}, Replicas: [][]int32{{1}}}, ErrInvalidConfig, nil},
		{"create no partitions", CreateTopic{Name: "u"}, ErrInvalidPartitions, nil},
		{"create empty replicas", CreateTopic{Name: "u", Replicas: [][]int32{{}}}, ErrInvalidReplicationFactor, nil},
		{"create uneven rf", CreateTopic{Name: "u", Replicas: [][]int32{{1, 2}, {1}}}, ErrInvalidReplicationFactor, nil},
		{"create duplicate replica", CreateTopic{Name: "u", Replicas: [][]int32{{1, 1}}}, ErrInvalidReplicationFactor, nil},
		{"create unknown broker", CreateTopic{Name: "u", Replicas: [][]int32{{1, 5}}}, ErrUnknownBroker, nil},
		{"delete", DeleteTopic{Name: "t"}, nil, func(t *testing.T, m *Metadata, _ Result) {
			if len(m.Topics) != 0 {
				t.Errorf("topics %v", m.TopicNames())
			}
		}},
		{"delete unknown", DeleteTopic{Name: "nope"}, ErrUnknownTopic, nil},
		{"alter", AlterConfigs{Name: "t", Set: map[string]string{ConfigRetentionMs: "5"}}, nil, func(t *testing.T, m *Metadata, _ Result) {
			if got := m.Topics["t"].Config(ConfigRetentionMs); got != "5" {
				t.Errorf("retention.ms %q", got)
			}
		}},
		{"alter remove all", AlterConfigs{Name: "t", Remove: []string{ConfigRetentionMs}}, nil, func(t *testing.T, m *Metadata, _ Result) {
			if m.Topics["t"].Configs != nil {
				t.Errorf("configs %v, want nil", m.Topics["t"].Configs)
			}
		}},
		{"alter unknown topic", AlterConfigs{Name: "nope", Set: map[string]string{ConfigRetentionMs: "5"}}, ErrUnknownTopic, nil},
		{"alter bad value", AlterConfigs{Name: "t", Set: map[string]string{ConfigRetentionMs: "x"}}, ErrInvalidConfig, nil},
		{"alter bad remove", AlterConfigs{Name: "t", Remove: []string{"nope"}}, ErrInvalidConfig, nil},
		{"shrink isr", AlterPartition{Topic: "t", Partition: 0, PartitionEpoch: 0, Leader: 1, ISR: []int32{1}}, nil, func(t *testing.T, m *Metadata, _ Result) {
			p := m.Topics["t"].Partitions[0]
			if p.Leader != 1 || p.LeaderEpoch != 0 || p.PartitionEpoch != 1 || !reflect.DeepEqual(p.ISR, []int32{1}) {
				t.Errorf("partition %+v", p)
			}
		}},
		{"new leader", AlterPartition{Topic: "t", Partition: 0, PartitionEpoch: 0, Leader: 2, ISR: []int32{2, 1}}, nil, func(t *testing.T, m *Metadata, _ Result) {
			if p := m.Topics["t"].Partitions[0]; p.Leader != 2 || p.LeaderEpoch != 1 || p.PartitionEpoch != 1 {
				t.Errorf("partition %+v", p)
			}
		}},
		{"stale partition epoch", AlterPartition{Topic: "t", Partition: 0, PartitionEpoch: 1, Leader: 1, ISR: []int32{1}}, ErrStalePartitionEpoch, nil},
		{"isr change for the topic's id", AlterPartition{Topic: "t", Partition: 0, Leader: 1, ISR: []int32{1}, TopicID: 1}, nil, func(t *testing.T, m *Metadata, _ Result) {
			if p := m.Topics["t"].Partitions[0]; !reflect.DeepEqual(p.ISR, []int32{1}) || p.PartitionEpoch != 1 {
				t.Errorf("partition %+v", p)
			}
		}},
		{"isr change meant for a deleted topic of the same name", AlterPartition{Topic: "t", Partition: 0, Leader: 1, ISR: []int32{1}, TopicID: 7},
			ErrStalePartitionEpoch, nil},
		{"unknown partition", AlterPartition{Topic: "t", Partition: 2, Leader: 1, ISR: []int32{1}}, ErrUnknownPartition, nil},
		{"negative partition", AlterPartition{Topic: "t", Partition: -1, Leader: 1, ISR: []int32{1}}, ErrUnknownPartition, nil},
		{"partition of unknown topic", AlterPartition{Topic: "u", Leader: 1, ISR: []int32{1}}, ErrUnknownTopic, nil},
		{"empty isr", AlterPartition{Topic: "t", Leader: -1}, ErrInvalidPartition, nil},
		{"isr outside replicas", AlterPartition{Topic: "t", Leader: 1, ISR: []int32{1, 3}}, ErrInvalidPartition, nil},
		{"isr duplicate", AlterPartition{Topic: "t", Leader: 1, ISR: []int32{1, 1}}, ErrInvalidPartition, nil},
		{"leader outside isr", AlterPartition{Topic: "t", Leader: 2, ISR: []int32{1}}, ErrInvalidPartition, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := twoBrokers(t)
			before := appendMetadata(nil, m)
			next, res, err := Apply(m, tc.cmd)
			if !bytes.Equal(appendMetadata(nil, m), before) {
				t.Fatal("Apply modified its input")
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				if next != m {
					t.Fatal("a refused command returned new metadata")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if next.Version != m.Version+1 {
				t.Errorf("version %d after %d", next.Version, m.Version)
			}
			tc.check(t, next, res)
		})
	}
}

func TestApplyLeaderMustBeAlive(t *testing.T) {
	m := twoBrokers(t)
	m, _, err := Apply(m, FenceBroker{ID: 2, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := m.Topics["t"].Partitions[1]
	if _, _, err := Apply(m, AlterPartition{Topic: "t", Partition: 1, PartitionEpoch: p.PartitionEpoch, Leader: 2, ISR: []int32{2, 1}, BrokerEpochs: []int64{1, 1}}); !errors.Is(err, ErrInvalidPartition) {
		t.Fatalf("offline leader: %v, want ErrInvalidPartition", err)
	}
	// Fencing again is a no-op, not an error.
	if next, _, err := Apply(m, FenceBroker{ID: 2, Epoch: 1}); err != nil || next != m {
		t.Fatalf("second fence: %v, changed=%v", err, next != m)
	}
	// A topic created while a replica is offline leaves it out of the ISR.
	m, _, err = Apply(m, CreateTopic{Name: "u", Replicas: [][]int32{{2, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Topics["u"].Partitions[0]; p.Leader != 1 || !reflect.DeepEqual(p.ISR, []int32{1}) {
		t.Fatalf("partition %+v, want leader 1 and ISR [1]", p)
	}
}

// randomCommand returns a command, valid or not, over a small name space
// so that sequences hit existing topics and brokers.
func randomCommand(r *rand.Rand) Command {
	name := fmt.Sprintf("t%d", r.IntN(4))
	id := int32(r.IntN(4))
	switch r.IntN(12) {
	case 11:
		users := []string{"alice", "bob", "bad,name"}
		if r.IntN(2) == 0 {
			c := sampleCredential
			if r.IntN(2) == 0 {
				c.Mechanism = auth.ScramSHA512
				c.StoredKey, c.ServerKey = bytes.Repeat([]byte{3}, 64), bytes.Repeat([]byte{4}, 64)
			}
			return UpsertCredential{User: users[r.IntN(3)], Credential: c}
		}
		return DeleteCredential{User: users[r.IntN(3)], Mechanism: []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512}[r.IntN(2)]}
	case 10:
		a := sampleACL
		a.Name = name
		a.Op = []auth.Operation{auth.OpRead, auth.OpWrite, auth.OpClusterAction}[r.IntN(3)] // the last is invalid on a topic
		if r.IntN(2) == 0 {
			return DeleteACLs{ACLs: []auth.ACL{a}}
		}
		return CreateACLs{ACLs: []auth.ACL{a}}
	case 9:
		return AllocateProducerIDs{BrokerID: id, BrokerEpoch: int64(r.IntN(3)), Count: int32(r.IntN(3))}
	case 8:
		c := ReportOnlineReplicas{BrokerID: id, BrokerEpoch: int64(r.IntN(3))}
		for range r.IntN(3) {
			c.Logs = append(c.Logs, ReplicaLog{Topic: name, TopicID: uint64(r.IntN(4)), Partition: int32(r.IntN(3)), EndOffset: int64(r.IntN(20)),
				RecoveryTruncated: r.IntN(4) == 0, LastEpoch: int32(r.IntN(3))})
		}
		return c
	case 7:
		c := ReportOfflineReplicas{BrokerID: id, BrokerEpoch: int64(r.IntN(3))}
		for range r.IntN(3) {
			c.Entries = append(c.Entries, OfflineReplica{Topic: name, TopicID: uint64(r.IntN(4)), Partition: int32(r.IntN(3)), Reason: "full"})
		}
		return c
	case 0:
		c := RegisterBroker{ID: id, Addr: fmt.Sprintf("h:%d", r.IntN(3)), Rack: fmt.Sprint(r.IntN(2)), PreviousEpoch: int64(r.IntN(4)) - 1}
		if r.IntN(2) == 0 {
			c.LogsReported = true
			for p := range int32(r.IntN(3)) {
				c.Logs = append(c.Logs, ReplicaLog{Topic: name, TopicID: uint64(r.IntN(4)), Partition: p, EndOffset: int64(r.IntN(20)), RecoveryTruncated: r.IntN(4) == 0})
			}
		}
		return c
	case 6:
		c := ReportHighWatermarks{BrokerID: id, BrokerEpoch: int64(r.IntN(3))}
		for range r.IntN(3) {
			c.Entries = append(c.Entries, HighWatermark{Topic: name, TopicID: uint64(r.IntN(4)), Partition: int32(r.IntN(3)), LeaderEpoch: int32(r.IntN(3)), HighWatermark: int64(r.IntN(20))})
		}
		return c
	case 1:
		return FenceBroker{ID: id, Epoch: int64(r.IntN(3))}
	case 2:
		n := 1 + r.IntN(3)
		replicas := make([][]int32, n)
		for i := range replicas {
			replicas[i] = []int32{int32(r.IntN(4)), int32(4 + r.IntN(2))}[:1+r.IntN(2)]
		}
		return CreateTopic{Name: name, Replicas: replicas}
	case 3:
		return DeleteTopic{Name: name}
	case 4:
		switch r.IntN(3) {
		case 0:
			return AlterConfigs{Name: name, Set: map[string]string{ConfigUncleanElection: fmt.Sprint(r.IntN(2) == 0)}}
		case 1:
			return AlterConfigs{Name: name, Set: map[string]string{ConfigFsync: []string{FsyncAlways, FsyncInterval}[r.IntN(2)]}}
		}
		return AlterConfigs{Name: name, Set: map[string]string{ConfigRetentionMs: fmt.Sprint(r.IntN(3) - 2)}}
	}
	c := AlterPartition{Topic: name, Partition: int32(r.IntN(3)), PartitionEpoch: int32(r.IntN(3)), Leader: int32(r.IntN(3)) - 1, ISR: []int32{int32(r.IntN(4))}}
	if r.IntN(2) == 0 {
		c.BrokerEpochs = []int64{int64(r.IntN(3))}
	}
	c.HighWatermark = int64(r.IntN(20))
	return c
}

// TestApplyDeterministic runs random command sequences twice, once through
// the encoding as a replica would receive them, and checks both replicas
// end byte-identical, through refused commands too.
func TestApplyDeterministic(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 2))
		a, b := NewMetadata(), NewMetadata()
		applied := 0
		for range 200 {
			c := randomCommand(r)
			var errA, errB error
			a, _, errA = Apply(a, c)
			if err := checkInvariants(a); err != nil {
				t.Fatalf("seed %d: after %#v: %v", seed, c, err)
			}
			dc, err := DecodeCommand(AppendCommand(nil, c))
			if err != nil {
				t.Fatal(err)
			}
			b, _, errB = Apply(b, dc)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("seed %d: %v applied %v and %v", seed, c, errA, errB)
			}
			if errA == nil {
				applied++
			}
		}
		if applied < 20 {
			t.Fatalf("seed %d: only %d of 200 commands applied; the test exercises too little", seed, applied)
		}
		if !bytes.Equal(appendMetadata(nil, a), appendMetadata(nil, b)) {
			t.Fatalf("seed %d: replicas diverged", seed)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		f.Add(AppendCommand(nil, c))
	}
	f.Add([]byte{CommandVersion, byte(KindCreateTopic), 1, 'a', 0, 0xff, 0xff, 0x03})
	base := twoBrokers(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		again := AppendCommand(nil, c)
		if b[0] == CommandVersion && !bytes.Equal(again, b) {
			t.Fatalf("decoded bytes have another encoding:\n% x\n% x", b, again)
		}
		if c2, err := DecodeCommand(again); err != nil || !reflect.DeepEqual(c2, c) {
			t.Fatalf("re-encoded %#v decodes as %#v, %v", c, c2, err)
		}
		before := appendMetadata(nil, base)
		next, _, _ := Apply(base, c) // must not panic
		if !bytes.Equal(appendMetadata(nil, base), before) {
			t.Fatal("Apply modified its input")
		}
		if err := checkInvariants(next); err != nil {
			t.Fatalf("after %#v: %v", c, err)
		}
	})
}
