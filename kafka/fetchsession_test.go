package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/poll"
)

// testClock is a clock the fetch-session cache reads (its idle eviction),
// moved by the test.
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }
func (c *testClock) option() Option          { return func(s *Server) { s.sessions.now = c.now } }

// produceTo produces recs and fails the test on error.
func produceTo(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// sessionFetch is a raw Fetch v11 of topic's partitions (at the offsets
// given), in session id at epoch, forgetting forget; it returns the
// response.
func sessionFetch(t *testing.T, c *rawConn, corr int32, id, epoch int32, topic string, offsets map[int32]int64, forget ...int32) *kmsg.FetchResponse {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxBytes, req.SessionID, req.SessionEpoch = -1, 1<<20, id, epoch
	if len(offsets) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		for p := range int32(16) {
			if off, ok := offsets[p]; ok {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, 1<<20
				rt.Partitions = append(rt.Partitions, rp)
			}
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(forget) > 0 {
		req.ForgottenTopics = append(req.ForgottenTopics, kmsg.FetchRequestForgottenTopic{Topic: topic, Partitions: forget})
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(11)
	if err := resp.ReadFrom(c.request(req, corr)); err != nil {
		t.Fatal(err)
	}
	return resp
}

// tooManyPartitions is a full Fetch v11 of one more partition of topic
// than a session may hold.
func tooManyPartitions(topic string) *kmsg.FetchRequest {
	big := kmsg.NewPtrFetchRequest()
	big.SetVersion(11)
	big.ReplicaID, big.MaxBytes = -1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	for p := range int32(maxSessionPartitions + 1) {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = p, 1024
		rt.Partitions = append(rt.Partitions, rp)
	}
	big.Topics = append(big.Topics, rt)
	return big
}

// answered lists the partitions of resp with their record counts.
func answered(t *testing.T, resp *kmsg.FetchResponse) map[int32]int {
	t.Helper()
	out := map[int32]int{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("partition %d: %v", rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
			}
			n := 0
			for b := rp.RecordBatches; len(b) > 0; {
				var batch kmsg.RecordBatch
				if err := batch.ReadFrom(b); err != nil {
					t.Fatal(err)
				}
				n += int(batch.NumRecords)
				b = b[12+batch.Length:]
			}
			out[rp.Partition] += n
		}
	}
	return out
}

// TestFetchSessionRaw walks one session through KIP-227's states with raw
// requests: the full fetch that opens it answers every partition; an
// incremental fetch answers only the partitions with records (none when
// nothing changed), forgets what it is told to; a wrong epoch is
// INVALID_FETCH_SESSION_EPOCH, an unknown id or another connection's
// FETCH_SESSION_ID_NOT_FOUND (and does not close it); epoch -1 closes it;
// a closed connection frees its sessions.
func TestFetchSessionRaw(t *testing.T) {
	ctx := testContext(t)
	_, addr, srv := singleWith(t, nil)
	cl := newClient(t, []string{addr}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, ctx, kadm.NewClient(cl), "fs", 3, 1, nil)
	for p := range int32(3) {
		produceTo(t, cl, &kgo.Record{Topic: "fs", Partition: p, Value: []byte("first")})
	}

	a := dialRaw(t, addr)
	resp := sessionFetch(t, a, 1, 0, 0, "fs", map[int32]int64{0: 0, 1: 0, 2: 0})
	id := resp.SessionID
	if resp.ErrorCode != 0 || id <= 0 {
		t.Fatalf("opening fetch: error %d, session id %d", resp.ErrorCode, id)
	}
	if got := answered(t, resp); len(got) != 3 || got[0] != 1 || got[1] != 1 || got[2] != 1 {
		t.Fatalf("opening fetch answered %v, want one record of each of 3 partitions", got)
	}
	// The consumer moved past the records: nothing new, nothing answered.
	resp = sessionFetch(t, a, 2, id, 1, "fs", map[int32]int64{0: 1, 1: 1, 2: 1})
	if got := answered(t, resp); resp.ErrorCode != 0 || resp.SessionID != id || len(got) != 0 {
		t.Fatalf("incremental fetch with nothing new: error %d, id %d, answered %v", resp.ErrorCode, resp.SessionID, got)
	}
	// A record on partition 1: only it is answered, with no partition in
	// the request.
	produceTo(t, cl, &kgo.Record{Topic: "fs", Partition: 1, Value: []byte("second")})
	resp = sessionFetch(t, a, 3, id, 2, "fs", nil)
	if got := answered(t, resp); len(got) != 1 || got[1] != 1 {
		t.Fatalf("incremental fetch after a record on partition 1 answered %v", got)
	}
	// The same epoch again is stale.
	if resp = sessionFetch(t, a, 4, id, 2, "fs", nil); resp.ErrorCode != kerr.InvalidFetchSessionEpoch.Code || len(resp.Topics) != 0 {
		t.Fatalf("stale epoch: error %d, %d topics", resp.ErrorCode, len(resp.Topics))
	}
	// Forget partition 2: its new record is not answered.
	resp = sessionFetch(t, a, 5, id, 3, "fs", map[int32]int64{1: 2}, 2)
	if got := answered(t, resp); len(got) != 0 {
		t.Fatalf("fetch forgetting partition 2 answered %v", got)
	}
	produceTo(t, cl, &kgo.Record{Topic: "fs", Partition: 2, Value: []byte("unseen")},
		&kgo.Record{Topic: "fs", Partition: 0, Value: []byte("second")})
	resp = sessionFetch(t, a, 6, id, 4, "fs", nil)
	if got := answered(t, resp); len(got) != 1 || got[0] != 1 {
		t.Fatalf("fetch after partition 2 was forgotten answered %v, want only partition 0", got)
	}

	// Another connection: the id is not its own.
	b := dialRaw(t, addr)
	if resp = sessionFetch(t, b, 1, id, 5, "fs", nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("another connection's session: error %d", resp.ErrorCode)
	}
	// Its full fetch naming the id opens its own session and leaves a's.
	resp = sessionFetch(t, b, 2, id, 0, "fs", map[int32]int64{0: 0})
	if resp.SessionID <= 0 || resp.SessionID == id {
		t.Fatalf("second connection's opening fetch: session id %d (first's %d)", resp.SessionID, id)
	}
	bID := resp.SessionID
	if resp = sessionFetch(t, a, 7, id, 5, "fs", nil); resp.ErrorCode != 0 || resp.SessionID != id {
		t.Fatalf("first session after the second connection tried it: error %d id %d", resp.ErrorCode, resp.SessionID)
	}
	unknown := int32(1)
	for unknown == id || unknown == bID {
		unknown++
	}
	if resp = sessionFetch(t, a, 8, unknown, 1, "fs", nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session id: error %d", resp.ErrorCode)
	}
	if st := srv.FetchSessionStats(); st.Sessions != 2 || st.Partitions != 3 || st.BadEpoch != 1 || st.NotFound != 2 {
		t.Fatalf("stats %+v", st)
	}

	// Epoch -1 closes: a sessionless full answer, then the id is gone.
	resp = sessionFetch(t, a, 9, id, -1, "fs", map[int32]int64{0: 0})
	if got := answered(t, resp); resp.ErrorCode != 0 || resp.SessionID != 0 || got[0] != 2 {
		t.Fatalf("closing fetch: error %d id %d answered %v", resp.ErrorCode, resp.SessionID, got)
	}
	if resp = sessionFetch(t, a, 10, id, 6, "fs", nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session: error %d", resp.ErrorCode)
	}
	// Closing b's connection frees its session.
	b.nc.Close()
	poll.Until(t, 10*time.Second, "the closed connection's session freed", func() bool {
		return srv.FetchSessionStats().Sessions == 0
	})
	if st := srv.FetchSessionStats(); st.Partitions != 0 {
		t.Fatalf("partitions held after every session went: %+v", st)
	}
}

// consumeAll consumes topic with a kgo consumer until want records came,
// checking that each partition's values are "p<partition>-<i>" for i from
// 0 in order, each once.
func consumeAll(t *testing.T, cl *kgo.Client, want int, next map[int32]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := 0
	for got < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", got, want, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if w := fmt.Sprintf("p%d-%d", r.Partition, next[r.Partition]); string(r.Value) != w {
				t.Fatalf("partition %d offset %d: %q, want %q", r.Partition, r.Offset, r.Value, w)
			}
			next[r.Partition]++
			got++
		})
	}
}

