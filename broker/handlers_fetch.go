package broker

import (
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/replica"
	"github.com/sluicemq/sluice/segment"
)

// maxFetchResponse bounds the record bytes of one Fetch response, whatever
// the client asks, so the frame length always fits its i32.
const maxFetchResponse = 1 << 30

// fetchState is one Fetch being answered: the request, the response
// without its record sets, and a segment View per partition that the
// writer sends zero-copy and then releases. It lives from the handler to
// the writer (through a long-poll when the request waits for data).
type fetchState struct {
	hdr   protocol.RequestHeader
	req   protocol.FetchRequest
	resp  protocol.FetchResponse
	parts []*partition // per partition in response order; nil = error
	codes []protocol.ErrorCode
	views []segment.View
	sizes []int32
	split protocol.SplitFrame
	wake  chan struct{} // signalled by the partitions' notify
}

var fetchPool = sync.Pool{New: func() any { return &fetchState{wake: make(chan struct{}, 1)} }}

func getFetchState() *fetchState { return fetchPool.Get().(*fetchState) }

func putFetchState(st *fetchState) {
	st.releaseViews()
	clear(st.parts)
	select {
	case <-st.wake:
	default:
	}
	if cap(st.split.Head) > maxPooledBuf {
		st.split.Head = nil
	}
	fetchPool.Put(st)
}

// releaseViews gives back every View the state holds.
func (st *fetchState) releaseViews() {
	for i := range st.views {
		st.views[i].Release()
		st.views[i] = segment.View{}
	}
}

// handleFetch answers at once when enough data is there, max wait is 0,
// a partition has an error or the broker is stopping; otherwise a
// long-poll goroutine answers later and the handler moves on.
func (c *conn) handleFetch(h *protocol.RequestHeader, resp *response) error {
	st := getFetchState()
	if err := st.req.Decode(&c.dec, h.Version); err != nil {
		putFetchState(st)
		return errMalformed{err}
	}
	st.hdr = *h
	c.resolve(st)
	enough := c.readFetch(st)
	resp.fetch = st
	if enough || st.req.MaxWaitMs <= 0 || c.ctx.Err() != nil {
		c.encodeFetch(st)
		return nil
	}
	st.releaseViews()
	wait := min(time.Duration(st.req.MaxWaitMs)*time.Millisecond, c.b.cfg.MaxFetchWait)
	resp.ready = make(chan struct{})
	c.polls.Add(1)
	go c.longPoll(st, resp, time.Now().Add(wait))
	return nil
}

// resolve looks up every partition of the request once.
func (c *conn) resolve(st *fetchState) {
	n := 0
	for i := range st.req.Topics {
		n += len(st.req.Topics[i].Partitions)
	}
	st.parts = resize(st.parts, n)
	st.codes = resize(st.codes, n)
	st.views = resize(st.views, n)
	st.sizes = resize(st.sizes, n)
	st.resp.Topics = resize(st.resp.Topics, len(st.req.Topics))
	k := 0
	for i := range st.req.Topics {
		t := &st.req.Topics[i]
		rt := &st.resp.Topics[i]
		rt.Name = t.Name
		rt.Partitions = resize(rt.Partitions, len(t.Partitions))
		for j := range t.Partitions {
			st.parts[k], st.codes[k] = c.lookup(t.Name, t.Partitions[j].Partition)
			k++
		}
	}
}

