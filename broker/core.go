package broker

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// The broker core: what a front end (the sluice protocol in this package,
// the Kafka protocol, HTTP) asks of the broker, as plain Go calls with no
// wire types. A front end decodes a request, calls the core, and encodes
// what it returns; it owns no behaviour of its own, so every front end
// behaves the same. The per-partition operations are in partition.go;
// ErrorCode (errors.go) maps every error the core returns to the code a
// front end answers with. docs/broker.md has the call sequence of a
// produce and of a fetch.
//
// The model is Kafka's ReplicaManager (find the partition, refuse what this
// broker cannot serve) over Partition.appendRecordsToLeader (one method
// owns the steps of an append).

// partitionFor returns the partition if this broker leads it, or the
// definite refusal a client request gets: unknown, not the leader (the
// client refreshes its metadata), or no leader yet. cu is the request's
// catch-up (nil: the call is a request of its own).
func (b *Broker) partitionFor(cu *CatchUp, topic string, index int32) (*partition, error) {
	if p := b.parts.get(topic, index); p != nil {
		return p, nil
	}
	md := b.store.Metadata()
	t, ok := md.Topics[topic]
	if !ok || index < 0 || int(index) >= len(t.Partitions) {
		// Unknown here, but perhaps only not applied here yet: a client
		// that learned of a new topic (or partition) from a broker ahead
		// of this one comes here first, and a Kafka client refused waits
		// for its next metadata refresh (franz-go: 5 s). Catch up with
		// the controller (once per request) and look again.
		if index < 0 || !b.catchUp(cu, md.Version) {
			return nil, protocol.ErrUnknownTopicOrPartition
		}
		if p := b.parts.get(topic, index); p != nil {
			return p, nil
		}
		md = b.store.Metadata()
		if t, ok = md.Topics[topic]; !ok || int(index) >= len(t.Partitions) {
			return nil, protocol.ErrUnknownTopicOrPartition
		}
	}
	switch leader := t.Partitions[index].Leader; {
	case leader < 0:
		return nil, protocol.ErrLeaderNotAvailable // offline: no leader yet
	case leader != b.cfg.BrokerID:
		if br, ok := md.Brokers[leader]; !ok || br.State != controller.BrokerAlive {
			return nil, protocol.ErrLeaderNotAvailable
		}
		return nil, protocol.ErrNotLeaderOrFollower
	}
	// Ours, but its log is not open: the metadata that made it ours may
	// not be applied yet (a topic just created: a client that learned its
	// leaders from a broker that applied it first comes here before this
	// broker opened the log). Wait for that, briefly, rather than refuse:
	// a Kafka client refused here retries only after its next metadata
	// refresh, which franz-go holds back for MetadataMinAge (5 s) after
	// the last one (issue 13: the 5 s produce stalls of a new topic).
	if b.parts.awaitReconciled(md.Version, openWait) {
		if p := b.parts.get(topic, index); p != nil {
			return p, nil
		}
	}
	// Still not open (it failed to open, or the reconcile is slow): a
	// definite, retriable refusal.
	return nil, protocol.ErrLeaderNotAvailable
}

// openWait bounds how long a request waits in partitionFor for the
// metadata naming this broker a partition's leader to be applied, and
// for its catch-up's read barrier. Opening a new partition's log takes
// milliseconds, tens under load. A variable for tests only.
var openWait = time.Second

