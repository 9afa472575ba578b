package broker

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// What the broker tells its metrics, without importing a metrics library
// (package httpapi turns it into Prometheus metrics). Two kinds:
//
//   - events that need a histogram — a request's stage latencies, a log's
//     fsync, a controller commit — go to Config.Observer as they happen,
//     once per request, per fsync or per command, never per record; with
//     no Observer the broker does not even read the clock for them;
//   - everything else is state or a counter the broker keeps anyway (per
//     topic bytes and records, counted per batch with atomic adds; ISR
//     changes; leadership changes; connections), which Broker.Stats reads
//     when the metrics are scraped.

// Observer receives the broker's timed events. Its methods run on the
// broker's goroutines, on the produce and fetch paths: they must be quick,
// must not block and must not call back into the broker.
type Observer interface {
	// Request is called once per request, after its response was written
	// (or dropped: acks=0, a closed connection).
	Request(t RequestTiming)
	// Sync is called after every fsync of a partition log, with how long
	// it took and its error (nil on success; an error takes the log
	// offline, R5).
	Sync(d time.Duration, err error)
	// Commit is called with the commit latency of every controller
	// command this broker's Raft node proposed as leader.
	Commit(d time.Duration)
}

// observeEpoch anchors observeNow: a reading of the monotonic clock
// (with the wall clock's, unused), taken once, a microsecond back so that
// no Instant is 0.
var observeEpoch = time.Now().Add(-time.Microsecond)

// Instant is an instant of RequestTiming: a reading of the monotonic
// clock, in nanoseconds since observeEpoch; 0 is no reading. Only the
// difference between two Instants means anything (Stages).
type Instant int64

// IsZero reports whether i is no reading.
func (i Instant) IsZero() bool { return i == 0 }

// observeNow is the Instant now. It reads the monotonic clock only
// (time.Since with a monotonic argument) and makes no time.Time: about
// half the cost of time.Now, which reads the wall clock too; and the five
// Instants of a RequestTiming take 40 bytes, not 120. With four or five
// instants a request, the clock is a good part of the broker's own cost
// per request of having an Observer (BenchmarkObserveNow).
func observeNow() Instant { return Instant(time.Since(observeEpoch)) }

// RequestTiming is one request's path through a connection, as four
// stages between five instants:
//
//	Read   the whole frame was read
//	Start  the handler took it (Queue: Start - Read)
//	Local  the handler finished its local work: decode, appends or reads,
//	       encode (Local: Local - Start)
//	Done   the response was complete: after an acks=all produce's wait for
//	       the ISR, an fsync=always produce's fsync, a fetch's long-poll
//	       (Wait: Done - Local; zero when nothing waited)
//	Sent   the response was handed to the socket (Send: Sent - Done; it
//	       includes waiting behind the connection's earlier responses,
//	       which are written in request order)
type RequestTiming struct {
	// Listener is "" for the sluice protocol's listener; for another
	// front end its Name, and then APIName names the API (Reply.API) and
	// API is not set.
	Listener, APIName string
	API               protocol.APIKey
	// Code is the request's error code: the uniform error response's, or
	// for Produce and Fetch the first partition's error, NONE otherwise.
	Code                           protocol.ErrorCode
	Read, Start, Local, Done, Sent Instant
}

// Stages returns the four stage durations (never negative).
func (t *RequestTiming) Stages() (queue, local, wait, send time.Duration) {
	d := func(from, to Instant) time.Duration { return time.Duration(max(to-from, 0)) }
	return d(t.Read, t.Start), d(t.Start, t.Local), d(t.Local, t.Done), d(t.Done, t.Sent)
}

// traffic counts one topic's produced and consumed bytes and records on
// this broker since it started, per batch.
type traffic struct {
	bytesIn, recordsIn, bytesOut, recordsOut atomic.Int64
}

// in counts a produced batch.
func (t *traffic) in(b record.Batch) {
	if t == nil {
		return
	}
	t.bytesIn.Add(int64(b.Size()))
	t.recordsIn.Add(int64(b.RecordCount()))
}