// readFetch fills the response and the Views from the partitions' logs,
// never above the high watermark (R12). It reports whether the response
// should go now: MinBytes reached, or a partition has an error.
func (c *conn) readFetch(st *fetchState) bool {
	remaining := int(min(max(st.req.MaxBytes, 0), maxFetchResponse))
	st.resp.ErrorCode, st.resp.ThrottleMs = protocol.NoError, 0
	total, failed, k := 0, false, 0
	for i := range st.req.Topics {
		t := &st.req.Topics[i]
		rt := &st.resp.Topics[i]
		for j := range t.Partitions {
			fp, pr := &t.Partitions[j], &rt.Partitions[j]
			*pr = protocol.FetchPartitionResponse{Partition: fp.Partition, HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1}
			st.views[k].Release()
			st.views[k] = segment.View{}
			st.sizes[k] = 0
			pr.ErrorCode = st.codes[k]
			if p := st.parts[k]; p != nil {
				limit := 0
				if fp.PartitionMaxBytes > 0 && (remaining > 0 || total == 0) {
					limit = max(1, min(int(fp.PartitionMaxBytes), remaining))
				}
				st.views[k], pr.ErrorCode = c.readPartition(p, st, fp, limit, pr)
				n := st.views[k].Len()
				st.sizes[k] = int32(n)
				total += n
				remaining -= n
			}
			if pr.ErrorCode != protocol.NoError {
				failed = true
				st.sizes[k] = -1
			}
			k++
		}
	}
	return failed || total >= int(st.req.MinBytes)
}

// readPartition reads up to limit bytes (at least one batch when limit >
// 0) from offset and fills pr's offsets. A consumer reads below the high
// watermark (R12); a follower (replica >= 0) reads up to the log end, and
// its fetch offset is its position for the ISR and the high watermark.
func (c *conn) readPartition(p *partition, st *fetchState, fp *protocol.FetchPartition, limit int, pr *protocol.FetchPartitionResponse) (segment.View, protocol.ErrorCode) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if code := p.unavailable(); code != protocol.NoError {
		return segment.View{}, code
	}
	offset := fp.FetchOffset
	maxOffset := int64(-1)
	if replicaID := st.req.ReplicaID; replicaID >= 0 {
		if code := c.followerFetched(p, replicaID, st.req.ReplicaEpoch, fp); code != protocol.NoError {
			return segment.View{}, code
		}
		maxOffset = p.log.EndOffset()
	}
	hw := p.highWatermark()
	if maxOffset < 0 {
		maxOffset = hw
	}
	start, end := p.log.StartOffset(), p.log.EndOffset()
	pr.HighWatermark, pr.LastStableOffset, pr.LogStartOffset = hw, hw, start
	if offset < start || offset > end {
		return segment.View{}, protocol.ErrOffsetOutOfRange
	}
	if offset >= maxOffset || limit <= 0 {
		return segment.View{}, protocol.NoError
	}
	v, err := p.log.ReadUpTo(offset, maxOffset, limit)
	switch {
	case err == nil:
		return v, protocol.NoError
	case errors.Is(err, log.ErrOffsetOutOfRange):
		return segment.View{}, protocol.ErrOffsetOutOfRange
	case errors.Is(err, log.ErrClosed):
		return segment.View{}, protocol.ErrNotLeaderOrFollower
	}
	c.logger.Warn("fetch read", zap.String("topic", p.topic), zap.Int32("partition", p.index), zap.Int64("offset", offset), zap.Error(err))
	return segment.View{}, protocol.ErrUnknownServerError
}

// followerFetched records a follower's fetch with the leader state: the
// fetch must be in the current leader epoch and from a follower's current
// broker epoch (R10). A position that moves the high watermark wakes the
// partition's waiters. Call with p.mu held and p leading.
func (c *conn) followerFetched(p *partition, id int32, brokerEpoch int64, fp *protocol.FetchPartition) protocol.ErrorCode {
	ld := p.leader
	switch e := fp.CurrentLeaderEpoch; {
	case e < ld.Epoch():
		return protocol.ErrFencedLeaderEpoch
	case e > ld.Epoch():
		return protocol.ErrUnknownLeaderEpoch
	}
	moved, err := ld.Fetched(id, fp.FetchOffset, fp.FetchOffset, fp.CurrentLeaderEpoch, brokerEpoch)
	if err != nil {
		c.logger.Debug("follower fetch refused", zap.String("topic", p.topic), zap.Int32("partition", p.index),
			zap.Int32("replica", id), zap.Error(err))
		if errors.Is(err, replica.ErrStaleBrokerEpoch) {
			return protocol.ErrStaleBrokerEpoch
		}
		return protocol.ErrNotLeaderOrFollower
	}
	if moved {
		p.notify()
	}
	return protocol.NoError
}