// CaughtUpMetadata returns this broker's metadata, caught up with the
// controller first (catchUp) when it lacks one of topics: a front end
// answering a client about a topic created through another broker would
// otherwise call it unknown while this broker's Raft apply lags (a Kafka
// client then asks again only after franz-go's MetadataMinAge, 5 s). One
// call is one request: it catches up once at most. ids are topics named
// by their id (controller.Topic.ID; a Kafka Metadata request from v12),
// caught up as names are.
func (b *Broker) CaughtUpMetadata(topics []string, ids ...uint64) *controller.Metadata {
	md := b.store.Metadata()
	for _, name := range topics {
		if _, ok := md.Topics[name]; !ok && controller.ValidateTopicName(name) == nil {
			b.catchUp(nil, md.Version)
			return b.store.Metadata()
		}
	}
	// Ids are given in creation order: one this broker has not applied
	// yet is at or above its NextTopicID (one below it and unknown is a
	// deleted topic's, which no catch-up brings back).
	for _, id := range ids {
		if id >= md.NextTopicID {
			b.catchUp(nil, md.Version)
			return b.store.Metadata()
		}
	}
	return md
}

// CatchUp is one client request's metadata catch-up. A front end
// declares one per request it decodes (the zero value) and passes its
// address to each core call the request makes (Append, ListOffset,
// EpochEndOffset, DeleteRecords); StartFetch and CaughtUpMetadata, one
// call per request, hold their own. However many partitions unknown
// here the request names, it waits for one read barrier at most, begun
// after its first lookup of an unknown one; a request naming none waits
// for none. Nil: the call is a request of its own. The calls of one
// request using it run one after the other (a front end's handler
// goroutine): it holds no lock, so it costs a request no allocation.
type CatchUp struct {
	done bool // the request's catch-up ran (whatever came of it)
}

// catchUpSpacing is the least time between the end of one catch-up read
// barrier and the start of the next. Each barrier is a Raft log entry on
// the controller quorum; a flood of requests for topics that do not
// exist would otherwise keep one in flight back to back. A request that
// needs a barrier within it waits for the next, so a flood costs at most
// one barrier per catchUpSpacing (plus its duration) on each broker, and
// each request in it waits at most catchUpSpacing plus two barriers
// (the one in flight when it came, then its own), within openWait.
const catchUpSpacing = 100 * time.Millisecond

// readBarrier is catchUp's read barrier; a variable for tests only.
var readBarrier = func(ctx context.Context, b *Broker) error { return b.node.Sync(ctx) }

// catchUpFlight is catchUp's read barrier in flight, shared by the
// requests that need one meanwhile: how many have begun, and when the
// last one ended. One is in flight at a time.
type catchUpFlight struct {
	mu    sync.Mutex
	begun uint64        // read barriers begun
	done  chan struct{} // closed when the barrier in flight ends; nil: none
	last  time.Time     // when the last barrier ended
}

// catchUp brings this broker's metadata up to what the controller leader
// had committed when the request's catch-up began (syncAfter), the first
// time the request cu needs it, and waits for that to be applied to the
// partitions, within openWait. It says whether the metadata moved past
// version v: false for every later call of the request that finds
// nothing new, so a request naming thousands of unknown partitions
// costs one barrier, not one each.
func (b *Broker) catchUp(cu *CatchUp, v uint64) bool {
	if b.node == nil {
		return false
	}
	if cu == nil {
		cu = new(CatchUp)
	}
	if !cu.done {
		cu.done = true
		b.syncAfter(time.Now().Add(openWait))
	}
	md := b.store.Metadata()
	return md.Version > v && b.parts.awaitReconciled(md.Version, openWait)
}

