package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// Opt configures a Client. Options are functional, as in franz-go's kgo:
// New applies them in order over the defaults below, then validates the
// result and names the first bad option in its error. Every option has a
// default; only SeedBrokers is required.
type Opt func(*config)

// config is the resolved configuration. Fields are read-only after New.
type config struct {
	seeds          []string
	clientID       string
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	dialTimeout    time.Duration
	requestTimeout time.Duration
	// moveGrace: the producer's moveGrace (sender.go); only tests set
	// another.
	moveGrace      time.Duration
	retryBackoff   [2]time.Duration // min, max
	requestRetries int
	metadataMaxAge time.Duration
	maxFrameBytes  int
	sasl           *saslConfig // nil: no authentication

	// producer
	linger           time.Duration
	batchMaxBytes    int
	maxBufferedBytes int64
	codec            record.Codec
	acks             AckLevel
	produceTimeout   time.Duration
	deliveryTimeout  time.Duration
	partitioner      Partitioner
	idempotence      idempotence

	// consumer
	fetchMaxWait          time.Duration
	fetchMinBytes         int32
	fetchMaxBytes         int32
	fetchMaxPartBytes     int32
	maxBufferedFetchBytes int
	isolation             protocol.IsolationLevel

	group *groupConfig // nil: not in a consumer group

	tls *tls.Config // nil: plaintext
}

// Defaults, as documented on each option.
const (
	DefaultClientID              = "sluice-go"
	DefaultDialTimeout           = 10 * time.Second
	DefaultRequestTimeout        = 30 * time.Second
	DefaultRetryBackoffMin       = 100 * time.Millisecond
	DefaultRetryBackoffMax       = time.Second
	DefaultRequestRetries        = 5
	DefaultMetadataMaxAge        = 5 * time.Minute
	DefaultLinger                = 5 * time.Millisecond
	DefaultBatchMaxBytes         = 1 << 20
	DefaultMaxBufferedBytes      = 64 << 20
	DefaultProduceTimeout        = 10 * time.Second
	DefaultDeliveryTimeout       = 2 * time.Minute
	DefaultFetchMaxWait          = 500 * time.Millisecond
	DefaultFetchMinBytes         = 1
	DefaultFetchMaxBytes         = 50 << 20
	DefaultFetchMaxPartBytes     = 1 << 20
	DefaultMaxBufferedFetchBytes = 64 << 20
)

func defaultConfig() config {
	var d net.Dialer
	return config{
		clientID:              DefaultClientID,
		dial:                  d.DialContext,
		dialTimeout:           DefaultDialTimeout,
		requestTimeout:        DefaultRequestTimeout,
		moveGrace:             moveGrace,
		retryBackoff:          [2]time.Duration{DefaultRetryBackoffMin, DefaultRetryBackoffMax},
		requestRetries:        DefaultRequestRetries,
		metadataMaxAge:        DefaultMetadataMaxAge,
		maxFrameBytes:         protocol.DefaultMaxFrameSize,
		linger:                DefaultLinger,
		batchMaxBytes:         DefaultBatchMaxBytes,
		maxBufferedBytes:      DefaultMaxBufferedBytes,
		codec:                 record.None,
		acks:                  AcksAll,
		produceTimeout:        DefaultProduceTimeout,
		deliveryTimeout:       DefaultDeliveryTimeout,
		partitioner:           KeyPartitioner(),
		fetchMaxWait:          DefaultFetchMaxWait,
		fetchMinBytes:         DefaultFetchMinBytes,
		fetchMaxBytes:         DefaultFetchMaxBytes,
		fetchMaxPartBytes:     DefaultFetchMaxPartBytes,
		maxBufferedFetchBytes: DefaultMaxBufferedFetchBytes,
		isolation:             protocol.ReadUncommitted,
	}
}

