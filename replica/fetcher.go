package replica

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/protocol"
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Followed is a partition a Fetcher copies, as the broker holds it. The
// broker hands the fetcher a new Followed for every leadership it follows
// (leader and leader epoch), and each method refuses with an error once
// that leadership is over, so a fetch answered after a change is never
// applied to the log.
type Followed interface {
	// Truncate cuts the local log where it diverges from the leader's
	// (Follower.Truncate, R9). It runs before the first fetch of a
	// leadership and again when a fetch says the logs do not line up.
	Truncate(ctx context.Context, leader EpochSource) error
	// FetchOffset is where the next fetch starts: the local log end.
	FetchOffset() (int64, error)
	// Apply appends fetched batches (and, for fsync=always, syncs them,
	// so the next fetch offset is a synced position: R3) and takes the
	// leader's high watermark.
	Apply(records []byte, leaderHW int64) error
	// ResetTo restarts the local log at the leader's log start when the
	// whole local log lies below it (Follower.ResetTo).
	ResetTo(leaderStart int64) error
	// AdvanceStart moves the local log start up to the leader's, at most
	// to the local high watermark (Follower.AdvanceStart), after each
	// fetch that answered records or none.
	AdvanceStart(leaderStart int64) error
}

// ErrLeadershipOver is what a Followed returns once the leadership it was
// handed for is over (a new leader or epoch, or the partition closed):
// the fetcher drops what it fetched, quietly; the broker hands it a new
// Followed if the partition is still followed.
var ErrLeadershipOver = errors.New("replica: the followed leadership is over")

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	// Leader is the broker fetched from; Self is this broker.
	Leader, Self int32
	// BrokerEpoch is this broker's current epoch, sent with every fetch
	// so the leader can fence an earlier incarnation (R10). Called from
	// the fetch loop and the waker.
	BrokerEpoch func() int64
	// Addr is the leader's current client address, from the metadata;
	// false while unknown.
	Addr func() (string, bool)
	// ClientID names this fetcher in the leader's logs.
	ClientID string
	// Login, when set, authenticates each new connection to the leader
	// before its first fetch (the broker's login with the cluster secret).
	Login func(c *protocol.Conn, deadline time.Time) error
	// MaxWait is the fetch long-poll; default 500ms.
	MaxWait time.Duration
	// MaxBytes bounds a response; default 16 MiB. PartitionMaxBytes bounds
	// each partition's records; default 4 MiB.
	MaxBytes, PartitionMaxBytes int32
	// Backoff is the wait after a failure; default 100ms.
	Backoff time.Duration
	// Timeout bounds a dial and, beyond MaxWait, a request; default 5s.
	Timeout time.Duration
	// MaxFrameBytes bounds a response frame; default protocol's.
	MaxFrameBytes int
	// Dial opens the connection to the leader, within ctx (which carries
	// Timeout); TLS, when the brokers use it, is its business. Default
	// plain TCP.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger, naming this broker (field `broker`); the fetcher adds the
	// leader's id (`leader`). Default no-op.
	Logger *zap.Logger
}