// syncAfter waits, until deadline, for a read barrier (Node.Sync) begun
// after it was called to end: one begun before may have missed what the
// caller looks for (a topic created a moment before). Skipping the
// barrier within 100 ms of the last once answered a Kafka client
// UNKNOWN_TOPIC_OR_PARTITION for a topic created 8 ms before, and it
// asked again only 5 s later (franz-go's MetadataMinAge). Barriers run
// one at a time, catchUpSpacing apart; the callers waiting meanwhile
// share the next.
func (b *Broker) syncAfter(deadline time.Time) {
	f := &b.catchUps
	f.mu.Lock()
	defer f.mu.Unlock()
	want := f.begun + 1 // the next to begin
	for (f.begun < want || f.begun == want && f.done != nil) && time.Now().Before(deadline) {
		if ch := f.done; ch != nil {
			f.mu.Unlock()
			sleepUntil(ch, deadline)
			f.mu.Lock()
			continue
		}
		if next := f.last.Add(catchUpSpacing); time.Now().Before(next) {
			f.mu.Unlock()
			sleepUntil(nil, next)
			f.mu.Lock()
			continue
		}
		f.begun++
		ch := make(chan struct{})
		f.done = ch
		f.mu.Unlock()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := readBarrier(ctx, b)
		cancel()
		if err != nil {
			b.logger.Debug("metadata catch-up for an unknown partition", zap.Error(err))
		}
		f.mu.Lock()
		f.done, f.last = nil, time.Now()
		close(ch)
	}
}

// sleepUntil returns when ch is closed (nil: never) or at t.
func sleepUntil(ch <-chan struct{}, t time.Time) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
	}
}

// Append appends a producer's record set (whole batches, as the producer
// encoded them) to a partition this broker leads, and returns where it
// went and the wait for its acknowledgement (LeaderAppend.Wait, when
// Pending). An error with nothing appended is definite; once something
// was appended it is indeterminate (R14). During a controlled shutdown
// produces are refused (NOT_LEADER_OR_FOLLOWER: leadership is moving, the
// client retries on the new leader). cu is the request's catch-up
// (CatchUp), as for every lookup of a partition.
func (b *Broker) Append(cu *CatchUp, topic string, partition int32, records []byte, acks Acks) (LeaderAppend, error) {
	// The controlled shutdown waits for appends that passed this check
	// before it counts what is left to replicate.
	b.appending.Add(1)
	defer b.appending.Add(-1)
	if b.draining.Load() {
		b.refusedAt.Store(time.Now().UnixNano())
		return LeaderAppend{BaseOffset: -1, LogStartOffset: -1}, errDraining
	}
	if !acks.Valid() {
		return LeaderAppend{BaseOffset: -1, LogStartOffset: -1}, protocol.ErrInvalidRequiredAcks
	}
	if topic == OffsetsTopic {
		return LeaderAppend{BaseOffset: -1, LogStartOffset: -1}, errInternalTopic
	}
	p, err := b.partitionFor(cu, topic, partition)
	if err != nil {
		return LeaderAppend{BaseOffset: -1, LogStartOffset: -1}, err
	}
	return p.appendAsLeader(records, acks)
}

// errInternalTopic refuses produces to the offsets topic, which only the
// group coordinators write (group.go).
var errInternalTopic = &protocol.Error{Code: protocol.ErrInvalidTopic, Detail: OffsetsTopic + " is internal: written by the group coordinators only"}

// errDraining refuses produces during a controlled shutdown (definite:
// nothing appended).
var errDraining = &protocol.Error{Code: protocol.ErrNotLeaderOrFollower, Detail: "broker shutting down; leadership moving"}

// ListOffset answers a ListOffsets query for one partition this broker
// leads: EarliestTimestamp, LatestTimestamp or a record timestamp.
func (b *Broker) ListOffset(cu *CatchUp, topic string, partition int32, timestamp int64) (OffsetAt, error) {
	p, err := b.partitionFor(cu, topic, partition)
	if err != nil {
		return OffsetAt{Offset: -1, Timestamp: -1, LeaderEpoch: -1}, err
	}
	return p.listOffset(timestamp)
}

// EpochEndOffset answers a follower's OffsetForLeaderEpoch (R9) for a
// partition this broker leads: the largest epoch at or below epoch in the
// log and its end offset. current is the leader epoch the follower knows
// (-1: not checked).
func (b *Broker) EpochEndOffset(cu *CatchUp, topic string, partition int32, current, epoch int32) (int32, int64, error) {
	p, err := b.partitionFor(cu, topic, partition)
	if err != nil {
		return -1, -1, err
	}
	return p.epochEndOffset(current, epoch)
}

