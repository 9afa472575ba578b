package kafka

import (
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// fetchState is one Fetch being answered: the core's Fetch whose Views
// are written zero-copy (topic names copied out of the frame, or the
// session's), the fetch session it reads through (fetchsession.go), and
// the head of the response with a hole per record set.
type fetchState struct {
	version int16
	corr    int32
	plan    fetchPlan
	parts   []*sessionPart // the session's partition of each of fetch.Parts
	include []bool         // which of fetch.Parts the answer holds
	fetch   broker.Fetch
	head    []byte
	holes   []int // offsets in head where each answered partition's records go
	sizes   []int // and their sizes (0 for a partition with an error)
	at      []int // and their index in fetch.Parts
}

var fetchPool = sync.Pool{New: func() any { return new(fetchState) }}

func (st *fetchState) release() {
	st.fetch.Reset()
	clear(st.parts)
	st.plan, st.parts, st.include = fetchPlan{}, st.parts[:0], st.include[:0]
	st.head, st.holes, st.sizes, st.at = st.head[:0], st.holes[:0], st.sizes[:0], st.at[:0]
	fetchPool.Put(st)
}

// fetch reads the partitions through the core (StartFetch) and answers at
// once when MinBytes are there, a partition failed or max wait is 0;
// otherwise a goroutine of the connection waits in the core (WaitFetch,
// capped by the broker's MaxFetchWait) and completes the reply. The wait
// ends early, with what is there, when the connection stops or the broker
// begins to drain its connections (FrontConn.PollContext), as the sluice
// front end's does; a fetch begun during the drain waits until the
// connection reads no more requests, rather than answer at once to a
// client that would fetch again at once. Leader epochs (v9+) are checked
// by the core (Fetch.ConsumerEpochs). From v7 the request may open, use
// or close a fetch session (fetchsession.go): an incremental fetch reads
// every partition of its session and answers only those that changed.
func (s *Server) fetch(fc *broker.FrontConn, h header, req *kmsg.FetchRequest) *broker.Reply {
	st := fetchPool.Get().(*fetchState)
	st.version, st.corr = h.version, h.correlation
	r := &broker.Reply{Done: st.release}
	st.plan = s.sessions.plan(fc, req)
	if st.plan.errCode != 0 {
		r.Frame, r.Code = st.encode()
		return r
	}
	f := &st.fetch
	f.MinBytes, f.MaxBytes, f.ConsumerEpochs = int(req.MinBytes), int(req.MaxBytes), true
	f.Session = fc.Session() // read on each topic
	if st.plan.incremental {
		st.parts = st.plan.sess.readParts(f, st.parts)
	} else {
		for i := range req.Topics {
			t := &req.Topics[i]
			name := clone(t.Topic)
			for _, p := range t.Partitions {
				f.Parts = append(f.Parts, broker.FetchPart{Topic: name, Partition: p.Partition, Offset: p.FetchOffset,
					MaxBytes: int(p.PartitionMaxBytes), LeaderEpoch: p.CurrentLeaderEpoch})
			}
		}
		if st.plan.sess != nil {
			st.parts = st.plan.sess.partsOf(f, st.parts)
		}
	}
	enough := s.b.StartFetch(f)
	poll := fc.PollContext()
	if enough || req.MaxWaitMillis <= 0 || poll.Err() != nil {
		r.Frame, r.Code = st.encode()
		return r
	}
	f.Release()
	wait := min(time.Duration(req.MaxWaitMillis)*time.Millisecond, s.b.MaxFetchWait())
	deadline := time.Now().Add(wait)
	r.Ready = make(chan struct{})
	fc.Go(func() {
		defer fc.Finish(r)
		s.b.WaitFetch(poll, f, deadline)
		r.Frame, r.Code = st.encode()
	})
	return r
}

// encode writes the response head for the last read, a hole per record
// set, and returns the frame as pieces: head parts and segment bytes in
// turn. The layout is FetchResponse v4-v11 (non-flexible), checked
// against kmsg's decoder in tests; consecutive partitions of one topic
// share a topic entry. It answers the partitions the session lets through
// (all without a session), counts the records answered as consumed
// (Fetch.Answered) and returns the first partition error, or the session
// error, for the metrics.
func (st *fetchState) encode() ([][]byte, protocol.ErrorCode) {
	parts := st.fetch.Parts
	include := slices.Grow(st.include[:0], len(parts))[:len(parts)]
	if sess := st.plan.sess; sess != nil {
		sess.answer(&st.fetch, st.parts, st.plan.incremental, include)
	} else {
		for i := range include {
			include[i] = true
		}
	}
	st.include = include
	first := protocol.ErrorCode(st.plan.errCode)
	b := st.head[:0]
	b = binary.BigEndian.AppendUint32(b, 0) // length, set below
	b = binary.BigEndian.AppendUint32(b, uint32(st.corr))
	b = binary.BigEndian.AppendUint32(b, 0) // throttle
	if st.version >= 7 {
		var id int32
		if st.plan.sess != nil {
			id = st.plan.sess.id
		}
		b = binary.BigEndian.AppendUint16(b, uint16(st.plan.errCode))
		b = binary.BigEndian.AppendUint32(b, uint32(id))
	}
	topicsAt := len(b)
	b = binary.BigEndian.AppendUint32(b, 0) // topics, set below
	holes, sizes, at := st.holes[:0], st.sizes[:0], st.at[:0]
	total, topics, countAt, count := 0, 0, 0, 0
	for i := range parts {
		if !include[i] {
			continue
		}
		fp := &parts[i]
		if topics == 0 || fp.Topic != parts[at[len(at)-1]].Topic {
			if topics > 0 {
				binary.BigEndian.PutUint32(b[countAt:], uint32(count))
			}
			topics++
			b = binary.BigEndian.AppendUint16(b, uint16(len(fp.Topic)))
			b = append(b, fp.Topic...)
			countAt, count = len(b), 0
			b = binary.BigEndian.AppendUint32(b, 0) // partitions, set below
		}
		count++
		res := &fp.Result
		code := codeOf(fp.Err)
		if first == protocol.NoError {
			first = protocol.ErrorCode(code)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(fp.Partition))
		b = binary.BigEndian.AppendUint16(b, uint16(code))
		b = binary.BigEndian.AppendUint64(b, uint64(res.HighWatermark))
		b = binary.BigEndian.AppendUint64(b, uint64(res.LastStableOffset))
		if st.version >= 5 {
			b = binary.BigEndian.AppendUint64(b, uint64(res.LogStartOffset))
		}
		b = binary.BigEndian.AppendUint32(b, 0xffffffff) // aborted transactions: null
		if st.version >= 11 {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff) // preferred read replica: -1
		}
		n := res.Records.Len()
		if code != 0 {
			n = 0 // the Views are released with the state
		}
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		holes, sizes, at = append(holes, len(b)), append(sizes, n), append(at, i)
		total += n
	}
	if topics > 0 {
		binary.BigEndian.PutUint32(b[countAt:], uint32(count))
	}
	binary.BigEndian.PutUint32(b[topicsAt:], uint32(topics))
	binary.BigEndian.PutUint32(b, uint32(len(b)-4+total))
	st.head, st.holes, st.sizes, st.at = b, holes, sizes, at
	out := make([][]byte, 0, 2*len(holes)+1)
	prev := 0
	for k, pos := range holes {
		if sizes[k] == 0 {
			continue
		}
		out = append(out, b[prev:pos], parts[at[k]].Result.Records.Bytes())
		prev = pos
	}
	st.fetch.Answered()
	return append(out, b[prev:]), first
}
