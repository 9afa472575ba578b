package controller

import (
	"encoding/binary"
	"fmt"

	"github.com/sluicemq/sluice/auth"
)

// Command is one change to the cluster metadata, as it is written to the
// Raft log. Every replica decodes the same bytes and runs Apply on the same
// metadata, so every replica reaches the same state; anything a command
// depends on (placement, epochs to check) is decided before it is proposed
// and carried in it.
//
// The implementations are RegisterBroker, FenceBroker, CreateTopic,
// DeleteTopic, AlterConfigs, AlterPartition, ReportHighWatermarks,
// ReportOfflineReplicas, ReportOnlineReplicas, AllocateProducerIDs, the
// security commands UpsertCredential, DeleteCredential, CreateACLs and
// DeleteACLs, the move commands CreatePartitions and AlterReassignment,
// AlterClusterConfigs, AlterGroupConfigs, UnregisterBroker and
// FinalizeCommandVersion (features.go).
type Command interface {
	// Kind names the command in logs and errors.
	Kind() CommandKind
	appendBody(b []byte) []byte
}

// CommandKind identifies a command type in the encoding. Values are never
// reused.
type CommandKind uint8

// Command kinds.
const (
	KindRegisterBroker CommandKind = 1
	KindFenceBroker    CommandKind = 2
	KindCreateTopic    CommandKind = 3
	KindDeleteTopic    CommandKind = 4
	KindAlterConfigs   CommandKind = 5
	KindAlterPartition CommandKind = 6
	// KindReportHighWatermarks is new in CommandVersion 2.
	KindReportHighWatermarks CommandKind = 7
	// KindReportOfflineReplicas is new in CommandVersion 4.
	KindReportOfflineReplicas CommandKind = 8
	// KindReportOnlineReplicas is new in CommandVersion 4.
	KindReportOnlineReplicas CommandKind = 9
	// KindAllocateProducerIDs is new in CommandVersion 5.
	KindAllocateProducerIDs CommandKind = 10
	// The security commands are new in CommandVersion 6.
	KindUpsertCredential CommandKind = 11
	KindDeleteCredential CommandKind = 12
	KindCreateACLs       CommandKind = 13
	KindDeleteACLs       CommandKind = 14
	// The move commands are new in CommandVersion 7 (move.go).
	KindCreatePartitions  CommandKind = 15
	KindAlterReassignment CommandKind = 16
	// KindAlterClusterConfigs is new in CommandVersion 7 (clusterconfig.go).
	KindAlterClusterConfigs CommandKind = 17
	// KindAlterGroupConfigs is new in CommandVersion 8 (groupconfig.go).
	KindAlterGroupConfigs CommandKind = 18
	// KindUnregisterBroker is new in CommandVersion 9 (remove.go).
	KindUnregisterBroker CommandKind = 19
	// KindFinalizeCommandVersion raises the finalized command version
	// (features.go); it decodes at every version.
	KindFinalizeCommandVersion CommandKind = 20
)

