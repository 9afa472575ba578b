package replica

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/protocol"
)

// fakeLeader serves OffsetForLeaderEpoch and Fetch for one partition from
// a real log over TCP, as a leader broker would (a stand-in inside this
// unit test only). dropFirst closes the first connection after its first
// fetch, so the fetcher must reconnect.
type fakeLeader struct {
	t         *testing.T
	l         *log.Log
	epoch     int32 // the leader epoch it leads in
	ln        net.Listener
	dropFirst bool
	conns     atomic.Int32
	fetches   atomic.Int32
	wg        sync.WaitGroup
}

func startFakeLeader(t *testing.T, l *log.Log, epoch int32, dropFirst bool) *fakeLeader {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeLeader{t: t, l: l, epoch: epoch, ln: ln, dropFirst: dropFirst}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *fakeLeader) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		n := s.conns.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer nc.Close()
			s.serve(nc, s.dropFirst && n == 1)
		}()
	}
}

func (s *fakeLeader) serve(nc net.Conn, drop bool) {
	fr := protocol.NewFrameReader(nc, 0)
	for {
		frame, err := fr.Next()
		if err != nil {
			return
		}
		var h protocol.RequestHeader
		body, err := h.Decode(frame)
		if err != nil {
			return
		}
		var resp protocol.Message
		switch h.Key {
		case protocol.OffsetForLeaderEpoch:
			var req protocol.OffsetForLeaderEpochRequest
			if protocol.Decode(&req, body, h.Version) != nil {
				return
			}
			q := req.Topics[0].Partitions[0]
			e, end := s.l.EndOffsetForEpoch(q.LeaderEpoch)
			resp = &protocol.OffsetForLeaderEpochResponse{Topics: []protocol.OffsetForLeaderEpochTopicResult{{
				Name: req.Topics[0].Name, Partitions: []protocol.EpochEndOffset{{Partition: q.Partition, LeaderEpoch: e, EndOffset: end}}}}}
		case protocol.Fetch:
			var req protocol.FetchRequest
			if protocol.Decode(&req, body, h.Version) != nil {
				return
			}
			s.fetches.Add(1)
			if len(req.Topics) == 0 {
				// A wake (Fetcher.waker): answered at once, empty.
				resp = &protocol.FetchResponse{}
				break
			}
			fp := req.Topics[0].Partitions[0]
			pr := protocol.FetchPartitionResponse{Partition: fp.Partition, HighWatermark: s.l.EndOffset(), LogStartOffset: s.l.StartOffset()}
			switch {
			case fp.CurrentLeaderEpoch != s.epoch:
				pr.ErrorCode = protocol.ErrFencedLeaderEpoch
			case fp.FetchOffset > s.l.EndOffset():
				pr.ErrorCode = protocol.ErrOffsetOutOfRange
			case fp.FetchOffset < s.l.EndOffset():
				v, err := s.l.Read(fp.FetchOffset, int(fp.PartitionMaxBytes))
				if err != nil {
					return
				}
				pr.Records = bytes.Clone(v.Bytes())
				v.Release()
			default:
				time.Sleep(5 * time.Millisecond) // a short long-poll
			}
			resp = &protocol.FetchResponse{Topics: []protocol.FetchTopicResponse{{Name: req.Topics[0].Name, Partitions: []protocol.FetchPartitionResponse{pr}}}}
		default:
			return
		}
		out, err := protocol.AppendResponse(nil, h.CorrelationID, h.Version, resp)
		if err != nil {
			s.t.Error(err)
			return
		}
		if _, err := nc.Write(out); err != nil {
			return
		}
		if drop && h.Key == protocol.Fetch {
			return // the connection dies after its first fetch
		}
	}
}

// localFollowed is the broker's side of a followed partition, reduced to
// a Follower over a real log.
type localFollowed struct {
	mu sync.Mutex
	f  *Follower
}

func (p *localFollowed) Truncate(ctx context.Context, src EpochSource) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.f.Truncate(ctx, src)
	return err
}

func (p *localFollowed) FetchOffset() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.f.FetchOffset(), nil
}

func (p *localFollowed) Apply(records []byte, hw int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.f.Apply(records, hw)
	return err
}

func (p *localFollowed) ResetTo(start int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.f.ResetTo(start)
}