// validate names the first option whose value cannot work.
func (c *config) validate() error {
	bad := func(opt, format string, args ...any) error {
		return fmt.Errorf("client: option %s: %s", opt, fmt.Sprintf(format, args...))
	}
	switch {
	case len(c.seeds) == 0:
		return bad("SeedBrokers", "at least one broker address is required")
	case c.sasl != nil && c.sasl.validate() != nil:
		return bad("SASL", "%v", c.sasl.validate())
	case c.dial == nil:
		return bad("Dialer", "nil")
	case c.tls != nil && c.tls.MinVersion != 0 && c.tls.MinVersion < tls.VersionTLS12:
		return bad("TLS", "MinVersion %#x, must be TLS 1.2 or later", c.tls.MinVersion)
	case c.dialTimeout <= 0:
		return bad("DialTimeout", "%v, must be positive", c.dialTimeout)
	case c.requestTimeout <= 0:
		return bad("RequestTimeout", "%v, must be positive", c.requestTimeout)
	case c.retryBackoff[0] <= 0 || c.retryBackoff[1] < c.retryBackoff[0]:
		return bad("RetryBackoff", "min %v, max %v: need 0 < min <= max", c.retryBackoff[0], c.retryBackoff[1])
	case c.requestRetries < 0:
		return bad("RequestRetries", "%d, must be >= 0", c.requestRetries)
	case c.metadataMaxAge <= 0:
		return bad("MetadataMaxAge", "%v, must be positive", c.metadataMaxAge)
	case c.maxFrameBytes < 1<<10:
		return bad("MaxFrameBytes", "%d, must be at least 1 KiB", c.maxFrameBytes)
	case c.linger < 0:
		return bad("Linger", "%v, must be >= 0", c.linger)
	case c.batchMaxBytes < record.HeaderSize+64 || c.batchMaxBytes > c.maxFrameBytes:
		return bad("BatchMaxBytes", "%d, must be in [%d, MaxFrameBytes %d]", c.batchMaxBytes, record.HeaderSize+64, c.maxFrameBytes)
	case c.maxBufferedBytes < int64(c.batchMaxBytes):
		return bad("MaxBufferedBytes", "%d, must be at least BatchMaxBytes (%d)", c.maxBufferedBytes, c.batchMaxBytes)
	case c.codec > record.Zstd:
		return bad("Compression", "unknown codec %d", c.codec)
	case c.acks != AcksNone && c.acks != AcksLeader && c.acks != AcksAll:
		return bad("Acks", "%d, must be AcksNone (0), AcksLeader (1) or AcksAll (-1)", c.acks)
	case c.produceTimeout <= 0 || c.produceTimeout.Milliseconds() > 1<<31-1:
		return bad("ProduceTimeout", "%v, must be positive and fit in i32 milliseconds", c.produceTimeout)
	case c.deliveryTimeout <= 0:
		return bad("DeliveryTimeout", "%v, must be positive", c.deliveryTimeout)
	case c.idempotence == idempotenceOn && c.acks != AcksAll:
		return bad("Idempotent", "needs Acks(AcksAll), have acks=%v", c.acks)
	case c.partitioner == nil:
		return bad("RecordPartitioner", "nil")
	case c.fetchMaxWait < 0 || c.fetchMaxWait.Milliseconds() > 1<<31-1:
		return bad("FetchMaxWait", "%v, must be >= 0 and fit in i32 milliseconds", c.fetchMaxWait)
	case c.fetchMinBytes < 0:
		return bad("FetchMinBytes", "%d, must be >= 0", c.fetchMinBytes)
	case c.fetchMaxPartBytes <= 0 || c.fetchMaxBytes < c.fetchMaxPartBytes:
		return bad("FetchMaxBytes", "max %d, per partition %d: need 0 < per partition <= max", c.fetchMaxBytes, c.fetchMaxPartBytes)
	case int(c.fetchMaxBytes) > c.maxFrameBytes:
		return bad("FetchMaxBytes", "%d exceeds MaxFrameBytes %d", c.fetchMaxBytes, c.maxFrameBytes)
	case c.maxBufferedFetchBytes <= 0:
		return bad("MaxBufferedFetchBytes", "%d, must be positive", c.maxBufferedFetchBytes)
	}
	if c.group != nil {
		return c.group.validate()
	}
	return nil
}

// SeedBrokers sets the host:port addresses to bootstrap from. Any one that
// answers is enough: the client learns the rest of the cluster from it.
// Required.
func SeedBrokers(addrs ...string) Opt {
	return func(c *config) { c.seeds = append([]string(nil), addrs...) }
}