func (c *FetcherConfig) applyDefaults() {
	if c.MaxWait <= 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 16 << 20
	}
	if c.PartitionMaxBytes <= 0 {
		c.PartitionMaxBytes = 4 << 20
	}
	if c.Backoff <= 0 {
		c.Backoff = 100 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// fetchEntry is one followed partition. truncated is set once Truncate
// succeeded for this entry; a replaced entry is a new pointer, so a round
// that started with the old one never marks the new one.
type fetchEntry struct {
	p         Followed
	epoch     int32
	truncated bool
	// warned is when the last apply failure was logged, and suppressed
	// how many failures since were not (warnEvery).
	warned     time.Time
	suppressed int
	// idle is the last answer applied with no records, when both Apply
	// and AdvanceStart took it: the same answer to a fetch from the same
	// offset changes nothing, and is not applied again (a follower of
	// thousands of idle partitions gets thousands every round).
	idle    idleAnswer
	idleSet bool
}

// idleAnswer is an answer with no records: the offset fetched from and
// the leader's high watermark and log start.
type idleAnswer struct {
	offset, hw, start int64
}

// warnEvery rate-limits a partition's repeated apply failures (a log
// gone offline fails every fetch): one warn line per interval, carrying
// how many were suppressed since the last.
const warnEvery = 10 * time.Second

// Fetcher copies every partition this broker follows from one leader
// broker: one connection, one Fetch at a time carrying all of them (the
// leader long-polls it), each partition first truncated where its log
// diverges from the leader's.
//
// A partition set while a Fetch waits in the leader's long-poll does not
// wait for it to run out: the fetcher interjects an empty replica Fetch
// on the same connection, which ends the leader's wait for the one in
// flight (handleFetch), and the next Fetch carries the new partition.
// The answer in flight is applied as any other, and the empty one is
// dropped, so nothing is fetched twice or out of order.
//
// It owns two goroutines, the fetch loop and the waker that interjects,
// both stopped by Close.
type Fetcher struct {
	cfg FetcherConfig
	log *zap.Logger

	mu    sync.Mutex
	parts map[TopicPartition]*fetchEntry
	wake  chan struct{} // capacity 1
	// gen counts the Sets. pollConn is the connection of the Fetch
	// waiting in the leader's long-poll (nil: none, or it was woken
	// already), pollGen the gen its partitions were taken at.
	gen      uint64
	pollConn *protocol.Conn
	pollGen  uint64
	nudge    chan struct{} // capacity 1: a Set for the waker

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wdone  chan struct{} // the waker's

	// Owned by the goroutine.
	conn    *protocol.Conn
	req     protocol.FetchRequest
	entries []snapshotEntry // the last snapshot's, reused
	// sent is what the Fetch asks, by topic and partition in its order
	// (sent[i][j] is req.Topics[i].Partitions[j]); topicAt indexes
	// req.Topics by name.
	sent     [][]sent
	topicAt  map[string]int
	fetchGen uint64 // the gen of the Fetch being sent
	onSent   func() // polling, made once
}

// StartFetcher starts a fetcher with no partitions.
func StartFetcher(cfg FetcherConfig) *Fetcher {
	cfg.applyDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fetcher{
		cfg:    cfg,
		log:    cfg.Logger.With(zap.Int32("leader", cfg.Leader)),
		parts:  map[TopicPartition]*fetchEntry{},
		wake:   make(chan struct{}, 1),
		nudge:  make(chan struct{}, 1),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		wdone:  make(chan struct{}),
	}
	f.onSent = f.polling
	go f.run()
	go f.waker()
	return f
}

// Set makes the fetcher copy tp for the leadership of epoch through p,
// replacing what it had for tp (which is truncated again first). A Fetch
// waiting in the leader's long-poll is woken, so tp is fetched at once.
func (f *Fetcher) Set(tp TopicPartition, epoch int32, p Followed) {
	f.mu.Lock()
	f.parts[tp] = &fetchEntry{p: p, epoch: epoch}
	f.gen++
	f.mu.Unlock()
	f.kick()
	signal(f.nudge)
}

// Remove stops copying tp.
func (f *Fetcher) Remove(tp TopicPartition) {
	f.mu.Lock()
	delete(f.parts, tp)
	f.mu.Unlock()
}

// Len is the number of partitions copied.
func (f *Fetcher) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.parts)
}

// Close stops the fetcher and waits for its goroutine. Idempotent.
func (f *Fetcher) Close() {
	f.cancel()
	<-f.done
	<-f.wdone
}

// waker ends the leader's long-poll of a Fetch that misses a partition
// set since it went out, by interjecting an empty replica Fetch (MaxWait
// 0) on its connection: the leader answers the waiting one at once, then
// the empty one, which the connection drops. It writes outside the fetch
// loop, which is blocked reading the answer, and outside Set, which must
// not wait on the network. A failed write breaks the connection; the
// fetch loop then reconnects as after any failure.
func (f *Fetcher) waker() {
	defer close(f.wdone)
	for {
		select {
		case <-f.nudge:
		case <-f.ctx.Done():
			return
		}
		f.mu.Lock()
		c := f.pollConn
		if c == nil || f.pollGen == f.gen {
			c = nil
		} else {
			f.pollConn = nil // one wake per Fetch
		}
		f.mu.Unlock()
		if c == nil {
			continue
		}
		req := &protocol.FetchRequest{ReplicaID: f.cfg.Self, ReplicaEpoch: f.cfg.BrokerEpoch(), MaxWaitMs: 0, MinBytes: 1, MaxBytes: f.cfg.MaxBytes}
		if err := c.Interject(time.Now().Add(f.cfg.Timeout), req, 0); err != nil {
			f.log.Debug("wake the replica fetch in flight", zap.Error(err))
		}
	}
}

func (f *Fetcher) kick() { signal(f.wake) }

