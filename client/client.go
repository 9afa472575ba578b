// Package client is the Go library for sluice: a producer, a consumer
// (of assigned partitions or as a consumer group member), queue group
// workers and an admin API behind one Client.
//
// New bootstraps from any of the seed brokers, learns the cluster from its
// metadata (topics → partitions → leader broker) and from then on sends
// each request straight to the broker that can serve it. Metadata is
// refreshed in the background, at once when a broker answers
// NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE
// or the like, and when a connection fails.
//
// # Connections
//
// A Client opens up to three TCP connections per broker: one for
// produces, one for the consumer's long-poll fetches and one for the rest
// (metadata, admin, list offsets). A broker answers each connection's
// requests in order, so keeping them apart means a produce never waits
// behind a fetch holding for FetchMaxWait. Requests on a connection are
// pipelined: a writer goroutine sends them as they come, a reader
// goroutine matches responses by correlation id. A request that gets no
// response within RequestTimeout closes its connection, failing what else
// was in flight on it; the next request dials again. A request any broker
// can serve (metadata, most admin calls, bootstrap) moves on to the next
// broker when one does not connect and answer the handshake within
// anyDialTimeout (3 s), and tries a broker whose dial failed in the last
// 30 s after the others. The connections of a
// broker that leaves the metadata are retired: what was sent on them still
// gets its answer, then they close.
//
// # Producing
//
// Produce buffers a record into its partition's batch and returns; the
// callback runs once the batch is acknowledged or has failed. Batches are
// sent when they reach BatchMaxBytes, when their first record has waited
// Linger, or on Flush. Records of a partition are written in Produce order
// and their callbacks run in that order.
//
// Idempotence (R13) is on by default with Acks(AcksAll), as in Kafka 3.0
// and later; Idempotent(false) turns it off, and asking for it with
// another ack level is an error at New. Before its first send the producer
// gets a producer id and epoch (InitProducerId) — lazily, so New works
// while the cluster is briefly unavailable — and stamps every batch with
// them and a per-partition sequence number; the leader writes a batch once
// however often it arrives. So up to five batches per partition are in
// flight, and a batch that fails with a retriable error is resent, with
// the later batches of its partition behind it, in order and with their
// sequences. A request that timed out or lost its connection is resent
// too: with idempotence a "maybe written" (indeterminate) failure reaches
// the callback only when DeliveryTimeout runs out. After
// UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH or an
// OUT_OF_ORDER_SEQUENCE_NUMBER that no earlier batch explains, the
// producer bumps its epoch and resends from sequence 0 (a batch that may
// have been written under the old epoch then fails, indeterminate, unless
// the leader's answer proved it unwritten: docs/idempotence.md). A
// cluster that does not serve InitProducerId turns default idempotence
// off; explicit idempotence then fails the records. Client.Idempotent says
// which it is.
//
// A batch of several records refused as MESSAGE_TOO_LARGE (the topic's
// max.message.bytes is below it) is split in halves, resent in its place,
// and split again while a half is refused; the topic's later batches are
// built no larger than the half that was sent. A single record over the
// limit fails, definitely, saying so.
//
// Without idempotence one batch per partition is in flight, a batch failing
// with a retriable, definite error is retried before any later batch of its
// partition, and a batch whose outcome is unknown (timeout, connection lost
// after sending) is never resent: its records fail with an indeterminate
// *ProduceError (R14).
//
// A batch in flight for 250 ms makes the producer refresh metadata every
// 250 ms; when its partition has a new leader, the producer stops waiting
// on the old leader's connection (a hung broker would hold it for
// RequestTimeout) and resends the batch to the new leader, or, without
// idempotence, fails it at once as indeterminate.
//
// Every record accepted by Produce gets its callback exactly once: Flush
// waits for all of them, and Close sends what is buffered before it returns
// (without retrying: a batch that fails during Close fails).
//
// # Consuming
//
// Assign partitions with a start Offset; background fetchers, one per
// leader broker, long-poll (FetchMinBytes / FetchMaxWait) and decode ahead
// of the application into a buffer bounded by MaxBufferedFetchBytes, and
// Poll hands over what has arrived. A fetcher sends its next fetch (from
// the offset after the response's last whole batch) while the response's
// records are being decoded, so the broker's work on the next response,
// over TLS its encryption, overlaps the client's decoding. Each batch's CRC is checked; a corrupt
// batch is reported by Poll as a *FetchError, never a panic.
//
// Records returned by Poll belong to the caller and are never touched by
// the client again, unless the caller gives them back with
// Fetches.Release: a consumer that is done with a Poll's records (it
// copied out what it keeps) releases them, and the client reads and
// decodes later fetch responses into their memory instead of allocating
// about the response's size per response, which on a fast consumer is
// most of its garbage collection. A Fetches never released stays valid
// for as long as it is referenced. To avoid a copy per record, their Key, Value and
// header bytes share memory with other records of the same fetch response:
// keeping one record alive keeps its whole response alive, and the caller
// must not append to those slices (they may share capacity with the next
// record's bytes). Copy a record's bytes to retain a few records from a
// large fetch for a long time.
//
// # Consumer groups
//
// With the ConsumerGroup option the Client is a member of a consumer group
// (KIP-848's protocol): the group's coordinator assigns it partitions of
// the subscribed topics, and Poll returns their records. A goroutine of
// the member heartbeats and reconciles each new assignment — revoking
// first (stop fetching, commit the consumed offsets, OnRevoked, report
// the partition released), then starting new partitions at their
// committed offsets. Delivery is at least once: a record is committed
// only after the application called Poll again (or Commit, or Close)
// since it was returned. group.go and docs/client-groups.md say exactly
// what is committed when. Admin calls for groups: ListGroups,
// DescribeGroup, DeleteGroups, ResetOffsets, CommittedOffsets.
//
// # Queue groups
//
// QueueGroup makes the Client a worker of a queue group: Receive acquires
// records one by one under a lease (any number of workers, several on one
// partition, no order promised), and each Delivery is settled once:
// Accept (done), Release (delivered again, after an optional delay),
// Reject (to the group's dead-letter topic) or Renew (a longer lease). A
// lease that runs out gives the record to another worker, and the late
// settlement fails with ErrLeaseLost. AcceptAsync sends the acceptance
// with the next Receive. Admin calls: DescribeQueueGroup,
// DescribeQueueGroupConfigs, AlterQueueGroupConfigs, ResetQueueGroup,
// RedriveQueueGroup (docs/queues.md).
//
// # Concurrency
//
// A Client is safe for concurrent use. Close stops every goroutine it
// started and closes every connection; it is idempotent.
package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// Record is one record, produced or consumed.
//
// To produce, set Topic, Value and optionally Key, Headers, Timestamp
// (default: the time of Produce) and Partition (used only by
// ManualPartitioner). The producer owns the Record from Produce until the
// callback, and fills in Partition and Offset (-1 with acks=0).
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []record.Header
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// Client is a connection to a sluice cluster: producer, consumer and admin.
type Client struct {
	cfg    config
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex
	brokers map[int32]*broker // from metadata
	seeds   []*broker
	rr      int              // round robin over brokers for "any broker" requests
	coords  map[string]int32 // group → its coordinator's broker id, as last found

	meta  metadata
	prod  producer
	cons  consumer
	group *group // nil unless ConsumerGroup
}

