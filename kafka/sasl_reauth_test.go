package kafka

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/controller"
)

// reauthSingle is secureSingle with connections.max.reauth set.
func reauthSingle(t *testing.T, lifetime time.Duration) (*broker.Broker, string) {
	t.Helper()
	b, addr := single(t, func(c *broker.Config) {
		c.Security = broker.Security{SASLMechanisms: []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512}, RequireAuth: true,
			ReauthInterval: lifetime}
	})
	addUsers(t, b, "admin", "bob")
	return b, addr
}

// scramLogin runs SaslHandshake v1 and a SCRAM-SHA-256 exchange of
// SaslAuthenticate v1 on c, and returns the last answer (the first that
// failed, or the final one).
func (r *rawConn) scramLogin(corr *int32, user, password string) (handshake int16, last kmsg.SASLAuthenticateResponse) {
	r.t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = string(auth.ScramSHA256)
	var hsResp kmsg.SASLHandshakeResponse
	hsResp.SetVersion(1)
	*corr++
	if err := hsResp.ReadFrom(r.request(hs, *corr)); err != nil {
		r.t.Fatal(err)
	}
	if hsResp.ErrorCode != 0 {
		return hsResp.ErrorCode, last
	}
	ce, err := auth.NewClientExchange(auth.ScramSHA256, user, password)
	if err != nil {
		r.t.Fatal(err)
	}
	out, err := ce.Step(nil)
	for err == nil {
		sa := kmsg.NewPtrSASLAuthenticateRequest()
		sa.SetVersion(1)
		sa.SASLAuthBytes = out
		last = kmsg.SASLAuthenticateResponse{}
		last.SetVersion(1)
		*corr++
		if err := last.ReadFrom(r.request(sa, *corr)); err != nil {
			r.t.Fatal(err)
		}
		if last.ErrorCode != 0 {
			return 0, last
		}
		out, err = ce.Step(last.SASLAuthBytes)
		if ce.Done() {
			break
		}
	}
	if err != nil || !ce.Valid() {
		r.t.Fatalf("SCRAM exchange as %s: %v (server proof valid %v)", user, err, ce.Valid())
	}
	return 0, last
}

// metadata sends a Metadata request and reports whether it was answered.
func (r *rawConn) metadata(corr *int32) bool {
	r.t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(1)
	*corr++
	if _, err := r.nc.Write(frame(req.Key(), req.GetVersion(), *corr, false, req.AppendTo(nil))); err != nil {
		return false
	}
	_, err := r.read(*corr)
	return err == nil
}

// KIP-368 on the Kafka listener: a SCRAM login lasts the reauth interval,
// which SaslAuthenticate v1 tells the client; the client logs in again on
// the same connection (as the same user) and goes on; a connection that
// does not is closed at its first request after the lifetime; a
// re-authentication as another user fails and closes the connection; a
// second login without the interval set is refused as before.
func TestKafkaReauthentication(t *testing.T) {
	const lifetime = 3 * time.Second
	_, addr := reauthSingle(t, lifetime)

	c, d := dialRaw(t, addr), dialRaw(t, addr)
	var corr, dcorr int32
	start := time.Now()
	if hs, resp := c.scramLogin(&corr, "bob", "bob-pw"); hs != 0 || resp.ErrorCode != 0 {
		t.Fatalf("login: handshake %d, authenticate %d", hs, resp.ErrorCode)
	} else if ms := resp.SessionLifetimeMillis; ms <= 0 || ms > lifetime.Milliseconds() {
		t.Fatalf("SessionLifetimeMs %d, want in (0, %d]", ms, lifetime.Milliseconds())
	}
	if hs, resp := d.scramLogin(&dcorr, "bob", "bob-pw"); hs != 0 || resp.ErrorCode != 0 {
		t.Fatalf("login: %d %d", hs, resp.ErrorCode)
	}
	// d's session began before its answer came: it ends by dEnds. (Not
	// start+lifetime: under load the two logins can take longer than
	// the 200 ms margin, and d's session had not ended when d was tried.)
	dEnds := time.Now().Add(lifetime)
	if !c.metadata(&corr) || !d.metadata(&dcorr) {
		t.Fatal("metadata after the login not answered")
	}
	// c re-authenticates before the end; d does not.
	time.Sleep(time.Until(start.Add(2 * time.Second)))
	sent := time.Now()
	if hs, resp := c.scramLogin(&corr, "bob", "bob-pw"); hs != 0 || resp.ErrorCode != 0 || resp.SessionLifetimeMillis <= 0 {
		t.Fatalf("re-authentication: handshake %d, authenticate %d, lifetime %d", hs, resp.ErrorCode, resp.SessionLifetimeMillis)
	}
	time.Sleep(time.Until(dEnds.Add(200 * time.Millisecond))) // past the first logins' end
	if time.Since(sent) >= lifetime {
		t.Fatalf("the machine is too slow for this test: %v since the re-authentication", time.Since(sent))
	}
	if !c.metadata(&corr) {
		t.Fatal("metadata after a re-authentication, past the first login's lifetime, not answered")
	}
	if d.metadata(&dcorr) {
		t.Fatal("a request after the lifetime, without re-authentication, was answered")
	}

	// Re-authentication as another user: refused, connection closed.
	e := dialRaw(t, addr)
	var ecorr int32
	if hs, resp := e.scramLogin(&ecorr, "bob", "bob-pw"); hs != 0 || resp.ErrorCode != 0 {
		t.Fatalf("login: %d %d", hs, resp.ErrorCode)
	}
	if _, resp := e.scramLogin(&ecorr, "admin", "admin-pw"); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("re-authentication as another user: %d, want SASL_AUTHENTICATION_FAILED", resp.ErrorCode)
	}
	if !e.closed(5 * time.Second) {
		t.Fatal("connection open after a re-authentication as another user")
	}

	// Without the interval, a login has no lifetime and a second one is
	// ILLEGAL_SASL_STATE.
	_, plainAddr := secureSingle(t, false)
	f := dialRaw(t, plainAddr)
	var fcorr int32
	if hs, resp := f.scramLogin(&fcorr, "bob", "bob-pw"); hs != 0 || resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 0 {
		t.Fatalf("login without reauth: %d %d lifetime %d", hs, resp.ErrorCode, resp.SessionLifetimeMillis)
	}
	if hs, _ := f.scramLogin(&fcorr, "bob", "bob-pw"); hs != kerr.IllegalSaslState.Code {
		t.Fatalf("second login without reauth: handshake %d, want ILLEGAL_SASL_STATE", hs)
	}
}

