package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/segment"
)

// The group coordinators of this broker (docs/groups.md): one
// group.Coordinator for each partition of the offsets topic this broker
// leads. A group's coordinator is the leader of partition
// GroupPartition(group, N) of OffsetsTopic. When this broker becomes a
// partition's leader, groupLoop reads the partition from its start and
// replays it into a new Coordinator (until then, and until the high
// watermark covers what was read, COORDINATOR_LOAD_IN_PROGRESS); when it
// stops leading, the Coordinator is dropped (NOT_COORDINATOR). Every
// state change a Coordinator returns as records is appended to the
// partition as leader with acks=all, under the coordinator's lock (so the
// log has the changes in the order they were made), and the caller is
// answered once they are committed. A failed append drops the
// Coordinator, which is loaded again from the log: the log is the truth.

// OffsetsTopic is the internal, compacted topic of committed offsets and
// group metadata.
const OffsetsTopic = "__consumer_offsets"

// DefaultOffsetsTopicPartitions is the partition count of OffsetsTopic
// when a broker creates it. Kafka's is 50; sluice targets small machines
// (two cores), where each partition is a replicated log with its own
// files, fetch work and load at failover, and a cluster has few groups.
// 12 spreads coordinators evenly over 1, 2, 3, 4 or 6 brokers.
const DefaultOffsetsTopicPartitions = 12

// Timing of the coordinators.
const (
	groupTickInterval = 500 * time.Millisecond // timers (sessions, revocations, expiry)
	groupWriteTimeout = 10 * time.Second       // an acks=all append of group records
	groupLoadRetry    = 5 * time.Second        // after a failed load of an offsets partition
	groupBatchBytes   = 256 << 10              // records per batch appended
	offsetsSegment    = 100 << 20              // segment.bytes of OffsetsTopic, as Kafka's
)

