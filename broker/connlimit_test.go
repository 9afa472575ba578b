package broker

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

// openConns is how many connections b holds.
func openConns(b *Broker) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// Connections that never send a request, or never finish their first
// one, are closed after FirstRequestTimeout and free their slots for new
// clients; one that sent its first request stays.
func TestFirstRequestTimeout(t *testing.T) {
	b := startBroker(t, "", func(c *Config) {
		c.MaxConnections = 3
		c.ReservedBrokerConnections = -1
		c.FirstRequestTimeout = 500 * time.Millisecond
	})
	var av protocol.APIVersionsResponse
	active := dial(t, b.Addr())
	active.call(&protocol.APIVersionsRequest{}, &av)
	silent := rawConn(t, b.Addr())
	partial := rawConn(t, b.Addr())
	if _, err := partial.Write([]byte{0, 0}); err != nil { // half a length prefix
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "3 connections open", func() bool { return openConns(b) == 3 })
	closedByBroker(t, silent)
	closedByBroker(t, partial)
	poll.Until(t, 5*time.Second, "the slots freed", func() bool { return openConns(b) == 1 })
	for range 2 {
		dial(t, b.Addr()).call(&protocol.APIVersionsRequest{}, &av)
	}
	active.call(&protocol.APIVersionsRequest{}, &av)
	if av.ErrorCode != protocol.NoError {
		t.Fatalf("active connection: %v", av.ErrorCode)
	}
}

// Past MaxConnections or MaxConnectionsPerIP a client's first request is
// answered THROTTLING_QUOTA_EXCEEDED and its connection closed, while a
// broker's (a replica fetch with a registered broker id) is served in the
// reserved slots; a warning counts the refusals.
func TestConnectionLimitsKeepRoomForBrokers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config func(*Config)
		field  string // the refusal count of the warning
	}{
		{"max connections", func(c *Config) { c.MaxConnections = 2 }, "max_connections"},
		{"per ip", func(c *Config) { c.MaxConnectionsPerIP = 2 }, "max_connections_per_ip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			b := startBroker(t, "", func(c *Config) {
				c.ReservedBrokerConnections = 2
				c.Logger = zap.New(core)
				tc.config(c)
			})
			var av protocol.APIVersionsResponse
			for range 2 {
				dial(t, b.Addr()).call(&protocol.APIVersionsRequest{}, &av)
			}
			// A client: refused, with a reason, then closed.
			refused := dial(t, b.Addr())
			refused.call(&protocol.APIVersionsRequest{}, &av)
			if av.ErrorCode != protocol.ErrThrottlingQuotaExceeded {
				t.Fatalf("client past the limit: %v, want THROTTLING_QUOTA_EXCEEDED", av.ErrorCode)
			}
			closedByBroker(t, refused.nc)
			// A fetch claiming a broker id that is not registered: refused.
			var fr protocol.FetchResponse
			stranger := dial(t, b.Addr())
			req := fetchRequest("none", 0, 0, 0, 0)
			req.ReplicaID = 7
			stranger.call(req, &fr)
			if fr.ErrorCode != protocol.ErrThrottlingQuotaExceeded {
				t.Fatalf("fetch of unregistered replica 7: %v, want THROTTLING_QUOTA_EXCEEDED", fr.ErrorCode)
			}
			// A broker's replica fetch: served, and the connection stays.
			replica := dial(t, b.Addr())
			req.ReplicaID = b.cfg.BrokerID
			replica.call(req, &fr)
			if fr.ErrorCode == protocol.ErrThrottlingQuotaExceeded {
				t.Fatal("a broker's fetch was refused")
			}
			replica.call(&protocol.APIVersionsRequest{}, &av)
			if av.ErrorCode != protocol.NoError {
				t.Fatalf("broker connection after its fetch: %v", av.ErrorCode)
			}
			// The reserve full too (2 clients, 1 broker, 1 slot left): the
			// next one takes it, the one after is closed on accept.
			rawConn(t, b.Addr())
			poll.Until(t, 5*time.Second, "the reserve full", func() bool { return openConns(b) == 4 })
			closedByBroker(t, rawConn(t, b.Addr()))

			// The first refusal is logged at once, the others counted for
			// the next line (within 10 s: none yet).
			got := logs.FilterMessage("connections refused").All()
			if len(got) != 1 {
				t.Fatalf("%d refusal warnings, want 1: %v", len(got), got)
			}
			if n := got[0].ContextMap()[tc.field]; n != int64(1) {
				t.Errorf("warning %v: %s = %v, want 1", got[0].ContextMap(), tc.field, n)
			}
		})
	}
}

// The refusal warning: the first at once, then at most one per
// refusalLogEvery, counting by reason what happened since the last.
func TestRefusalsRateLimited(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	now := time.Unix(1000, 0)
	logger := zap.New(core)
	r := refusals{now: func() time.Time { return now }}
	r.add(logger, refusedMaxConnections, "a:1")
	for range 100 {
		now = now.Add(50 * time.Millisecond)
		r.add(logger, refusedMaxConnectionsPerIP, "b:1")
		r.add(logger, refusedFirstRequestTimeout, "c:1")
	}
	now = now.Add(5 * time.Second) // 10 s since the first line
	r.add(logger, refusedMaxConnections, "d:1")
	type line struct {
		max, perIP, first int64
		remote            string
	}
	var got []line
	for _, e := range logs.All() {
		m := e.ContextMap()
		got = append(got, line{m["max_connections"].(int64), m["max_connections_per_ip"].(int64),
			m["first_request_timeout"].(int64), m["last_remote"].(string)})
	}
	want := []line{{1, 0, 0, "a:1"}, {1, 100, 100, "d:1"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("warnings %+v, want %+v", got, want)
	}
}
