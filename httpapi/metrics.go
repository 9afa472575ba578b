package httpapi

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluicemq/sluice/broker"
)

// Level says how many series the metrics have.
type Level uint8

const (
	// LevelInfo: series per broker, per API and per topic.
	LevelInfo Level = iota
	// LevelDebug adds series per partition (sluice_partition_*).
	LevelDebug
)

// ParseLevel parses "info" or "debug".
func ParseLevel(s string) (Level, error) {
	switch s {
	case "info":
		return LevelInfo, nil
	case "debug":
		return LevelDebug, nil
	}
	return 0, fmt.Errorf("metrics level %q: want info or debug", s)
}

// latencyBuckets are the upper bounds, in seconds, of every latency
// histogram: 50 µs to 10 s.
var latencyBuckets = [...]float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Stage labels of sluice_request_duration_seconds, in RequestTiming's
// order.
var stageNames = [4]string{"queue", "local", "wait", "send"}

// listenerSluice is the listener label of the sluice protocol's requests.
const listenerSluice = "sluice"

// Metrics is a broker's metrics: a broker.Observer for its timed events
// and, once Start gave it the broker, a collector of its state. Make it
// with NewMetrics, pass it as broker.Config.Observer, then give it to
// Start with the broker.
type Metrics struct {
	level Level
	reg   *prometheus.Registry

	req      *requestMetrics // the requests' counters and stage histograms (requests.go)
	fsync    prometheus.Histogram
	fsyncErr prometheus.Counter
	commit   prometheus.Histogram
}

var _ broker.Observer = (*Metrics)(nil)

// NewMetrics returns metrics at level with their own registry, which
// also holds the Go runtime's and the process's collectors.
func NewMetrics(level Level) *Metrics {
	m := &Metrics{
		level: level,
		reg:   prometheus.NewRegistry(),
		req:   newRequestMetrics(),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_log_fsync_duration_seconds",
			Help:    "Duration of the fsyncs of partition logs (group commit and interval flush).",
			Buckets: latencyBuckets[:],
		}),
		fsyncErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_log_flush_failures_total",
			Help: "Failed fsyncs of partition logs; each takes its log offline (R5).",
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_controller_commit_duration_seconds",
			Help:    "Time from proposing a metadata command to its commit and application, on the controller leader.",
			Buckets: latencyBuckets[:],
		}),
	}
	m.reg.MustRegister(m.req, m.fsync, m.fsyncErr, m.commit,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Request counts a request and observes its stages (requests.go).
func (m *Metrics) Request(t broker.RequestTiming) { m.req.request(&t) }

// Sync observes a log fsync.
func (m *Metrics) Sync(d time.Duration, err error) {
	m.fsync.Observe(d.Seconds())
	if err != nil {
		m.fsyncErr.Inc()
	}
}

// Commit observes a controller commit.
func (m *Metrics) Commit(d time.Duration) { m.commit.Observe(d.Seconds()) }

// errCollecting: Start was given Metrics already collecting a broker.
var errCollecting = errors.New("httpapi: these Metrics already collect a broker")

// collect registers the collector of src's state.
func (m *Metrics) collect(src Source) error {
	if err := m.reg.Register(&collector{src: src, level: m.level}); err != nil {
		if errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return errCollecting
		}
		return fmt.Errorf("httpapi: register collector: %w", err)
	}
	return nil
}

