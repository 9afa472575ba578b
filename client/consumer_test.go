package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// consumeN assigns one partition from start and polls until n records
// arrived.
func consumeN(t *testing.T, c *Client, topic string, partition int32, start Offset, n int) []*Record {
	t.Helper()
	c.Assign(map[TopicPartition]Offset{{topic, partition}: start})
	return pollN(t, c, n)
}

func pollN(t *testing.T, c *Client, n int) []*Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*Record
	for len(out) < n {
		f, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d records: %v", len(out), n, err)
		}
		for _, e := range f.Errors {
			t.Fatalf("fetch error: %v", e)
		}
		out = append(out, f.Records...)
	}
	return out
}

func produceValues(t *testing.T, c *Client, topic string, from, to int) {
	t.Helper()
	var recs []*Record
	for i := from; i < to; i++ {
		recs = append(recs, &Record{Topic: topic, Value: []byte(fmt.Sprint(i)), Timestamp: time.UnixMilli(int64(1000 * (i + 1)))})
	}
	if err := c.ProduceSync(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

func TestConsumeStartPositionsAndSeek(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, FetchMaxWait(10*time.Millisecond), Linger(time.Hour))
	produceValues(t, c, "t", 0, 10) // one batch: offsets 0..9
	for _, tc := range []struct {
		start Offset
		first int64
	}{
		{AtStart(), 0},
		{At(5), 5}, // records of the batch before the offset are skipped
		{AtTime(time.UnixMilli(7000)), 6},
	} {
		got := consumeN(t, c, "t", 0, tc.start, int(10-tc.first))
		if got[0].Offset != tc.first || string(got[0].Value) != fmt.Sprint(tc.first) || len(got) != int(10-tc.first) {
			t.Errorf("start %v: first offset %d (%d records), want %d", tc.start, got[0].Offset, len(got), tc.first)
		}
	}
	if err := c.Seek("t", 0, 8); err != nil {
		t.Fatal(err)
	}
	if got := pollN(t, c, 2); got[0].Offset != 8 {
		t.Errorf("after Seek(8): first offset %d", got[0].Offset)
	}
	c.Assign(map[TopicPartition]Offset{{"t", 0}: AtEnd()})
	poll.Until(t, 10*time.Second, "end offset resolved", func() bool {
		c.cons.mu.Lock()
		defer c.cons.mu.Unlock()
		return !c.cons.parts[TopicPartition{"t", 0}].needsOffset
	})
	produceValues(t, c, "t", 10, 11)
	if got := pollN(t, c, 1); got[0].Offset != 10 {
		t.Errorf("from the end: offset %d, want 10", got[0].Offset)
	}
	if err := c.Seek("t", 5, 0); err == nil {
		t.Error("seek of an unassigned partition succeeded")
	}
}

// Fetching runs ahead of Poll, up to the buffer limit.
func TestFetchRunsAheadOfPoll(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	const limit, perFetch = 4096, 2048
	c := newTestClient(t, fc, FetchMaxWait(10*time.Millisecond), MaxBufferedFetchBytes(limit), FetchMaxBytes(perFetch, perFetch))
	val := make([]byte, 100)
	for range 20 {
		var recs []*Record
		for range 10 {
			recs = append(recs, &Record{Topic: "t", Value: val})
		}
		if err := c.ProduceSync(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
	}
	c.Assign(map[TopicPartition]Offset{{"t", 0}: AtStart()})
	buffered := func() int {
		c.cons.mu.Lock()
		defer c.cons.mu.Unlock()
		return c.cons.bufBytes
	}
	poll.Until(t, 10*time.Second, "records buffered without a Poll", func() bool { return buffered() >= limit })
	// Fetching stops at the limit (a fetch that started below it may add
	// one response, which holds at most one batch beyond perFetch).
	if b := buffered(); b > limit+perFetch+1500 {
		t.Errorf("buffered %d bytes, limit %d", b, limit)
	}
	if got := pollN(t, c, 200); len(got) != 200 || got[199].Offset != 199 {
		t.Errorf("polled %d records, last offset %d", len(got), got[len(got)-1].Offset)
	}
}

// A batch corrupted on the wire is a FetchError, never a panic.
func TestFetchCorruptBatchIsError(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, FetchMaxWait(10*time.Millisecond))
	produceValues(t, c, "t", 0, 3)
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key != protocol.Fetch {
			return action{}
		}
		resp := b.fetch(req.(*protocol.FetchRequest)).(*protocol.FetchResponse)
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if r := resp.Topics[i].Partitions[j].Records; len(r) > record.HeaderSize {
					r[len(r)-1] ^= 0xff // covered by the CRC
				}
			}
		}
		return action{resp: resp}
	})
	c.Assign(map[TopicPartition]Offset{{"t", 0}: AtStart()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := c.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The last batch is corrupt; whole batches before it (the producer may
	// have split the 3 records) are delivered, nothing after.
	if len(f.Errors) != 1 || !errors.Is(f.Errors[0], record.ErrCorrupt) || len(f.Records) >= 3 {
		t.Fatalf("got %d records, errors %v; want one corrupt-batch error", len(f.Records), f.Errors)
	}
	for i, r := range f.Records {
		if r.Offset != int64(i) {
			t.Errorf("record %d has offset %d", i, r.Offset)
		}
	}
}

// The fetcher fetches on from a response's last batch (its headers)
// while the response is decoded: a batch that fails its CRC must still
// stop the partition there. Records before it are delivered, none from
// it or after it (the fetches already sent from past it are dropped),
// and after a Seek past it the rest arrive once and in order.
func TestFetchAheadStopsAtCorruptBatch(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, FetchMaxWait(10*time.Millisecond), FetchMaxBytes(1, 1)) // a batch per fetch
	for i := range 6 {
		produceValues(t, c, "t", i, i+1) // one batch each
	}
	var maxFetched atomic.Int64
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key != protocol.Fetch {
			return action{}
		}
		freq := req.(*protocol.FetchRequest)
		for _, tp := range freq.Topics {
			for _, p := range tp.Partitions {
				if p.FetchOffset > maxFetched.Load() {
					maxFetched.Store(p.FetchOffset)
				}
			}
		}
		resp := b.fetch(freq).(*protocol.FetchResponse)
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				data := resp.Topics[i].Partitions[j].Records
				for len(data) >= record.HeaderSize {
					bt := record.Batch(data)
					size := int(bt.Size())
					if bt.BaseOffset() == 2 {
						data[size-1] ^= 0xff // covered by the CRC; the header stays whole
					}
					data = data[size:]
				}
			}
		}
		return action{resp: resp}
	})
	c.Assign(map[TopicPartition]Offset{{"t", 0}: AtStart()})
	var got []int64
	var errs []*FetchError
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(errs) == 0 {
		f, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll: %v after records %v", err, got)
		}
		for _, r := range f.Records {
			got = append(got, r.Offset)
		}
		errs = append(errs, f.Errors...)
	}
	if len(errs) != 1 || !errors.Is(errs[0], record.ErrCorrupt) {
		t.Fatalf("errors %v, want one corrupt-batch error", errs)
	}
	if fmt.Sprint(got) != "[0 1]" {
		t.Fatalf("records %v before the corrupt batch, want [0 1]", got)
	}
	// Nothing more comes: the partition is paused at the corrupt batch.
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	if f, err := c.Poll(short); err == nil {
		t.Fatalf("after the corrupt batch Poll returned %d records, errors %v", len(f.Records), f.Errors)
	}
	t.Logf("fetched up to offset %d before the corrupt batch was decoded", maxFetched.Load())
	if err := c.Seek("t", 0, 3); err != nil {
		t.Fatal(err)
	}
	rest := pollN(t, c, 3)
	var offs []int64
	for _, r := range rest {
		offs = append(offs, r.Offset)
	}
	if fmt.Sprint(offs) != "[3 4 5]" {
		t.Fatalf("after the Seek: %v, want [3 4 5]", offs)
	}
}