// GroupPartition is the offsets-topic partition of a group: Kafka's
// abs(javaStringHashCode(group)) % partitions, so the Kafka listener and
// Kafka tools agree on the coordinator.
func GroupPartition(groupID string, partitions int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(groupID)) {
		h = 31*h + int32(u)
	}
	if h == math.MinInt32 {
		h = 0 // Kafka's Utils.abs
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// coordinators is this broker's set of loaded coordinators.
type coordinators struct {
	mu    sync.Mutex
	parts map[int32]*coordinator // by offsets partition
	kick  chan struct{}          // capacity 1: load now (a request found a partition not loaded)

	// Owned by groupLoop.
	topicIDs map[string]uint64 // the topics last seen, to notice deletions
	version  uint64            // the metadata version last given to the coordinators
	lastTick time.Time
	failed   map[int32]time.Time // partition → when its last load failed (retried after groupLoadRetry)
}

// coordinator is the group.Coordinator of one offsets partition.
type coordinator struct {
	index int32
	epoch int32 // the leader epoch it was loaded in

	mu      sync.Mutex
	c       *group.Coordinator // nil once dropped
	readyAt int64              // the log end at load: served once the high watermark reaches it
	ready   bool
	// last is the wait of the last batch of group records appended:
	// an answer that wrote nothing waits for it, so that it tells only
	// state whose records are committed.
	last *LeaderAppend
	// changed is closed (and replaced) when a call moved the
	// Coordinator's ClassicVersion, and when the coordinator is dropped:
	// classic joins and syncs waiting for a rebalance ask again then.
	changed chan struct{}
	// queueCfgGen is the generation of the queue settings c has
	// (syncQueueConfigs).
	queueCfgGen uint64
}

// notify wakes the waiting classic joins and syncs. Call with co.mu held.
func (co *coordinator) notify() {
	close(co.changed)
	co.changed = make(chan struct{})
}

func newCoordinators() *coordinators {
	return &coordinators{parts: map[int32]*coordinator{}, kick: make(chan struct{}, 1), failed: map[int32]time.Time{}}
}

// groupLoop owns the coordinators: it loads and drops them as this
// broker's leaderships of the offsets topic change, gives them the topics,
// and runs their timers. It returns when ctx is done, once the retry of
// dead letters it started (queue.go, one at a time, off the loop: a
// dead-letter write may wait seconds) has returned.
func (b *Broker) groupLoop(ctx context.Context) {
	t := time.NewTicker(groupTickInterval)
	defer t.Stop()
	retrying := make(chan struct{}, 1)
	var retry sync.WaitGroup
	defer retry.Wait()
	for {
		ch := b.store.Changed()
		b.syncCoordinators(ctx)
		select {
		case <-ch:
		case <-t.C:
			select {
			case retrying <- struct{}{}:
				retry.Add(1)
				go func() {
					defer retry.Done()
					b.retryDeadLetters(ctx)
					<-retrying
				}()
			default:
			}
		case <-b.groups.kick:
		case <-ctx.Done():
			return
		}
	}
}

// syncCoordinators is one round of groupLoop.
func (b *Broker) syncCoordinators(ctx context.Context) {
	m := b.groups
	md := b.store.Metadata()
	now := time.Now()
	// Leaderships: drop what is no longer led here (or led in a new
	// epoch), load what is newly led.
	led := map[int32]int32{}
	if t := md.Topics[OffsetsTopic]; t != nil {
		for i := range t.Partitions {
			if p := b.parts.get(OffsetsTopic, int32(i)); p != nil {
				if epoch, ok := p.leading(); ok {
					led[int32(i)] = epoch
				}
			}
		}
	}
	m.mu.Lock()
	var drop []*coordinator
	for i, co := range m.parts {
		if epoch, ok := led[i]; !ok || epoch != co.epoch || co.dropped() {
			drop = append(drop, co)
			delete(m.parts, i)
		}
	}
	var load []int32
	for i := range led {
		if b.draining.Load() {
			break // leaderships are moving away: nothing to load for
		}
		if m.parts[i] == nil && now.Sub(m.failed[i]) >= groupLoadRetry {
			load = append(load, i)
		}
	}
	m.mu.Unlock()
	for _, co := range drop {
		co.drop()
		b.logger.Info("group coordinator unloaded", zap.String("topic", OffsetsTopic), zap.Int32("partition", co.index), zap.Int32("epoch", co.epoch))
	}
	topics, deleted := m.topicChanges(md)
	slices.Sort(load)
	for _, i := range load {
		co, err := b.loadCoordinator(i, led[i], topics, now)
		if err != nil {
			b.logger.Error("group coordinator load failed", zap.String("topic", OffsetsTopic), zap.Int32("partition", i), zap.Int32("epoch", led[i]), zap.Error(err))
			m.mu.Lock()
			m.failed[i] = now
			m.mu.Unlock()
			continue
		}
		m.mu.Lock()
		m.parts[i] = co
		delete(m.failed, i)
		m.mu.Unlock()
	}
	// Topics and timers.
	tick := now.Sub(m.lastTick) >= groupTickInterval
	if tick {
		m.lastTick = now
	}
	for _, co := range m.loaded() {
		_ = b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
			var recs []group.Record
			if topics != nil {
				c.SetTopics(topics)
				b.syncQueueConfigs(co)
			}
			if len(deleted) > 0 {
				recs = append(recs, c.DeleteTopics(deleted)...)
			}
			if tick {
				recs = append(recs, c.Tick(now)...)
			}
			return recs, nil
		})
	}
}

// topicChanges returns the topics (name → partitions) when the metadata
// changed since the last call (else nil), and the topics deleted since.
// A topic deleted and created again under the same name counts as
// deleted.
func (m *coordinators) topicChanges(md *controller.Metadata) (map[string]int32, []string) {
	if md.Version == m.version && m.topicIDs != nil {
		return nil, nil
	}
	m.version = md.Version
	topics := make(map[string]int32, len(md.Topics))
	ids := make(map[string]uint64, len(md.Topics))
	for name, t := range md.Topics {
		topics[name] = int32(len(t.Partitions))
		ids[name] = t.ID
	}
	var deleted []string
	for name, id := range m.topicIDs {
		if ids[name] != id {
			deleted = append(deleted, name)
		}
	}
	m.topicIDs = ids
	return topics, deleted
}

func (m *coordinators) loaded() []*coordinator {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Collect(maps.Values(m.parts))
	slices.SortFunc(out, func(a, b *coordinator) int { return int(a.index - b.index) })
	return out
}