// produceRound produces n records to each of parts partitions, numbered
// on from next.
func produceRound(t *testing.T, cl *kgo.Client, topic string, parts int32, n int, next map[int32]int) int {
	t.Helper()
	var recs []*kgo.Record
	for p := range parts {
		for range n {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, next[p])})
			next[p]++
		}
	}
	produceTo(t, cl, recs...)
	return len(recs)
}

// TestFetchSessionFranz: a kgo consumer of 64 partitions fetches through
// a session (incremental fetches counted by the listener) and receives
// every record exactly once, in order, while rounds touching some
// partitions and then all of them are produced.
func TestFetchSessionFranz(t *testing.T) {
	ctx := testContext(t)
	_, addr, srv := singleWith(t, nil)
	pr := newClient(t, []string{addr}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	const parts = 64
	createTopic(t, ctx, kadm.NewClient(pr), "many", parts, 1, nil)
	produced, consumed := map[int32]int{}, map[int32]int{}
	co := newClient(t, []string{addr}, kgo.ConsumeTopics("many"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond))
	for round := range 6 {
		n := produceRound(t, pr, "many", parts, 3+round, produced)
		if round%2 == 1 { // and a few partitions alone
			for p := int32(0); p < parts; p += 9 {
				n += 1
				produceTo(t, pr, &kgo.Record{Topic: "many", Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, produced[p])})
				produced[p]++
			}
		}
		consumeAll(t, co, n, consumed)
	}
	st := srv.FetchSessionStats()
	// Rounds 1 to 5 are each produced after the last was consumed: each
	// needs at least one fetch after the opening one.
	if st.Created < 1 || st.Incremental < 5 || st.NotFound != 0 || st.BadEpoch != 0 {
		t.Fatalf("fetch sessions: %+v, want a session and incremental fetches", st)
	}
	t.Logf("fetch sessions: %+v", st)
}