// out counts the batches of a record set read by a consumer. Each batch
// header is read for its record count; the bytes come from this broker's
// own log, but the walk still stops at anything that is not a whole batch.
func (t *traffic) out(records []byte) {
	if t == nil || len(records) == 0 {
		return
	}
	var n int64
	for rest := records; len(rest) >= record.HeaderSize; {
		b := record.Batch(rest)
		size := b.Size()
		if size < record.HeaderSize || size > len(rest) {
			break
		}
		n += int64(b.RecordCount())
		rest = rest[size:]
	}
	t.bytesOut.Add(int64(len(records)))
	t.recordsOut.Add(n)
}

// trafficTable holds each topic's traffic on this broker.
type trafficTable struct {
	mu     sync.Mutex
	topics map[string]*traffic
}

// get returns topic's counters, made on first use.
func (tt *trafficTable) get(topic string) *traffic {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.topics == nil {
		tt.topics = map[string]*traffic{}
	}
	t := tt.topics[topic]
	if t == nil {
		t = &traffic{}
		tt.topics[topic] = t
	}
	return t
}

// drop forgets a deleted topic's counters.
func (tt *trafficTable) drop(topic string) {
	tt.mu.Lock()
	delete(tt.topics, topic)
	tt.mu.Unlock()
}

// Stats is a snapshot of the broker's state and counters for metrics.
// Counters (the _Total fields and TopicStats' In and Out) count from the
// broker's start.
type Stats struct {
	BrokerID int32
	// Time is when the snapshot was taken (ages are measured from it).
	Time time.Time
	// Ready is Ready() == nil.
	Ready bool
	// ControllerLeader: this broker's Raft node leads the metadata group.
	ControllerLeader bool
	// AppliedIndex is the Raft index of the last metadata command applied
	// here.
	AppliedIndex uint64
	// BrokersAlive and BrokersOffline count the registered brokers by state
	// in this broker's copy of the metadata.
	BrokersAlive, BrokersOffline int
	// OfflinePartitions counts the cluster's partitions with no leader,
	// from this broker's copy of the metadata.
	OfflinePartitions int
	// ConnectionsOpen is the client and broker connections open now.
	ConnectionsOpen int
	// MemoryBudget is Config.MemoryBudget; MemoryBudgetUsed the request
	// bytes held against it now.
	MemoryBudget, MemoryBudgetUsed int64
	// ConnectionsRefused counts refused connections by reason:
	// "max_connections", "max_connections_per_ip", "first_request_timeout".
	ConnectionsRefused map[string]int64
	// ISRShrinksTotal and ISRExpandsTotal count the ISR changes this
	// broker made as leader (one per partition whose ISR lost, or gained,
	// members).
	ISRShrinksTotal, ISRExpandsTotal int64
	// LeaderElectionsTotal counts the times this broker became a
	// partition's leader (a new leader epoch naming it).
	LeaderElectionsTotal int64
	// Topics has one entry per topic this broker holds a replica of or
	// has traffic for, sorted by name.
	Topics []TopicStats
	// Groups are the groups this broker coordinates, by id, with their
	// lag per topic they consume (lag.go).
	Groups []GroupStats
	// Queues are the queue groups this broker coordinates, by id, with
	// their partitions (queue_stats.go).
	Queues []group.QueueGroupStats
	// Cleaner is the log cleaner's state and counters (cleaner_stats.go).
	Cleaner CleanerStats
	// DiskFree and DiskCapacity are the bytes free (to the broker's user)
	// and the size of the file system holding the data directory; both 0
	// when statfs fails.
	DiskFree, DiskCapacity int64
}

// TopicStats is one topic on this broker.
type TopicStats struct {
	Topic string
	// Bytes and records produced to the partitions this broker leads and
	// read from them by consumers (replication not counted), per batch.
	BytesIn, RecordsIn, BytesOut, RecordsOut int64
	// Led, UnderReplicated and UnderMinISR count the partitions this broker
	// leads: all, those whose ISR is smaller than their replica list, and
	// those whose ISR is smaller than min.insync.replicas.
	Led, UnderReplicated, UnderMinISR int
	// OfflineReplicas counts this broker's replicas of the topic whose log
	// went offline after a storage error (R5).
	OfflineReplicas int
	// Bytes and Segments are the size on disk of this broker's replicas of
	// the topic's partitions (segment log files).
	Bytes    int64
	Segments int
	// Partitions is filled only when Stats is asked for them.
	Partitions []PartitionStats
}