func (co *coordinator) dropped() bool {
	co.mu.Lock()
	defer co.mu.Unlock()
	return co.c == nil
}

func (co *coordinator) drop() {
	co.mu.Lock()
	co.c = nil
	co.notify()
	co.mu.Unlock()
}

// loadCoordinator replays offsets partition index, led here in epoch,
// into a new Coordinator.
func (b *Broker) loadCoordinator(index, epoch int32, topics map[string]int32, now time.Time) (*coordinator, error) {
	start := time.Now()
	p := b.parts.get(OffsetsTopic, index)
	if p == nil {
		return nil, protocol.ErrNotCoordinator
	}
	gcfg := b.cfg.Group
	gcfg.RegexNeedsFilter = b.cfg.Security.Authorizer // every heartbeat brings Session.RegexFilter
	c, err := group.New(gcfg)
	if err != nil {
		return nil, err
	}
	if topics == nil {
		topics = map[string]int32{}
		for name, t := range b.store.Metadata().Topics {
			topics[name] = int32(len(t.Partitions))
		}
	}
	c.SetTopics(topics)
	qcfgs, qgen := b.queueConfigs()
	c.SetQueueConfigs(qcfgs) // before the replay: restored windows count deliveries against their group's limit
	rd := record.NewReader(record.Limits{})
	var buf []byte
	offset, end, err := p.localRange(epoch)
	if err != nil {
		return nil, err
	}
	var bytes int
	for offset < end {
		v, err := p.readLocal(epoch, offset, end, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("offsets partition %d at %d: %w", index, offset, err)
		}
		buf = append(buf[:0], v.Bytes()...)
		v.Release()
		if len(buf) == 0 {
			break
		}
		bytes += len(buf)
		next, err := c.ReplayBatches(now, buf, rd)
		if err != nil {
			return nil, fmt.Errorf("offsets partition %d: %w", index, err)
		}
		offset = next
	}
	b.logger.Info("group coordinator loaded", zap.String("topic", OffsetsTopic), zap.Int32("partition", index), zap.Int32("epoch", epoch),
		zap.Int64("end_offset", end), zap.Int("bytes", bytes), zap.Int("groups", len(c.ListGroups())), zap.Duration("took", time.Since(start)))
	return &coordinator{index: index, epoch: epoch, c: c, readyAt: end, changed: make(chan struct{}), queueCfgGen: qgen}, nil
}

// errGroupAppend is the answer to a failed append or wait of group
// records: indeterminate when some were appended, definite otherwise.
func errGroupAppend(err error, appended bool) error {
	if appended {
		return errCoordinatorWrite(err)
	}
	if code, _ := ErrorCode(err); code == protocol.ErrNotLeaderOrFollower || code == protocol.ErrUnknownTopicOrPartition {
		return &protocol.Error{Code: protocol.ErrNotCoordinator, Detail: err.Error()}
	}
	return &protocol.Error{Code: protocol.ErrCoordinatorNotAvailable, Detail: err.Error()}
}

// errCoordinatorWrite wraps a failed append of group records that may
// have been written: the answer is indeterminate.
func errCoordinatorWrite(err error) error {
	return &protocol.Error{Code: protocol.ErrRequestTimedOut, Detail: "group state write not committed (it may yet be): " + err.Error()}
}