// signal sends on ch, of capacity 1, unless a signal is pending.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sleep waits d, or less when woken; false once the fetcher is closing.
func (f *Fetcher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-f.wake:
	case <-f.ctx.Done():
		return false
	}
	return true
}

type snapshotEntry struct {
	tp TopicPartition
	e  *fetchEntry
}

// snapshot is the partitions to fetch, and the gen they were taken at.
func (f *Fetcher) snapshot() ([]snapshotEntry, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.entries)
	out := f.entries[:0]
	for tp, e := range f.parts {
		out = append(out, snapshotEntry{tp, e})
	}
	f.entries = out
	return out, f.gen
}

// current reports whether e is still the entry for tp.
func (f *Fetcher) current(tp TopicPartition, e *fetchEntry) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.parts[tp] == e
}

func (f *Fetcher) run() {
	defer close(f.done)
	defer f.closeConn()
	for f.ctx.Err() == nil {
		entries, gen := f.snapshot()
		if len(entries) == 0 {
			f.closeConn()
			select {
			case <-f.wake:
			case <-f.ctx.Done():
			}
			continue
		}
		if err := f.round(entries, gen); err != nil {
			if f.ctx.Err() != nil {
				return
			}
			f.log.Debug("replica fetch", zap.Error(err))
			f.closeConn()
			f.sleep(f.cfg.Backoff)
		}
	}
}

// round truncates what needs it and runs one Fetch for the entries of
// gen. An error means the connection is unusable.
func (f *Fetcher) round(entries []snapshotEntry, gen uint64) error {
	if err := f.dial(); err != nil {
		return err
	}
	failed := false
	ready := entries[:0]
	for _, se := range entries {
		if !se.e.truncated {
			err := se.e.p.Truncate(f.ctx, epochSource{f: f, tp: se.tp, epoch: se.e.epoch})
			if err != nil {
				var ce connError
				if errors.As(err, &ce) {
					return err
				}
				if !errors.Is(err, ErrLeadershipOver) {
					f.log.Info("replica truncation", zap.String("topic", se.tp.Topic), zap.Int32("partition", se.tp.Partition), zap.Error(err))
				}
				failed = true
				continue
			}
			f.mu.Lock()
			se.e.truncated = f.parts[se.tp] == se.e
			f.mu.Unlock()
			if !se.e.truncated {
				continue
			}
		}
		ready = append(ready, se)
	}
	if len(ready) > 0 {
		bad, err := f.fetch(ready, gen)
		if err != nil {
			return err
		}
		failed = failed || bad
	}
	if failed {
		f.sleep(f.cfg.Backoff)
	}
	return nil
}

// fetch sends one Fetch for ready, the partitions of gen, and applies the
// answer. It reports whether some partition failed (the caller backs
// off).
func (f *Fetcher) fetch(ready []snapshotEntry, gen uint64) (bool, error) {
	req := &f.req
	*req = protocol.FetchRequest{
		ReplicaID: f.cfg.Self, ReplicaEpoch: f.cfg.BrokerEpoch(),
		MaxWaitMs: int32(f.cfg.MaxWait / time.Millisecond), MinBytes: 1, MaxBytes: f.cfg.MaxBytes,
		Topics: req.Topics[:0],
	}
	for i := range f.sent {
		clear(f.sent[i])
		f.sent[i] = f.sent[i][:0]
	}
	if f.topicAt == nil {
		f.topicAt = map[string]int{}
	}
	clear(f.topicAt)
	failed, n := false, 0
	for _, se := range ready {
		off, err := se.e.p.FetchOffset()
		if err != nil {
			failed = true
			continue
		}
		i, ok := f.topicAt[se.tp.Topic]
		if !ok {
			i = len(req.Topics)
			f.topicAt[se.tp.Topic] = i
			req.Topics = append(req.Topics, protocol.FetchTopic{Name: se.tp.Topic})
			if i == len(f.sent) {
				f.sent = append(f.sent, nil)
			}
		}
		t := &req.Topics[i]
		t.Partitions = append(t.Partitions, protocol.FetchPartition{Partition: se.tp.Partition,
			CurrentLeaderEpoch: se.e.epoch, FetchOffset: off, LogStartOffset: -1, PartitionMaxBytes: f.cfg.PartitionMaxBytes})
		f.sent[i] = append(f.sent[i], sent{se.e, off})
		n++
	}
	if n == 0 {
		return true, nil
	}
	var resp protocol.FetchResponse
	f.fetchGen = gen
	err := f.do(req, &resp, f.cfg.MaxWait+f.cfg.Timeout, f.onSent)
	f.mu.Lock()
	f.pollConn = nil
	f.mu.Unlock()
	if err != nil {
		return false, err
	}
	if resp.ErrorCode != protocol.NoError {
		return false, connError{fmt.Errorf("fetch from broker %d: %w", f.cfg.Leader, resp.ErrorCode.Err())}
	}
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		for j := range rt.Partitions {
			pr := &rt.Partitions[j]
			tp := TopicPartition{rt.Name, pr.Partition}
			s, ok := f.asked(tp, j)
			if !ok || !f.current(tp, s.e) {
				continue
			}
			if !f.applyPartition(tp, s, pr) {
				failed = true
			}
		}
	}
	return failed, nil
}

