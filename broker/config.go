package broker

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/replica"
	"github.com/sluicemq/sluice/vfs"
)

// Defaults applied by Config.WithDefaults to zero fields.
const (
	DefaultListenAddr         = "127.0.0.1:7092"
	DefaultDataDir            = "./data"
	DefaultBrokerID           = 1
	DefaultMaxFrameBytes      = 100 << 20
	DefaultMaxConnections     = 10000
	DefaultMaxInflightPerConn = 100
	DefaultMemoryBudget       = 512 << 20
	DefaultFrameReadTimeout   = 30 * time.Second
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultWriteTimeout       = 30 * time.Second
	DefaultRetentionCheck     = 5 * time.Minute
	DefaultCleanerInterval    = 5 * time.Second
	DefaultCleanerMaxBackoff  = 5 * time.Minute
	DefaultMaxFetchWait       = 5 * time.Minute
	DefaultPartitions         = 1
	DefaultReplicationFactor  = 1
	DefaultClusterID          = "sluice"
	DefaultRegisterTimeout    = 60 * time.Second
	// DefaultRaftTimeout is the Raft heartbeat and election timeout of a
	// broker in a cluster of several voters; a single voter (no Voters,
	// no Join) uses DefaultSingleVoterRaftTimeout, so a lone broker elects
	// itself in a fraction of a second.
	DefaultRaftTimeout            = time.Second
	DefaultSingleVoterRaftTimeout = 100 * time.Millisecond
	minFrameBytes                 = 1 << 10
	defaultShutdownWriteTimeout   = 5 * time.Second
)

// Defaults of the connection limits (connlimit.go).
const (
	// DefaultMaxConnectionsPerIP: far above what the clients of one host
	// open (a sluice client opens a few per broker), far below
	// DefaultMaxConnections, so that one host cannot take every slot.
	DefaultMaxConnectionsPerIP = 1000
	// DefaultReservedBrokerConnections: room for the replica fetchers and
	// forwarded controller writes of a cluster of dozens of brokers.
	DefaultReservedBrokerConnections = 100
	DefaultFirstRequestTimeout       = 10 * time.Second
)