// coordinate runs fn on co's Coordinator and makes the records it returns
// durable: appended under co's lock, in order, then waited for with
// acks=all. Any failure to write drops co (groupLoop loads it again from
// the log). An fn that writes nothing (a read, a refusal, a heartbeat
// that changes nothing) is answered once the records appended before it
// are committed: what it saw may rest on another request's records, and a
// failover before they commit would take that back (a coordinator cut off
// from its followers would serve commits that never were).
func (b *Broker) coordinate(ctx context.Context, co *coordinator, fn func(*group.Coordinator) ([]group.Record, error)) error {
	co.mu.Lock()
	if co.c == nil {
		co.mu.Unlock()
		return protocol.ErrNotCoordinator
	}
	version := co.c.ClassicVersion()
	recs, err := fn(co.c)
	if co.c == nil {
		// fn dropped the coordinator (coordinateQueue: a refusal that
		// archived records, or the window archiving them not committed);
		// its memory is not the log's, nothing more is appended.
		co.notify()
		co.mu.Unlock()
		return err
	}
	if co.c.ClassicVersion() != version {
		co.notify()
	}
	if err != nil || len(recs) == 0 {
		last := co.last
		co.mu.Unlock()
		if last != nil {
			wctx, cancel := context.WithTimeout(ctx, groupWriteTimeout)
			werr := last.Wait(wctx)
			cancel()
			if werr != nil {
				return &protocol.Error{Code: protocol.ErrCoordinatorNotAvailable, Detail: "group state not yet committed: " + werr.Error()}
			}
		}
		return err
	}
	waits, err := b.appendGroupRecords(co, recs)
	if len(waits) > 0 {
		co.last = &waits[len(waits)-1]
	}
	if err != nil {
		co.c = nil
		co.notify()
		co.mu.Unlock()
		kick(b.groups.kick)
		b.logger.Warn("group records not appended; reloading the coordinator", zap.Int32("partition", co.index), zap.Error(err))
		return errGroupAppend(err, len(waits) > 0)
	}
	co.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, groupWriteTimeout)
	defer cancel()
	for _, w := range waits {
		if err := w.Wait(wctx); err != nil {
			co.drop()
			kick(b.groups.kick)
			return errCoordinatorWrite(err)
		}
	}
	return nil
}

// appendGroupRecords appends recs to co's partition as leader, in batches
// of at most groupBatchBytes, and returns the waits for acks=all. Call with
// co.mu held.
func (b *Broker) appendGroupRecords(co *coordinator, recs []group.Record) ([]LeaderAppend, error) {
	// As Append: the controlled shutdown waits for appends that passed
	// the draining check.
	b.appending.Add(1)
	defer b.appending.Add(-1)
	if b.draining.Load() {
		return nil, errDraining
	}
	p := b.parts.get(OffsetsTopic, co.index)
	if p == nil {
		return nil, protocol.ErrNotLeaderOrFollower
	}
	if epoch, ok := p.leading(); !ok || epoch != co.epoch {
		return nil, protocol.ErrNotLeaderOrFollower
	}
	var waits []LeaderAppend
	bld := record.NewBuilder(record.None)
	ts := time.Now().UnixMilli()
	flush := func() error {
		batch, err := bld.Build()
		if err != nil {
			return err
		}
		bld.Reset()
		la, err := p.appendAsLeader(batch, AcksAll)
		if err != nil {
			return err
		}
		waits = append(waits, la)
		return nil
	}
	for _, r := range recs {
		bld.Append(ts, r.Key, r.Value, nil)
		if bld.EstimatedSize() >= groupBatchBytes {
			if err := flush(); err != nil {
				return waits, err
			}
		}
	}
	if bld.Len() > 0 {
		if err := flush(); err != nil {
			return waits, err
		}
	}
	return waits, nil
}

// offsetsPartitions returns the partition count of the offsets topic, or
// 0 when it does not exist yet.
func (b *Broker) offsetsPartitions() int32 {
	if t := b.store.Metadata().Topics[OffsetsTopic]; t != nil {
		return int32(len(t.Partitions))
	}
	return 0
}

