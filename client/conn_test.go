package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

func newTestClient(t testing.TB, fc *fakeCluster, opts ...Opt) *Client {
	t.Helper()
	opts = append([]Opt{SeedBrokers(fc.addrs()...), RetryBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)
	c, err := New(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Requests from many goroutines share one connection, are pipelined (the
// first is held while the others are written) and each gets its own
// response.
func TestConnPipelinesAndMatchesResponses(t *testing.T) {
	fc := newFakeCluster(t, 1)
	const n = 20
	for i := range n {
		fc.addTopic(topicName(i), 1)
	}
	release := make(chan struct{})
	c := newTestClient(t, fc)
	cn, err := c.brokerConn(context.Background(), 1, connNormal)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		// Hold the first of the test's requests, whichever it is.
		if r, ok := req.(*protocol.MetadataRequest); ok && len(r.Topics) == 1 {
			first := false
			once.Do(func() { first = true })
			if first {
				return action{wait: release}
			}
		}
		return action{}
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := new(protocol.MetadataResponse)
			if err := cn.do(context.Background(), &protocol.MetadataRequest{Topics: []string{topicName(i)}}, resp, 5*time.Second, false); err != nil {
				errs <- err
				return
			}
			if len(resp.Topics) != 1 || resp.Topics[0].Name != topicName(i) {
				errs <- errors.New("response for another request: " + resp.Topics[0].Name)
			}
		}()
	}
	// Every request is written while the first is still held: they were
	// pipelined, not sent one at a time.
	poll.Until(t, 10*time.Second, "all requests written and awaiting responses", func() bool { return len(cn.inflight) == n })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if cn2, _ := c.brokerConn(context.Background(), 1, connNormal); cn2 != cn {
		t.Error("a second connection was opened to the same broker")
	}
}

func topicName(i int) string { return "topic-" + string(rune('a'+i)) }

func TestConnTimeoutClosesConnAndIsIndeterminate(t *testing.T) {
	fc := newFakeCluster(t, 1)
	hang := make(chan struct{})
	defer close(hang)
	c := newTestClient(t, fc)
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key == protocol.Metadata {
			return action{wait: hang}
		}
		return action{}
	})
	cn, err := c.brokerConn(context.Background(), 1, connNormal)
	if err != nil {
		t.Fatal(err)
	}
	err = cn.do(context.Background(), &protocol.MetadataRequest{}, new(protocol.MetadataResponse), 30*time.Millisecond, false)
	if !errors.Is(err, protocol.ErrRequestTimedOut) || !IsIndeterminate(err) {
		t.Fatalf("got %v, want an indeterminate timeout", err)
	}
	if cn.alive() {
		t.Fatal("conn still alive after a request timed out")
	}
	// The next request dials a new connection.
	cn2, err := c.brokerConn(context.Background(), 1, connNormal)
	if err != nil || cn2 == cn {
		t.Fatalf("no fresh conn after the timeout: %v", err)
	}
}

// A response whose correlation id is not the oldest request's kills the
// conn: the stream cannot be trusted.
func TestConnRejectsWrongCorrelationID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		fr := protocol.NewFrameReader(nc, 0)
		var h protocol.RequestHeader
		for i := 0; ; i++ {
			frame, err := fr.Next()
			if err != nil {
				return
			}
			if _, err := h.Decode(frame); err != nil {
				return
			}
			corr := h.CorrelationID
			if i == 1 {
				corr += 7 // the second answer claims another id
			}
			out, _ := protocol.AppendResponse(nil, corr, 0, &protocol.APIVersionsResponse{APIs: protocol.SupportedAPIs()})
			if i == 1 {
				out, _ = protocol.AppendResponse(nil, corr, 0, &protocol.MetadataResponse{})
			}
			nc.Write(out)
		}
	}()
	cfg := defaultConfig()
	cn, err := dialConn(context.Background(), &cfg, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close()
	err = cn.do(context.Background(), &protocol.MetadataRequest{}, new(protocol.MetadataResponse), time.Second, false)
	if !errors.Is(err, protocol.ErrNetwork) || cn.alive() {
		t.Fatalf("got %v (alive %v), want a dead conn", err, cn.alive())
	}
	cn.close()
	<-done
}

// Connection loss after a produce was sent: without idempotence the
// records fail as indeterminate and are not resent.
func TestProduceConnLossIsIndeterminateAndNotRetried(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, Linger(0), Idempotent(false))
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		return action{close: key == protocol.Produce}
	})
	err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("v")})
	var pe *ProduceError
	if !errors.As(err, &pe) || !pe.Indeterminate || !errors.Is(err, protocol.ErrNetwork) {
		t.Fatalf("got %v, want an indeterminate NETWORK_EXCEPTION ProduceError", err)
	}
	if n := fc.count(protocol.Produce); n != 1 {
		t.Errorf("produce sent %d times, want 1 (no resend of a maybe-written batch)", n)
	}
}

// A produce to a broker that is no longer the leader refreshes metadata and
// goes to the new leader.
func TestProduceNotLeaderRefreshesAndRetries(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 1)
	c := newTestClient(t, fc, Linger(0))
	if err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	before := fc.count(protocol.Metadata)
	fc.setLeader("t", 0, 2)
	rec := &Record{Topic: "t", Value: []byte("b")}
	if err := c.ProduceSync(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if fc.count(protocol.Metadata) == before {
		t.Error("no metadata refresh after NOT_LEADER_OR_FOLLOWER")
	}
	if rec.Offset != 1 {
		t.Errorf("offset %d, want 1", rec.Offset)
	}
	if id, _, _ := c.meta.leader("t", 0); id != 2 {
		t.Errorf("cached leader %d, want 2", id)
	}
}