// Fetch is a read of several partitions as Kafka's Fetch defines it: each
// partition from its offset up to its byte limit, the whole response up
// to MaxBytes (but at least one batch), answered once MinBytes are there
// or MaxWait passed (long-poll). A front end fills it, calls
// Broker.StartFetch and, when that says to wait, Broker.WaitFetch; the
// record bytes are Views of the segments, to be sent zero-copy and then
// released (Release). A Fetch is reused: Reset it between requests.
type Fetch struct {
	// Follower is the fetching replica (nil for a consumer): it reads up
	// to the log end and its offsets count for the ISR (R10, R12).
	Follower *FollowerFetch
	MinBytes int
	MaxBytes int
	Parts    []FetchPart
	// ConsumerEpochs makes a consumer's FetchPart.LeaderEpoch count, as
	// Kafka's current_leader_epoch does: an epoch below the leader's is
	// FENCED_LEADER_EPOCH, above it UNKNOWN_LEADER_EPOCH (-1: not checked).
	ConsumerEpochs bool
	// Session is the connection fetching: a consumer needs read on each
	// topic, a follower must be a broker (authz.go). Nil: not checked (a
	// caller inside the broker).
	Session *Session

	wake chan struct{} // signalled by the partitions' notify
}

// FetchPart is one partition of a Fetch: what to read, and what was read.
type FetchPart struct {
	Topic     string
	Partition int32
	Offset    int64
	MaxBytes  int
	// LeaderEpoch is the leader epoch a follower fetches in (its
	// CurrentLeaderEpoch); for consumers, checked only with
	// Fetch.ConsumerEpochs.
	LeaderEpoch int32

	// Result and Err are set by each read.
	Result ReadResult
	Err    error

	p *partition // nil when the lookup failed (Err says why)
}

// maxFetchResponse bounds the record bytes of one Fetch, whatever the
// client asks, so a response's length always fits an i32.
const maxFetchResponse = 1 << 30

// Release gives back the Views of the last read.
func (f *Fetch) Release() {
	for i := range f.Parts {
		f.Parts[i].Result.Records.Release()
		f.Parts[i].Result = ReadResult{}
	}
}

// Answered counts the last read as sent to a consumer (a follower's
// fetch is replication, not counted): the bytes and records of each
// partition read without error go to its topic's traffic
// (sluice_topic_bytes_out_total), whichever front end answers. A front
// end calls it once per Fetch, with the read it answers with.
func (f *Fetch) Answered() {
	if f.Follower != nil {
		return
	}
	for i := range f.Parts {
		if fp := &f.Parts[i]; fp.p != nil && fp.Err == nil {
			fp.p.traffic.out(fp.Result.Records.Bytes())
		}
	}
}

// Reset releases the Views and forgets the partitions, for reuse.
func (f *Fetch) Reset() {
	f.Release()
	clear(f.Parts)
	f.Parts = f.Parts[:0]
	f.Follower = nil
	f.ConsumerEpochs = false
	f.Session = nil
	if f.wake != nil {
		select {
		case <-f.wake:
		default:
		}
	}
}

// StartFetch looks up every partition of f once (one request: one
// catch-up at most for those unknown here) and reads them. It reports whether the answer should go now: MinBytes are there or a
// partition has an error. Otherwise the caller releases the Views (or
// not) and calls WaitFetch.
func (b *Broker) StartFetch(f *Fetch) bool {
	var cu CatchUp // one request
	var denied error
	for i := range f.Parts {
		fp := &f.Parts[i]
		if s := f.Session; s != nil && (i == 0 || fp.Topic != f.Parts[i-1].Topic) {
			if f.Follower != nil {
				denied = s.BrokerOnly()
			} else {
				denied = s.CanRead(fp.Topic)
			}
		}
		if denied != nil {
			fp.p, fp.Err = nil, denied
			continue
		}
		fp.p, fp.Err = b.partitionFor(&cu, fp.Topic, fp.Partition)
	}
	return f.read()
}