func TestFetchOffsetOutOfRangePauses(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, FetchMaxWait(10*time.Millisecond))
	produceValues(t, c, "t", 0, 3)
	got := func() []*FetchError {
		c.Assign(map[TopicPartition]Offset{{"t", 0}: At(100)})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f, err := c.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return f.Errors
	}()
	if len(got) != 1 || !errors.Is(got[0], protocol.ErrOffsetOutOfRange) {
		t.Fatalf("errors %v, want OFFSET_OUT_OF_RANGE", got)
	}
	c.cons.mu.Lock()
	paused := c.cons.parts[TopicPartition{"t", 0}].paused
	c.cons.mu.Unlock()
	if !paused {
		t.Error("partition not paused after the error")
	}
	if err := c.Seek("t", 0, 1); err != nil {
		t.Fatal(err)
	}
	if r := pollN(t, c, 2); r[0].Offset != 1 {
		t.Errorf("after Seek: offset %d", r[0].Offset)
	}
}

// A leader change mid-consumption is followed via metadata.
func TestConsumeFollowsLeaderChange(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, FetchMaxWait(10*time.Millisecond))
	produceValues(t, c, "t", 0, 5)
	if got := consumeN(t, c, "t", 0, AtStart(), 5); got[4].Offset != 4 {
		t.Fatal("first records")
	}
	fc.setLeader("t", 0, 2)
	produceValues(t, c, "t", 5, 8)
	if got := pollN(t, c, 3); got[0].Offset != 5 || got[2].Offset != 7 {
		t.Errorf("after the leader change: offsets %d..%d", got[0].Offset, got[len(got)-1].Offset)
	}
}