// coordinatorFor returns the loaded coordinator of a group, or why there
// is none here: NOT_COORDINATOR (another broker leads its partition, or
// the offsets topic does not exist yet: FindCoordinator creates it),
// COORDINATOR_LOAD_IN_PROGRESS (led here, still loading).
func (b *Broker) coordinatorFor(groupID string) (*coordinator, error) {
	if groupID == "" {
		return nil, &protocol.Error{Code: protocol.ErrInvalidGroupID, Detail: "empty group id"}
	}
	n := b.offsetsPartitions()
	if n == 0 {
		return nil, &protocol.Error{Code: protocol.ErrNotCoordinator, Detail: "the offsets topic does not exist yet; FindCoordinator creates it"}
	}
	index := GroupPartition(groupID, n)
	m := b.groups
	m.mu.Lock()
	co := m.parts[index]
	m.mu.Unlock()
	if co == nil {
		p := b.parts.get(OffsetsTopic, index)
		if p != nil {
			if _, ok := p.leading(); ok {
				kick(m.kick)
				return nil, protocol.ErrCoordinatorLoadInProgress
			}
		}
		return nil, protocol.ErrNotCoordinator
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	if !b.coordinatorReady(co) {
		return nil, protocol.ErrCoordinatorLoadInProgress
	}
	return co, nil
}

// coordinatorReady reports whether co serves: the high watermark of its
// partition reached what it loaded. Call with co.mu held.
func (b *Broker) coordinatorReady(co *coordinator) bool {
	if !co.ready {
		p := b.parts.get(OffsetsTopic, co.index)
		if p == nil || !p.highWatermarkReached(co.readyAt) {
			return false
		}
		co.ready = true
	}
	return true
}

// Coordinator is the broker a group's requests go to.
type Coordinator struct {
	BrokerID int32
	Addr     string // host:port
}

// FindCoordinator returns the coordinator of a group: the leader of its
// partition of the offsets topic, which is created on first use
// (Config.OffsetsTopicPartitions partitions, replication factor
// min(3, brokers), cleanup.policy=compact, no retention by time or
// size). COORDINATOR_NOT_AVAILABLE while that partition has no leader.
func (b *Broker) FindCoordinator(ctx context.Context, groupID string) (Coordinator, error) {
	if groupID == "" {
		return Coordinator{}, &protocol.Error{Code: protocol.ErrInvalidGroupID, Detail: "empty group id"}
	}
	if b.offsetsPartitions() == 0 {
		if err := b.createOffsetsTopic(ctx); err != nil {
			return Coordinator{}, &protocol.Error{Code: protocol.ErrCoordinatorNotAvailable, Detail: "creating the offsets topic: " + err.Error()}
		}
	}
	md := b.store.Metadata()
	t := md.Topics[OffsetsTopic]
	if t == nil {
		return Coordinator{}, protocol.ErrCoordinatorNotAvailable
	}
	p := t.Partitions[GroupPartition(groupID, int32(len(t.Partitions)))]
	addr, ok := b.brokerAddr(p.Leader)
	if p.Leader < 0 || !ok {
		return Coordinator{}, &protocol.Error{Code: protocol.ErrCoordinatorNotAvailable, Detail: fmt.Sprintf("offsets partition %d has no leader", p.Index)}
	}
	return Coordinator{BrokerID: p.Leader, Addr: addr}, nil
}

func (b *Broker) createOffsetsTopic(ctx context.Context) error {
	rf := int16(min(3, len(b.store.Metadata().PlacementBrokers())))
	errs := b.CreateTopics(ctx, []NewTopic{{
		Name: OffsetsTopic, Partitions: b.cfg.OffsetsTopicPartitions, ReplicationFactor: max(rf, 1),
		Configs: []TopicConfig{
			{Name: controller.ConfigCleanupPolicy, Value: controller.CleanupCompact},
			{Name: controller.ConfigSegmentBytes, Value: strconv.Itoa(offsetsSegment)},
			// Never deleted by time or size: a group's state is the whole
			// (compacted) partition, however old its records.
			{Name: controller.ConfigRetentionMs, Value: "-1"},
			{Name: controller.ConfigRetentionBytes, Value: "-1"},
		},
	}}, false)
	if err := errs[0]; err != nil && !errors.Is(err, controller.ErrTopicExists) {
		return err
	}
	return nil
}

// GroupHeartbeat handles a ConsumerGroupHeartbeat at the group's
// coordinator and answers once what it changed is committed.
func (b *Broker) GroupHeartbeat(ctx context.Context, req group.Heartbeat) (group.HeartbeatResult, error) {
	co, err := b.coordinatorFor(req.GroupID)
	if err != nil {
		return group.HeartbeatResult{}, err
	}
	var res group.HeartbeatResult
	err = b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
		var recs []group.Record
		var err error
		res, recs, err = c.Heartbeat(time.Now(), req)
		return recs, err
	})
	return res, err
}

