package kafka

import (
	"container/list"
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
)

// Fetch sessions (KIP-227). A consumer that fetches the same partitions
// again and again opens a session with a full fetch (session id 0, epoch
// 0): the broker keeps the partitions, their fetch offsets and what it last
// answered for each, and answers with the session's id. The consumer's
// next fetches carry that id and the next epoch, only the partitions whose
// fetch offset or limits changed, and the partitions to forget; the answer
// holds only the partitions with records, an error, or a high watermark,
// last stable offset or log start offset other than last answered. Epoch
// -1 closes the session. A wrong epoch is INVALID_FETCH_SESSION_EPOCH, an
// id this broker does not hold for this connection FETCH_SESSION_ID_NOT_FOUND:
// clients then open a new session with a full fetch.
//
// Bounds: at most Slots sessions on the broker (Kafka's
// max.incremental.fetch.session.cache.slots, 1,000 by default; 0 turns
// sessions off: every fetch is answered session id 0, which tells clients
// to send full fetches), at most maxSessionsPerConn per connection (a new
// one evicts the connection's least recently used), at most
// maxSessionPartitions partitions in one session and maxCachedPartitions in
// all. When the cache is full a new session may evict the least recently
// used one only if it has been idle for sessionEvictIdle (Kafka's rule for
// consumers' sessions: an active session is never evicted for a new one);
// otherwise the full fetch is answered without a session (id 0). A
// session belongs to the connection that opened it and is freed when that
// connection closes; another connection (or principal) using its id gets
// FETCH_SESSION_ID_NOT_FOUND.

// Kafka's codes of fetch sessions, which only this front end has.
const (
	kerrFetchSessionNotFound  = 70
	kerrInvalidFetchEpoch     = 71
	minSessionFetchVersion    = 7 // Fetch v7 carries session ids and epochs
	DefaultFetchSessionSlots  = 1000
	maxSessionsPerConn        = 4
	maxSessionPartitions      = 10000
	maxCachedPartitions       = 250000
	sessionEvictIdle          = 2 * time.Minute
	sessionEpochClose         = -1
	sessionEpochInitial       = 0
	sessionPartUnknownOffsets = -1 // a partition never answered: the first answer includes it
)

// FetchSessionStats counts what the fetch-session cache did since the
// listener started (the metrics, tests and benchmarks read it).
type FetchSessionStats = broker.FetchSessionStats

// fetchSessions is the broker's cache of fetch sessions, the one home of
// KIP-227 on this listener.
type fetchSessions struct {
	slots int
	now   func() time.Time

	mu       sync.Mutex
	sessions map[int32]*fetchSession
	lru      list.List // of *fetchSession, least recently used first
	perConn  map[*broker.Session]int
	parts    int // partitions held by all sessions

	created, incremental, sessionless, cacheFull atomic.Int64
	evictedIdle, evictedConnCap, evictedTooLarge atomic.Int64
	notFound, badEpoch                           atomic.Int64
}

func newFetchSessions(slots int) *fetchSessions {
	return &fetchSessions{slots: slots, now: time.Now, sessions: make(map[int32]*fetchSession), perConn: make(map[*broker.Session]int)}
}

// fetchSession is one session. Its identity fields are the cache's (under
// fetchSessions.mu); its partitions are under its own mu, held while a
// request changes them and while an answer is compared with them.
type fetchSession struct {
	id        int32
	owner     *broker.Session // the connection's
	principal auth.Principal
	epoch     int32 // the epoch the next request must carry
	lastUsed  time.Time
	elem      *list.Element
	stop      func() bool // unregisters the connection-close hook

	mu    sync.Mutex
	order []*sessionPart // fetch order: partitions answered with records go last
	spare []*sessionPart // the order before the last reorder, reused by the next
	index map[sessionKey]*sessionPart
	n     int // partitions held, as the cache counts them
}

type sessionKey struct {
	topic     string
	partition int32
}

// sessionPart is one partition of a session: what the consumer last asked
// for and what the broker last answered.
type sessionPart struct {
	topic       string
	partition   int32
	offset      int64
	maxBytes    int32
	leaderEpoch int32
	removed     bool

	hw, lso, logStart int64 // last answered; sessionPartUnknownOffsets before the first answer or after an error
	moved             bool  // answered with records by the answer being encoded
}

// fetchPlan is what a Fetch request becomes: a top-level session error
// (nothing fetched), or the partitions to read and the session (nil:
// sessionless) whose id the answer carries.
type fetchPlan struct {
	errCode     int16
	sess        *fetchSession
	incremental bool
}