// broker is one broker's address and its connections, one per connKind,
// each dialled lazily and again after it fails. mu serialises dialling
// only.
type broker struct {
	id   int32 // -1 for a seed not yet matched to an id
	addr string
	mu   sync.Mutex
	cns  [numConnKinds]*conn
	// dialFailed is when the last dial failed, in Unix nanoseconds; 0
	// once a dial succeeds. Atomic: anyConn reads it without mu, which a
	// dial holds.
	dialFailed atomic.Int64
	// limitedSince is when the broker began refusing our connections at
	// its connection limit (ErrConnectionLimit), limitedLast when it last
	// did; zero while it does not. Guarded by mu.
	limitedSince, limitedLast time.Time
}

// connKind keeps apart traffic that must not queue behind other traffic:
// a broker answers one connection's requests in order, so a produce sent
// after a long-poll fetch on the same connection would wait for the
// fetch's answer (up to FetchMaxWait), and a metadata refresh behind a
// produce waiting for acks=all. Each kind has its own connection.
type connKind uint8

const (
	connNormal  connKind = iota // metadata, admin, list offsets
	connProduce                 // produce
	connFetch                   // long-poll fetches
	numConnKinds
)

// New returns a Client bootstrapped from the seed brokers: it has fetched
// cluster metadata from one of them before it returns. ctx bounds the
// bootstrap only: without a deadline a seed that accepts and never
// answers costs up to 1 + RequestRetries attempts; with one, the seeds
// share the time left (see anyConn), so give New a deadline to bound it.
func New(ctx context.Context, opts ...Opt) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, brokers: map[int32]*broker{}, coords: map[string]int32{}}
	for _, a := range cfg.seeds {
		c.seeds = append(c.seeds, &broker{id: -1, addr: a})
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.meta.init()
	c.prod.init(c)
	c.cons.init(c)
	if err := c.bootstrap(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("client: bootstrap: %w", err)
	}
	c.wg.Add(1)
	go c.metadataLoop()
	if cfg.group != nil {
		c.group = newGroup(c, cfg.group)
		c.group.start()
	}
	return c, nil
}