// CommitOffsets commits a group's offsets at its coordinator and answers
// once they are committed (acks=all). A refusal of the whole commit is the
// error; partitions refused alone have their Err set.
func (b *Broker) CommitOffsets(ctx context.Context, req group.OffsetCommit) ([]group.CommitTopic, error) {
	co, err := b.coordinatorFor(req.GroupID)
	if err != nil {
		return nil, err
	}
	var res []group.CommitTopic
	err = b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
		var recs []group.Record
		var err error
		res, recs, err = c.CommitOffsets(time.Now(), req)
		return recs, err
	})
	return res, err
}

// FetchOffsets returns a group's committed offsets from its coordinator.
func (b *Broker) FetchOffsets(req group.OffsetFetch) ([]group.FetchedOffset, error) {
	co, err := b.coordinatorFor(req.GroupID)
	if err != nil {
		return nil, err
	}
	var res []group.FetchedOffset
	err = b.coordinate(context.Background(), co, func(c *group.Coordinator) ([]group.Record, error) {
		var err error
		res, err = c.FetchOffsets(req)
		return nil, err
	})
	if err != nil {
		return nil, err // nothing read is told unless it is committed
	}
	return res, nil
}

// DescribeGroup describes a group at its coordinator.
func (b *Broker) DescribeGroup(groupID string) (group.Description, error) {
	co, err := b.coordinatorFor(groupID)
	if err != nil {
		return group.Description{}, err
	}
	var d group.Description
	err = b.coordinate(context.Background(), co, func(c *group.Coordinator) ([]group.Record, error) {
		var err error
		d, err = c.DescribeGroup(groupID)
		return nil, err
	})
	if err != nil {
		return group.Description{}, err
	}
	return d, nil
}

// ListGroups lists the groups this broker coordinates (a tool asks every
// broker).
func (b *Broker) ListGroups() []group.Listed {
	var out []group.Listed
	// One deadline for all: a coordinator whose state does not commit
	// (cut off from its followers) is left out, not waited for in turn.
	ctx, cancel := context.WithTimeout(context.Background(), groupWriteTimeout)
	defer cancel()
	for _, co := range b.groups.loaded() {
		var listed []group.Listed
		err := b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
			listed = c.ListGroups()
			return nil, nil
		})
		if err == nil {
			out = append(out, listed...)
		}
	}
	slices.SortFunc(out, func(a, b group.Listed) int { return strings.Compare(a.GroupID, b.GroupID) })
	return out
}

// DeleteGroups deletes empty groups and their offsets, one error per
// group in order (nil: deleted).
func (b *Broker) DeleteGroups(ctx context.Context, ids []string) []error {
	errs := make([]error, len(ids))
	for i, id := range ids {
		co, err := b.coordinatorFor(id)
		if err != nil {
			errs[i] = err
			continue
		}
		errs[i] = b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
			return c.DeleteGroup(id)
		})
	}
	return errs
}

// JoinGroup handles a classic JoinGroup at the group's coordinator
// (group/classic.go): it waits until the rebalance completes or ctx is
// done (then REBALANCE_IN_PROGRESS: join again), and answers once what
// it changed is committed. With MEMBER_ID_REQUIRED the result carries
// the member id to join with.
func (b *Broker) JoinGroup(ctx context.Context, req group.JoinGroup) (group.JoinResult, error) {
	co, err := b.coordinatorFor(req.GroupID)
	if err != nil {
		return group.JoinResult{MemberID: req.MemberID, Generation: -1}, err
	}
	var res group.JoinResult
	err = b.classicWait(ctx, co, func(c *group.Coordinator) (done bool, recs []group.Record, err error) {
		res, done, recs, err = c.JoinGroup(time.Now(), req)
		return done, recs, err
	}, func(c *group.Coordinator) (done bool, err error) {
		res, done, err = c.JoinGroupResult(req.GroupID, res.MemberID)
		return done, err
	})
	return res, err
}

// SyncGroup handles a classic SyncGroup at the group's coordinator: the
// leader's is answered once the assignment is committed, a follower's
// once the leader's arrived (or ctx is done: REBALANCE_IN_PROGRESS).
func (b *Broker) SyncGroup(ctx context.Context, req group.SyncGroup) (group.SyncResult, error) {
	co, err := b.coordinatorFor(req.GroupID)
	if err != nil {
		return group.SyncResult{}, err
	}
	var res group.SyncResult
	err = b.classicWait(ctx, co, func(c *group.Coordinator) (done bool, recs []group.Record, err error) {
		res, done, recs, err = c.SyncGroup(time.Now(), req)
		return done, recs, err
	}, func(c *group.Coordinator) (done bool, err error) {
		res, done, err = c.SyncGroupResult(req.GroupID, req.MemberID, req.Generation)
		return done, err
	})
	return res, err
}