// plan applies req's session fields. For a full fetch (sessionless or
// opening a session) the caller reads the request's partitions; for an
// incremental one, the session's (readParts).
func (c *fetchSessions) plan(fc *broker.FrontConn, req *kmsg.FetchRequest) fetchPlan {
	if req.Version < minSessionFetchVersion {
		c.sessionless.Add(1)
		return fetchPlan{}
	}
	owner := fc.Session()
	principal := owner.Principal()
	id, epoch := req.SessionID, req.SessionEpoch
	full := epoch == sessionEpochInitial || epoch == sessionEpochClose
	c.mu.Lock()
	defer c.mu.Unlock()
	var s *fetchSession
	if id != 0 {
		s = c.sessions[id]
		if s != nil && (s.owner != owner || s.principal != principal) {
			s = nil // another connection's: as if unknown
		}
	}
	if full {
		// A full fetch needs no session: an id it closes or replaces
		// that is gone already (evicted) is no error, as in Kafka.
		if s != nil {
			c.removeLocked(s)
		}
		if epoch == sessionEpochClose || c.slots <= 0 {
			c.sessionless.Add(1)
			return fetchPlan{}
		}
		ns := c.openLocked(fc, owner, principal, req)
		if ns == nil {
			c.sessionless.Add(1)
		}
		return fetchPlan{sess: ns}
	}
	if s == nil {
		c.notFound.Add(1)
		return fetchPlan{errCode: kerrFetchSessionNotFound}
	}
	if s.epoch != epoch {
		c.badEpoch.Add(1)
		return fetchPlan{errCode: kerrInvalidFetchEpoch}
	}
	s.mu.Lock()
	delta := s.apply(req.Topics, req.ForgottenTopics)
	s.mu.Unlock()
	c.parts += delta
	if s.n > maxSessionPartitions || c.parts > maxCachedPartitions {
		c.removeLocked(s)
		c.evictedTooLarge.Add(1)
		c.notFound.Add(1)
		return fetchPlan{errCode: kerrFetchSessionNotFound}
	}
	s.epoch = nextEpoch(epoch)
	s.lastUsed = c.now()
	c.lru.MoveToBack(s.elem)
	c.incremental.Add(1)
	return fetchPlan{sess: s, incremental: true}
}

// nextEpoch is the epoch after e (wrapping to 1, as Kafka's clients do).
func nextEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// openLocked opens a session of req's partitions for the connection, or
// returns nil when the cache has no room for it (the answer then carries
// session id 0).
func (c *fetchSessions) openLocked(fc *broker.FrontConn, owner *broker.Session, principal auth.Principal, req *kmsg.FetchRequest) *fetchSession {
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	if n > maxSessionPartitions {
		return nil
	}
	if c.perConn[owner] >= maxSessionsPerConn {
		for e := c.lru.Front(); e != nil; e = e.Next() {
			if old := e.Value.(*fetchSession); old.owner == owner {
				c.removeLocked(old)
				c.evictedConnCap.Add(1)
				break
			}
		}
	}
	now := c.now()
	for len(c.sessions) >= c.slots || c.parts+n > maxCachedPartitions {
		e := c.lru.Front()
		if e == nil || now.Sub(e.Value.(*fetchSession).lastUsed) < sessionEvictIdle {
			c.cacheFull.Add(1)
			return nil
		}
		c.removeLocked(e.Value.(*fetchSession))
		c.evictedIdle.Add(1)
	}
	s := &fetchSession{id: c.newIDLocked(), owner: owner, principal: principal, epoch: 1, lastUsed: now,
		index: make(map[sessionKey]*sessionPart, n)}
	s.apply(req.Topics, nil)
	c.parts += s.n
	c.sessions[s.id] = s
	c.perConn[owner]++
	s.elem = c.lru.PushBack(s)
	id := s.id
	s.stop = context.AfterFunc(fc.Context(), func() { c.close(id, owner) })
	c.created.Add(1)
	return s
}

// newIDLocked picks an unused positive session id at random (ids are not
// guessable from one another; they are checked against the connection
// anyway).
func (c *fetchSessions) newIDLocked() int32 {
	for {
		if id := rand.Int32N(math.MaxInt32) + 1; c.sessions[id] == nil {
			return id
		}
	}
}

// close removes session id if the connection owner still holds it (its
// connection closed).
func (c *fetchSessions) close(id int32, owner *broker.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sessions[id]; s != nil && s.owner == owner {
		c.removeLocked(s)
	}
}

func (c *fetchSessions) removeLocked(s *fetchSession) {
	if c.sessions[s.id] != s {
		return
	}
	delete(c.sessions, s.id)
	c.lru.Remove(s.elem)
	if c.perConn[s.owner]--; c.perConn[s.owner] <= 0 {
		delete(c.perConn, s.owner)
	}
	s.mu.Lock()
	c.parts -= s.n
	s.mu.Unlock()
	if s.stop != nil {
		s.stop()
	}
}