func (p *localFollowed) AdvanceStart(start int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.f.AdvanceStart(start)
}

// The fetcher truncates a diverged follower where its log parts from the
// leader's (KIP-101: never by high watermark), copies the rest, survives a
// dropped connection, and stops on Close.
func TestFetcherTruncatesThenCopies(t *testing.T) {
	leader := openLog(t)
	appendEpoch(t, leader, 1, 5, "a")
	appendEpoch(t, leader, 2, 3, "b")
	fl := openLog(t)
	appendEpoch(t, fl, 1, 5, "a")
	appendEpoch(t, fl, 1, 2, "x") // written in epoch 1, never replicated
	srv := startFakeLeader(t, leader, 2, true)

	ft := StartFetcher(FetcherConfig{
		Leader: 9, Self: 1, BrokerEpoch: func() int64 { return 1 },
		Addr:    func() (string, bool) { return srv.ln.Addr().String(), true },
		MaxWait: 10 * time.Millisecond, PartitionMaxBytes: 200, Backoff: 5 * time.Millisecond,
	})
	defer ft.Close()
	p := &localFollowed{f: NewFollower(fl, 0, nil)}
	ft.Set(TopicPartition{"t", 0}, 2, p)
	if ft.Len() != 1 {
		t.Fatalf("Len %d, want 1", ft.Len())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		done := fl.EndOffset() == leader.EndOffset() && p.f.HighWatermark() == leader.EndOffset()
		p.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("follower at %d (HW %d), leader at %d", fl.EndOffset(), p.f.HighWatermark(), leader.EndOffset())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !bytes.Equal(logBytes(t, fl), logBytes(t, leader)) {
		t.Fatal("follower's log differs from the leader's")
	}
	if srv.conns.Load() < 2 {
		t.Fatalf("%d connections: the dropped one was not replaced", srv.conns.Load())
	}
	ft.Remove(TopicPartition{"t", 0})
	if ft.Len() != 0 {
		t.Fatalf("Len %d after Remove", ft.Len())
	}
}

// A fetch refused for a stale leader epoch is not applied and is retried
// after a backoff, not in a busy loop.
func TestFetcherBacksOffOnRefusal(t *testing.T) {
	leader := openLog(t)
	appendEpoch(t, leader, 3, 2, "a")
	srv := startFakeLeader(t, leader, 3, false)
	fl := openLog(t)
	ft := StartFetcher(FetcherConfig{
		Leader: 9, Self: 1, BrokerEpoch: func() int64 { return 1 },
		Addr:    func() (string, bool) { return srv.ln.Addr().String(), true },
		MaxWait: 10 * time.Millisecond, Backoff: 50 * time.Millisecond,
	})
	defer ft.Close()
	p := &localFollowed{f: NewFollower(fl, 0, nil)}
	ft.Set(TopicPartition{"t", 0}, 2, p) // the leader is in epoch 3
	time.Sleep(300 * time.Millisecond)
	if n := srv.fetches.Load(); n > 10 {
		t.Fatalf("%d fetches in 300 ms with a 50 ms backoff", n)
	}
	if fl.EndOffset() != 0 {
		t.Fatalf("a refused fetch appended: end %d", fl.EndOffset())
	}
	ft.Set(TopicPartition{"t", 0}, 3, p) // the metadata caught up
	deadline := time.Now().Add(5 * time.Second)
	for fl.EndOffset() != leader.EndOffset() {
		if time.Now().After(deadline) {
			t.Fatalf("follower at %d, leader at %d", fl.EndOffset(), leader.EndOffset())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An unknown leader address is retried, and Close returns promptly.
func TestFetcherCloseWhileUnreachable(t *testing.T) {
	ft := StartFetcher(FetcherConfig{Leader: 9, Self: 1, BrokerEpoch: func() int64 { return 1 },
		Addr: func() (string, bool) { return "", false }, Backoff: 10 * time.Millisecond})
	ft.Set(TopicPartition{"t", 0}, 1, &localFollowed{f: NewFollower(openLog(t), 0, nil)})
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { ft.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
}

// failingFollowed is a follower whose log went offline: every Apply
// fails.
type failingFollowed struct {
	localFollowed
	applies atomic.Int64
}

func (p *failingFollowed) Apply([]byte, int64) error {
	p.applies.Add(1)
	return errors.New("log offline after a storage error: no space left on device")
}

// A follower whose every apply fails (a log gone offline) is warned about
// once per warnEvery, not once per fetch.
func TestFetcherRateLimitsApplyWarnings(t *testing.T) {
	leader := openLog(t)
	appendEpoch(t, leader, 1, 5, "a")
	srv := startFakeLeader(t, leader, 1, false)
	obs, logs := observer.New(zapcore.WarnLevel)
	ft := StartFetcher(FetcherConfig{
		Leader: 9, Self: 1, BrokerEpoch: func() int64 { return 1 },
		Addr:    func() (string, bool) { return srv.ln.Addr().String(), true },
		MaxWait: 10 * time.Millisecond, Backoff: time.Millisecond, Logger: zap.New(obs),
	})
	defer ft.Close()
	p := &failingFollowed{localFollowed: localFollowed{f: NewFollower(openLog(t), 0, nil)}}
	ft.Set(TopicPartition{"t", 0}, 1, p)
	deadline := time.Now().Add(10 * time.Second)
	for p.applies.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d applies in 10 s", p.applies.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := logs.FilterMessageSnippet("apply fetched records").Len(); n != 1 {
		t.Fatalf("%d warn lines for %d failed applies, want 1 per %v", n, p.applies.Load(), warnEvery)
	}
}

// A follower's log start follows the leader's (DeleteRecords on the
// leader) through the fetch responses, at most to its own high watermark.
func TestFetcherFollowsLeaderStart(t *testing.T) {
	leader := openLog(t)
	appendEpoch(t, leader, 1, 8, "a")
	fl := openLog(t)
	srv := startFakeLeader(t, leader, 1, false)
	ft := StartFetcher(FetcherConfig{
		Leader: 9, Self: 1, BrokerEpoch: func() int64 { return 1 },
		Addr:    func() (string, bool) { return srv.ln.Addr().String(), true },
		MaxWait: 10 * time.Millisecond, PartitionMaxBytes: 1 << 20, Backoff: 5 * time.Millisecond,
	})
	defer ft.Close()
	p := &localFollowed{f: NewFollower(fl, 0, nil)}
	ft.Set(TopicPartition{"t", 0}, 1, p)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			p.mu.Lock()
			ok := cond()
			p.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: follower start %d end %d HW %d, leader start %d end %d", what, fl.StartOffset(), fl.EndOffset(),
					p.f.HighWatermark(), leader.StartOffset(), leader.EndOffset())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("copied", func() bool { return p.f.HighWatermark() == 8 })
	if err := leader.DeleteRecordsBefore(6); err != nil {
		t.Fatal(err)
	}
	waitFor("start followed", func() bool { return fl.StartOffset() == 6 })
	if _, err := fl.Read(5, 1<<20); err == nil {
		t.Fatal("the follower still serves offset 5")
	}
	ft.Remove(TopicPartition{"t", 0})

	// Capped by the follower's high watermark.
	capped := openLog(t)
	appendEpoch(t, capped, 1, 8, "a")
	f := NewFollower(capped, 3, nil)
	if err := f.AdvanceStart(6); err != nil || capped.StartOffset() != 3 {
		t.Fatalf("AdvanceStart(6) with HW 3: start %d, %v", capped.StartOffset(), err)
	}
	if err := f.AdvanceStart(2); err != nil || capped.StartOffset() != 3 {
		t.Fatalf("AdvanceStart(2) moved the start back: %d, %v", capped.StartOffset(), err)
	}
}

// parkingLeader answers every Fetch that carries partitions only when the
// next request arrives on its connection (or after a minute), as a
// leader's long-poll with nothing new does until a wake ends it; each
// carries no records. It reports each Fetch it reads.
type parkingLeader struct {
	ln      net.Listener
	conns   atomic.Int32
	fetches chan protocol.FetchRequest
	wg      sync.WaitGroup
}

func startParkingLeader(t *testing.T) *parkingLeader {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &parkingLeader{ln: ln, fetches: make(chan protocol.FetchRequest, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				s.serve(t, nc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

type parkedReq struct {
	h   protocol.RequestHeader
	req protocol.FetchRequest
}

func (s *parkingLeader) serve(t *testing.T, nc net.Conn) {
	reqs := make(chan parkedReq)
	go func() {
		defer close(reqs)
		fr := protocol.NewFrameReader(nc, 0)
		for {
			frame, err := fr.Next()
			if err != nil {
				return
			}
			var r parkedReq
			body, err := r.h.Decode(frame)
			if err != nil || r.h.Key != protocol.Fetch || protocol.Decode(&r.req, body, r.h.Version) != nil {
				t.Errorf("parking leader: a request it does not serve: %+v, %v", r.h, err)
				nc.Close()
				return
			}
			reqs <- r
		}
	}()
	defer func() {
		for range reqs { // until the reader ends
		}
	}()
	var next *parkedReq
	for {
		if next == nil {
			r, ok := <-reqs
			if !ok {
				return
			}
			next = &r
		}
		cur := *next
		next = nil
		s.fetches <- cur.req
		if len(cur.req.Topics) > 0 {
			select {
			case r, ok := <-reqs:
				if !ok {
					return
				}
				next = &r
			case <-time.After(time.Minute):
			}
		}
		resp := protocol.FetchResponse{}
		for _, ft := range cur.req.Topics {
			rt := protocol.FetchTopicResponse{Name: ft.Name}
			for _, fp := range ft.Partitions {
				rt.Partitions = append(rt.Partitions, protocol.FetchPartitionResponse{Partition: fp.Partition, HighWatermark: 0, LogStartOffset: 0})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		out, err := protocol.AppendResponse(nil, cur.h.CorrelationID, cur.h.Version, &resp)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := nc.Write(out); err != nil {
			return
		}
	}
}

// A partition set while the fetcher's Fetch waits in the leader's
// long-poll (a minute here) is fetched at once: the fetcher interjects an
// empty replica Fetch that does not wait, on the same connection, and
// its next Fetch carries the new partition.
func TestFetcherWakesParkedFetchOnSet(t *testing.T) {
	srv := startParkingLeader(t)
	ft := StartFetcher(FetcherConfig{
		Leader: 9, Self: 1, BrokerEpoch: func() int64 { return 7 },
		Addr:    func() (string, bool) { return srv.ln.Addr().String(), true },
		MaxWait: time.Minute, Backoff: 5 * time.Millisecond,
	})
	defer ft.Close()
	next := func(what string) protocol.FetchRequest {
		t.Helper()
		select {
		case r := <-srv.fetches:
			return r
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s within 20 s (the fetcher's long-poll is a minute)", what)
			return protocol.FetchRequest{}
		}
	}
	count := func(r protocol.FetchRequest) int {
		n := 0
		for _, ft := range r.Topics {
			n += len(ft.Partitions)
		}
		return n
	}
	woken := func(want int) {
		t.Helper()
		wake := next("wake")
		if len(wake.Topics) != 0 || wake.MaxWaitMs != 0 || wake.ReplicaID != 1 || wake.ReplicaEpoch != 7 {
			t.Fatalf("wake: %+v, want an empty replica Fetch that does not wait", wake)
		}
		if r := next("fetch with the new partition"); count(r) != want {
			t.Fatalf("the fetch after the wake carries %d partitions, want %d", count(r), want)
		}
	}
	// The first Fetch is being built when the second partition is set:
	// it goes out without it, and is woken as soon as it is written.
	building, release := make(chan struct{}), make(chan struct{})
	ft.Set(TopicPartition{"a", 0}, 1, &gatedFollowed{localFollowed: localFollowed{f: NewFollower(openLog(t), 0, nil)}, entered: building, release: release})
	<-building
	ft.Set(TopicPartition{"b", 0}, 1, &localFollowed{f: NewFollower(openLog(t), 0, nil)})
	close(release)
	if r := next("first fetch"); count(r) != 1 || r.MaxWaitMs != int32(time.Minute/time.Millisecond) {
		t.Fatalf("first fetch: %d partitions, max wait %d ms", count(r), r.MaxWaitMs)
	}
	woken(2)
	// That Fetch is parked now; a third partition wakes it.
	ft.Set(TopicPartition{"c", 0}, 1, &localFollowed{f: NewFollower(openLog(t), 0, nil)})
	woken(3)
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("%d connections: the wake went on a new one, or the old one broke", n)
	}
}

// gatedFollowed's first FetchOffset signals entered and waits for
// release: a Fetch held while it is being built.
type gatedFollowed struct {
	localFollowed
	entered, release chan struct{}
	once             sync.Once
}

func (p *gatedFollowed) FetchOffset() (int64, error) {
	p.once.Do(func() {
		close(p.entered)
		<-p.release
	})
	return p.localFollowed.FetchOffset()
}

// A Fetch's answer is matched to what it asked by place (the leader
// answers in the order asked), and by partition when the order differs:
// each answer goes to its own partition's entry either way.
func TestFetcherMatchesAnswersToWhatWasAsked(t *testing.T) {
	f := &Fetcher{topicAt: map[string]int{"a": 0, "b": 1}}
	f.req.Topics = []protocol.FetchTopic{
		{Name: "a", Partitions: []protocol.FetchPartition{{Partition: 4}, {Partition: 1}}},
		{Name: "b", Partitions: []protocol.FetchPartition{{Partition: 0}}},
	}
	e := []*fetchEntry{{}, {}, {}}
	f.sent = [][]sent{{{e[0], 40}, {e[1], 10}}, {{e[2], 0}}}
	for _, c := range []struct {
		tp   TopicPartition
		j    int
		want *fetchEntry
		off  int64
	}{
		{TopicPartition{"a", 4}, 0, e[0], 40},
		{TopicPartition{"a", 1}, 1, e[1], 10},
		{TopicPartition{"a", 1}, 0, e[1], 10}, // out of order
		{TopicPartition{"a", 4}, 7, e[0], 40}, // past the end
		{TopicPartition{"b", 0}, 0, e[2], 0},
	} {
		s, ok := f.asked(c.tp, c.j)
		if !ok || s.e != c.want || s.offset != c.off {
			t.Errorf("asked(%v, %d) = %v, %v; want entry %p at %d", c.tp, c.j, s, ok, c.want, c.off)
		}
	}
	for _, tp := range []TopicPartition{{"a", 2}, {"c", 0}} {
		if _, ok := f.asked(tp, 0); ok {
			t.Errorf("asked(%v): found, but it was not asked", tp)
		}
	}
}

// countingFollowed counts what the fetcher applies.
type countingFollowed struct {
	localFollowed
	applies, advances int
}

func (p *countingFollowed) Apply(records []byte, hw int64) error {
	p.applies++
	return nil
}

func (p *countingFollowed) AdvanceStart(start int64) error {
	p.advances++
	return nil
}

// An answer with no records that repeats the last one applied (same fetch
// offset, high watermark and log start) is not applied again: a follower
// of thousands of idle partitions gets thousands each round. Any change,
// records, or an error in between, and it is applied.
func TestFetcherSkipsRepeatedIdleAnswers(t *testing.T) {
	f := &Fetcher{log: zap.NewNop()}
	p := &countingFollowed{}
	e := &fetchEntry{p: p, epoch: 1}
	tp := TopicPartition{"t", 0}
	answer := func(offset, hw, start int64, records []byte, code protocol.ErrorCode) {
		t.Helper()
		f.applyPartition(tp, sent{e, offset}, &protocol.FetchPartitionResponse{ErrorCode: code, HighWatermark: hw, LogStartOffset: start, Records: records})
	}
	want := func(applies, advances int) {
		t.Helper()
		if p.applies != applies || p.advances != advances {
			t.Fatalf("%d applies and %d log start advances, want %d and %d", p.applies, p.advances, applies, advances)
		}
	}
	answer(10, 10, 0, nil, protocol.NoError)
	want(1, 1)
	answer(10, 10, 0, nil, protocol.NoError) // the same: skipped
	want(1, 1)
	answer(10, 11, 0, nil, protocol.NoError) // the high watermark moved
	want(2, 2)
	answer(10, 11, 5, nil, protocol.NoError) // the log start moved
	want(3, 3)
	answer(12, 11, 5, nil, protocol.NoError) // fetched from elsewhere
	want(4, 4)
	answer(12, 11, 5, nil, protocol.ErrNotLeaderOrFollower)
	answer(12, 11, 5, nil, protocol.NoError) // after an error: applied
	want(5, 5)
	answer(12, 11, 5, []byte{1}, protocol.NoError) // records
	want(6, 6)
	answer(12, 11, 5, nil, protocol.NoError) // not the last applied answer
	want(7, 7)
	answer(12, 11, 5, nil, protocol.NoError)
	want(7, 7)
}