// connectCounter counts a franz-go client's new connections.
// connectCounter counts the client's connections, and its SASL
// handshakes: one per connection's login, one per re-authentication.
type connectCounter struct{ n, handshakes atomic.Int64 }

func (c *connectCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil && key == int16(kmsg.SASLHandshake) {
		c.handshakes.Add(1)
	}
}

func (c *connectCounter) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		c.n.Add(1)
	}
}

// franz-go re-authenticates by itself when the broker gives a lifetime,
// so a client outlives several lifetimes on the same connections (none
// closed for expiry, none opened again); a deleted user's open client
// stops working within one lifetime.
func TestFranzReauthentication(t *testing.T) {
	const lifetime = 2 * time.Second
	b, addr := reauthSingle(t, lifetime)
	ctx := testContext(t)
	var conns connectCounter
	cl := scramClient(t, addr, "bob", "bob-pw", true, kgo.WithHooks(&conns))
	createTopic(t, ctx, kadm.NewClient(cl), "reauth", 1, 1, nil)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "reauth", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	opened, shook := conns.n.Load(), conns.handshakes.Load()
	deadline := time.Now().Add(2*lifetime + time.Second)
	n := 0
	for time.Now().Before(deadline) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "reauth", Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatalf("produce %d, %v into the client's life: %v", n, time.Until(deadline), err)
		}
		n++
		time.Sleep(100 * time.Millisecond) // a request every so often, across lifetimes
	}
	// kgo re-authenticates 2-5% of the lifetime (40-100 ms here) before
	// it ends: a request delayed past that by a loaded machine finds its
	// session expired, and the connection is closed and opened again. So
	// re-authentications on open connections must be the rule, not the
	// only way.
	newConns := conns.n.Load() - opened
	reauths := conns.handshakes.Load() - shook - newConns
	t.Logf("across %v of lifetimes of %v: %d re-authentications on open connections, %d connections opened again", 2*lifetime+time.Second, lifetime, reauths, newConns)
	if reauths < 1 || newConns > reauths {
		t.Fatalf("%d re-authentications on open connections and %d connections opened again, want re-authentication on the open ones", reauths, newConns)
	}
	// bob is deleted: his client's next re-authentication fails.
	for _, m := range []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512} {
		if errs := b.UpsertCredentials(ctx, nil, []controller.DeleteCredential{{User: "bob", Mechanism: m}}); len(errs) > 0 && errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	stop := time.Now().Add(lifetime + 5*time.Second)
	for {
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: "reauth", Value: []byte("y")}).FirstErr()
		if errors.Is(err, kerr.SaslAuthenticationFailed) {
			break
		}
		if time.Now().After(stop) {
			t.Fatalf("a deleted user's client still works %v after the deletion (last error %v)", lifetime+5*time.Second, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