// Config configures a Broker. The zero value of every field means its
// default (WithDefaults); Validate names the first bad field. Flags and
// environment variables of cmd/sluice use the same names.
type Config struct {
	// ListenAddr is the TCP address the broker listens on. Default
	// 127.0.0.1:7092; port 0 picks a free port (see Broker.Addr).
	ListenAddr string
	// TLS, when set, is TLS on the client listener (every accepted
	// connection completes its handshake before it is served) and on
	// this broker's connections to the other brokers' client listeners:
	// replica fetches, forwarded controller writes, leadership handovers
	// and the join. Every broker of a cluster must agree. Default
	// plaintext.
	TLS *auth.Transport
	// AdvertisedAddr is the host:port clients are told to connect to in
	// Metadata responses. Default: the address the listener bound.
	AdvertisedAddr string
	// KafkaAdvertisedAddr is the address of this broker's Kafka listener
	// (package kafka), host:port, when it has one: carried in its gossip
	// tags so every broker's Kafka Metadata names it. Empty: none.
	KafkaAdvertisedAddr string
	// DataDir holds the controller's Raft state (raft/) and one directory
	// per partition, <topic>-<partition>. Default ./data.
	DataDir string
	// BrokerID is this broker's id in the cluster metadata. Default 1.
	BrokerID int32
	// ClusterID is reported in Metadata responses. Default "sluice".
	ClusterID string

	// MaxFrameBytes refuses (and closes the connection on) a request frame
	// whose length prefix is larger. Default 100 MiB.
	MaxFrameBytes int
	// MaxConnections bounds open connections. A connection accepted past
	// it is kept only if its first request comes from another broker of
	// the cluster (a replica's Fetch or OffsetForLeaderEpoch, a forwarded
	// controller write), in up to ReservedBrokerConnections more slots;
	// any other first request is answered THROTTLING_QUOTA_EXCEEDED and the
	// connection closed. Past both it is closed as soon as it is accepted.
	// Default 10000.
	MaxConnections int
	// MaxConnectionsPerIP bounds the connections of one remote IP
	// address (Kafka's max.connections.per.ip); past it, a connection is
	// treated as one past MaxConnections (kept only for a broker). Default
	// DefaultMaxConnectionsPerIP; negative: no per-host bound.
	MaxConnectionsPerIP int
	// ReservedBrokerConnections is the room past MaxConnections (and past
	// MaxConnectionsPerIP) kept for other brokers' connections, so that
	// clients holding every slot cannot cut replication or controller
	// forwarding off. Default DefaultReservedBrokerConnections; negative:
	// none.
	ReservedBrokerConnections int
	// FirstRequestTimeout is how long a new connection has to deliver its
	// whole first request (at most IdleTimeout): one that sends nothing is
	// closed and frees its slot. Default 10 s.
	FirstRequestTimeout time.Duration
	// MaxInflightPerConn bounds the requests of one connection that have
	// been read but not yet answered; the broker stops reading the
	// connection at the bound (TCP pushes back). Default 100.
	MaxInflightPerConn int
	// MaxInflightBytesPerConn bounds the request bytes of one connection
	// held in memory at once. Default MaxFrameBytes; at least MaxFrameBytes.
	MaxInflightBytesPerConn int64
	// MemoryBudget bounds the request bytes held by the whole broker:
	// reading a frame waits until its length is available in the budget,
	// so the broker never holds more request bytes than this. Default
	// 512 MiB, and at least MaxFrameBytes.
	MemoryBudget int64

	// FrameReadTimeout is how long a client has to deliver a frame once its
	// first byte arrived (once for the length prefix, once for the rest):
	// a slow-loris client is disconnected. Default 30 s.
	FrameReadTimeout time.Duration
	// IdleTimeout closes a connection that sent nothing and has nothing in
	// flight for this long. Default 10 min.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response; a client that stops
	// reading is disconnected. Default 30 s.
	WriteTimeout time.Duration
	// MaxFetchWait caps a Fetch's max wait. Default 5 min.
	MaxFetchWait time.Duration
	// RetentionCheckInterval is how often retention runs over every
	// partition. Default 5 min.
	RetentionCheckInterval time.Duration
	// CleanerInterval is how often the log cleaner looks for compacted
	// partitions due for cleaning (cleanup.policy=compact); a partition
	// whose cleaning failed is retried after a backoff that starts here
	// and doubles up to CleanerMaxBackoff. Default 5 s.
	CleanerInterval time.Duration
	// CleanerMaxBackoff caps the cleaner's retry backoff. Default 5 min.
	CleanerMaxBackoff time.Duration
	// CleanerKeyMapBytes is the memory of the cleaner's key map (24 bytes
	// a key); a dirty part with more keys is cleaned in several passes.
	// Default 16 MiB.
	CleanerKeyMapBytes int

	// DefaultPartitions and DefaultReplicationFactor are used by
	// CreateTopics for a topic asking for -1. Defaults 1 and 1.
	DefaultPartitions        int32
	DefaultReplicationFactor int16
	// OffsetsTopicPartitions is the partition count of the offsets topic
	// (__consumer_offsets) when this broker creates it, at the first
	// FindCoordinator. Default DefaultOffsetsTopicPartitions (12).
	OffsetsTopicPartitions int32
	// Group configures the group coordinators: session timeout, heartbeat
	// interval, rebalance timeout, offsets retention (group.Config; zero
	// fields take its defaults).
	Group group.Config
	// TopicDefaults overrides the built-in default of topic config keys
	// (controller.TopicConfigDefs) for topics that do not set them, as
	// Kafka's broker-level log.* settings do. Each entry is validated.
	TopicDefaults map[string]string

	// RaftAddr is the address of the controller's Raft transport,
	// host:port. Default: ListenAddr's host with its port + 1
	// (127.0.0.1:7093 beside the default 127.0.0.1:7092; port 0 when the
	// listen port is 0). The Raft log and snapshots live in <DataDir>/raft.
	RaftAddr string
	// RaftTLS, when set, is TLS on the Raft transport, both the listener
	// and the dials to the other voters (controller.NodeConfig.TLS).
	// Default plaintext.
	RaftTLS *auth.Transport
	// RaftListener, when set, is used instead of listening on RaftAddr
	// (tests bind every broker's Raft port before they know the voter
	// list). The broker closes it.
	RaftListener net.Listener
	// Voters is the Raft voter set, "id@host:port,..." (Raft addresses;
	// controller.ParseVoters). Empty: this broker alone is a one-voter
	// cluster, unless Join is set. A broker not in the list is a non-voter.
	Voters string
	// Join is the client address of any broker of an existing cluster.
	// A broker started with Join and without Voters asks that broker for
	// the voter set and joins the Raft group as a non-voter.
	Join string
	// Rack is this broker's rack, used by placement. Default none.
	Rack string
	// GossipAddr is this broker's serf address (UDP and TCP), host:port:
	// membership and failure detection. Default: ListenAddr's host with
	// its port + 2 (port 0 when the listen port is 0).
	GossipAddr string
	// GossipSeeds lists other brokers' gossip addresses, comma-separated,
	// to join at start (retried until one answers). Optional: a broker
	// also joins the gossip address every registered broker recorded with
	// the controller, so seeds matter only for a broker that cannot reach
	// the controller group otherwise.
	GossipSeeds string
	// GossipKey, when set, encrypts and authenticates serf's gossip
	// (UDP and TCP) with memberlist's keyring: AES-GCM with this key of
	// 16, 24 or 32 bytes. Every broker of the cluster needs the same key;
	// a broker with another key, or none, cannot join. Default none.
	GossipKey []byte
	// GossipAcceptedKeys are gossip keys accepted besides GossipKey, which
	// encrypts what this broker sends: set during a rolling rotation of
	// the key (docs/operations.md), else empty.
	GossipAcceptedKeys [][]byte
	// Gossip holds serf's failure-detection timings; zero fields keep
	// memberlist's LAN defaults (a failed broker is noticed within about
	// 5 to 30 s). Tests shorten them.
	Gossip controller.GossipTimings

	// ReplicaMaxLag is how long a follower may go without catching up to
	// the leader's end before the leader removes it from the ISR. Default
	// replica.DefaultMaxLag (10 s).
	ReplicaMaxLag time.Duration
	// ReplicaFetchWait is a follower's fetch long-poll. Default 500 ms.
	ReplicaFetchWait time.Duration
	// ProducerIDExpiration is how long a partition keeps an idempotent
	// producer's state after the max timestamp of its last batch; an
	// expired producer that comes back with a sequence other than 0 gets
	// UNKNOWN_PRODUCER_ID. It is the broker-level default of the topic
	// config producer.id.expiration.ms, which a topic may override
	// (WithDefaults puts it in TopicDefaults unless that has the key).
	// Default replica.DefaultProducerExpiration (1 day).
	// docs/idempotence.md.
	ProducerIDExpiration time.Duration
	// ProducerIDMax (producer.id.max) caps the (producer id, partition)
	// entries of producer state this broker keeps over all its
	// partitions; past it the least recently written idle ones, of any
	// partition, are evicted. Default replica.DefaultMaxProducers
	// (100,000). docs/idempotence.md.
	ProducerIDMax int
	// ControlledShutdownTimeout bounds how long Close waits for the
	// controller to move this broker's leaderships away. Default 10 s.
	ControlledShutdownTimeout time.Duration
	// LeaderRebalanceInterval is how often the broker hands the
	// leadership of the partitions it leads back to their preferred
	// replicas that are back in sync, each by a handover that fails no
	// produce (handover.go). Default 30 s; negative disables it.
	LeaderRebalanceInterval time.Duration
	// AutoBalanceInterval is how often the controller leader's broker
	// plans the moves of the cluster config auto.balance
	// (autobalance.go). Default 5 s.
	AutoBalanceInterval time.Duration
	// HighWatermarkReportInterval is how often the broker reports to the
	// controller the high watermarks of the partitions it leads that
	// moved (one write for all, none when nothing moved), so the
	// controller can refuse to elect a restarted replica whose log ends
	// below them (R11). Default 2 s.
	HighWatermarkReportInterval time.Duration
	// OfflineLogRetryInterval is how often the broker tries to reopen the
	// logs that went offline after a storage error (a full disk), once
	// the controller knows of them: a reopen that succeeds (space came
	// back) recovers the log and the replica rejoins without a restart.
	// Default 10 s.
	OfflineLogRetryInterval time.Duration
	// ProducerIDBlockSize is how many producer ids the broker takes from
	// the controller at a time, with one Raft write, to give to
	// idempotent producers (InitProducerID). Default
	// DefaultProducerIDBlockSize (1000); at most
	// controller.MaxProducerIDBlock. Smaller blocks cost more Raft writes
	// and waste fewer ids when a broker restarts; tests set it small to
	// use blocks up.
	ProducerIDBlockSize int32
	// RaftHeartbeatTimeout and RaftElectionTimeout are Raft's timeouts.
	// Default DefaultRaftTimeout, or DefaultSingleVoterRaftTimeout for a
	// one-voter cluster.
	RaftHeartbeatTimeout time.Duration
	RaftElectionTimeout  time.Duration
	// RaftCommitTimeout is how long the Raft leader, with nothing new to
	// send, waits before telling the followers what it committed (a
	// follower applies a command only then). Default 10ms. Tests set it
	// longer to widen the lag of a broker's metadata behind the
	// controller's.
	RaftCommitTimeout time.Duration
	// MaxCommandVersion, for tests only, makes the controller behave as a
	// build whose newest command version is this one (from
	// controller.MinCommandLevel); 0: this build's
	// (controller.CommandVersion). See controller/features.go.
	MaxCommandVersion uint8
	// RegisterTimeout bounds how long Start waits for a controller leader
	// to register this broker (every voter of a new cluster must be
	// started within it). Default 60 s.
	RegisterTimeout time.Duration

	// BootIDFile is the file holding the kernel's boot id, which changes
	// at every boot. Default DefaultBootIDFile. The broker records the id
	// in its data directory at each registration; a restart after an
	// unclean stop under the same id (a process crash, not a machine
	// one) lost nothing the page cache held, and the controller trusts
	// its logs as after a clean stop (R11). Tests point it at a file of
	// their own to simulate a reboot. Unreadable: every unclean stop
	// counts as a machine crash.
	BootIDFile string

	// Security is authentication and authorization (authz_config.go).
	Security Security

	// Logger receives structured logs. Default zap.NewNop().
	Logger *zap.Logger
	// Observer receives timed events for metrics: request stage
	// latencies, log fsyncs, controller commits (observe.go; package
	// httpapi provides one). Nil: none, and the request path reads no
	// clock for them.
	Observer Observer

	// FS is the file system of the partition logs and of the broker's
	// small files in DataDir (clean-shutdown record, data-directory id,
	// topic ids, high watermarks). Default vfs.Default (the os). For
	// tests: an errorfs.FS here fills the disk or fails fsyncs under a
	// running broker; no flag sets it. The Raft store and the data
	// directory's lock do not go through it.
	FS vfs.FS
	// DiskSpace reports the bytes free (to an unprivileged process) and
	// the size of the file system holding dir, the data directory: what
	// DescribeReplicas, the broker's status and auto.balance=continuous's
	// disk goal read. Default statfs(2). For tests: a disk fuller or
	// emptier than the real one; no flag sets it.
	DiskSpace func(dir string) (free, capacity int64)
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.DiskSpace == nil {
		c.DiskSpace = diskSpace
	}
	if c.RaftAddr == "" {
		c.RaftAddr = nextAddr(c.ListenAddr, 1)
	}
	if c.GossipAddr == "" {
		c.GossipAddr = nextAddr(c.ListenAddr, 2)
	}
	if c.ReplicaMaxLag == 0 {
		c.ReplicaMaxLag = replica.DefaultMaxLag
	}
	if c.ReplicaFetchWait == 0 {
		c.ReplicaFetchWait = 500 * time.Millisecond
	}
	if c.ProducerIDExpiration == 0 {
		c.ProducerIDExpiration = replica.DefaultProducerExpiration
	}
	// ProducerIDExpiration is the broker-level default of the topic key
	// producer.id.expiration.ms (an entry of TopicDefaults wins).
	if _, ok := c.TopicDefaults[controller.ConfigProducerIDExpirationMs]; !ok && c.ProducerIDExpiration != replica.DefaultProducerExpiration {
		d := make(map[string]string, len(c.TopicDefaults)+1)
		maps.Copy(d, c.TopicDefaults)
		d[controller.ConfigProducerIDExpirationMs] = strconv.FormatInt(max(c.ProducerIDExpiration.Milliseconds(), 1), 10)
		c.TopicDefaults = d
	}
	if c.ProducerIDMax == 0 {
		c.ProducerIDMax = replica.DefaultMaxProducers
	}
	if c.ControlledShutdownTimeout == 0 {
		c.ControlledShutdownTimeout = 10 * time.Second
	}
	if c.LeaderRebalanceInterval == 0 {
		c.LeaderRebalanceInterval = 30 * time.Second
	}
	if c.AutoBalanceInterval <= 0 {
		c.AutoBalanceInterval = 5 * time.Second
	}
	if c.BootIDFile == "" {
		c.BootIDFile = DefaultBootIDFile
	}
	if c.HighWatermarkReportInterval <= 0 {
		c.HighWatermarkReportInterval = 2 * time.Second
	}
	if c.OfflineLogRetryInterval <= 0 {
		c.OfflineLogRetryInterval = 10 * time.Second
	}
	raftTimeout := DefaultRaftTimeout
	if c.Voters == "" && c.Join == "" {
		raftTimeout = DefaultSingleVoterRaftTimeout
	}
	if c.RaftHeartbeatTimeout == 0 {
		c.RaftHeartbeatTimeout = raftTimeout
	}
	if c.RaftElectionTimeout == 0 {
		c.RaftElectionTimeout = raftTimeout
	}
	if c.RaftCommitTimeout == 0 {
		c.RaftCommitTimeout = 10 * time.Millisecond
	}
	if c.RegisterTimeout == 0 {
		c.RegisterTimeout = DefaultRegisterTimeout
	}
	if c.ProducerIDBlockSize == 0 {
		c.ProducerIDBlockSize = DefaultProducerIDBlockSize
	}
	if c.BrokerID == 0 {
		c.BrokerID = DefaultBrokerID
	}
	if c.ClusterID == "" {
		c.ClusterID = DefaultClusterID
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MaxConnectionsPerIP == 0 {
		c.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if c.ReservedBrokerConnections == 0 {
		c.ReservedBrokerConnections = DefaultReservedBrokerConnections
	}
	if c.FirstRequestTimeout == 0 {
		c.FirstRequestTimeout = DefaultFirstRequestTimeout
	}
	if c.MaxInflightPerConn == 0 {
		c.MaxInflightPerConn = DefaultMaxInflightPerConn
	}
	if c.MaxInflightBytesPerConn == 0 {
		c.MaxInflightBytesPerConn = int64(c.MaxFrameBytes)
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = max(DefaultMemoryBudget, int64(c.MaxFrameBytes))
	}
	if c.FrameReadTimeout == 0 {
		c.FrameReadTimeout = DefaultFrameReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxFetchWait == 0 {
		c.MaxFetchWait = DefaultMaxFetchWait
	}
	if c.CleanerInterval == 0 {
		c.CleanerInterval = DefaultCleanerInterval
	}
	if c.CleanerMaxBackoff == 0 {
		c.CleanerMaxBackoff = DefaultCleanerMaxBackoff
	}
	if c.CleanerKeyMapBytes == 0 {
		c.CleanerKeyMapBytes = log.DefaultKeyMapBytes
	}
	if c.RetentionCheckInterval == 0 {
		c.RetentionCheckInterval = DefaultRetentionCheck
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = DefaultPartitions
	}
	if c.DefaultReplicationFactor == 0 {
		c.DefaultReplicationFactor = DefaultReplicationFactor
	}
	if c.OffsetsTopicPartitions == 0 {
		c.OffsetsTopicPartitions = DefaultOffsetsTopicPartitions
	}
	c.Group = c.Group.WithDefaults()
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	return c
}

// nextAddr is listen's host with its port + k, or port 0 when listen's
// port is 0 (or not a number: Validate reports that).
func nextAddr(listen string, k int) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n+k > 65535 {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, strconv.Itoa(n+k))
}

// ErrConfig matches (errors.Is) every error returned by Config.Validate.
var ErrConfig = errors.New("invalid broker config")

func fieldError(field string, v any, why string) error {
	return fmt.Errorf("%w: %s = %v: %s", ErrConfig, field, v, why)
}

// Validate checks c after defaults are applied and names the first bad
// field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return fieldError("ListenAddr", c.ListenAddr, err.Error())
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedAddr); err != nil {
			return fieldError("AdvertisedAddr", c.AdvertisedAddr, err.Error())
		}
	}
	if c.KafkaAdvertisedAddr != "" {
		if _, _, err := net.SplitHostPort(c.KafkaAdvertisedAddr); err != nil {
			return fieldError("KafkaAdvertisedAddr", c.KafkaAdvertisedAddr, err.Error())
		}
	}
	if c.RaftListener == nil {
		if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
			return fieldError("RaftAddr", c.RaftAddr, err.Error())
		}
	}
	if _, _, err := net.SplitHostPort(c.GossipAddr); err != nil {
		return fieldError("GossipAddr", c.GossipAddr, err.Error())
	}
	if _, err := controller.ParseSeeds(c.GossipSeeds); err != nil {
		return fieldError("GossipSeeds", c.GossipSeeds, err.Error())
	}
	voters, err := controller.ParseVoters(c.Voters)
	if err != nil {
		return fieldError("Voters", c.Voters, err.Error())
	}
	if len(voters) > 0 && c.Join == "" && !slices.ContainsFunc(voters, func(s controller.Server) bool { return s.ID == c.BrokerID }) {
		return fieldError("Join", `""`, fmt.Sprintf("broker %d is not among Voters: a non-voter needs Join, the client address of a broker to join through", c.BrokerID))
	}
	if c.Join != "" {
		if _, _, err := net.SplitHostPort(c.Join); err != nil {
			return fieldError("Join", c.Join, err.Error())
		}
	}
	if n := len(c.GossipKey); n != 0 && n != 16 && n != 24 && n != 32 {
		return fieldError("GossipKey", fmt.Sprintf("%d bytes", n), "want 16, 24 or 32 bytes (AES-128, -192 or -256)")
	}
	for _, k := range c.GossipAcceptedKeys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fieldError("GossipAcceptedKeys", fmt.Sprintf("%d bytes", n), "want 16, 24 or 32 bytes (AES-128, -192 or -256)")
		}
	}
	if len(c.GossipAcceptedKeys) > 0 && len(c.GossipKey) == 0 {
		return fieldError("GossipAcceptedKeys", len(c.GossipAcceptedKeys), "without a GossipKey to send with")
	}
	switch {
	case c.BrokerID < 0:
		return fieldError("BrokerID", c.BrokerID, "negative")
	case c.MaxFrameBytes < minFrameBytes:
		return fieldError("MaxFrameBytes", c.MaxFrameBytes, fmt.Sprintf("below %d", minFrameBytes))
	case c.MaxConnections < 1:
		return fieldError("MaxConnections", c.MaxConnections, "below 1")
	case c.MaxInflightPerConn < 1:
		return fieldError("MaxInflightPerConn", c.MaxInflightPerConn, "below 1")
	case c.MaxInflightBytesPerConn < int64(c.MaxFrameBytes):
		return fieldError("MaxInflightBytesPerConn", c.MaxInflightBytesPerConn, "below MaxFrameBytes: one frame must fit")
	case c.MemoryBudget < int64(c.MaxFrameBytes):
		return fieldError("MemoryBudget", c.MemoryBudget, "below MaxFrameBytes: one frame must fit")
	case c.FrameReadTimeout < 0:
		return fieldError("FrameReadTimeout", c.FrameReadTimeout, "negative")
	case c.FirstRequestTimeout < 0:
		return fieldError("FirstRequestTimeout", c.FirstRequestTimeout, "negative")
	case c.IdleTimeout < 0:
		return fieldError("IdleTimeout", c.IdleTimeout, "negative")
	case c.WriteTimeout < 0:
		return fieldError("WriteTimeout", c.WriteTimeout, "negative")
	case c.MaxFetchWait < 0:
		return fieldError("MaxFetchWait", c.MaxFetchWait, "negative")
	case c.CleanerInterval < time.Millisecond:
		return fieldError("CleanerInterval", c.CleanerInterval, "below 1ms")
	case c.CleanerMaxBackoff < c.CleanerInterval:
		return fieldError("CleanerMaxBackoff", c.CleanerMaxBackoff, "below CleanerInterval")
	case c.CleanerKeyMapBytes < 0:
		return fieldError("CleanerKeyMapBytes", c.CleanerKeyMapBytes, "negative")
	case c.RetentionCheckInterval < time.Millisecond:
		return fieldError("RetentionCheckInterval", c.RetentionCheckInterval, "below 1ms")
	case c.DefaultPartitions < 1 || c.DefaultPartitions > controller.MaxPartitions:
		return fieldError("DefaultPartitions", c.DefaultPartitions, fmt.Sprintf("want 1 to %d", controller.MaxPartitions))
	case c.ProducerIDExpiration < time.Millisecond:
		return fieldError("ProducerIDExpiration", c.ProducerIDExpiration, "below 1ms")
	case c.ProducerIDMax < 1:
		return fieldError("ProducerIDMax", c.ProducerIDMax, "below 1")
	case c.RaftHeartbeatTimeout < time.Millisecond:
		return fieldError("RaftHeartbeatTimeout", c.RaftHeartbeatTimeout, "below 1ms")
	case c.RaftElectionTimeout < time.Millisecond:
		return fieldError("RaftElectionTimeout", c.RaftElectionTimeout, "below 1ms")
	case c.RaftCommitTimeout < time.Millisecond:
		return fieldError("RaftCommitTimeout", c.RaftCommitTimeout, "below 1ms")
	case c.RegisterTimeout < 0:
		return fieldError("RegisterTimeout", c.RegisterTimeout, "negative")
	case c.OffsetsTopicPartitions < 0 || c.OffsetsTopicPartitions > controller.MaxPartitions:
		return fieldError("OffsetsTopicPartitions", c.OffsetsTopicPartitions, fmt.Sprintf("want 1 to %d", controller.MaxPartitions))
	case c.DefaultReplicationFactor < 1:
		return fieldError("DefaultReplicationFactor", c.DefaultReplicationFactor, "below 1")
	case c.ProducerIDBlockSize < 1 || c.ProducerIDBlockSize > controller.MaxProducerIDBlock:
		return fieldError("ProducerIDBlockSize", c.ProducerIDBlockSize, fmt.Sprintf("want 1 to %d", controller.MaxProducerIDBlock))
	}
	if err := c.Group.Validate(); err != nil {
		return fmt.Errorf("%w: Group: %w", ErrConfig, err)
	}
	if err := c.Security.validate(len(voters) > 1 || c.Join != ""); err != nil {
		return err
	}
	if err := controller.ValidateConfigs(c.TopicDefaults); err != nil {
		return fmt.Errorf("%w: TopicDefaults: %w", ErrConfig, err)
	}
	if _, err := logConfig(topicValues(nil, c.TopicDefaults)); err != nil {
		return fmt.Errorf("%w: TopicDefaults: %w", ErrConfig, err)
	}
	return nil
}
