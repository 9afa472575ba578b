package httpapi

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicemq/sluice/broker"
)

// The Kafka listener's fetch-session cache (KIP-227, kafka/fetchsession.go):
// a handful of series per broker, none per session or partition.
var (
	descFSSlots = prometheus.NewDesc("sluice_kafka_fetch_session_slots",
		"Fetch sessions the Kafka listener may hold (--kafka-fetch-session-slots, Kafka's max.incremental.fetch.session.cache.slots); 0: sessions off.", nil, nil)
	descFSOpen = prometheus.NewDesc("sluice_kafka_fetch_sessions",
		"Fetch sessions the Kafka listener holds now.", nil, nil)
	descFSPartitions = prometheus.NewDesc("sluice_kafka_fetch_session_partitions",
		"Partitions held across the Kafka listener's fetch sessions.", nil, nil)
	descFSCreated = prometheus.NewDesc("sluice_kafka_fetch_sessions_created_total",
		"Fetch sessions opened by a full fetch.", nil, nil)
	descFSEvicted = prometheus.NewDesc("sluice_kafka_fetch_sessions_evicted_total",
		"Fetch sessions evicted, by reason: idle (the least recently used, idle for 2 minutes, made room for a new one in a full cache), connection_cap (the connection's least recently used, for its fifth), too_large (an incremental fetch grew it past the partition caps).", []string{"reason"}, nil)
	descFSCacheFull = prometheus.NewDesc("sluice_kafka_fetch_sessions_cache_full_total",
		"Full fetches that asked for a session and were answered without one because the cache had no room (every slot held by a session used within 2 minutes, or the cache's partition cap reached): their consumers send full fetches. Raise --kafka-fetch-session-slots.", nil, nil)
	descFSErrors = prometheus.NewDesc("sluice_kafka_fetch_session_errors_total",
		"Fetches refused with a fetch-session error, by code: FETCH_SESSION_ID_NOT_FOUND (evicted, closed, or another connection's), INVALID_FETCH_SESSION_EPOCH (out of step). The client then opens a new session with a full fetch.", []string{"code"}, nil)
	descFSFetches = prometheus.NewDesc("sluice_kafka_fetches_total",
		"Fetches the Kafka listener served, by session: full (opened a session), incremental (in a session), none (answered without a session: sessions off, the cache full, a close, or a client before Fetch v7).", []string{"session"}, nil)
)

// Kafka's names of the fetch-session error codes (the code label, as
// sluice_requests_total names Kafka's codes).
const (
	codeFetchSessionNotFound = "FETCH_SESSION_ID_NOT_FOUND"
	codeInvalidFetchEpoch    = "INVALID_FETCH_SESSION_EPOCH"
)

// errFetchSessions: CollectFetchSessions was called twice.
var errFetchSessions = errors.New("httpapi: these Metrics already collect a fetch-session cache")

// CollectFetchSessions adds the series of a Kafka listener's fetch-session
// cache, read from stats at each scrape (kafka.Server.FetchSessionStats).
// One listener per Metrics.
func (m *Metrics) CollectFetchSessions(stats func() broker.FetchSessionStats) error {
	if err := m.reg.Register(fetchSessionCollector(stats)); err != nil {
		if errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return errFetchSessions
		}
		return fmt.Errorf("httpapi: register the fetch-session collector: %w", err)
	}
	return nil
}

// fetchSessionCollector makes the fetch-session series from one
// snapshot at each scrape.
type fetchSessionCollector func() broker.FetchSessionStats

// Describe sends the series' descriptions.
func (fetchSessionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFSSlots, descFSOpen, descFSPartitions, descFSCreated, descFSEvicted,
		descFSCacheFull, descFSErrors, descFSFetches} {
		ch <- d
	}
}

// Collect sends the series of one snapshot.
func (c fetchSessionCollector) Collect(ch chan<- prometheus.Metric) {
	st := c()
	gauge, counter := sink(ch).gauge, sink(ch).counter
	gauge(descFSSlots, float64(st.Slots))
	gauge(descFSOpen, float64(st.Sessions))
	gauge(descFSPartitions, float64(st.Partitions))
	counter(descFSCreated, st.Created)
	counter(descFSEvicted, st.EvictedIdle, "idle")
	counter(descFSEvicted, st.EvictedConnCap, "connection_cap")
	counter(descFSEvicted, st.EvictedTooLarge, "too_large")
	counter(descFSCacheFull, st.CacheFull)
	counter(descFSErrors, st.NotFound, codeFetchSessionNotFound)
	counter(descFSErrors, st.BadEpoch, codeInvalidFetchEpoch)
	counter(descFSFetches, st.Created, "full")
	counter(descFSFetches, st.Incremental, "incremental")
	counter(descFSFetches, st.Sessionless, "none")
}