// TestFetchSessionEvicted: with one slot, a session idle past the
// eviction age is evicted for a new one; its kgo consumer gets
// FETCH_SESSION_ID_NOT_FOUND, falls back to a full fetch, and goes on
// receiving every record once, in order. A session that is not idle is
// never evicted: the new one is answered without a session.
func TestFetchSessionEvicted(t *testing.T) {
	ctx := testContext(t)
	clock := &testClock{}
	_, addr, srv := singleWith(t, nil, FetchSessionSlots(1), clock.option())
	pr := newClient(t, []string{addr}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	const parts = 4
	createTopic(t, ctx, kadm.NewClient(pr), "ev", parts, 1, nil)
	produced, consumed := map[int32]int{}, map[int32]int{}
	co := newClient(t, []string{addr}, kgo.ConsumeTopics("ev"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond))
	consumeAll(t, co, produceRound(t, pr, "ev", parts, 5, produced), consumed)
	if st := srv.FetchSessionStats(); st.Created != 1 || st.Sessions != 1 {
		t.Fatalf("after the first consume: %+v", st)
	}
	// The slot is taken by an active session: a new one is refused.
	raw := dialRaw(t, addr)
	if resp := sessionFetch(t, raw, 1, 0, 0, "ev", map[int32]int64{0: 0}); resp.SessionID != 0 || resp.ErrorCode != 0 {
		t.Fatalf("a session past the slots while the other is active: id %d error %d", resp.SessionID, resp.ErrorCode)
	}
	// Past the eviction age the consumer's session counts as idle. It
	// long-polls (100 ms), so a fetch of its may fall between the clock's
	// move and the new session's: move again until the new one gets in.
	poll.Until(t, 10*time.Second, "a new session evicting the idle one", func() bool {
		clock.advance(sessionEvictIdle + time.Minute)
		return sessionFetch(t, raw, 2, 0, 0, "ev", map[int32]int64{0: 0}).SessionID > 0
	})
	if st := srv.FetchSessionStats(); st.Evicted() != 1 {
		t.Fatalf("after the new session: %+v", st)
	}
	// A fetch in flight when its session went is still answered; the
	// consumer's next one is refused, and it goes on with full fetches.
	consumeAll(t, co, produceRound(t, pr, "ev", parts, 7, produced), consumed)
	poll.Until(t, 10*time.Second, "the evicted consumer told its session is gone", func() bool {
		return srv.FetchSessionStats().NotFound >= 1
	})
	consumeAll(t, co, produceRound(t, pr, "ev", parts, 3, produced), consumed)
	t.Logf("fetch sessions: %+v", srv.FetchSessionStats())
}

// TestFetchSessionsOff: with no slots every fetch is sessionless, and
// kgo consumes all the same.
func TestFetchSessionsOff(t *testing.T) {
	ctx := testContext(t)
	_, addr, srv := singleWith(t, nil, FetchSessionSlots(0))
	pr := newClient(t, []string{addr}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, ctx, kadm.NewClient(pr), "off", 4, 1, nil)
	produced, consumed := map[int32]int{}, map[int32]int{}
	co := newClient(t, []string{addr}, kgo.ConsumeTopics("off"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond))
	for range 3 {
		consumeAll(t, co, produceRound(t, pr, "off", 4, 4, produced), consumed)
	}
	if st := srv.FetchSessionStats(); st.Created != 0 || st.Incremental != 0 || st.Sessionless < 3 {
		t.Fatalf("sessions off: %+v", st)
	}
}

// TestFetchSessionKcat: librdkafka (kcat) consumes a topic of many
// partitions from a listener with sessions on; what it sends is counted.
func TestFetchSessionKcat(t *testing.T) {
	ctx := testContext(t)
	_, addr, srv := singleWith(t, nil)
	pr := newClient(t, []string{addr}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	const parts = 16
	createTopic(t, ctx, kadm.NewClient(pr), "kcs", parts, 1, nil)
	produced := map[int32]int{}
	n := produceRound(t, pr, "kcs", parts, 50, produced)
	out, _ := kcat(t, "", "-b", addr, "-C", "-t", "kcs", "-o", "beginning", "-e", "-q", "-f", "%p %s\n")
	next := map[int32]int{}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		var p int32
		var v string
		if _, err := fmt.Sscanf(l, "%d %s", &p, &v); err != nil {
			t.Fatalf("kcat line %q: %v", l, err)
		}
		if w := fmt.Sprintf("p%d-%d", p, next[p]); v != w {
			t.Fatalf("partition %d: %q, want %q", p, v, w)
		}
		next[p]++
	}
	if len(lines) != n {
		t.Fatalf("kcat consumed %d records, want %d", len(lines), n)
	}
	t.Logf("fetch sessions after kcat: %+v", srv.FetchSessionStats())
}

// TestFetchSessionBounds: a connection holds at most maxSessionsPerConn
// sessions (a new one evicts its least recently used); a full fetch of
// more than maxSessionPartitions partitions is answered without a
// session, and a session that grows past it is dropped.
func TestFetchSessionBounds(t *testing.T) {
	ctx := testContext(t)
	_, addr, srv := singleWith(t, nil)
	cl := newClient(t, []string{addr})
	createTopic(t, ctx, kadm.NewClient(cl), "fb", 1, 1, nil)
	c := dialRaw(t, addr)
	corr := int32(0)
	var ids []int32
	for range maxSessionsPerConn + 1 {
		corr++
		resp := sessionFetch(t, c, corr, 0, 0, "fb", map[int32]int64{0: 0})
		if resp.SessionID <= 0 {
			t.Fatalf("session %d: id %d error %d", len(ids), resp.SessionID, resp.ErrorCode)
		}
		ids = append(ids, resp.SessionID)
	}
	if st := srv.FetchSessionStats(); st.Sessions != maxSessionsPerConn || st.Evicted() != 1 {
		t.Fatalf("after %d sessions on one connection: %+v", len(ids), st)
	}
	corr++
	if resp := sessionFetch(t, c, corr, ids[0], 1, "fb", nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("the connection's oldest session: error %d", resp.ErrorCode)
	}
	corr++
	if resp := sessionFetch(t, c, corr, ids[1], 1, "fb", nil); resp.ErrorCode != 0 {
		t.Fatalf("the connection's second session: error %d", resp.ErrorCode)
	}

	// Too many partitions: partitions past the topic's are answered
	// UNKNOWN_TOPIC_OR_PARTITION, which does not matter here.
	big := tooManyPartitions("fb")
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(11)
	corr++
	if err := resp.ReadFrom(c.request(big, corr)); err != nil || resp.ErrorCode != 0 || resp.SessionID != 0 {
		t.Fatalf("a full fetch of %d partitions: %v, error %d, session id %d", maxSessionPartitions+1, err, resp.ErrorCode, resp.SessionID)
	}
	// The same partitions added to a session: it is dropped.
	big.SessionID, big.SessionEpoch = ids[1], 2
	corr++
	if err := resp.ReadFrom(c.request(big, corr)); err != nil || resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("a session grown past %d partitions: %v, error %d", maxSessionPartitions, err, resp.ErrorCode)
	}
	if st := srv.FetchSessionStats(); st.Sessions != maxSessionsPerConn-1 || st.Partitions != maxSessionsPerConn-1 {
		t.Fatalf("after the session grown too big was dropped: %+v", st)
	}
}