// polling registers the Fetch just written on f.conn, of the partitions
// of fetchGen, for the waker, under the lock Set takes: a Set from now on
// finds it, and one since the snapshot of fetchGen (during truncation, or
// the moment before the write) nudges the waker here. Registered only
// once written, so a wake never reaches the leader before the Fetch it is
// to end.
func (f *Fetcher) polling() {
	gen := f.fetchGen
	f.mu.Lock()
	f.pollConn, f.pollGen = f.conn, gen
	missed := f.gen != gen
	f.mu.Unlock()
	if missed {
		signal(f.nudge)
	}
}

// sent is a partition of a Fetch: its entry and the offset asked for.
type sent struct {
	e      *fetchEntry
	offset int64
}

// asked finds what the Fetch asked of tp, the j-th partition of its
// topic in the answer: the leader answers in the order asked
// (handleFetch), so at the same place, else by a search.
func (f *Fetcher) asked(tp TopicPartition, j int) (sent, bool) {
	i, ok := f.topicAt[tp.Topic]
	if !ok {
		return sent{}, false
	}
	parts := f.req.Topics[i].Partitions
	if j < len(parts) && parts[j].Partition == tp.Partition {
		return f.sent[i][j], true
	}
	for k := range parts {
		if parts[k].Partition == tp.Partition {
			return f.sent[i][k], true
		}
	}
	return sent{}, false
}

// applyPartition handles one partition of a Fetch response; false when it
// failed.
func (f *Fetcher) applyPartition(tp TopicPartition, s sent, pr *protocol.FetchPartitionResponse) bool {
	e := s.e
	idle := idleAnswer{s.offset, pr.HighWatermark, pr.LogStartOffset}
	if pr.ErrorCode == protocol.NoError && len(pr.Records) == 0 && e.idleSet && e.idle == idle {
		return true
	}
	e.idleSet = false
	switch pr.ErrorCode {
	case protocol.NoError:
		if err := e.p.Apply(pr.Records, pr.HighWatermark); err != nil {
			if errors.Is(err, ErrLeadershipOver) {
				return false
			}
			if now := time.Now(); now.Sub(e.warned) >= warnEvery {
				f.log.Warn("apply fetched records; truncating again before the next fetch", zap.String("topic", tp.Topic),
					zap.Int32("partition", tp.Partition), zap.Int("suppressed", e.suppressed), zap.Error(err))
				e.warned, e.suppressed = now, 0
			} else {
				e.suppressed++
			}
			// Batches that do not continue the log (offsets, epochs) mean
			// the logs diverged after all: ask the leader again. A
			// corrupt fetch or a closed log costs one more question.
			e.truncated = false
			return false
		}
		if err := e.p.AdvanceStart(pr.LogStartOffset); err != nil {
			if !errors.Is(err, ErrLeadershipOver) {
				f.log.Warn("advance the log start to the leader's", zap.String("topic", tp.Topic), zap.Int32("partition", tp.Partition),
					zap.Int64("leader_log_start", pr.LogStartOffset), zap.Error(err))
			}
			return true
		}
		e.idle, e.idleSet = idle, len(pr.Records) == 0
		return true
	case protocol.ErrOffsetOutOfRange:
		if pr.LogStartOffset > s.offset {
			// Retention on the leader deleted what this replica would
			// fetch next: start again where the leader's log starts.
			if err := e.p.ResetTo(pr.LogStartOffset); err != nil {
				f.log.Warn("reset to the leader's log start", zap.String("topic", tp.Topic), zap.Int32("partition", tp.Partition), zap.Error(err))
				return false
			}
			f.log.Info("replica behind the leader's log start; restarted there", zap.String("topic", tp.Topic),
				zap.Int32("partition", tp.Partition), zap.Int64("from", s.offset), zap.Int64("to", pr.LogStartOffset))
			return true
		}
		// The leader holds less than this replica: truncation did not see
		// the whole divergence (the leader changed its log since). Ask
		// again.
		f.log.Info("fetch offset out of range on the leader; truncating again", zap.String("topic", tp.Topic), zap.Int32("partition", tp.Partition),
			zap.Int64("leader_log_start", pr.LogStartOffset), zap.Int64("leader_high_watermark", pr.HighWatermark))
		e.truncated = false
	default:
		// Stale or early metadata (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH,
		// NOT_LEADER_OR_FOLLOWER): the broker's metadata watcher moves the
		// partition when the controller says so; until then, back off.
		f.log.Debug("replica fetch refused", zap.String("topic", tp.Topic), zap.Int32("partition", tp.Partition), zap.Stringer("code", pr.ErrorCode))
	}
	return false
}

