package broker

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// A broker that stops answers every request a client sent before the
// connection ends: those it reads once it began to drain its connections
// are refused with BROKER_NOT_AVAILABLE (definite: not served; those read
// before, while leadership moved away, get NOT_LEADER_OR_FOLLOWER), and the
// connection then ends with an orderly close, not a reset. Here the client
// pipelines fetches of about 1 MiB each and produces, and reads nothing
// until the broker has begun to close: the broker's writes stall on the
// full socket, so it still has requests unread when Close begins. Before
// the drain, Close stopped reading at once: the produces left unread got
// no answer (an unknown outcome for a producer, R14), and the unread bytes
// turned the close into a reset.
func TestCloseAnswersEveryRequestSent(t *testing.T) {
	b := startBroker(t, "", func(cfg *Config) { cfg.MaxInflightPerConn = 1 })
	c := dial(t, b.Addr())
	c.createTopic("drain", 1)
	for i := range 5 {
		c.produce("drain", 0, 1, makeBatch(t, record.None, fmt.Sprintf("fill%d", i), 10000, 0))
	}
	small := makeBatch(t, record.None, "d", 1, 0)

	const fetches, produces = 32, 32
	fetchCorr := map[int32]bool{}
	var buf []byte
	for i := range fetches + produces {
		c.corr++
		h := protocol.RequestHeader{Key: protocol.Fetch, CorrelationID: c.corr, ClientID: "test"}
		var req protocol.Message = fetchRequest("drain", 0, 0, 0, 1)
		if i < fetches {
			fetchCorr[c.corr] = true
		} else {
			h.Key, req = protocol.Produce, produceRequest("drain", 0, 1, small)
		}
		buf, _ = protocol.AppendRequest(buf, &h, req)
	}
	c.write(buf)

	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	// Read once the broker drains its connections or, without a drain,
	// has stopped them.
	poll.Until(t, 10*time.Second, "the broker to stop its connections", func() bool {
		return b.refusing.Load() || b.connCtx.Err() != nil
	})
	answered, refused := 0, 0
	var readErr error
	for {
		c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		frame, err := c.fr.Next()
		if err != nil {
			readErr = err
			break
		}
		corr, body, err := protocol.ParseResponse(frame)
		if err != nil {
			t.Fatal(err)
		}
		answered++
		if fetchCorr[corr] {
			continue
		}
		var resp protocol.ProduceResponse
		if err := protocol.Decode(&resp, body, 0); err != nil {
			t.Fatalf("produce response %d: %v", corr, err)
		}
		code := resp.ErrorCode
		if code == protocol.NoError && len(resp.Topics) == 1 && len(resp.Topics[0].Partitions) == 1 {
			code = resp.Topics[0].Partitions[0].ErrorCode
		}
		switch {
		case code == protocol.ErrBrokerNotAvailable:
			refused++
		case code.Indeterminate():
			t.Errorf("produce %d: %+v, an unknown outcome", corr, resp)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	sent := fetches + produces
	t.Logf("%d requests sent, %d answered (%d produces refused by the drain); the reads ended with %v", sent, answered, refused, readErr)
	if answered != sent {
		t.Errorf("%d requests sent, %d answered: %d cut by the close", sent, answered, sent-answered)
	}
	if !errors.Is(readErr, io.EOF) {
		t.Errorf("the connection ended with %v, want an orderly close (EOF)", readErr)
	}
}

// A frame that has begun to arrive when the broker drains its connections
// is read whole and answered, however slowly its bytes come: the drain
// cuts only the wait for a new request to connQuiet. Before, the frame's
// read got connQuiet too, and a produce half sent when the drain began
// was cut with its connection: an unknown outcome for the client (R14).
func TestDrainReadsABegunFrameWhole(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("whole", 1)
	c.corr++
	h := protocol.RequestHeader{Key: protocol.Produce, CorrelationID: c.corr, ClientID: "test"}
	frame, err := protocol.AppendRequest(nil, &h, produceRequest("whole", 0, 1, makeBatch(t, record.None, "w", 100, 0)))
	if err != nil {
		t.Fatal(err)
	}
	c.write(frame[:len(frame)/2])
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	poll.Until(t, 10*time.Second, "the broker to drain its connections", b.refusing.Load)
	// The rest comes well after the drain's quiet wait.
	time.Sleep(3 * connQuiet)
	c.write(frame[len(frame)/2:])
	var resp protocol.ProduceResponse
	if err := c.tryRecv(c.corr, &resp); err != nil {
		t.Fatalf("the produce half sent when the drain began: %v", err)
	}
	if resp.ErrorCode != protocol.ErrBrokerNotAvailable {
		t.Errorf("answered %+v, want refused whole with BROKER_NOT_AVAILABLE", resp)
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.fr.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the answer: %v, want an orderly close (EOF)", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// A broker not started yet refuses a request whole (BROKER_NOT_AVAILABLE)
// and then handles nothing more of the connection, which it closes: a
// client takes that refusal as the proof that the requests it sent after
// it were not handled, and sends them again, even a plain producer's
// (client conn.refusedWhole). Here a produce pipelined behind the refused
// request gets no answer and the connection ends; before, it was read and
// answered, and a broker ready by then would have appended it.
func TestNotReadyRefusalEndsTheConnection(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("notready", 1)
	b.ready.Store(false)
	defer b.ready.Store(true)
	// Both requests in one write, so that the produce has arrived when
	// the broker closes: a close with unread bytes would reset the
	// connection, and the reset can drop the refusal before the client
	// reads it.
	var frames []byte
	var meta int32
	for i, req := range []protocol.Message{&protocol.MetadataRequest{}, produceRequest("notready", 0, 1, makeBatch(t, record.None, "n", 1, 0))} {
		c.corr++
		if i == 0 {
			meta = c.corr
		}
		h := protocol.RequestHeader{Key: req.Key(), CorrelationID: c.corr, ClientID: "test"}
		var err error
		if frames, err = protocol.AppendRequest(frames, &h, req); err != nil {
			t.Fatal(err)
		}
	}
	c.write(frames)
	corr, body := c.recvRaw()
	if want := []byte{0, byte(protocol.ErrBrokerNotAvailable)}; corr != meta || string(body) != string(want) {
		t.Fatalf("response %d %x, want %d %x: the metadata request refused whole", corr, body, meta, want)
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if frame, err := c.fr.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the refusal: %d bytes, %v; want the connection closed (EOF) with the produce not answered", len(frame), err)
	}
}

// A request sent after the refusal, while the broker closes, is read and
// dropped: the client sees the connection end (EOF), not a reset.
func TestRefusalClosesGracefully(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	c.createTopic("late", 1)
	b.ready.Store(false)
	defer b.ready.Store(true)
	meta := c.send(&protocol.MetadataRequest{})
	if corr, body := c.recvRaw(); corr != meta || len(body) != 2 || body[1] != byte(protocol.ErrBrokerNotAvailable) {
		t.Fatalf("response %d %x, want the metadata request %d refused whole", corr, body, meta)
	}
	c.send(produceRequest("late", 0, 1, makeBatch(t, record.None, "l", 1, 0)))
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if frame, err := c.fr.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the refusal: %d bytes, %v; want an orderly close (EOF)", len(frame), err)
	}
}

// TestDrainEndsParkedFetches: the drain answers the long-poll fetches
// parked on the connections (a follower's replica fetches, a consumer's)
// as it begins, with what is there, so that it does not wait them out to
// its bound (drainMax): a broker's shutdown is not longer than it needs
// by up to that bound. The controlled shutdown before the drain usually
// ends them already, by moving the leaderships away (a woken long-poll
// finds the partition not led here); not when it failed or the
// controller has not applied the move yet, as on a loaded machine. Here
// the drain runs on its own, the partition still led. Without the change
// the drain reached its bound first and the fetch stayed parked.
func TestDrainEndsParkedFetches(t *testing.T) {
	b, c, logs := drainingBroker(t, "parked", 1)
	c.produce("parked", 0, 1, makeBatch(t, record.None, "a", 1, 0))
	corr := c.send(fetchRequest("parked", 0, 1, 60_000, 1)) // at the end: parked
	poll.Until(t, 10*time.Second, "the fetch parked", func() bool {
		p := b.parts.get("parked", 0)
		p.wmu.Lock()
		defer p.wmu.Unlock()
		return len(p.waiters) == 1
	})

	var resp protocol.FetchResponse
	_, drained := answeredInDrain(t, b, "the parked fetch", func() error { return c.tryRecv(corr, &resp) })
	if got := onlyFetchPartition(t, &resp); got.ErrorCode != protocol.NoError || len(got.Records) != 0 || got.HighWatermark != 1 {
		t.Fatalf("the parked fetch's answer: %+v", got)
	}
	c.nc.Close()
	<-drained
	drainedBeforeBound(t, logs)
}

// drainingBroker starts a broker with its Info logs observed, and a
// client connected to it that created topic with partitions.
func drainingBroker(t *testing.T, topic string, partitions int32) (*Broker, *testClient, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	b := startBroker(t, "", func(cfg *Config) { cfg.Logger = zap.New(core) })
	c := dial(t, b.Addr())
	c.createTopic(topic, partitions)
	poll.Until(t, 10*time.Second, "the broker ready", b.Ready)
	return b, c, logs
}

// answeredInDrain begins the drain of b's connections and waits for recv,
// the read of a parked long-poll's answer: what, that the drain answers
// as it begins. It fails the test when recv fails or the drain reaches
// its bound first, and returns how long the answer took and a channel
// closed once the drain is over.
func answeredInDrain(t *testing.T, b *Broker, what string, recv func() error) (time.Duration, <-chan struct{}) {
	t.Helper()
	start := time.Now()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		b.drainConns()
	}()
	answered := make(chan error, 1)
	go func() { answered <- recv() }()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-drained:
		t.Fatalf("the drain reached its bound (drainMax %v) with %s still waiting", drainMax, what)
	}
	return time.Since(start), drained
}

// drainedBeforeBound fails the test if the drain of logs' broker reached
// its bound (drainMax) with connections still busy.
func drainedBeforeBound(t testing.TB, logs *observer.ObservedLogs) {
	t.Helper()
	if busy := logs.FilterMessage("connections still busy after the drain; closing them"); busy.Len() > 0 {
		t.Fatalf("the drain waited to its bound for %v connections", busy.All()[0].ContextMap()["connections"])
	}
}

// TestDrainEndsParkedQueueReceive is TestDrainEndsParkedFetches for a
// queue group's long-poll: a member's receive waiting for records (its
// max wait 30 s) is answered, empty, as the drain begins, and the member
// then goes to the coordinator's new home. A receive waits for records
// whoever leads the partitions, so the controlled shutdown does not end
// it as it ends a fetch. Before the change the wait ended only with its
// max wait, past the drain's bound: the drain gave up on the connection
// and Close waited for the receive.
func TestDrainEndsParkedQueueReceive(t *testing.T) {
	// Two partitions: each receive turns queueTurn once it passed the
	// drain's refusal (queue.go), which tells when it has begun.
	b, c, logs := drainingBroker(t, "jobs", 2)
	receive := func(waitMs int32) *protocol.QueueReceiveRequest {
		return &protocol.QueueReceiveRequest{GroupID: "workers", MemberID: "m1", Topics: []string{"jobs"}, MaxRecords: 1, MaxWaitMs: waitMs}
	}
	poll.Until(t, 20*time.Second, "the queue group's coordinator loaded", func() error {
		var co protocol.FindCoordinatorResponse
		c.call(&protocol.FindCoordinatorRequest{CoordinatorKey: "workers"}, &co) // creates the offsets topic
		var resp protocol.QueueReceiveResponse
		c.call(receive(0), &resp)
		if resp.ErrorCode != protocol.NoError {
			return fmt.Errorf("receive: %v %s", resp.ErrorCode, resp.ErrorMessage)
		}
		return nil
	})
	turns := b.queueTurn.Load()
	corr := c.send(receive(30_000)) // nothing to receive: parked
	poll.Until(t, 10*time.Second, "the receive begun", func() bool { return b.queueTurn.Load() > turns })

	var resp protocol.QueueReceiveResponse
	took, drained := answeredInDrain(t, b, "the parked receive", func() error { return c.tryRecv(corr, &resp) })
	if resp.ErrorCode != protocol.NoError || len(resp.Partitions) != 0 {
		t.Fatalf("the parked receive's answer: %+v", resp)
	}
	if took > time.Second {
		t.Fatalf("the parked receive answered %v after the drain began", took)
	}
	c.nc.Close()
	<-drained
	drainedBeforeBound(t, logs)
	t.Logf("parked receive answered %v after the drain began", took)
}