// Descriptions of the series the collector makes from broker.Stats.
var (
	descReady = prometheus.NewDesc("sluice_broker_ready",
		"1 when the broker is ready (what /readyz checks), else 0.", nil, nil)
	descIsLeader = prometheus.NewDesc("sluice_controller_is_leader",
		"1 on the broker whose Raft node leads the metadata group, else 0; the cluster sums to 1.", nil, nil)
	descApplied = prometheus.NewDesc("sluice_controller_applied_index",
		"Raft index of the last metadata command applied on this broker.", nil, nil)
	descBrokers = prometheus.NewDesc("sluice_controller_brokers",
		"Registered brokers by state (alive, offline: failed or left, fenced out of every ISR), as this broker's copy of the metadata says.", []string{"state"}, nil)
	descOffline = prometheus.NewDesc("sluice_partitions_offline",
		"Partitions of the cluster with no leader; reported by the controller leader, 0 elsewhere, so the cluster sums to the count.", nil, nil)
	descLed = prometheus.NewDesc("sluice_partitions_led",
		"Partitions this broker leads.", nil, nil)
	descURP = prometheus.NewDesc("sluice_partitions_under_replicated",
		"Partitions this broker leads whose ISR is smaller than their replica list.", nil, nil)
	descUnderMin = prometheus.NewDesc("sluice_partitions_under_min_isr",
		"Partitions this broker leads whose ISR is smaller than min.insync.replicas: acks=all produces to them fail.", nil, nil)
	descLogOffline = prometheus.NewDesc("sluice_log_offline_replicas",
		"Partition replicas on this broker whose log went offline after a storage error (R5).", nil, nil)
	descShrinks = prometheus.NewDesc("sluice_partition_isr_shrinks_total",
		"ISR changes this broker made as leader that removed members.", nil, nil)
	descExpands = prometheus.NewDesc("sluice_partition_isr_expands_total",
		"ISR changes this broker made as leader that added members.", nil, nil)
	descElections = prometheus.NewDesc("sluice_partition_leader_elections_total",
		"Times this broker became a partition's leader (a new leader epoch naming it); summed over the brokers, the cluster's leader elections.", nil, nil)
	descConnsOpen = prometheus.NewDesc("sluice_connections_open",
		"Client and broker connections open.", nil, nil)
	descBudget = prometheus.NewDesc("sluice_memory_budget_bytes",
		"The broker's memory budget for requests held in memory (--memory-budget).", nil, nil)
	descBudgetUsed = prometheus.NewDesc("sluice_memory_budget_used_bytes",
		"Request bytes held against the memory budget now; at the budget, reading requests waits.", nil, nil)
	descConnsRefused = prometheus.NewDesc("sluice_connections_refused_total",
		"Connections refused, by the limit that refused them.", []string{"reason"}, nil)
	descBytesIn = prometheus.NewDesc("sluice_topic_bytes_in_total",
		"Bytes of record batches produced to the partitions this broker leads (duplicates of idempotent retries not counted).", []string{"topic"}, nil)
	descRecordsIn = prometheus.NewDesc("sluice_topic_records_in_total",
		"Records produced to the partitions this broker leads.", []string{"topic"}, nil)
	descBytesOut = prometheus.NewDesc("sluice_topic_bytes_out_total",
		"Bytes of record batches sent to consumers (not to followers) from the partitions this broker leads.", []string{"topic"}, nil)
	descRecordsOut = prometheus.NewDesc("sluice_topic_records_out_total",
		"Records sent to consumers from the partitions this broker leads.", []string{"topic"}, nil)
	descLogBytes = prometheus.NewDesc("sluice_log_size_bytes",
		"Size of the segment files of this broker's replicas of the topic's partitions.", []string{"topic"}, nil)
	descSegments = prometheus.NewDesc("sluice_log_segments",
		"Segments of this broker's replicas of the topic's partitions.", []string{"topic"}, nil)
	descGroupLag = prometheus.NewDesc("sluice_group_lag",
		"Offsets the group has not consumed of the topic: the sum over its partitions of the high watermark minus the committed offset (the log start offset for none), exported by the group's coordinator.", []string{"group", "topic"}, nil)
	descGroupMembers = prometheus.NewDesc("sluice_group_members",
		"Members of the consumer group, exported by the group's coordinator.", []string{"group"}, nil)
	descQueueAvailable = prometheus.NewDesc("sluice_queue_records_available",
		"Records of the queue group's windows on the topic that a member may be given (never delivered, released, or their lease ran out), exported by the group's coordinator only, so the cluster sums correctly.", []string{"group", "topic"}, nil)
	descQueueAcquired = prometheus.NewDesc("sluice_queue_records_acquired",
		"Records of the topic held by the queue group's members under a lease, exported by the group's coordinator only.", []string{"group", "topic"}, nil)
	descQueueDead = prometheus.NewDesc("sluice_queue_dead_letters_total",
		"Records of the topic the queue group archived (rejected, or out of deliveries) and copied to the dead-letter topic, exported by the group's coordinator only (kept across coordinator failovers).", []string{"group", "topic"}, nil)
	descQueueOldest = prometheus.NewDesc("sluice_queue_oldest_unacked_age_seconds",
		"Age of the oldest lease the queue group's members hold on the topic (0 when none), exported by the group's coordinator only.", []string{"group", "topic"}, nil)
	descQueueAtCap = prometheus.NewDesc("sluice_queue_partitions_at_cap",
		"Partitions of the topic whose queue-group window is full (max in flight): no new record is delivered from them until the oldest are settled. Exported by the group's coordinator only.", []string{"group", "topic"}, nil)
	descCleanerState = prometheus.NewDesc("sluice_cleaner_state",
		"1 for the log cleaner's state on this broker, 0 for the others: error (the last clean of a partition failed; retried after a backoff), running (cleaning a partition now), idle.", []string{"state"}, nil)
	descCleanerPartitions = prometheus.NewDesc("sluice_cleaner_partitions",
		"This broker's replicas of compacted topics, by cleaner state: compacted (all), due (for a clean now), failing (the last clean failed).", []string{"state"}, nil)
	descCleanerDirty = prometheus.NewDesc("sluice_cleaner_dirty_bytes",
		"Cleanable bytes of this broker's compacted replicas not cleaned yet: the cleaner's backlog.", nil, nil)
	descCleanerCleans = prometheus.NewDesc("sluice_cleaner_cleans_total",
		"Partition cleans this broker's log cleaner finished, by result (ok, error).", []string{"result"}, nil)
	descCleanerReclaimed = prometheus.NewDesc("sluice_cleaner_reclaimed_bytes_total",
		"Bytes the log cleaner removed from this broker's compacted replicas.", nil, nil)
	descCleanerRemoved = prometheus.NewDesc("sluice_cleaner_removed_records_total",
		"Records the log cleaner removed (superseded by a later record of their key, or expired tombstones).", nil, nil)
	descDiskFree = prometheus.NewDesc("sluice_disk_free_bytes",
		"Bytes free to the broker on the file system of its data directory.", nil, nil)
	descDiskCapacity = prometheus.NewDesc("sluice_disk_capacity_bytes",
		"Size of the file system of the broker's data directory.", nil, nil)

	// LevelDebug only.
	descPartBytes = prometheus.NewDesc("sluice_partition_size_bytes",
		"Size of the partition replica's segment files.", []string{"topic", "partition"}, nil)
	descPartStart = prometheus.NewDesc("sluice_partition_start_offset",
		"The replica's log start offset.", []string{"topic", "partition"}, nil)
	descPartEnd = prometheus.NewDesc("sluice_partition_end_offset",
		"The replica's log end offset.", []string{"topic", "partition"}, nil)
	descPartHW = prometheus.NewDesc("sluice_partition_high_watermark",
		"The replica's high watermark.", []string{"topic", "partition"}, nil)
	descPartISR = prometheus.NewDesc("sluice_partition_isr",
		"Size of the partition's ISR, as the replica knows it.", []string{"topic", "partition"}, nil)
	descPartLeader = prometheus.NewDesc("sluice_partition_leader",
		"1 when this broker leads the partition, else 0.", []string{"topic", "partition"}, nil)
	descQueuePartAvailable = prometheus.NewDesc("sluice_queue_partition_records_available",
		"Records of the partition available to the queue group, exported by the group's coordinator only.", []string{"group", "topic", "partition"}, nil)
	descQueuePartAcquired = prometheus.NewDesc("sluice_queue_partition_records_acquired",
		"Records of the partition held under a lease by the queue group's members, exported by the group's coordinator only.", []string{"group", "topic", "partition"}, nil)
	descQueuePartDead = prometheus.NewDesc("sluice_queue_partition_dead_letters_total",
		"Records of the partition the queue group dead-lettered, exported by the group's coordinator only.", []string{"group", "topic", "partition"}, nil)
	descQueuePartOldest = prometheus.NewDesc("sluice_queue_partition_oldest_unacked_age_seconds",
		"Age of the oldest lease held on the partition by the queue group's members (0 when none), exported by the group's coordinator only.", []string{"group", "topic", "partition"}, nil)
	descQueuePartAtCap = prometheus.NewDesc("sluice_queue_partition_at_cap",
		"1 when the queue group's window of the partition is full, else 0; exported by the group's coordinator only.", []string{"group", "topic", "partition"}, nil)
	descGroupPartLag = prometheus.NewDesc("sluice_group_partition_lag",
		"Offsets the group has not consumed of the partition, exported by the group's coordinator.", []string{"group", "topic", "partition"}, nil)
)

