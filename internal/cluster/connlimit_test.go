package cluster

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// holdAllSlots opens client connections to addr, each sending ApiVersions,
// until the broker refuses one (THROTTLING_QUOTA_EXCEEDED, or closes it
// unanswered when it keeps no reserve): then every slot a client may take
// is held, until the test ends.
func holdAllSlots(t *testing.T, addr string) []net.Conn {
	t.Helper()
	var held []net.Conn
	for range 200 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		code, err := apiVersions(nc)
		if err != nil || code == protocol.ErrThrottlingQuotaExceeded {
			nc.Close()
			return held
		}
		if code != protocol.NoError {
			t.Fatalf("connection %d: api versions: %v", len(held)+1, code)
		}
		held = append(held, nc)
	}
	t.Fatal("the broker took 200 connections: no limit")
	return nil
}

// apiVersions asks ApiVersions on nc and returns the answer's error code.
func apiVersions(nc net.Conn) (protocol.ErrorCode, error) {
	h := protocol.RequestHeader{Key: protocol.APIVersions, CorrelationID: 1, ClientID: "hold"}
	frame, err := protocol.AppendRequest(nil, &h, &protocol.APIVersionsRequest{})
	if err != nil {
		return 0, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(frame); err != nil {
		return 0, err
	}
	resp, err := protocol.NewFrameReader(nc, 0).Next()
	if err != nil {
		return 0, err
	}
	_, body, err := protocol.ParseResponse(resp)
	if err != nil {
		return 0, err
	}
	var av protocol.APIVersionsResponse
	if err := protocol.Decode(&av, body, 0); err != nil {
		return 0, err
	}
	nc.SetDeadline(time.Time{})
	return av.ErrorCode, nil
}

// A client whose host holds MaxConnectionsPerIP connections to the
// partition's leader is refused; after retrying for its DialTimeout the
// produce fails, definitely (not written), with ErrConnectionLimit
// instead of waiting out the delivery timeout; once slots are free again
// produces succeed.
func TestClientReportsConnectionLimit(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.MaxConnectionsPerIP = 8
	}})
	const dialTimeout = time.Second
	cl := c.Client(client.DialTimeout(dialTimeout))
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "limits", Partitions: 1, ReplicationFactor: 1})
	held := holdAllSlots(t, c.Broker(1).Addr())
	if len(held) == 0 {
		t.Fatal("no connection accepted")
	}

	ctx := testContext(t)
	start := time.Now()
	err := cl.ProduceSync(ctx, &client.Record{Topic: "limits", Value: []byte("refused")})
	took := time.Since(start)
	if !errors.Is(err, client.ErrConnectionLimit) || client.IsIndeterminate(err) {
		t.Fatalf("produce with every slot held: %v (indeterminate %v), want a definite ErrConnectionLimit",
			err, client.IsIndeterminate(err))
	}
	if !strings.Contains(err.Error(), "connection refused: broker at its connection limit") {
		t.Errorf("error %q does not say why", err)
	}
	if took < dialTimeout || took > 10*dialTimeout {
		t.Errorf("failed after %v, want after the dial timeout (%v) and well before the delivery timeout", took, dialTimeout)
	}

	for _, nc := range held {
		nc.Close()
	}
	poll.Until(t, 10*time.Second, "a connection accepted again", func() error {
		nc, err := net.Dial("tcp", c.Broker(1).Addr())
		if err != nil {
			return err
		}
		defer nc.Close()
		code, err := apiVersions(nc)
		if err == nil && code != protocol.NoError {
			err = code
		}
		return err
	})
	if err := cl.ProduceSync(ctx, &client.Record{Topic: "limits", Value: []byte("accepted")}); err != nil {
		t.Fatalf("produce once slots are free: %v", err)
	}
}

// A follower that restarts while clients hold every connection slot of
// its leader still connects (its replica fetch takes a reserved slot),
// catches up and rejoins the ISR.
func TestFollowerReconnectsPastConnectionLimit(t *testing.T) {
	c := testcluster.Start(t, 2, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.MaxConnections = 20
	}})
	cl := c.Client()
	const topic = "reserved"
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 2})
	testcluster.WaitFullISR(t, cl, topic, 10*time.Second)
	leader := testcluster.WaitLeader(t, cl, topic, 0, -1, 5*time.Second)
	follower := 3 - leader
	produceEach(t, c.Client(client.RecordPartitioner(client.ManualPartitioner())), topic, 0, "before", 3, 0)

	c.Stop(follower)
	testcluster.WaitPartition(t, cl, topic, 0, 10*time.Second, "the follower out of the ISR", testcluster.ISRIs(leader))
	// The stopped follower's connections may still hold slots for a
	// moment: take any slot freed until none has been for half a second.
	grew := time.Now()
	poll.Until(t, 10*time.Second, "every slot of the leader held", func() bool {
		if len(holdAllSlots(t, c.Broker(leader).Addr())) > 0 {
			grew = time.Now()
		}
		return time.Since(grew) > 500*time.Millisecond
	})
	c.Restart(follower)
	testcluster.WaitPartition(t, cl, topic, 0, 15*time.Second, "the follower back in the ISR", testcluster.ISRIs(leader, follower))
}

// bench produce against a partition whose leader refuses every new
// connection: the run ends soon after the client's dial timeout with
// every record an error naming the limit, not with 0 errors.
func TestBenchProduceReportsConnectionLimit(t *testing.T) {
	c := testcluster.Start(t, 2, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.MaxConnectionsPerIP = 8
	}})
	cl := c.Client()
	const topic = "flood"
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 1})
	leader := testcluster.WaitLeader(t, cl, topic, 0, -1, 5*time.Second)
	if len(holdAllSlots(t, c.Broker(leader).Addr())) == 0 {
		t.Fatal("no connection accepted")
	}

	const records = 50
	start := time.Now()
	rep, err := bench.Produce(testContext(t), bench.Config{
		Client: []client.Opt{client.SeedBrokers(c.Broker(3 - leader).Addr()), client.DialTimeout(time.Second),
			client.RetryBackoff(10*time.Millisecond, 200*time.Millisecond)},
		Topic: topic, Records: records, Producers: 1, RecordSize: 16,
	})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("bench produce: %v", err)
	}
	if rep.Errors != records || rep.Records != 0 || !strings.Contains(rep.FirstError, "connection refused: broker at its connection limit") {
		t.Fatalf("report %+v: want %d errors naming the connection limit", rep, records)
	}
	if took > 20*time.Second {
		t.Errorf("run took %v, want about the dial timeout", took)
	}
}