// bootstrap fetches the first metadata. A seed that is down or answers
// with an error (BROKER_NOT_AVAILABLE while it starts, say) is not the end:
// each try asks the next seed, up to RequestRetries more tries with
// backoff, within ctx.
func (c *Client) bootstrap(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := c.refreshMetadata(ctx)
		if err == nil || attempt >= c.cfg.requestRetries || ctx.Err() != nil || errors.Is(err, ErrAuthentication) {
			return err // refused credentials are refused by every seed
		}
		if serr := c.sleep(ctx, c.backoff(attempt+1)); serr != nil {
			return err
		}
	}
}

// Close leaves the consumer group, if any (committing, with AutoCommit,
// every record Poll returned; see ConsumerGroup), sends what the producer
// has buffered (see the package comment), then stops every goroutine and
// closes every connection. It is idempotent
// and safe to call concurrently with other methods, which fail with
// ErrClosed afterwards.
func (c *Client) Close() {
	c.once.Do(func() {
		if c.group != nil {
			c.group.close()
		}
		c.prod.close()
		c.cons.close()
		c.cancel()
		c.wg.Wait()
		c.mu.Lock()
		all := append([]*broker(nil), c.seeds...)
		for _, b := range c.brokers {
			all = append(all, b)
		}
		c.mu.Unlock()
		for _, b := range all {
			b.mu.Lock()
			for _, cn := range b.cns {
				if cn != nil {
					cn.close()
				}
			}
			b.mu.Unlock()
		}
	})
}

// closed reports whether Close has begun.
func (c *Client) closed() bool { return c.ctx.Err() != nil }

// connTo returns b's connection of kind k, dialling if it has none or it
// died.
func (c *Client) connTo(ctx context.Context, b *broker, k connKind) (*conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cn := b.cns[k]; cn != nil && cn.alive() {
		return cn, nil
	}
	if c.closed() {
		return nil, ErrClosed
	}
	if b.cns[k] != nil {
		b.cns[k].close()
		b.cns[k] = nil
	}
	cn, err := dialConn(ctx, &c.cfg, b.addr)
	if err != nil {
		now := time.Now()
		b.dialFailed.Store(now.UnixNano())
		var ce *connError
		if !errors.Is(err, ErrConnectionLimit) || !errors.As(err, &ce) {
			b.limitedSince = time.Time{}
			return nil, err
		}
		// Refused at the broker's connection limit: retried like any
		// failure to connect while it lasts less than DialTimeout, then
		// final, so the caller hears of it instead of retrying until its
		// delivery timeout.
		if b.limitedSince.IsZero() || now.Sub(b.limitedLast) > c.cfg.dialTimeout {
			b.limitedSince = now // not refused lately: a new episode
		}
		b.limitedLast = now
		if since := now.Sub(b.limitedSince); since >= c.cfg.dialTimeout {
			ce.final = true
			ce.err = fmt.Errorf("%w (for %v)", ce.err, since.Round(time.Millisecond))
		}
		return nil, err
	}
	b.dialFailed.Store(0)
	b.limitedSince = time.Time{}
	b.cns[k] = cn
	return cn, nil
}

// retire hands cn, the conn of a broker that left the metadata or moved,
// to conn.retire, and makes sure Close still closes it.
func (c *Client) retire(cn *conn) {
	cn.retire()
	if c.closed() {
		cn.close()
		return
	}
	c.wg.Add(1) // called from the metadata loop or New: wg is not being waited on yet
	go func() {
		defer c.wg.Done()
		select {
		case <-cn.done:
		case <-c.ctx.Done():
			cn.close()
		}
	}()
}