// stats reports the counters and what the cache holds.
func (c *fetchSessions) stats() FetchSessionStats {
	c.mu.Lock()
	sessions, parts := len(c.sessions), c.parts
	c.mu.Unlock()
	return FetchSessionStats{Slots: c.slots, Sessions: sessions, Partitions: parts,
		Created: c.created.Load(), Incremental: c.incremental.Load(), Sessionless: c.sessionless.Load(), CacheFull: c.cacheFull.Load(),
		EvictedIdle: c.evictedIdle.Load(), EvictedConnCap: c.evictedConnCap.Load(), EvictedTooLarge: c.evictedTooLarge.Load(),
		NotFound: c.notFound.Load(), BadEpoch: c.badEpoch.Load()}
}

// apply adds or updates the partitions of topics and removes those of
// forgotten; it returns the change in the number of partitions held.
// Topic names are copied (the request aliases its frame). s.mu is held.
func (s *fetchSession) apply(topics []kmsg.FetchRequestTopic, forgotten []kmsg.FetchRequestForgottenTopic) int {
	before := s.n
	for i := range forgotten {
		t := &forgotten[i]
		for _, p := range t.Partitions {
			if sp := s.index[sessionKey{t.Topic, p}]; sp != nil {
				delete(s.index, sessionKey{sp.topic, p})
				sp.removed = true
				s.n--
			}
		}
	}
	if s.n < before {
		s.order = compact(s.order)
	}
	for i := range topics {
		t := &topics[i]
		var name string
		for _, p := range t.Partitions {
			sp := s.index[sessionKey{t.Topic, p.Partition}]
			if sp == nil {
				if name == "" {
					name = clone(t.Topic)
				}
				sp = &sessionPart{topic: name, partition: p.Partition, hw: sessionPartUnknownOffsets,
					lso: sessionPartUnknownOffsets, logStart: sessionPartUnknownOffsets}
				s.index[sessionKey{name, p.Partition}] = sp
				s.order = append(s.order, sp)
				s.n++
			}
			sp.offset, sp.maxBytes, sp.leaderEpoch = p.FetchOffset, p.PartitionMaxBytes, p.CurrentLeaderEpoch
		}
	}
	return s.n - before
}

// compact drops the removed partitions from order, keeping the rest in
// order.
func compact(order []*sessionPart) []*sessionPart {
	out := order[:0]
	for _, sp := range order {
		if !sp.removed {
			out = append(out, sp)
		}
	}
	clear(order[len(out):])
	return out
}

// readParts appends the session's partitions to f, in fetch order, and
// returns them aligned with f.Parts.
func (s *fetchSession) readParts(f *broker.Fetch, dst []*sessionPart) []*sessionPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.order {
		f.Parts = append(f.Parts, broker.FetchPart{Topic: sp.topic, Partition: sp.partition, Offset: sp.offset,
			MaxBytes: int(sp.maxBytes), LeaderEpoch: sp.leaderEpoch})
		dst = append(dst, sp)
	}
	return dst
}

// partsOf returns the session's partition of each of f.Parts (a full
// fetch that opened the session: every partition the request named).
func (s *fetchSession) partsOf(f *broker.Fetch, dst []*sessionPart) []*sessionPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range f.Parts {
		dst = append(dst, s.index[sessionKey{f.Parts[i].Topic, f.Parts[i].Partition}])
	}
	return dst
}

// answer decides, under the session's lock, which partitions of the read
// in f go in the answer: in an incremental fetch only those with records,
// an error or offsets other than last answered; in a full one all. It
// records what is answered, and moves the partitions answered with
// records to the end of the fetch order, so a response byte limit does not
// starve the partitions behind them (Kafka does the same). include[i] is
// set for each part answered.
func (s *fetchSession) answer(f *broker.Fetch, parts []*sessionPart, incremental bool, include []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	moved := false
	for i := range f.Parts {
		fp, sp := &f.Parts[i], parts[i]
		res := &fp.Result
		records := fp.Err == nil && res.Records.Len() > 0
		changed := sp.hw != res.HighWatermark || sp.lso != res.LastStableOffset || sp.logStart != res.LogStartOffset
		include[i] = !incremental || records || fp.Err != nil || changed
		if fp.Err != nil {
			// Answered again until the error is gone.
			sp.hw, sp.lso, sp.logStart = sessionPartUnknownOffsets, sessionPartUnknownOffsets, sessionPartUnknownOffsets
		} else {
			sp.hw, sp.lso, sp.logStart = res.HighWatermark, res.LastStableOffset, res.LogStartOffset
		}
		if incremental && records && !sp.removed {
			sp.moved, moved = true, true
		}
	}
	if !moved {
		return
	}
	out := s.spare[:0]
	for _, sp := range s.order {
		if !sp.moved {
			out = append(out, sp)
		}
	}
	for _, sp := range s.order {
		if sp.moved {
			sp.moved = false
			out = append(out, sp)
		}
	}
	clear(s.order) // its pointers live on in out
	s.spare, s.order = s.order[:0], out
}