// collector makes metrics from a broker.Stats snapshot at each scrape.
type collector struct {
	src   Source
	level Level
}

// Describe sends every description the collector may use.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReady, descIsLeader, descApplied, descBrokers, descOffline, descLed, descURP,
		descUnderMin, descLogOffline, descShrinks, descExpands, descElections, descConnsOpen, descConnsRefused, descBudget, descBudgetUsed,
		descBytesIn, descRecordsIn, descBytesOut, descRecordsOut, descLogBytes, descSegments, descGroupMembers, descGroupLag, descDiskFree, descDiskCapacity,
		descQueueAvailable, descQueueAcquired, descQueueDead, descQueueOldest, descQueueAtCap,
		descCleanerState, descCleanerPartitions, descCleanerDirty, descCleanerCleans, descCleanerReclaimed, descCleanerRemoved} {
		ch <- d
	}
	if c.level >= LevelDebug {
		for _, d := range []*prometheus.Desc{descPartBytes, descPartStart, descPartEnd, descPartHW, descPartISR, descPartLeader, descGroupPartLag,
			descQueuePartAvailable, descQueuePartAcquired, descQueuePartDead, descQueuePartOldest, descQueuePartAtCap} {
			ch <- d
		}
	}
}

// Collect reads one snapshot and sends its metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats(c.level >= LevelDebug)
	gauge, counter := sink(ch).gauge, sink(ch).counter
	gauge(descReady, b2f(st.Ready))
	gauge(descIsLeader, b2f(st.ControllerLeader))
	gauge(descApplied, float64(st.AppliedIndex))
	gauge(descBrokers, float64(st.BrokersAlive), "alive")
	gauge(descBrokers, float64(st.BrokersOffline), "offline")
	offline := 0
	if st.ControllerLeader {
		offline = st.OfflinePartitions
	}
	gauge(descOffline, float64(offline))
	counter(descShrinks, st.ISRShrinksTotal)
	counter(descExpands, st.ISRExpandsTotal)
	counter(descElections, st.LeaderElectionsTotal)
	gauge(descConnsOpen, float64(st.ConnectionsOpen))
	gauge(descBudget, float64(st.MemoryBudget))
	gauge(descBudgetUsed, float64(st.MemoryBudgetUsed))
	for reason, n := range st.ConnectionsRefused {
		counter(descConnsRefused, n, reason)
	}
	var led, urp, underMin, logOffline int
	for i := range st.Topics {
		t := &st.Topics[i]
		led, urp, underMin = led+t.Led, urp+t.UnderReplicated, underMin+t.UnderMinISR
		logOffline += t.OfflineReplicas
		counter(descBytesIn, t.BytesIn, t.Topic)
		counter(descRecordsIn, t.RecordsIn, t.Topic)
		counter(descBytesOut, t.BytesOut, t.Topic)
		counter(descRecordsOut, t.RecordsOut, t.Topic)
		gauge(descLogBytes, float64(t.Bytes), t.Topic)
		gauge(descSegments, float64(t.Segments), t.Topic)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			part := strconv.Itoa(int(p.Partition))
			gauge(descPartBytes, float64(p.Bytes), t.Topic, part)
			gauge(descPartStart, float64(p.StartOffset), t.Topic, part)
			gauge(descPartEnd, float64(p.EndOffset), t.Topic, part)
			gauge(descPartHW, float64(p.HighWatermark), t.Topic, part)
			gauge(descPartISR, float64(p.ISR), t.Topic, part)
			gauge(descPartLeader, b2f(p.Leader), t.Topic, part)
		}
	}
	for i := range st.Groups {
		g := &st.Groups[i]
		gauge(descGroupMembers, float64(g.Members), g.Group)
		for j := range g.Topics {
			l := &g.Topics[j]
			gauge(descGroupLag, float64(l.Lag), g.Group, l.Topic)
			for _, p := range l.Partitions {
				gauge(descGroupPartLag, float64(p.Lag), g.Group, l.Topic, strconv.Itoa(int(p.Partition)))
			}
		}
	}
	c.collectQueues(ch, &st)
	c.collectCleaner(ch, &st.Cleaner)
	if st.DiskCapacity > 0 {
		gauge(descDiskFree, float64(st.DiskFree))
		gauge(descDiskCapacity, float64(st.DiskCapacity))
	}
	gauge(descLed, float64(led))
	gauge(descURP, float64(urp))
	gauge(descUnderMin, float64(underMin))
	gauge(descLogOffline, float64(logOffline))
}