// A request that could not be sent (no broker reachable) is definite and
// retried until the delivery timeout.
func TestProduceUnreachableLeaderIsDefinite(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 2)
	c := newTestClient(t, fc, Linger(0), DeliveryTimeout(200*time.Millisecond), DialTimeout(100*time.Millisecond))
	fc.brokers[1].stop()
	err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("v")})
	var pe *ProduceError
	if !errors.As(err, &pe) || pe.Indeterminate || !errors.Is(err, protocol.ErrNetwork) {
		t.Fatalf("got %v, want a definite NETWORK_EXCEPTION", err)
	}
}

func TestBootstrapFromAnySeed(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 2)
	fc.brokers[0].stop()
	c, err := New(context.Background(), SeedBrokers("127.0.0.1:1", fc.brokers[0].ln.Addr().String(), fc.brokers[1].ln.Addr().String()),
		DialTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.ProduceSync(context.Background(), &Record{Topic: "t", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), SeedBrokers("127.0.0.1:1"), DialTimeout(100*time.Millisecond), RequestRetries(0)); err == nil {
		t.Fatal("bootstrap from no reachable broker succeeded")
	}
}

// A seed that answers BROKER_NOT_AVAILABLE (a broker still starting) does
// not fail the bootstrap while another seed can answer.
func TestBootstrapPastUnavailableSeed(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key == protocol.Metadata && b == fc.brokers[1] { // the seed tried first
			return action{resp: &protocol.MetadataResponse{ErrorCode: protocol.ErrBrokerNotAvailable}}
		}
		return action{}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs := fc.addrs()
	for range 4 { // the seed order rotates: each start may hit the bad one first
		c, err := New(ctx, SeedBrokers(addrs...), RetryBackoff(time.Millisecond, 5*time.Millisecond))
		if err != nil {
			t.Fatalf("bootstrap with one unavailable seed: %v", err)
		}
		c.Close()
	}
}

// Every response type's top-level error code is seen by roundTrip, so a
// retriable one (BROKER_NOT_AVAILABLE from a starting broker) is retried.
// DescribeCluster's was missed once.
func TestTopCodeEveryResponse(t *testing.T) {
	for _, api := range protocol.SupportedAPIs() {
		resp := protocol.NewResponse(api.Key)
		if api.Key == protocol.APIVersions {
			continue // its error answer is a full response; decoded elsewhere
		}
		if err := protocol.Decode(resp, []byte{0, byte(protocol.ErrBrokerNotAvailable)}, api.Min); err != nil {
			t.Fatalf("%v: decode the uniform error body: %v", api.Key, err)
		}
		if got := topCode(resp); got != protocol.ErrBrokerNotAvailable {
			t.Errorf("%v: topCode = %v, want BROKER_NOT_AVAILABLE", api.Key, got)
		}
	}
}

// A retired conn (its broker left the metadata or moved) still answers
// what was sent on it, then closes; an idle one closes at once.
func TestRetiredConnAnswersWhatWasSentThenCloses(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("held", 1)
	c := newTestClient(t, fc)
	cn, err := c.brokerConn(context.Background(), 1, connNormal)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if r, ok := req.(*protocol.MetadataRequest); ok && len(r.Topics) == 1 && r.Topics[0] == "held" {
			return action{wait: release}
		}
		return action{}
	})
	done := make(chan error, 1)
	go func() {
		resp := new(protocol.MetadataResponse)
		done <- cn.do(context.Background(), &protocol.MetadataRequest{Topics: []string{"held"}}, resp, 5*time.Second, false)
	}()
	poll.Until(t, 10*time.Second, "the request sent and held", func() bool { return len(cn.inflight) == 1 })
	cn.retire()
	if !cn.alive() {
		t.Fatal("retire closed a conn with a request outstanding")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("request outstanding at retirement: %v, want its answer", err)
	}
	poll.Until(t, 10*time.Second, "the retired conn closed once idle", func() bool { return !cn.alive() })
	if !errors.Is(cn.err, errRetired) {
		t.Fatalf("conn ended with %v, want errRetired", cn.err)
	}

	idle, err := dialConn(context.Background(), &c.cfg, fc.addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	idle.retire()
	if idle.alive() {
		t.Fatal("an idle retired conn stayed open")
	}
	idle.close()
}

// A connection lost during the version negotiation fails the request the
// caller dialled for as not sent: a produce there is retried, not left
// "maybe written".
func TestNegotiationFailureIsNotSent(t *testing.T) {
	fc := newFakeCluster(t, 1)
	c := newTestClient(t, fc)
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		return action{close: key == protocol.APIVersions}
	})
	_, err := dialConn(context.Background(), &c.cfg, fc.addrs()[0])
	if err == nil {
		t.Fatal("dial succeeded though the broker closed the connection on ApiVersions")
	}
	if cl := classify(err, false); cl.indeterminate || !cl.retry {
		t.Fatalf("%v classified %+v, want definite and retriable", err, cl)
	}
}