func (k CommandKind) String() string {
	switch k {
	case KindRegisterBroker:
		return "RegisterBroker"
	case KindFenceBroker:
		return "FenceBroker"
	case KindCreateTopic:
		return "CreateTopic"
	case KindDeleteTopic:
		return "DeleteTopic"
	case KindAlterConfigs:
		return "AlterConfigs"
	case KindAlterPartition:
		return "AlterPartition"
	case KindReportHighWatermarks:
		return "ReportHighWatermarks"
	case KindReportOfflineReplicas:
		return "ReportOfflineReplicas"
	case KindReportOnlineReplicas:
		return "ReportOnlineReplicas"
	case KindAllocateProducerIDs:
		return "AllocateProducerIDs"
	case KindUpsertCredential:
		return "UpsertCredential"
	case KindDeleteCredential:
		return "DeleteCredential"
	case KindCreateACLs:
		return "CreateACLs"
	case KindDeleteACLs:
		return "DeleteACLs"
	case KindCreatePartitions:
		return "CreatePartitions"
	case KindAlterReassignment:
		return "AlterReassignment"
	case KindAlterClusterConfigs:
		return "AlterClusterConfigs"
	case KindAlterGroupConfigs:
		return "AlterGroupConfigs"
	case KindUnregisterBroker:
		return "UnregisterBroker"
	case KindFinalizeCommandVersion:
		return "FinalizeCommandVersion"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// CommandVersion is the newest encoding version this build knows, the
// version written in the first byte of a command. A replica refuses (as an
// error result) a version it does not know, so commands are written at
// the cluster's finalized level (Metadata.CommandLevel, features.go), which
// is raised only once every replica understands it.
//
// Version 2 added RegisterBroker.LogsReported and Logs,
// AlterPartition.HighWatermark and TopicID, and ReportHighWatermarks.
// Version 3 added RegisterBroker.SameBoot and ReplicaLog.LastEpoch.
// Version 4 added ReportOfflineReplicas and ReportOnlineReplicas.
// Version 5 added AllocateProducerIDs; version 6 UpsertCredential,
// DeleteCredential, CreateACLs and DeleteACLs (security.go); version 7
// CreatePartitions, AlterReassignment (move.go) and AlterClusterConfigs
// (clusterconfig.go); version 8 AlterGroupConfigs (groupconfig.go);
// version 9 UnregisterBroker (remove.go); version 10 the cluster config
// brokers.draining (clusterconfig.go): AlterClusterConfigs' layout is
// unchanged, but a build before 10 refuses the key when it applies the
// command, so a command that sets or removes it needs version 10
// (commandNeeds). Older commands, still in the Raft logs of earlier
// builds, decode with the fields they lack zero. The encoder writes any
// version from MinCommandLevel (appendCommandAt): since version 3 a
// version only added kinds or config keys, never changed a layout.
const CommandVersion = 10

// Earlier layouts. Each version 1 body is a prefix of its version 2 body;
// version 3 adds a field to each log entry of a RegisterBroker and one at
// the end of its body.
const (
	commandVersion1 = 1
	commandVersion2 = 2
	commandVersion3 = 3
	commandVersion4 = 4
	commandVersion5 = 5
	commandVersion6 = 6
	commandVersion7 = 7
	commandVersion8 = 8
	commandVersion9 = 9
)

// RegisterBroker registers a broker, or re-registers a restarted one, with a
// new broker epoch (R10). A re-registration fences the old incarnation from
// every ISR, and PreviousEpoch decides whether the broker may lead again the
// partitions whose last in-sync replica it was (R11; see Apply).
type RegisterBroker struct {
	ID       int32
	Addr     string // client address, host:port
	Rack     string
	RaftAddr string // host:port of its Raft transport
	// PreviousEpoch says what the broker's data is worth:
	//   >= 1: the epoch it had when it last shut down cleanly (every log
	//         closed cleanly), or its current epoch when it never stopped;
	//   PreviousEpochUnclean (0): it stopped uncleanly, its data dir is there;
	//   PreviousEpochEmpty (-1): its data dir was empty (new or wiped).
	PreviousEpoch int64
	// GossipAddr is its serf address; brokers join the gossip addresses of
	// the registered brokers, so no seed list is needed.
	GossipAddr string
	// DirID identifies the broker's data directory (made at its first
	// start). A registration from another directory is refused while the
	// id is registered alive: two processes configured with one id.
	DirID string
	// LogsReported says the broker read its partition logs before
	// registering, and Logs is what it found: one entry per partition
	// directory it holds. A replica missing from a report has no data (end
	// offset 0). A registration on behalf of a broker that kept running (a
	// gossip flap, a fence while running) reports nothing: its data did
	// not go away. The elections use reports to refuse a replica that may
	// have lost committed records (R11, see election.go).
	LogsReported bool
	Logs         []ReplicaLog
	// SameBoot says the broker's previous run on this data directory ran
	// under the kernel boot that is running now (the broker records the
	// boot id with its registration): if that run stopped uncleanly, it
	// was a process crash, and what the process wrote is still in the
	// page cache or on disk. For R11 such a stop is as good as a clean
	// one, whatever the topic's fsync setting. False after a reboot, and
	// when the boot id is unknown.
	SameBoot bool
}

// ReplicaLog is what a registering broker found in one partition's log
// when it opened it at this start.
type ReplicaLog struct {
	Topic string
	// TopicID is the id in the directory's topic-id file, so the data of a
	// deleted topic is not taken for that of a new one with its name.
	TopicID   uint64
	Partition int32
	EndOffset int64
	// RecoveryTruncated: recovery after an unclean stop dropped bytes or
	// segments from this log (a torn or corrupt tail). What it dropped may
	// have been committed.
	RecoveryTruncated bool
	// LastEpoch is the leader epoch of the log's last batch, -1 for an
	// empty log (0 in commands of version 2 and earlier). A balanced
	// recovery elects the replica with the highest (LastEpoch,
	// EndOffset).
	LastEpoch int32
}

// Values of RegisterBroker.PreviousEpoch below 1.
const (
	PreviousEpochUnclean int64 = 0
	PreviousEpochEmpty   int64 = -1
)

// FenceBroker marks a broker offline and takes leadership away from it.
// Epoch must be the broker's current epoch, so news about an earlier
// incarnation cannot take down the current one.
type FenceBroker struct {
	ID    int32
	Epoch int64
}

// CreateTopic adds a topic with the replica lists the leader chose.
type CreateTopic struct {
	Name     string
	Configs  map[string]string
	Replicas [][]int32 // per partition, preferred leader first
}

// DeleteTopic removes a topic.
type DeleteTopic struct {
	Name string
}

// AlterConfigs sets topic config keys and removes others (back to their
// defaults). Set is applied before Remove.
type AlterConfigs struct {
	Name   string
	Set    map[string]string
	Remove []string
}

// AlterPartition changes a partition's leader and ISR. PartitionEpoch is the
// epoch the proposer saw; if the partition changed since, the command is
// refused with ErrStalePartitionEpoch. A change of leader bumps the leader
// epoch; every change bumps the partition epoch.
//
// BrokerEpochs runs parallel to ISR (or is empty): every broker the change
// adds to the ISR must be named with the broker epoch it caught up in,
// which must still be its registered epoch, or the change is refused with
// ErrStaleBrokerEpoch (R10, as Kafka's KIP-903): a replica that restarted
// since it caught up may have lost what it had.
//
// HighWatermark, when the change keeps the leader (the leader's own ISR
// change), is the leader's high watermark: it raises the partition's
// CommittedHW like a ReportHighWatermarks entry. 0 says nothing.
//
// TopicID, when not 0, is the id of the topic the proposer saw: a change
// meant for a topic since deleted and created again under the same name
// (whose partition epochs start over, and may match) is refused with
// ErrStalePartitionEpoch.
type AlterPartition struct {
	Topic          string
	Partition      int32
	PartitionEpoch int32
	Leader         int32 // -1 for none
	ISR            []int32
	BrokerEpochs   []int64
	HighWatermark  int64
	TopicID        uint64
}

// ReportHighWatermarks is a broker telling the controller the high
// watermarks of partitions it leads, so that the controller knows what
// was committed and can refuse to elect a restarted replica whose log
// ends below it (R11). A broker sends one for all the partitions whose
// high watermark moved, every few seconds. Each entry raises its
// partition's CommittedHW, and only when the broker leads the partition
// in that leader epoch, in that broker epoch; other entries are stale and
// skipped.
type ReportHighWatermarks struct {
	BrokerID    int32
	BrokerEpoch int64
	Entries     []HighWatermark
}

// HighWatermark is one partition's high watermark as its leader reports it.
type HighWatermark struct {
	Topic         string
	TopicID       uint64
	Partition     int32
	LeaderEpoch   int32
	HighWatermark int64
}

// ReportOfflineReplicas is a broker telling the controller that the logs
// of some of its replicas went offline after a storage error (a full
// disk, an I/O error): as Kafka's log-directory failure (KIP-112), the
// replica can neither lead nor follow until the broker reopens the log.
// Each entry marks its replica offline in the partition
// (Partition.Offline, with the reason) and applies the rules of
// election.go: it leaves the ISR at once unless it is the last member, and
// a partition it led gets another leader. Entries for a topic deleted or
// re-created since, for a partition the broker holds no replica of, or
// already marked, are skipped. A broker epoch that is not the broker's
// current alive one refuses the whole report (R10).
type ReportOfflineReplicas struct {
	BrokerID    int32
	BrokerEpoch int64
	Entries     []OfflineReplica
}

// ReportOnlineReplicas is a broker telling the controller that it reopened
// the offline logs of some of its replicas (space came back): each Logs
// entry is what the reopened log held, as in a registration's report.
// Each clears its replica's offline mark; the replica then follows and
// rejoins the ISR by catching up. A partition left without a leader
// whose last in-sync replica it is gets it back as leader only if its
// log cannot have lost a committed record (R11): recovery cut nothing,
// it ends at or above the committed high watermark, and the partition
// was not refused before. Entries for replicas not marked offline are
// skipped; a broker epoch that is not the broker's current alive one
// refuses the whole report (R10).
type ReportOnlineReplicas struct {
	BrokerID    int32
	BrokerEpoch int64
	Logs        []ReplicaLog
}

// AllocateProducerIDs gives a broker the next Count producer ids, a block
// it hands out to idempotent producers (InitProducerId) without a Raft
// write per producer. The metadata keeps only the next id never
// allocated (Metadata.NextProducerID), which only grows, so no id is
// given twice: not across brokers, controller failovers or restarts. The
// block is the command's Result.ProducerIDs. Ids of a block its broker
// never used (it restarted, or the answer was lost) are never used.
//
// BrokerEpoch must be the broker's current epoch and the broker alive, as
// for a report (R10): an old incarnation gets no ids.
type AllocateProducerIDs struct {
	BrokerID    int32
	BrokerEpoch int64
	Count       int32
}

// OfflineReplica is one replica whose log went offline, and why.
type OfflineReplica struct {
	Topic     string
	TopicID   uint64
	Partition int32
	Reason    string
}

// Kind implements Command.
func (RegisterBroker) Kind() CommandKind { return KindRegisterBroker }

// Kind implements Command.
func (FenceBroker) Kind() CommandKind { return KindFenceBroker }

// Kind implements Command.
func (CreateTopic) Kind() CommandKind { return KindCreateTopic }

// Kind implements Command.
func (DeleteTopic) Kind() CommandKind { return KindDeleteTopic }

// Kind implements Command.
func (AlterConfigs) Kind() CommandKind { return KindAlterConfigs }

// Kind implements Command.
func (AlterPartition) Kind() CommandKind { return KindAlterPartition }

// Kind implements Command.
func (ReportHighWatermarks) Kind() CommandKind { return KindReportHighWatermarks }

// Kind implements Command.
func (ReportOfflineReplicas) Kind() CommandKind { return KindReportOfflineReplicas }

// Kind implements Command.
func (ReportOnlineReplicas) Kind() CommandKind { return KindReportOnlineReplicas }

// Kind implements Command.
func (AllocateProducerIDs) Kind() CommandKind { return KindAllocateProducerIDs }

func (c RegisterBroker) appendBody(b []byte) []byte {
	b = binary.AppendVarint(b, int64(c.ID))
	b = appendString(b, c.Addr)
	b = appendString(b, c.Rack)
	b = appendString(b, c.RaftAddr)
	b = binary.AppendVarint(b, c.PreviousEpoch)
	b = appendString(b, c.GossipAddr)
	b = appendString(b, c.DirID)
	b = appendBool(b, c.LogsReported)
	b = appendReplicaLogs(b, c.Logs)
	return appendBool(b, c.SameBoot)
}

func appendReplicaLogs(b []byte, logs []ReplicaLog) []byte {
	b = binary.AppendUvarint(b, uint64(len(logs)))
	for _, l := range logs {
		b = appendString(b, l.Topic)
		b = binary.AppendUvarint(b, l.TopicID)
		b = binary.AppendVarint(b, int64(l.Partition))
		b = binary.AppendVarint(b, l.EndOffset)
		b = appendBool(b, l.RecoveryTruncated)
		b = binary.AppendVarint(b, int64(l.LastEpoch))
	}
	return b
}

func (c ReportOnlineReplicas) appendBody(b []byte) []byte {
	b = binary.AppendVarint(b, int64(c.BrokerID))
	b = binary.AppendVarint(b, c.BrokerEpoch)
	return appendReplicaLogs(b, c.Logs)
}

func (c AllocateProducerIDs) appendBody(b []byte) []byte {
	b = binary.AppendVarint(b, int64(c.BrokerID))
	b = binary.AppendVarint(b, c.BrokerEpoch)
	return binary.AppendVarint(b, int64(c.Count))
}

func (c FenceBroker) appendBody(b []byte) []byte {
	b = binary.AppendVarint(b, int64(c.ID))
	return binary.AppendVarint(b, c.Epoch)
}

func (c CreateTopic) appendBody(b []byte) []byte {
	b = appendString(b, c.Name)
	b = appendConfigs(b, c.Configs)
	b = binary.AppendUvarint(b, uint64(len(c.Replicas)))
	for _, r := range c.Replicas {
		b = appendInt32s(b, r)
	}
	return b
}

func (c DeleteTopic) appendBody(b []byte) []byte { return appendString(b, c.Name) }

func (c AlterConfigs) appendBody(b []byte) []byte {
	b = appendString(b, c.Name)
	b = appendConfigs(b, c.Set)
	return appendStringSet(b, c.Remove)
}

func (c AlterPartition) appendBody(b []byte) []byte {
	b = appendString(b, c.Topic)
	b = binary.AppendVarint(b, int64(c.Partition))
	b = binary.AppendVarint(b, int64(c.PartitionEpoch))
	b = binary.AppendVarint(b, int64(c.Leader))
	b = appendInt32s(b, c.ISR)
	b = appendInt64s(b, c.BrokerEpochs)
	b = binary.AppendVarint(b, c.HighWatermark)
	return binary.AppendUvarint(b, c.TopicID)
}

func (c ReportHighWatermarks) appendBody(b []byte) []byte {
	b = binary.AppendVarint(b, int64(c.BrokerID))
	b = binary.AppendVarint(b, c.BrokerEpoch)
	b = binary.AppendUvarint(b, uint64(len(c.Entries)))
	for _, e := range c.Entries {
		b = appendString(b, e.Topic)
		b = binary.AppendUvarint(b, e.TopicID)
		b = binary.AppendVarint(b, int64(e.Partition))
		b = binary.AppendVarint(b, int64(e.LeaderEpoch))
		b = binary.AppendVarint(b, e.HighWatermark)
	}
	return b
}

func (c ReportOfflineReplicas) appendBody(b []byte) []byte {
	b = binary.AppendVarint(b, int64(c.BrokerID))
	b = binary.AppendVarint(b, c.BrokerEpoch)
	b = binary.AppendUvarint(b, uint64(len(c.Entries)))
	for _, e := range c.Entries {
		b = appendString(b, e.Topic)
		b = binary.AppendUvarint(b, e.TopicID)
		b = binary.AppendVarint(b, int64(e.Partition))
		b = appendString(b, e.Reason)
	}
	return b
}

// AppendCommand appends c's encoding at CommandVersion to dst: the
// version byte, the kind byte, then the body. Nodes write at the
// finalized level instead (Node.encode).
func AppendCommand(dst []byte, c Command) []byte {
	dst = append(dst, CommandVersion, byte(c.Kind()))
	return c.appendBody(dst)
}

// DecodeCommand decodes one command. Errors match ErrCorrupt.
func DecodeCommand(b []byte) (Command, error) {
	c, _, err := decodeCommandUpTo(b, CommandVersion)
	return c, err
}

// decodeCommandUpTo decodes one command of a version up to max (a node
// standing in for an older build refuses newer ones) and returns it with
// its version.
func decodeCommandUpTo(b []byte, max uint8) (Command, uint8, error) {
	d := &decoder{b: b}
	c, v := decodeCommandVersion(d, max)
	if err := d.end(); err != nil {
		return nil, 0, fmt.Errorf("decode command: %w", err)
	}
	return c, v, nil
}

func decodeCommand(d *decoder) Command {
	c, _ := decodeCommandVersion(d, CommandVersion)
	return c
}

func decodeCommandVersion(d *decoder, max uint8) (Command, uint8) {
	v := d.byte()
	if d.err == nil && (v < commandVersion1 || v > max) {
		d.fail("command version %d, this build knows %d to %d", v, commandVersion1, max)
	}
	kind := CommandKind(d.byte())
	if d.err != nil {
		return nil, 0
	}
	return decodeBody(d, v, kind), v
}

func decodeBody(d *decoder, v uint8, kind CommandKind) Command {
	switch kind {
	case KindRegisterBroker:
		c := RegisterBroker{ID: d.int32(), Addr: d.string(), Rack: d.string(), RaftAddr: d.string(), PreviousEpoch: d.varint(), GossipAddr: d.string(), DirID: d.string()}
		if v >= commandVersion2 {
			c.LogsReported = d.bool()
			c.Logs = d.replicaLogs(v)
		}
		if v >= 3 {
			c.SameBoot = d.bool()
		}
		return c
	case KindFenceBroker:
		return FenceBroker{ID: d.int32(), Epoch: d.varint()}
	case KindCreateTopic:
		c := CreateTopic{Name: d.string(), Configs: d.configs()}
		if n := d.count(1); n > 0 {
			c.Replicas = make([][]int32, n)
			for i := range c.Replicas {
				c.Replicas[i] = d.int32s()
			}
		}
		return c
	case KindDeleteTopic:
		return DeleteTopic{Name: d.string()}
	case KindAlterConfigs:
		return AlterConfigs{Name: d.string(), Set: d.configs(), Remove: d.stringSet()}
	case KindAlterPartition:
		c := AlterPartition{Topic: d.string(), Partition: d.int32(), PartitionEpoch: d.int32(), Leader: d.int32(), ISR: d.int32s(), BrokerEpochs: d.int64s()}
		if v >= commandVersion2 {
			c.HighWatermark = d.varint()
			c.TopicID = d.uvarint()
		}
		return c
	case KindReportHighWatermarks:
		if v < commandVersion2 {
			break
		}
		c := ReportHighWatermarks{BrokerID: d.int32(), BrokerEpoch: d.varint()}
		// An entry is at least 5 bytes: topic length, topic id,
		// partition, leader epoch, high watermark.
		if n := d.count(5); n > 0 {
			c.Entries = make([]HighWatermark, n)
			for i := range c.Entries {
				c.Entries[i] = HighWatermark{Topic: d.string(), TopicID: d.uvarint(), Partition: d.int32(), LeaderEpoch: d.int32(), HighWatermark: d.varint()}
			}
		}
		return c
	case KindReportOfflineReplicas:
		if v <= commandVersion3 {
			break
		}
		c := ReportOfflineReplicas{BrokerID: d.int32(), BrokerEpoch: d.varint()}
		// An entry is at least 4 bytes: topic length, topic id,
		// partition, reason length.
		if n := d.count(4); n > 0 {
			c.Entries = make([]OfflineReplica, n)
			for i := range c.Entries {
				c.Entries[i] = OfflineReplica{Topic: d.string(), TopicID: d.uvarint(), Partition: d.int32(), Reason: d.string()}
			}
		}
		return c
	case KindReportOnlineReplicas:
		if v <= commandVersion3 {
			break
		}
		return ReportOnlineReplicas{BrokerID: d.int32(), BrokerEpoch: d.varint(), Logs: d.replicaLogs(v)}
	case KindAllocateProducerIDs:
		if v <= commandVersion4 {
			break
		}
		return AllocateProducerIDs{BrokerID: d.int32(), BrokerEpoch: d.varint(), Count: d.int32()}
	case KindUpsertCredential:
		if v <= commandVersion5 {
			break
		}
		return UpsertCredential{User: d.string(), Credential: d.credential()}
	case KindDeleteCredential:
		if v <= commandVersion5 {
			break
		}
		return DeleteCredential{User: d.string(), Mechanism: auth.Mechanism(d.string())}
	case KindCreateACLs:
		if v <= commandVersion5 {
			break
		}
		return CreateACLs{ACLs: d.acls(false)}
	case KindDeleteACLs:
		if v <= commandVersion5 {
			break
		}
		return DeleteACLs{ACLs: d.acls(false)}
	case KindCreatePartitions:
		if v <= commandVersion6 {
			break
		}
		return decodeCreatePartitions(d)
	case KindAlterReassignment:
		if v <= commandVersion6 {
			break
		}
		return decodeAlterReassignment(d)
	case KindAlterClusterConfigs:
		if v <= commandVersion6 {
			break
		}
		return AlterClusterConfigs{Set: d.configs(), Remove: d.stringSet()}
	case KindAlterGroupConfigs:
		if v <= commandVersion7 {
			break
		}
		return AlterGroupConfigs{Group: d.string(), Set: d.configs(), Remove: d.stringSet()}
	case KindUnregisterBroker:
		if v <= commandVersion8 {
			break
		}
		return UnregisterBroker{ID: d.int32(), Epoch: d.varint()}
	case KindFinalizeCommandVersion:
		// In every version: see features.go.
		return FinalizeCommandVersion{Level: d.byte()}
	}
	d.fail("unknown command kind %d", kind)
	return nil
}

// replicaLogs reads what appendReplicaLogs wrote, in the layout of command
// version v (no last epoch before version 3); nil for none.
func (d *decoder) replicaLogs(v byte) []ReplicaLog {
	// An entry is at least 5 bytes: topic length, topic id, partition,
	// end offset, flag; 6 with the last epoch.
	size := 5
	if v >= commandVersion3 {
		size = 6
	}
	n := d.count(size)
	if n == 0 {
		return nil
	}
	logs := make([]ReplicaLog, n)
	for i := range logs {
		logs[i] = ReplicaLog{Topic: d.string(), TopicID: d.uvarint(), Partition: d.int32(), EndOffset: d.varint(), RecoveryTruncated: d.bool()}
		if v >= commandVersion3 {
			logs[i].LastEpoch = d.int32()
		}
	}
	return logs
}