// sink sends const metrics to a collector's channel.
type sink chan<- prometheus.Metric

func (s sink) gauge(d *prometheus.Desc, v float64, labels ...string) {
	s <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func (s sink) counter(d *prometheus.Desc, v int64, labels ...string) {
	s <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collectQueues sends the queue groups' series: per group and topic, and
// per partition at LevelDebug.
func (c *collector) collectQueues(ch chan<- prometheus.Metric, st *broker.Stats) {
	queues, now := st.Queues, st.Time
	gauge, counter := sink(ch).gauge, sink(ch).counter
	age := func(since time.Time) float64 {
		if since.IsZero() {
			return 0
		}
		return max(now.Sub(since).Seconds(), 0)
	}
	for i := range queues {
		g := &queues[i]
		parts := g.Partitions
		for len(parts) > 0 {
			// The partitions are sorted by topic: one run per topic.
			n := 1
			for n < len(parts) && parts[n].Topic == parts[0].Topic {
				n++
			}
			var avail, acq, atCap int
			var dead int64
			var oldest time.Time
			for _, p := range parts[:n] {
				avail, acq, dead = avail+p.Available, acq+p.Acquired, dead+p.DeadLettered
				if p.AtCap {
					atCap++
				}
				if !p.OldestAcquired.IsZero() && (oldest.IsZero() || p.OldestAcquired.Before(oldest)) {
					oldest = p.OldestAcquired
				}
				if c.level >= LevelDebug {
					part := strconv.Itoa(int(p.Partition))
					gauge(descQueuePartAvailable, float64(p.Available), g.Group, p.Topic, part)
					gauge(descQueuePartAcquired, float64(p.Acquired), g.Group, p.Topic, part)
					counter(descQueuePartDead, p.DeadLettered, g.Group, p.Topic, part)
					gauge(descQueuePartOldest, age(p.OldestAcquired), g.Group, p.Topic, part)
					gauge(descQueuePartAtCap, b2f(p.AtCap), g.Group, p.Topic, part)
				}
			}
			topic := parts[0].Topic
			gauge(descQueueAvailable, float64(avail), g.Group, topic)
			gauge(descQueueAcquired, float64(acq), g.Group, topic)
			counter(descQueueDead, dead, g.Group, topic)
			gauge(descQueueOldest, age(oldest), g.Group, topic)
			gauge(descQueueAtCap, float64(atCap), g.Group, topic)
			parts = parts[n:]
		}
	}
}

// collectCleaner sends the log cleaner's series.
func (c *collector) collectCleaner(ch chan<- prometheus.Metric, cs *broker.CleanerStats) {
	gauge, counter := sink(ch).gauge, sink(ch).counter
	state := "idle"
	switch {
	case cs.Failing > 0:
		state = "error"
	case cs.Running:
		state = "running"
	}
	for _, s := range [...]string{"idle", "running", "error"} {
		gauge(descCleanerState, b2f(s == state), s)
	}
	gauge(descCleanerPartitions, float64(cs.Compacted), "compacted")
	gauge(descCleanerPartitions, float64(cs.Due), "due")
	gauge(descCleanerPartitions, float64(cs.Failing), "failing")
	gauge(descCleanerDirty, float64(cs.DirtyBytes))
	counter(descCleanerCleans, cs.CleansTotal, "ok")
	counter(descCleanerCleans, cs.FailuresTotal, "error")
	counter(descCleanerReclaimed, cs.BytesReclaimedTotal)
	counter(descCleanerRemoved, cs.RecordsRemovedTotal)
}