// epochSource answers OffsetForLeaderEpoch for one partition over the
// fetcher's connection.
type epochSource struct {
	f     *Fetcher
	tp    TopicPartition
	epoch int32 // the leader epoch followed, for fencing
}

// EndOffsetForEpoch implements EpochSource.
func (s epochSource) EndOffsetForEpoch(ctx context.Context, epoch int32) (int32, int64, error) {
	req := &protocol.OffsetForLeaderEpochRequest{ReplicaID: s.f.cfg.Self, Topics: []protocol.OffsetForLeaderEpochTopic{{
		Name: s.tp.Topic, Partitions: []protocol.OffsetForLeaderEpochPartition{{Partition: s.tp.Partition, CurrentLeaderEpoch: s.epoch, LeaderEpoch: epoch}},
	}}}
	var resp protocol.OffsetForLeaderEpochResponse
	if err := s.f.do(req, &resp, s.f.cfg.Timeout, nil); err != nil {
		return -1, -1, err
	}
	if resp.ErrorCode != protocol.NoError {
		return -1, -1, resp.ErrorCode.Err()
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if t.Name == s.tp.Topic && p.Partition == s.tp.Partition {
				if p.ErrorCode != protocol.NoError {
					return -1, -1, p.ErrorCode.Err()
				}
				return p.LeaderEpoch, p.EndOffset, nil
			}
		}
	}
	return -1, -1, fmt.Errorf("offset for leader epoch: %s-%d missing from the response", s.tp.Topic, s.tp.Partition)
}

// connError is a failure of the connection to the leader (the fetcher
// reconnects), as opposed to a partition's refusal.
type connError struct{ err error }

func (e connError) Error() string { return e.err.Error() }
func (e connError) Unwrap() error { return e.err }

func (f *Fetcher) dial() error {
	if f.conn != nil {
		return nil
	}
	addr, ok := f.cfg.Addr()
	if !ok {
		return connError{fmt.Errorf("broker %d: address unknown", f.cfg.Leader)}
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.Timeout)
	defer cancel()
	nc, err := f.cfg.Dial(ctx, "tcp", addr)
	if err != nil {
		return connError{fmt.Errorf("dial broker %d at %s: %w", f.cfg.Leader, addr, err)}
	}
	c := protocol.NewConn(f.ctx, nc, f.cfg.ClientID, f.cfg.MaxFrameBytes)
	if f.cfg.Login != nil {
		if err := f.cfg.Login(c, time.Now().Add(f.cfg.Timeout)); err != nil {
			c.Close()
			return connError{fmt.Errorf("log in to broker %d at %s: %w", f.cfg.Leader, addr, err)}
		}
	}
	f.conn = c
	return nil
}

func (f *Fetcher) closeConn() {
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}

// do sends req and decodes the answer into resp, within timeout, calling
// sent (when not nil) once req is written. A request that could not be
// encoded is a bug, not the connection's failure; any other failure is a
// connError and leaves the connection closed.
func (f *Fetcher) do(req, resp protocol.Message, timeout time.Duration, sent func()) error {
	if err := f.dial(); err != nil {
		return err
	}
	err := f.conn.RoundTripSent(time.Now().Add(timeout), req, resp, 0, sent)
	if err == nil {
		return nil
	}
	f.closeConn()
	if errors.Is(err, protocol.ErrNotSent) && f.ctx.Err() == nil {
		return fmt.Errorf("broker %d: %w", f.cfg.Leader, err)
	}
	return connError{fmt.Errorf("broker %d: %w", f.cfg.Leader, err)}
}