// ClientID sets the id sent in every request header, for broker logs and
// quotas. Default DefaultClientID.
func ClientID(id string) Opt { return func(c *config) { c.clientID = id } }

// Dialer replaces how connections are opened (for TLS, proxies, or tests
// that inject faults). Default: a net.Dialer.
func Dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Opt {
	return func(c *config) { c.dial = dial }
}

// TLS makes every connection to a broker TLS under cfg (TLS 1.2 at
// least): cfg.RootCAs verify the brokers (nil: the system's CAs), and
// cfg.Certificates, if any, are offered for mutual TLS. Without
// cfg.ServerName each connection verifies the host of the broker's
// address. The handshake counts toward DialTimeout, and a broker that is
// not speaking TLS fails it with auth.ErrHandshake. auth.NewReloader and
// its ClientConfig("") build cfg from PEM files. Default: plaintext.
func TLS(cfg *tls.Config) Opt { return func(c *config) { c.tls = cfg } }

// DialTimeout bounds opening a connection, handshake included. Default 10s.
func DialTimeout(d time.Duration) Opt { return func(c *config) { c.dialTimeout = d } }

// RequestTimeout bounds how long the client waits for a response beyond any
// time it asked the broker to wait (Fetch's max wait, Produce's ack
// timeout). A request that times out closes its connection — the only way
// to be sure a late response cannot be mistaken for another's — so every
// request pipelined on it fails too. Default 30s.
func RequestTimeout(d time.Duration) Opt { return func(c *config) { c.requestTimeout = d } }

// RetryBackoff sets the exponential backoff between retries of a failed
// request: min doubling per attempt up to max, with up to 20% jitter below.
// Default 100ms to 1s.
func RetryBackoff(min, max time.Duration) Opt {
	return func(c *config) { c.retryBackoff = [2]time.Duration{min, max} }
}

// RequestRetries bounds retries of metadata, admin and list-offsets
// requests on retriable errors. Produce retries are bounded by
// DeliveryTimeout instead. Default 5.
func RequestRetries(n int) Opt { return func(c *config) { c.requestRetries = n } }

// MetadataMaxAge is how often metadata is refreshed when nothing forces a
// refresh sooner. Errors such as NOT_LEADER_OR_FOLLOWER refresh it at once.
// Default 5m.
func MetadataMaxAge(d time.Duration) Opt { return func(c *config) { c.metadataMaxAge = d } }

// MaxFrameBytes is the largest response frame accepted from a broker; a
// longer one closes the connection. Default protocol.DefaultMaxFrameSize.
func MaxFrameBytes(n int) Opt { return func(c *config) { c.maxFrameBytes = n } }

// Linger is how long a partition's batch waits for more records after its
// first before it is sent, trading latency for larger batches. 0 sends
// each batch as soon as the sender is free. Default 5ms.
func Linger(d time.Duration) Opt { return func(c *config) { c.linger = d } }

// BatchMaxBytes caps one batch (uncompressed estimate). A record that
// would push a batch over it starts the next batch; a single record larger
// than it fails with ErrRecordTooLarge. Default 1 MiB.
func BatchMaxBytes(n int) Opt { return func(c *config) { c.batchMaxBytes = n } }

// MaxBufferedBytes caps the record bytes buffered by the producer and not
// yet acknowledged. Produce blocks while the buffer is full, until space
// frees or its context ends. Default 64 MiB.
func MaxBufferedBytes(n int64) Opt { return func(c *config) { c.maxBufferedBytes = n } }

// Compression sets the codec of every produced batch. Default record.None.
func Compression(codec record.Codec) Opt { return func(c *config) { c.codec = codec } }

// AckLevel is what a produce waits for before the broker answers it.
type AckLevel int16

// The acknowledgement levels; their values are the protocol's acks.
const (
	// AcksNone: no response. The callback reports success once the
	// request is written, with offset -1; a record lost on the way is
	// never known.
	AcksNone AckLevel = AckLevel(protocol.AcksNone)
	// AcksLeader: the leader appended the batch. Lost if the leader fails
	// before a follower copied it.
	AcksLeader AckLevel = AckLevel(protocol.AcksLeader)
	// AcksAll: the in-sync replicas have the batch (the high watermark
	// covers it), refused while fewer than min.insync.replicas are in
	// sync. The default.
	AcksAll AckLevel = AckLevel(protocol.AcksAll)
)