// classicWait runs first on co and, while it is not done, again after
// each change of co's classic groups (co.changed), until done, an error,
// or ctx is done (REBALANCE_IN_PROGRESS).
func (b *Broker) classicWait(ctx context.Context, co *coordinator, first func(*group.Coordinator) (bool, []group.Record, error),
	again func(*group.Coordinator) (bool, error)) error {
	var done bool
	var changed chan struct{}
	err := b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
		changed = co.changed // under co.mu: no change is missed
		var recs []group.Record
		var err error
		done, recs, err = first(c)
		return recs, err
	})
	for err == nil && !done {
		select {
		case <-changed:
		case <-ctx.Done():
			return &protocol.Error{Code: protocol.ErrRebalanceInProgress, Detail: "the rebalance did not complete in time: join again"}
		}
		err = b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
			changed = co.changed
			var err error
			done, err = again(c)
			return nil, err
		})
	}
	return err
}

// ClassicHeartbeat handles a classic Heartbeat at the group's coordinator.
func (b *Broker) ClassicHeartbeat(ctx context.Context, req group.ClassicHeartbeat) error {
	co, err := b.coordinatorFor(req.GroupID)
	if err != nil {
		return err
	}
	return b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
		return nil, c.ClassicHeartbeat(time.Now(), req)
	})
}

// LeaveGroup removes members from a classic group at its coordinator:
// one error per member (nil: left), or the refusal of the whole request.
func (b *Broker) LeaveGroup(ctx context.Context, groupID string, members []group.LeavingMember) ([]error, error) {
	co, err := b.coordinatorFor(groupID)
	if err != nil {
		return nil, err
	}
	var errs []error
	err = b.coordinate(ctx, co, func(c *group.Coordinator) ([]group.Record, error) {
		var recs []group.Record
		var err error
		errs, recs, err = c.LeaveGroup(time.Now(), groupID, members)
		return recs, err
	})
	return errs, err
}

// DescribeClassicGroup describes a classic group at its coordinator; ok
// is false for a consumer (KIP-848) group.
func (b *Broker) DescribeClassicGroup(groupID string) (group.ClassicDescription, bool, error) {
	co, err := b.coordinatorFor(groupID)
	if err != nil {
		return group.ClassicDescription{}, false, err
	}
	var d group.ClassicDescription
	var ok bool
	err = b.coordinate(context.Background(), co, func(c *group.Coordinator) ([]group.Record, error) {
		var err error
		d, ok, err = c.DescribeClassic(groupID)
		return nil, err
	})
	return d, ok, err
}

// leading returns p's leader epoch and whether this broker leads it with
// its log open.
func (p *partition) leading() (int32, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.epoch, p.state == stateOpen && p.role == roleLeader
}

// localRange returns the log's start and end while this broker leads p in
// epoch.
func (p *partition) localRange(epoch int32) (int64, int64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state != stateOpen || p.role != roleLeader || p.epoch != epoch {
		return 0, 0, protocol.ErrNotLeaderOrFollower
	}
	return p.log.StartOffset(), p.log.EndOffset(), nil
}

// readLocal reads whole batches of the leader's own log from offset, below
// end (not bounded by the high watermark: a coordinator loads all its
// leader wrote), while this broker leads p in epoch.
func (p *partition) readLocal(epoch int32, offset, end int64, limit int) (segment.View, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state != stateOpen || p.role != roleLeader || p.epoch != epoch {
		return segment.View{}, protocol.ErrNotLeaderOrFollower
	}
	return p.log.ReadUpTo(offset, end, limit)
}

// highWatermarkReached reports whether p's high watermark is at or past
// offset.
func (p *partition) highWatermarkReached(offset int64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.state == stateOpen && p.role == roleLeader && p.highWatermark() >= offset
}
