package kafka

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// fetchState is one Fetch being answered: the topics asked (names copied
// out of the frame), the core's Fetch whose Views are written zero-copy,
// and the head of the response with a hole per record set.
type fetchState struct {
	version int16
	corr    int32
	topics  []fetchTopic
	fetch   broker.Fetch
	head    []byte
	holes   []int // offsets in head where each partition's records go
	sizes   []int // and their sizes (0 for a partition with an error)
}

type fetchTopic struct {
	name  string
	parts int // partitions of this topic, in order, in fetch.Parts
}

var fetchPool = sync.Pool{New: func() any { return new(fetchState) }}

func (st *fetchState) release() {
	st.fetch.Reset()
	clear(st.topics)
	st.topics = st.topics[:0]
	st.head, st.holes, st.sizes = st.head[:0], st.holes[:0], st.sizes[:0]
	fetchPool.Put(st)
}

// fetch reads the partitions through the core (StartFetch) and answers at
// once when MinBytes are there, a partition failed or max wait is 0;
// otherwise a goroutine of the connection waits in the core (WaitFetch,
// capped by the broker's MaxFetchWait) and completes the reply. Leader
// epochs (v9+) are checked by the core (Fetch.ConsumerEpochs). Fetch
// sessions are not kept: the response's session id is 0, which tells a
// client to send full fetches (KIP-227).
func (s *Server) fetch(fc *broker.FrontConn, h header, req *kmsg.FetchRequest) *broker.Reply {
	st := fetchPool.Get().(*fetchState)
	st.version, st.corr = h.version, h.correlation
	f := &st.fetch
	f.MinBytes, f.MaxBytes, f.ConsumerEpochs = int(req.MinBytes), int(req.MaxBytes), true
	f.Session = fc.Session() // read on each topic
	for i := range req.Topics {
		t := &req.Topics[i]
		name := clone(t.Topic)
		st.topics = append(st.topics, fetchTopic{name: name, parts: len(t.Partitions)})
		for _, p := range t.Partitions {
			f.Parts = append(f.Parts, broker.FetchPart{Topic: name, Partition: p.Partition, Offset: p.FetchOffset,
				MaxBytes: int(p.PartitionMaxBytes), LeaderEpoch: p.CurrentLeaderEpoch})
		}
	}
	r := &broker.Reply{Done: st.release}
	enough := s.b.StartFetch(f)
	if enough || req.MaxWaitMillis <= 0 || fc.Context().Err() != nil {
		r.Frame, r.Code = st.encode()
		return r
	}
	f.Release()
	wait := min(time.Duration(req.MaxWaitMillis)*time.Millisecond, s.b.MaxFetchWait())
	deadline := time.Now().Add(wait)
	r.Ready = make(chan struct{})
	fc.Go(func() {
		defer fc.Finish(r)
		s.b.WaitFetch(fc.Context(), f, deadline)
		r.Frame, r.Code = st.encode()
	})
	return r
}

// encode writes the response head for the last read, a hole per record
// set, and returns the frame as pieces: head parts and segment bytes in
// turn. The layout is FetchResponse v4-v11 (non-flexible), checked
// against kmsg's decoder in tests. It counts the records answered as
// consumed (Fetch.Answered) and returns the first partition error, for
// the metrics.
func (st *fetchState) encode() ([][]byte, protocol.ErrorCode) {
	first := protocol.NoError
	b := st.head[:0]
	b = binary.BigEndian.AppendUint32(b, 0) // length, set below
	b = binary.BigEndian.AppendUint32(b, uint32(st.corr))
	b = binary.BigEndian.AppendUint32(b, 0) // throttle
	if st.version >= 7 {
		b = binary.BigEndian.AppendUint16(b, 0) // error code
		b = binary.BigEndian.AppendUint32(b, 0) // session id: none
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(st.topics)))
	holes, sizes := st.holes[:0], st.sizes[:0]
	total := 0
	k := 0
	for _, t := range st.topics {
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.name)))
		b = append(b, t.name...)
		b = binary.BigEndian.AppendUint32(b, uint32(t.parts))
		for range t.parts {
			fp := &st.fetch.Parts[k]
			k++
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
			holes, sizes = append(holes, len(b)), append(sizes, n)
			total += n
		}
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4+total))
	st.head, st.holes, st.sizes = b, holes, sizes
	out := make([][]byte, 0, 2*len(holes)+1)
	prev := 0
	for i, at := range holes {
		if sizes[i] == 0 {
			continue
		}
		out = append(out, b[prev:at], st.fetch.Parts[i].Result.Records.Bytes())
		prev = at
	}
	st.fetch.Answered()
	return append(out, b[prev:]), first
}