func TestDecodeRecordsBoundsAndAliasing(t *testing.T) {
	b := record.NewBuilder(record.None)
	for i := range 5 {
		b.Append(int64(i), []byte("k"), []byte(fmt.Sprint(i)), nil)
	}
	batch, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	data := append([]byte(nil), batch...)
	data = append(data, batch[:30]...) // a partial batch cut by the size limit
	var rd record.Reader
	recs, next, err := decodeRecords(&rd, data, 2, TopicPartition{"t", 0}, 1<<20, new(recSlab))
	if err != nil || next != 5 || len(recs) != 3 || recs[0].Offset != 2 {
		t.Fatalf("got %d records, next %d, err %v", len(recs), next, err)
	}
	if cap(recs[0].Value) != len(recs[0].Value) {
		t.Error("record value not capped: an append would overwrite its neighbour")
	}
	if _, _, err := decodeRecords(&rd, batch[:30], 0, TopicPartition{"t", 0}, 20, new(recSlab)); !errors.Is(err, errBatchTooLarge) {
		t.Errorf("only a partial batch: %v, want errBatchTooLarge", err)
	}
}

// A partition moved to another leader while the old leader's fetcher held
// it is handed over when that fetcher lets go: the new leader's fetcher,
// which skipped it as busy and waits for a change, is woken. (Without the
// wake-up a live consumer stalled until the next metadata refresh.)
func TestReleaseWakesTheNewLeadersFetcher(t *testing.T) {
	c := offlineClient(t)
	c.setTopic("t", 2)
	cs := &c.cons
	tp := TopicPartition{"t", 0}
	cs.parts[tp] = &cpart{tp: tp}

	_, held := cs.collect(2) // broker 2's fetcher takes it
	if len(held) != 1 {
		t.Fatalf("broker 2 collected %d partitions to fetch, want 1", len(held))
	}
	c.setTopic("t", 3) // the leader moves while the fetch is out
	woken := cs.changed.wait()
	if _, got := cs.collect(3); len(got) != 0 {
		t.Fatalf("broker 3 collected a partition still busy at broker 2")
	}
	cs.release(2, held)
	select {
	case <-woken:
	default:
		t.Fatal("releasing a partition that moved did not wake the fetchers")
	}
	if _, got := cs.collect(3); len(got) != 1 {
		t.Fatalf("broker 3 collected %d partitions after the release, want 1", len(got))
	}

	// A release of a partition that stays put wakes nobody.
	woken = cs.changed.wait()
	_, held = cs.collect(3)
	cs.release(3, held)
	select {
	case <-woken:
		t.Fatal("a release without a move woke the fetchers")
	default:
	}
}

// A client that consumes and produces does not make its produces wait
// behind its long-poll fetches: a broker answers one connection's requests
// in order, so they travel on connections of their own.
func TestProduceDoesNotWaitBehindALongPoll(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	hold := make(chan struct{})
	defer close(hold)
	var held atomic.Bool
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key == protocol.Fetch {
			held.Store(true)
			return action{wait: hold} // a long poll with nothing to return
		}
		return action{}
	})
	c := newTestClient(t, fc)
	c.Assign(map[TopicPartition]Offset{{"t", 0}: At(0)})
	poll.Until(t, 10*time.Second, "a fetch held by the broker", held.Load)

	done := make(chan error, 1)
	c.Produce(context.Background(), &Record{Topic: "t", Value: []byte("v")}, func(_ *Record, err error) { done <- err })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("flush: %v: the produce waited behind the held fetch", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