// String is "none", "leader" or "all".
func (a AckLevel) String() string {
	switch a {
	case AcksNone:
		return "none"
	case AcksLeader:
		return "leader"
	case AcksAll:
		return "all"
	}
	return fmt.Sprintf("AckLevel(%d)", int16(a))
}

// Acks sets what a produce waits for: AcksNone, AcksLeader or AcksAll
// (the default).
func Acks(level AckLevel) Opt { return func(c *config) { c.acks = level } }

// ProduceTimeout is how long the broker may wait for acknowledgements
// (the request's timeout_ms). Default 10s.
func ProduceTimeout(d time.Duration) Opt { return func(c *config) { c.produceTimeout = d } }

// DeliveryTimeout bounds the time from Produce to the callback: a record
// still failing with retriable errors when it expires gets the last error
// (indeterminate if an attempt's outcome was unknown). Default 2m.
func DeliveryTimeout(d time.Duration) Opt { return func(c *config) { c.deliveryTimeout = d } }

// idempotence is the Idempotent setting: unset (on with AcksAll), on or
// off.
type idempotence int8

const (
	idempotenceDefault idempotence = iota
	idempotenceOn
	idempotenceOff
)

// idempotent reports whether the producer is idempotent: as set, or by
// default when acks are AcksAll (as Kafka >= 3.0).
func (c *config) idempotent() bool {
	return c.idempotence == idempotenceOn || (c.idempotence == idempotenceDefault && c.acks == AcksAll)
}

// Idempotent turns the idempotent producer on or off (R13). With it the
// producer gets a producer id and epoch from the cluster before its first
// send (InitProducerId) and numbers each partition's batches, so the
// leader writes a batch once however often it is retried: a batch whose
// request timed out or lost its connection is sent again with the same
// sequence, an indeterminate failure reaches the callback only when
// DeliveryTimeout runs out, and up to five batches per partition are in
// flight with their order kept. Without it one batch per partition is in
// flight and a batch whose outcome is unknown fails at once, indeterminate
// (R14). Default: on with Acks(AcksAll), off otherwise; on with another
// ack level is an error at New, as in Kafka. Default idempotence is turned
// off for a cluster that does not serve InitProducerId (Client.Idempotent
// tells); Idempotent(true) then fails the records.
func Idempotent(on bool) Opt {
	return func(c *config) {
		c.idempotence = idempotenceOff
		if on {
			c.idempotence = idempotenceOn
		}
	}
}

// RecordPartitioner chooses partitions for produced records. Default
// KeyPartitioner().
func RecordPartitioner(p Partitioner) Opt { return func(c *config) { c.partitioner = p } }

// FetchMaxWait is how long the broker may hold a fetch waiting for
// FetchMinBytes (long poll). Default 500ms.
func FetchMaxWait(d time.Duration) Opt { return func(c *config) { c.fetchMaxWait = d } }

// FetchMinBytes is how many bytes a fetch waits for before the broker
// answers. Default 1.
func FetchMinBytes(n int32) Opt { return func(c *config) { c.fetchMinBytes = n } }

// FetchMaxBytes caps one fetch response (max) and each partition's share of
// it (perPartition). Defaults 50 MiB and 1 MiB.
func FetchMaxBytes(max, perPartition int32) Opt {
	return func(c *config) { c.fetchMaxBytes, c.fetchMaxPartBytes = max, perPartition }
}

// MaxBufferedFetchBytes caps the fetched record-set bytes held for Poll:
// fetching pauses while the buffer is over it. Default 64 MiB.
func MaxBufferedFetchBytes(n int) Opt { return func(c *config) { c.maxBufferedFetchBytes = n } }

// ReadCommitted makes the consumer read only up to the last stable offset
// instead of the high watermark. Default: read uncommitted.
func ReadCommitted() Opt { return func(c *config) { c.isolation = protocol.ReadCommitted } }
