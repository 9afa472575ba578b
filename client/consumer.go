package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// Offset is where consumption of a partition starts: an exact offset, the
// start or end of the log, or the first record at or after a time.
type Offset struct {
	kind offsetKind
	at   int64 // the offset (offsetExact) or Unix milliseconds (offsetTime)
}

type offsetKind uint8

const (
	offsetExact offsetKind = iota
	offsetStart
	offsetEnd
	offsetTime
)

// At starts at offset o.
func At(o int64) Offset { return Offset{kind: offsetExact, at: o} }

// AtStart starts at the partition's log start offset (the earliest record
// retention kept).
func AtStart() Offset { return Offset{kind: offsetStart} }

// AtEnd starts at the end of the partition: only records produced from
// now on (the high watermark at the time the offset is resolved).
func AtEnd() Offset { return Offset{kind: offsetEnd} }

// AtTime starts at the first record whose timestamp is at or after t, or
// at the end if there is none.
func AtTime(t time.Time) Offset { return Offset{kind: offsetTime, at: t.UnixMilli()} }

// listTimestamp is the ListOffsets query for o.
func (o Offset) listTimestamp() int64 {
	switch o.kind {
	case offsetStart:
		return protocol.EarliestTimestamp
	case offsetEnd:
		return protocol.LatestTimestamp
	}
	return o.at
}