// encodeFetch encodes the response head with a hole per record set.
func (c *conn) encodeFetch(st *fetchState) {
	err := st.resp.AppendSplitFrame(&st.split, st.hdr.CorrelationID, st.hdr.Version, st.sizes)
	if err != nil {
		c.logger.Error("encode fetch response", zap.Error(err))
		st.releaseViews()
		st.split.Head = protocol.AppendErrorResponse(st.split.Head[:0], &st.hdr, protocol.ErrUnknownServerError)
		st.split.Holes = st.split.Holes[:0]
	}
}

// longPoll waits until the fetch has MinBytes, its max wait passes or the
// connection stops, then completes resp. It watches the partitions before
// reading again, so an append between the handler's read and the watch is
// not missed.
func (c *conn) longPoll(st *fetchState, resp *response, deadline time.Time) {
	defer c.polls.Done()
	defer close(resp.ready)
	for _, p := range st.parts {
		if p != nil {
			p.watch(st.wake)
		}
	}
	defer func() {
		for _, p := range st.parts {
			if p != nil {
				p.unwatch(st.wake)
			}
		}
		if r := recover(); r != nil {
			c.b.panics.Add(1)
			c.logger.Error("panic in fetch long-poll", zap.Any("panic", r), zap.Stack("stack"))
			st.releaseViews()
			st.split.Head = protocol.AppendErrorResponse(st.split.Head[:0], &st.hdr, protocol.ErrUnknownServerError)
			st.split.Holes = st.split.Holes[:0]
		}
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		if c.readFetch(st) {
			break
		}
		expired := false
		select {
		case <-st.wake:
		case <-timer.C:
			expired = true
		case <-c.ctx.Done():
			expired = true
		}
		if expired {
			c.readFetch(st)
			break
		}
	}
	c.encodeFetch(st)
}

// writeFetch writes a Fetch response: the head pieces from memory and
// each record set straight from its segment, by sendfile(2) or by writev
// of the mapped bytes (Broker.fetchWrite), never through a heap buffer.
func (c *conn) writeFetch(st *fetchState) error {
	head := st.split.Head
	prev := 0
	if c.b.fetchWrite == writeSendfile {
		for i, hole := range st.split.Holes {
			if hole.Size <= 0 {
				continue
			}
			c.wbuf = append(c.wbuf, head[prev:hole.At]...)
			prev = hole.At
			if err := c.flushOrFail(nil); err != nil {
				return err
			}
			if err := c.sendView(st.views[i]); err != nil {
				return err
			}
		}
		c.wbuf = append(c.wbuf, head[prev:]...)
		return nil
	}
	bufs := c.bufs[:0]
	if len(c.wbuf) > 0 {
		bufs = append(bufs, c.wbuf)
	}
	for i, hole := range st.split.Holes {
		if hole.Size <= 0 {
			continue
		}
		bufs = append(bufs, head[prev:hole.At], st.views[i].Bytes())
		prev = hole.At
	}
	if len(bufs) == 0 || (len(bufs) == 1 && len(c.wbuf) > 0) {
		// No record bytes: gather the head like any small response.
		c.wbuf = append(c.wbuf, head...)
		return nil
	}
	bufs = append(bufs, head[prev:])
	c.nc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	// WriteTo consumes the slice it is called on; a field, unlike a
	// local, does not escape to the heap.
	c.wr = bufs
	_, err := c.wr.WriteTo(c.nc)
	c.wr = nil
	clear(bufs)
	c.bufs = bufs[:0]
	c.wbuf = c.wbuf[:0]
	return err
}