// PartitionStats is one partition replica on this broker.
type PartitionStats struct {
	Partition                int32
	Leader                   bool
	Replicas, ISR, MinInsync int
	Bytes                    int64
	Segments                 int
	StartOffset, EndOffset   int64
	HighWatermark            int64
	Offline                  bool // its log went offline (R5)
}

// Stats returns a snapshot of the broker for metrics; with partitions,
// each topic lists its partitions and each group's lag its partitions
// too. It touches no file (one statfs of the data directory) and takes
// no partition's lock: each partition is read from its published view
// and atomics (partitionView), so a scrape neither waits for nor delays
// the produce and fetch paths. What it does take are short locks of the
// broker's own tables (connections, memory budget, traffic, the group
// coordinators) and each log's segment list for reading.
func (b *Broker) Stats(partitions bool) Stats {
	st := Stats{BrokerID: b.cfg.BrokerID, Time: time.Now(), Ready: b.Ready() == nil, ConnectionsRefused: map[string]int64{}}
	b.mu.Lock()
	node := b.node
	st.ConnectionsOpen = len(b.conns)
	b.mu.Unlock()
	for i, name := range refusalNames {
		st.ConnectionsRefused[name] = b.refused.total[i].Load()
	}
	b.budget.mu.Lock()
	st.MemoryBudget, st.MemoryBudgetUsed = b.budget.size, b.budget.used
	b.budget.mu.Unlock()
	st.DiskFree, st.DiskCapacity = b.cfg.DiskSpace(b.cfg.DataDir)
	if !b.ready.Load() {
		// Starting: the partition manager is being set up (b.parts is
		// written without a lock before ready is set).
		return st
	}
	st.ControllerLeader = node.IsLeader()
	st.AppliedIndex = node.AppliedIndex()
	md := node.Metadata()
	for _, br := range md.Brokers {
		if br.State == controller.BrokerAlive {
			st.BrokersAlive++
		} else {
			st.BrokersOffline++
		}
	}
	for _, t := range md.Topics {
		for i := range t.Partitions {
			if t.Partitions[i].Leader < 0 {
				st.OfflinePartitions++
			}
		}
	}
	st.ISRShrinksTotal, st.ISRExpandsTotal = b.parts.isrShrinks.Load(), b.parts.isrExpands.Load()
	st.LeaderElectionsTotal = b.parts.elections.Load()

	byName := map[string]*TopicStats{}
	topic := func(name string) *TopicStats {
		ts := byName[name]
		if ts == nil {
			ts = &TopicStats{Topic: name}
			byName[name] = ts
		}
		return ts
	}
	b.parts.traffic.mu.Lock()
	for name, t := range b.parts.traffic.topics {
		ts := topic(name)
		ts.BytesIn, ts.RecordsIn = t.bytesIn.Load(), t.recordsIn.Load()
		ts.BytesOut, ts.RecordsOut = t.bytesOut.Load(), t.recordsOut.Load()
	}
	b.parts.traffic.mu.Unlock()
	for _, p := range b.parts.all() {
		ps, ok := p.stats(&st.Cleaner)
		if !ok {
			continue
		}
		ts := topic(p.topic)
		ts.Bytes += ps.Bytes
		ts.Segments += ps.Segments
		if ps.Offline {
			ts.OfflineReplicas++
		}
		if ps.Leader {
			ts.Led++
			if ps.ISR < ps.Replicas {
				ts.UnderReplicated++
			}
			if ps.ISR < ps.MinInsync {
				ts.UnderMinISR++
			}
		}
		if partitions {
			ts.Partitions = append(ts.Partitions, ps)
		}
	}
	for _, ts := range byName {
		slices.SortFunc(ts.Partitions, func(a, b PartitionStats) int { return int(a.Partition) - int(b.Partition) })
		st.Topics = append(st.Topics, *ts)
	}
	slices.SortFunc(st.Topics, func(a, b TopicStats) int { return strings.Compare(a.Topic, b.Topic) })
	st.Groups = b.groupStats(md, partitions)
	st.Queues = b.queueStats(st.Time)
	b.cleaner.stats(&st.Cleaner)
	return st
}