// brokerConn returns the connection of kind k to broker id. A failure to
// connect asks for fresh metadata.
func (c *Client) brokerConn(ctx context.Context, id int32, k connKind) (*conn, error) {
	c.mu.Lock()
	b := c.brokers[id]
	c.mu.Unlock()
	if b == nil {
		c.meta.requestRefresh()
		return nil, &connError{addr: fmt.Sprintf("id %d", id), err: errors.New("broker not in metadata")}
	}
	cn, err := c.connTo(ctx, b, k)
	if err != nil {
		// A broker that restarted may listen elsewhere now; only fresh
		// metadata can say.
		c.meta.requestRefresh()
	}
	return cn, err
}

// anyConn returns a connection to some broker, trying the known brokers and
// then the seeds in turn, starting after the last one used; brokers whose
// last dial failed less than failedFor ago go last. While another broker
// remains to be tried, a broker gets anyDialTimeout to connect and answer
// the handshake: a hung broker (paused, or its host gone) accepts a
// connection and never answers, and must not hold a metadata or admin
// request for the whole DialTimeout. When ctx has a deadline, a broker
// gets no more than an equal share of the time left among the brokers
// still to try (at least minDialShare), so a short bootstrap (the CLI's
// --timeout) still reaches the seeds behind a hung one.
func (c *Client) anyConn(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	all := make([]*broker, 0, len(c.brokers)+len(c.seeds))
	for _, b := range c.brokers {
		all = append(all, b)
	}
	all = append(all, c.seeds...)
	c.rr++
	start := c.rr
	c.mu.Unlock()
	cands := make([]*broker, 0, len(all))
	recent := time.Now().Add(-failedFor).UnixNano()
	for pass := range 2 {
		for i := range all {
			b := all[(start+i)%len(all)]
			if failed := b.dialFailed.Load() > recent; failed == (pass == 1) {
				cands = append(cands, b)
			}
		}
	}
	var errs []error
	for i, b := range cands {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if i < len(cands)-1 {
			d := anyDialTimeout
			if dl, ok := ctx.Deadline(); ok {
				d = min(d, max(time.Until(dl)/time.Duration(len(cands)-i), minDialShare))
			}
			actx, cancel = context.WithTimeout(ctx, d)
		}
		cn, err := c.connTo(actx, b, connNormal)
		cancel()
		if err == nil {
			return cn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || c.closed() {
			break
		}
	}
	return nil, fmt.Errorf("no broker reachable: %w", errors.Join(errs...))
}

// anyDialTimeout bounds each attempt of anyConn but the last, and
// minDialShare is the least it gives one under a deadline; failedFor is
// how long a broker whose dial failed is tried after the others.
const (
	anyDialTimeout = 3 * time.Second
	minDialShare   = 250 * time.Millisecond
	failedFor      = 30 * time.Second
)

// anyBroker is the target of requests any broker can serve.
const anyBroker int32 = -1

// waitsForWork reports whether req's answer comes only once the broker
// has done what it asks, which may take longer than anyFirstTry on a
// healthy broker: ElectLeaders hands each partition over (fence, drain
// the followers, switch). Its first try at another broker after
// anyFirstTry found the handovers done and answered ELECTION_NOT_NEEDED
// for partitions the first try had moved (a flaky
// TestRebalanceLeadersCommandLosesNoAck on a loaded machine).
func waitsForWork(req protocol.Message) bool {
	_, ok := req.(*protocol.ElectLeadersRequest)
	return ok
}

// roundTrip sends req to broker id (or any broker) and decodes the answer
// into resp, retrying retriable failures up to RequestRetries times with
// backoff. idempotent says whether a request that may have been applied
// can be sent again (see classify). The response's top-level error code
// becomes the error.
//
// A request any broker can serve that is safe to send again gets
// anyFirstTry for its first try, as a metadata refresh does: a hung broker
// (paused, its host gone) whose connection is still open must not hold an
// InitProducerId — and with it every batch of an idempotent producer —
// for the whole RequestTimeout. The next try goes to the next broker with
// the whole timeout, at once.
//
// A request whose answer waits for work the broker does (waitsForWork)
// gets the whole timeout at once: cut short, it would be sent again while
// the first broker still does it, and the second answer would misreport
// what the first did.
func (c *Client) roundTrip(ctx context.Context, id int32, req protocol.Message, newResp func() protocol.Message, idempotent bool) (protocol.Message, error) {
	for attempt := 0; ; attempt++ {
		tctx, cancel := ctx, context.CancelFunc(func() {})
		short := attempt == 0 && id == anyBroker && idempotent && !waitsForWork(req) && c.cfg.requestTimeout > anyFirstTry
		if short {
			tctx, cancel = context.WithTimeout(ctx, anyFirstTry)
		}
		resp, addr, err := c.roundTripOnce(tctx, id, req, newResp())
		cancel()
		if err == nil {
			return resp, nil
		}
		if short && tctx.Err() != nil && ctx.Err() == nil {
			c.suspect(addr)
			continue
		}
		cl := classify(err, idempotent)
		if cl.refresh {
			c.meta.requestRefresh()
		}
		if !cl.retry || attempt >= c.cfg.requestRetries || ctx.Err() != nil {
			return nil, err
		}
		if err := c.sleep(ctx, c.backoff(attempt+1)); err != nil {
			return nil, err
		}
	}
}

// roundTripOnce sends req once; addr is the broker it went to ("" when
// none was reached).
func (c *Client) roundTripOnce(ctx context.Context, id int32, req, resp protocol.Message) (protocol.Message, string, error) {
	var cn *conn
	var err error
	if id == anyBroker {
		cn, err = c.anyConn(ctx)
	} else {
		cn, err = c.brokerConn(ctx, id, connNormal)
	}
	if err != nil {
		return nil, "", err
	}
	if err := cn.do(ctx, req, resp, c.cfg.requestTimeout, false); err != nil {
		return nil, cn.addr, err
	}
	if code := topCode(resp); code != protocol.NoError {
		return nil, cn.addr, fmt.Errorf("broker %s: %v: %w", cn.addr, req.Key(), code.Err())
	}
	return resp, cn.addr, nil
}

// suspect makes anyConn try the broker at addr after the others for
// failedFor, as after a failed dial: it held a request past anyFirstTry
// (paused, or its host gone, with its connection still open).
func (c *Client) suspect(addr string) {
	if addr == "" {
		return
	}
	now := time.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.brokers {
		if b.addr == addr {
			b.dialFailed.Store(now)
		}
	}
	for _, b := range c.seeds {
		if b.addr == addr {
			b.dialFailed.Store(now)
		}
	}
}

// topCode is a response's top-level error code (the uniform error rule:
// every response body starts with one).
func topCode(m protocol.Message) protocol.ErrorCode {
	switch r := m.(type) {
	case *protocol.MetadataResponse:
		return r.ErrorCode
	case *protocol.ProduceResponse:
		return r.ErrorCode
	case *protocol.FetchResponse:
		return r.ErrorCode
	case *protocol.ListOffsetsResponse:
		return r.ErrorCode
	case *protocol.CreateTopicsResponse:
		return r.ErrorCode
	case *protocol.DeleteTopicsResponse:
		return r.ErrorCode
	case *protocol.DescribeConfigsResponse:
		return r.ErrorCode
	case *protocol.AlterConfigsResponse:
		return r.ErrorCode
	case *protocol.APIVersionsResponse:
		return r.ErrorCode
	case *protocol.DescribeClusterResponse:
		return r.ErrorCode
	case *protocol.ControllerForwardResponse:
		return r.ErrorCode
	case *protocol.AlterClusterMembershipResponse:
		// Its caller reads a refusal with the controller's reason; a
		// retriable code is retried here.
		if r.ErrorCode.Retriable() {
			return r.ErrorCode
		}
		return protocol.NoError
	}
	// Every response has a top-level error code (the protocol's uniform
	// rule); a type added without a case above is still read, by name.
	v := reflect.ValueOf(m)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("ErrorCode"); f.IsValid() && f.Type() == reflect.TypeFor[protocol.ErrorCode]() {
			return protocol.ErrorCode(f.Int())
		}
	}
	return protocol.NoError
}

// backoff is the wait before retry number attempt (1-based): RetryBackoff's
// min doubled per attempt, capped at its max, minus up to 20% jitter so
// clients that failed together do not retry together.
func (c *Client) backoff(attempt int) time.Duration {
	return backoff(c.cfg.retryBackoff[0], c.cfg.retryBackoff[1], attempt, rand.Float64())
}

func backoff(lo, hi time.Duration, attempt int, jitter float64) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - time.Duration(float64(d)*0.2*jitter)
}

// sleep waits d, or less if ctx ends or the Client closes.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// notifier wakes every waiter at once: wait returns a channel that the
// next notify closes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

// kick does a non-blocking send on a wake-up channel of capacity 1.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