// WaitFetch waits until f has MinBytes, the deadline passes or ctx is
// done, reading again at every change of one of its partitions, and
// leaves f with the last read. It watches the partitions before reading
// again, so an append between StartFetch's read and the watch is not
// missed.
func (b *Broker) WaitFetch(ctx context.Context, f *Fetch, deadline time.Time) {
	if f.wake == nil {
		f.wake = make(chan struct{}, 1)
	}
	for i := range f.Parts {
		if p := f.Parts[i].p; p != nil {
			p.watch(f.wake)
		}
	}
	defer func() {
		for i := range f.Parts {
			if p := f.Parts[i].p; p != nil {
				p.unwatch(f.wake)
			}
		}
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for !f.read() {
		select {
		case <-f.wake:
			continue
		case <-timer.C:
		case <-ctx.Done():
		}
		f.read()
		return
	}
}

// read reads every partition of f again from its offset, within the byte
// limits, never above the high watermark for a consumer (R12). It
// reports whether the answer should go now.
func (f *Fetch) read() bool {
	remaining := min(max(f.MaxBytes, 0), maxFetchResponse)
	total, failed := 0, false
	for i := range f.Parts {
		fp := &f.Parts[i]
		fp.Result.Records.Release()
		fp.Result = ReadResult{HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1}
		if fp.p == nil {
			failed = true
			continue
		}
		limit := 0
		if fp.MaxBytes > 0 && (remaining > 0 || total == 0) {
			limit = max(1, min(fp.MaxBytes, remaining))
		}
		var ff *FollowerFetch
		consumerEpoch := int32(-1)
		if f.Follower != nil {
			ff = &FollowerFetch{Replica: f.Follower.Replica, BrokerEpoch: f.Follower.BrokerEpoch, LeaderEpoch: fp.LeaderEpoch}
		} else if f.ConsumerEpochs {
			consumerEpoch = fp.LeaderEpoch
		}
		fp.Result, fp.Err = fp.p.read(fp.Offset, limit, ff, consumerEpoch)
		if fp.Err != nil {
			failed = true
			continue
		}
		n := fp.Result.Records.Len()
		total += n
		remaining -= n
	}
	return failed || total >= f.MinBytes
}

// ReplicaState is one replica this broker holds, as Replicas reports it.
type ReplicaState struct {
	Topic         string
	Partition     int32
	Err           error // why the replica cannot be read (not open), or nil
	Leader        bool  // this broker leads the partition
	LeaderEpoch   int32
	StartOffset   int64
	EndOffset     int64
	HighWatermark int64
	SyncedOffset  int64 // offsets below it are fsynced (R2)
	// Checksum is the CRC-32C of every whole batch from the log start
	// below ChecksumEnd, when asked for (checksumUpTo >= 0), so replicas
	// can be compared byte for byte; ChecksumEnd is -1 otherwise.
	Checksum    uint32
	ChecksumEnd int64
	// LogBytes is the size of the log on disk.
	LogBytes int64
	// Cleaner is the log cleaner's state of a compacted replica, nil for
	// a topic that is not compacted.
	Cleaner *CleanerState
}

// Replicas reports every replica this broker holds of the topics named
// (all when none), sorted by topic and partition. With checksumUpTo >= 0
// each carries a checksum of its batches below that offset.
func (b *Broker) Replicas(topics []string, checksumUpTo int64) []ReplicaState {
	var out []ReplicaState
	for _, p := range b.parts.all() {
		if len(topics) > 0 && !slices.Contains(topics, p.topic) {
			continue
		}
		out = append(out, p.describe(checksumUpTo))
	}
	slices.SortFunc(out, func(a, b ReplicaState) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return cmp.Compare(a.Partition, b.Partition)
	})
	return out
}
