package controller

import (
	"encoding/binary"
	"fmt"
)

// Command is one change to the cluster metadata, as it is written to the
// Raft log. Every replica decodes the same bytes and runs Apply on the same
// metadata, so every replica reaches the same state; anything a command
// depends on (placement, epochs to check) is decided before it is proposed
// and carried in it.
//
// The implementations are RegisterBroker, FenceBroker, CreateTopic,
// DeleteTopic, AlterConfigs and AlterPartition.
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
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// CommandVersion is the encoding version written in the first byte of every
// command. A replica refuses (as an error result, identically everywhere)
// a version it does not know; a new version must only be proposed once
// every replica understands it.
const CommandVersion = 1

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
type AlterPartition struct {
	Topic          string
	Partition      int32
	PartitionEpoch int32
	Leader         int32 // -1 for none
	ISR            []int32
	BrokerEpochs   []int64
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

func (c RegisterBroker) appendBody(b []byte) []byte {
	b = binary.AppendVarint(b, int64(c.ID))
	b = appendString(b, c.Addr)
	b = appendString(b, c.Rack)
	b = appendString(b, c.RaftAddr)
	b = binary.AppendVarint(b, c.PreviousEpoch)
	b = appendString(b, c.GossipAddr)
	return appendString(b, c.DirID)
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
	return appendInt64s(b, c.BrokerEpochs)
}

// AppendCommand appends c's encoding to dst: the version byte, the kind
// byte, then the body.
func AppendCommand(dst []byte, c Command) []byte {
	dst = append(dst, CommandVersion, byte(c.Kind()))
	return c.appendBody(dst)
}

// DecodeCommand decodes one command. Errors match ErrCorrupt.
func DecodeCommand(b []byte) (Command, error) {
	d := &decoder{b: b}
	c := decodeCommand(d)
	if err := d.end(); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	return c, nil
}

func decodeCommand(d *decoder) Command {
	if v := d.byte(); d.err == nil && v != CommandVersion {
		d.fail("command version %d, this build knows %d", v, CommandVersion)
	}
	kind := CommandKind(d.byte())
	if d.err != nil {
		return nil
	}
	switch kind {
	case KindRegisterBroker:
		return RegisterBroker{ID: d.int32(), Addr: d.string(), Rack: d.string(), RaftAddr: d.string(), PreviousEpoch: d.varint(), GossipAddr: d.string(), DirID: d.string()}
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
		return AlterPartition{Topic: d.string(), Partition: d.int32(), PartitionEpoch: d.int32(), Leader: d.int32(), ISR: d.int32s(), BrokerEpochs: d.int64s()}
	}
	d.fail("unknown command kind %d", kind)
	return nil
}
