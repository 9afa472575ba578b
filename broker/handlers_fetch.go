package broker

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/protocol"
)

// fetchState is one Fetch being answered: the request, the response
// without its record sets, and the core's Fetch, whose Views the writer
// sends zero-copy and then releases. It lives from the handler to the
// writer (through a long-poll when the request waits for data).
type fetchState struct {
	hdr   protocol.RequestHeader
	req   protocol.FetchRequest
	resp  protocol.FetchResponse
	fetch Fetch
	ff    FollowerFetch // fetch.Follower for a replica's fetch
	sizes []int32
	split protocol.SplitFrame
	code  protocol.ErrorCode // the first partition error (observe.go)
}

var fetchPool = sync.Pool{New: func() any { return new(fetchState) }}

func getFetchState() *fetchState { return fetchPool.Get().(*fetchState) }

func putFetchState(st *fetchState) {
	st.fetch.Reset()
	if cap(st.split.Head) > maxPooledBuf {
		st.split.Head = nil
	}
	fetchPool.Put(st)
}

// releaseViews gives back every View the state holds.
func (st *fetchState) releaseViews() { st.fetch.Release() }

// handleFetch translates a Fetch into the core's (Broker.StartFetch) and
// answers at once when enough data is there, max wait is 0, a partition
// has an error or the broker is stopping; otherwise a long-poll goroutine
// (Broker.WaitFetch, on the connection's pollContext) answers later and
// the handler moves on.
func (c *conn) handleFetch(h *protocol.RequestHeader, resp *response) error {
	st := getFetchState()
	if err := st.req.Decode(&c.dec, h.Version); err != nil {
		putFetchState(st)
		return errMalformed{err}
	}
	st.hdr = *h
	if st.req.ReplicaID >= 0 && c.scratch.endReplicaPoll != nil {
		// A follower sends a replica Fetch while its last one waits only
		// to end that wait: it has a partition to add (replica.Fetcher's
		// wake). The waiting one is answered now, with what is there.
		c.scratch.endReplicaPoll()
		c.scratch.endReplicaPoll = nil
	}
	st.toCore()
	st.fetch.Session = &c.sess
	enough := c.b.StartFetch(&st.fetch)
	resp.fetch = st
	ctx := c.pollContext()
	if enough || st.req.MaxWaitMs <= 0 || ctx.Err() != nil {
		c.encodeFetch(st)
		return nil
	}
	st.releaseViews()
	wait := min(time.Duration(st.req.MaxWaitMs)*time.Millisecond, c.b.cfg.MaxFetchWait)
	resp.ready = make(chan struct{})
	var end context.CancelFunc
	if st.req.ReplicaID >= 0 {
		ctx, end = context.WithCancel(ctx)
		c.scratch.endReplicaPoll = end
	}
	c.polls.Add(1)
	go c.longPoll(ctx, end, st, resp, time.Now().Add(wait))
	return nil
}

// toCore fills the core's Fetch from the request.
func (st *fetchState) toCore() {
	f := &st.fetch
	f.MinBytes, f.MaxBytes = int(st.req.MinBytes), int(st.req.MaxBytes)
	f.Follower = nil
	if st.req.ReplicaID >= 0 {
		st.ff = FollowerFetch{Replica: st.req.ReplicaID, BrokerEpoch: st.req.ReplicaEpoch}
		f.Follower = &st.ff
	}
	n := 0
	for i := range st.req.Topics {
		n += len(st.req.Topics[i].Partitions)
	}
	f.Parts = resize(f.Parts, n)
	k := 0
	for i := range st.req.Topics {
		t := &st.req.Topics[i]
		for j := range t.Partitions {
			fp := &t.Partitions[j]
			f.Parts[k] = FetchPart{Topic: t.Name, Partition: fp.Partition, Offset: fp.FetchOffset,
				MaxBytes: int(fp.PartitionMaxBytes), LeaderEpoch: fp.CurrentLeaderEpoch}
			k++
		}
	}
}

// encodeFetch fills the response from the core's last read and encodes
// its head with a hole per record set.
func (c *conn) encodeFetch(st *fetchState) {
	st.resp.ErrorCode, st.resp.ThrottleMs = protocol.NoError, 0
	st.code = protocol.NoError
	st.resp.Topics = resize(st.resp.Topics, len(st.req.Topics))
	st.sizes = resize(st.sizes, len(st.fetch.Parts))
	k := 0
	for i := range st.req.Topics {
		t, rt := &st.req.Topics[i], &st.resp.Topics[i]
		rt.Name = t.Name
		rt.Partitions = resize(rt.Partitions, len(t.Partitions))
		for j := range t.Partitions {
			fp := &st.fetch.Parts[k]
			r := &fp.Result
			code, _ := ErrorCode(fp.Err)
			rt.Partitions[j] = protocol.FetchPartitionResponse{Partition: fp.Partition, ErrorCode: code,
				HighWatermark: r.HighWatermark, LastStableOffset: r.LastStableOffset, LogStartOffset: r.LogStartOffset}
			st.sizes[k] = int32(r.Records.Len())
			if code != protocol.NoError {
				r.Records.Release()
				st.sizes[k] = -1
				if st.code == protocol.NoError {
					st.code = code
				}
			}
			k++
		}
	}
	st.fetch.Answered()
	err := st.resp.AppendSplitFrame(&st.split, st.hdr.CorrelationID, st.hdr.Version, st.sizes)
	if err != nil {
		c.logger.Error("encode fetch response", zap.Error(err))
		st.releaseViews()
		st.split.Head = protocol.AppendErrorResponse(st.split.Head[:0], &st.hdr, protocol.ErrUnknownServerError)
		st.split.Holes = st.split.Holes[:0]
	}
}

// longPoll waits in the core until the fetch has MinBytes, its max wait
// passes or ctx ends (the connection stops, or for a replica's Fetch,
// end is called), then completes resp. end, when not nil, is ctx's
// cancel, called when the wait is over.
func (c *conn) longPoll(ctx context.Context, end context.CancelFunc, st *fetchState, resp *response, deadline time.Time) {
	defer c.polls.Done()
	if end != nil {
		defer end()
	}
	defer close(resp.ready)
	defer func() {
		if r := recover(); r != nil {
			c.b.panics.Add(1)
			c.logger.Error("panic in fetch long-poll", zap.Any("panic", r), zap.Stack("stack"))
			st.releaseViews()
			st.split.Head = protocol.AppendErrorResponse(st.split.Head[:0], &st.hdr, protocol.ErrUnknownServerError)
			st.split.Holes = st.split.Holes[:0]
		}
	}()
	c.b.WaitFetch(ctx, &st.fetch, deadline)
	c.encodeFetch(st)
	if c.b.obs != nil {
		resp.timing.Done = observeNow()
	}
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
			if err := c.sendView(st.fetch.Parts[i].Result.Records); err != nil {
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
		bufs = append(bufs, head[prev:hole.At], st.fetch.Parts[i].Result.Records.Bytes())
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
	var err error
	if bw, ok := c.nc.(auth.BuffersWriter); ok {
		// TLS: the head pieces share the gathered writes of the record
		// bytes' TLS records rather than a write(2) each.
		_, err = bw.WriteBuffers(&c.wr)
	} else {
		_, err = c.wr.WriteTo(c.nc)
	}
	c.wr = nil
	clear(bufs)
	c.bufs = bufs[:0]
	c.wbuf = c.wbuf[:0]
	return err
}