func (o Offset) String() string {
	switch o.kind {
	case offsetStart:
		return "start"
	case offsetEnd:
		return "end"
	case offsetTime:
		return "time " + time.UnixMilli(o.at).UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(o.at)
}

// consumer holds the assigned partitions, the buffer of fetched records
// and the per-broker fetchers that fill it.
type consumer struct {
	c *Client

	mu       sync.Mutex
	parts    map[TopicPartition]*cpart
	buffered []chunk
	bufBytes int
	// decodingBytes are record sets fetched and being decoded (fetch,
	// decodeAhead), counted against the buffer's limit with bufBytes.
	decodingBytes int
	errs          []*FetchError
	fetchers      map[int32]bool
	closed        bool

	ready   notifier // Poll waits: records or errors arrived
	changed notifier // fetchers wait: assignment, buffer space or metadata changed
}

// cpart is one assigned partition. gen changes on every Seek or Assign,
// so results of requests sent before are recognised and dropped.
type cpart struct {
	tp          TopicPartition
	offset      int64 // next offset to fetch
	start       Offset
	needsOffset bool  // start must be resolved with ListOffsets first
	paused      bool  // after a FetchError, until Seek or Assign
	busy        bool  // in a request now
	decoding    bool  // records of it are being decoded (decodeAhead) ...
	decoder     int32 // ... by the fetcher of this broker
	gen         uint64

	// Positions a group member commits (see group.go); -1 for none. polled
	// is the offset after the last record Poll returned, consumed what
	// polled was when Poll was last called (the application is done with
	// the records of earlier Polls once it polls again), committed the
	// last offset this client committed.
	polled, consumed, committed int64
}

// chunk is one partition's records from one fetch response, and a hold
// on the response's memory, which the records alias.
type chunk struct {
	part  *cpart
	gen   uint64
	recs  []*Record
	bytes int
	buf   *fetchBuf
}

// Fetches is what Poll returns: the records that arrived, in offset order
// within each partition, and partition errors. The records are the
// application's for as long as it references them, unless it calls
// Release, which hands their memory back to the client for later fetches.
type Fetches struct {
	Records []*Record
	Errors  []*FetchError

	held *polled // the memory Release hands back
	gen  uint64  // held's generation when polled
}

func (cs *consumer) init(c *Client) {
	cs.c = c
	cs.parts = map[TopicPartition]*cpart{}
	cs.fetchers = map[int32]bool{}
}

// Assign adds partitions to consume (or restarts ones already assigned)
// from the given offsets. Fetching starts in the background at once. A
// Client in a consumer group (ConsumerGroup) gets its partitions from the
// group: Assign and Unassign are not for it.
func (c *Client) Assign(parts map[TopicPartition]Offset) { c.cons.assign(parts) }

// assign is Assign, for the application and for the group member alike.
func (cs *consumer) assign(parts map[TopicPartition]Offset) {
	c := cs.c
	topics := make([]string, 0, len(parts))
	cs.mu.Lock()
	for tp, off := range parts {
		p := cs.parts[tp]
		if p == nil {
			p = &cpart{tp: tp, polled: -1, consumed: -1, committed: -1}
			cs.parts[tp] = p
			topics = append(topics, tp.Topic)
		}
		cs.reset(p)
		p.start = off
		p.needsOffset = off.kind != offsetExact
		p.offset = off.at
	}
	cs.mu.Unlock()
	c.meta.want(topics...)
	if len(topics) > 0 {
		c.meta.requestRefresh()
	}
	cs.metadataChanged()
}

// Unassign stops consuming partitions and drops their buffered records.
func (c *Client) Unassign(parts ...TopicPartition) { c.cons.unassign(parts, nil) }

// unassign stops consuming parts and drops their buffered records; if
// positions is not nil, it receives each one's cpart positions as they
// were (for the group member's commit on revoke).
func (cs *consumer) unassign(parts []TopicPartition, positions map[TopicPartition]cpart) {
	cs.mu.Lock()
	for _, tp := range parts {
		if p := cs.parts[tp]; p != nil {
			cs.reset(p)
			delete(cs.parts, tp)
			if positions != nil {
				positions[tp] = *p
			}
		}
	}
	cs.mu.Unlock()
}

// Seek makes the next records of an assigned partition start at offset,
// dropping what was fetched for it and not yet polled. In a consumer
// group, offset is then also the partition's position for commits: Commit
// and Close commit it until Poll returns more.
func (c *Client) Seek(topic string, partition int32, offset int64) error {
	cs := &c.cons
	cs.mu.Lock()
	p := cs.parts[TopicPartition{topic, partition}]
	if p == nil {
		cs.mu.Unlock()
		return fmt.Errorf("client: seek %s[%d]: partition not assigned", topic, partition)
	}
	cs.reset(p)
	p.offset, p.needsOffset = offset, false
	p.polled, p.consumed = offset, offset
	cs.mu.Unlock()
	cs.changed.notify()
	return nil
}

// reset invalidates in-flight results and buffered records of p and
// unpauses it. cs.mu is held.
func (cs *consumer) reset(p *cpart) {
	p.gen++
	p.paused = false
	kept := cs.buffered[:0]
	for _, ch := range cs.buffered {
		if ch.part == p {
			cs.bufBytes -= ch.bytes
			ch.buf.release() // never seen by the application
			continue
		}
		kept = append(kept, ch)
	}
	clear(cs.buffered[len(kept):])
	cs.buffered = kept
}

// Poll returns the records and partition errors that have arrived since
// the last Poll, waiting until there is at least one or ctx ends. The
// error is ctx's or ErrClosed; partition errors are in Fetches.Errors.
//
// In a consumer group, Poll returns records of the partitions the group
// assigned to this member, and calling it tells the member the
// application is done with the records of the previous Polls (they may be
// committed; see ConsumerGroup). The error is then also a *GroupError when
// the group refused the member for good (a regular expression that does
// not compile, say).
func (c *Client) Poll(ctx context.Context) (Fetches, error) {
	cs := &c.cons
	if g := c.group; g != nil {
		if err := g.pollStart(); err != nil {
			return Fetches{}, err
		}
		defer g.pollEnd()
	}
	for {
		if c.group != nil {
			c.group.finishRevoke()
		}
		cs.mu.Lock()
		if c.closed() {
			cs.mu.Unlock()
			return Fetches{}, ErrClosed
		}
		if c.group != nil && c.group.failed() != nil {
			cs.mu.Unlock()
			return Fetches{}, c.group.failed()
		}
		if len(cs.buffered) > 0 || len(cs.errs) > 0 {
			f := cs.take()
			cs.mu.Unlock()
			cs.changed.notify() // buffer space freed
			return f, nil
		}
		ch := cs.ready.wait()
		cs.mu.Unlock()
		if c.group != nil && c.group.revokePending() {
			continue // partitions revoked since the check above
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Fetches{}, ctx.Err()
		case <-c.ctx.Done():
			return Fetches{}, ErrClosed
		}
	}
}

// take empties the buffer into a Fetches. cs.mu is held.
func (cs *consumer) take() Fetches {
	n := 0
	for _, ch := range cs.buffered {
		n += len(ch.recs)
	}
	h := getPolled()
	h.recs = h.recs[:0]
	if cap(h.recs) < n {
		h.recs = make([]*Record, 0, n)
	}
	for _, ch := range cs.buffered {
		h.recs = append(h.recs, ch.recs...)
		h.bufs = append(h.bufs, ch.buf)
		ch.part.polled = ch.recs[len(ch.recs)-1].Offset + 1
	}
	f := Fetches{Records: h.recs, Errors: cs.errs, held: h, gen: h.gen.Load()}
	clear(cs.buffered)
	cs.buffered, cs.bufBytes, cs.errs = cs.buffered[:0], 0, nil
	return f
}

// metadataChanged starts a fetcher for every leader of an assigned
// partition that has none, and wakes the fetchers to look again.
func (cs *consumer) metadataChanged() {
	c := cs.c
	cs.mu.Lock()
	if !cs.closed {
		for tp := range cs.parts {
			id, _, ok := c.meta.leader(tp.Topic, tp.Partition)
			if !ok {
				c.meta.requestRefresh()
				continue
			}
			if !cs.fetchers[id] {
				cs.fetchers[id] = true
				c.wg.Add(1)
				go cs.fetchLoop(id)
			}
		}
	}
	cs.mu.Unlock()
	cs.changed.notify()
}

// close stops new fetchers from starting; the running ones stop with the
// Client's context.
func (cs *consumer) close() {
	cs.mu.Lock()
	cs.closed = true
	cs.mu.Unlock()
}