// stats returns p's replica state, adding its cleaner state to cs; false
// when its log is not open. It reads p's view and atomics, no lock of
// the partition's (partitionView).
func (p *partition) stats(cs *CleanerStats) (PartitionStats, bool) {
	v := p.view.Load()
	if v == nil || !v.open {
		return PartitionStats{}, false
	}
	ls := v.log.Stats()
	ps := PartitionStats{Partition: p.index, Leader: v.leader != nil, Replicas: v.replicas, ISR: v.isr,
		Bytes: ls.Bytes, Segments: ls.Segments, StartOffset: v.log.StartOffset(), EndOffset: v.log.EndOffset(),
		HighWatermark: v.highWatermark(), Offline: v.log.Err() != nil, MinInsync: v.minInsync}
	if ps.Leader {
		ps.ISR = v.leader.ISRSize()
	}
	p.addCleanerStats(v.log, cs)
	return ps, true
}

// Errors Ready returns.
var (
	// ErrNotRegistered: the broker has not registered with the controller
	// and opened its partitions yet.
	ErrNotRegistered = errors.New("not registered with the controller yet")
	// ErrShuttingDown: the broker is shutting down.
	ErrShuttingDown = errors.New("shutting down")
)

// Ready returns nil when the broker serves clients: it registered with
// the controller and opened the partitions the metadata gives it, it
// leads every partition the metadata names it leader of in the leader
// epoch the metadata says (a partition just handed to it is not led
// until the partition manager applied the change), and it is not
// shutting down. Otherwise it says which condition fails.
func (b *Broker) Ready() error {
	b.mu.Lock()
	closing := b.closing
	b.mu.Unlock()
	switch {
	case closing || b.draining.Load():
		return ErrShuttingDown
	case !b.ready.Load():
		return ErrNotRegistered
	}
	md := b.store.Metadata()
	for _, name := range md.TopicNames() {
		t := md.Topics[name]
		for i := range t.Partitions {
			mp := &t.Partitions[i]
			if mp.Leader != b.cfg.BrokerID {
				continue
			}
			if !b.parts.leads(name, mp.Index, mp.LeaderEpoch) {
				return fmt.Errorf("partition %s-%d: not leading leader epoch %d yet", name, mp.Index, mp.LeaderEpoch)
			}
		}
	}
	return nil
}

// leads reports whether this broker leads the partition in epoch. It
// reads the partition's view, not its lock: Ready asks it of every
// partition led here.
func (m *partitions) leads(topic string, index, epoch int32) bool {
	p := m.get(topic, index)
	if p == nil {
		return false
	}
	v := p.view.Load()
	return v != nil && v.open && v.leader != nil && v.leader.Epoch() == epoch
}

// observeRequest reports a written response to the Observer.
func (c *conn) observeRequest(resp *response) {
	t := resp.timing
	if r := resp.reply; r != nil && !r.completed.IsZero() {
		t.Done = r.completed
	}
	if t.Done.IsZero() {
		t.Done = t.Local
	}
	if resp.fetch != nil {
		t.Code = resp.fetch.code
	}
	if r := resp.reply; r != nil {
		t.Listener, t.APIName, t.Code = c.fe.Name(), r.API, r.Code
	}
	t.Sent = observeNow()
	c.b.obs.Request(t)
}

// firstProduceError is a produce response's first partition error.
func firstProduceError(out *protocol.ProduceResponse) protocol.ErrorCode {
	for i := range out.Topics {
		for j := range out.Topics[i].Partitions {
			if code := out.Topics[i].Partitions[j].ErrorCode; code != protocol.NoError {
				return code
			}
		}
	}
	return protocol.NoError
}
