package httpapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/httpapi"
	"github.com/sluicemq/sluice/internal/testcerts"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// secureHTTP is a broker that requires logins and enforces ACLs, with
// users alice, bob and admin (super user; each's password is its name
// and "-pw"), and its HTTP endpoint over TLS as cmd/sluice wires it:
// HTTPS with the broker's certificate, client certificates requested, the
// console reading as the operator.
type secureHTTP struct {
	b        *broker.Broker
	op       *client.Client
	base     string
	pool     *x509.CertPool
	plain    *http.Client // no client certificate
	withCert *http.Client
	logs     *observer.ObservedLogs // the endpoint's, warn and up
}

func startSecureHTTP(t *testing.T, limits httpapi.FailedLoginLimits) *secureHTTP {
	t.Helper()
	var metrics *httpapi.Metrics
	c := testcluster.Start(t, 1, testcluster.Options{TLS: true, TLSClientAuth: auth.ClientAuthRequested, Configure: func(cfg *broker.Config) {
		cfg.Security.SASLMechanisms = []auth.Mechanism{auth.ScramSHA512}
		cfg.Security.RequireAuth, cfg.Security.Authorizer = true, true
		cfg.Security.SuperUsers = []string{"User:admin"}
		metrics = httpapi.NewMetrics(httpapi.LevelInfo)
		cfg.Observer = metrics
	}})
	h := &secureHTTP{b: c.Broker(1), op: c.Client(client.OperatorLogin(c.Secret()))}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, u := range []string{"alice", "bob", "admin"} {
		if err := h.op.UpsertUser(ctx, u, u+"-pw", auth.ScramSHA512, 0); err != nil {
			t.Fatal(err)
		}
	}
	files := c.ClientTLS()
	dir := t.TempDir()
	bf := c.CA().Issue(t, dir, "broker", testcerts.Valid)
	r, err := auth.NewReloader(auth.TLSFiles{CertFile: bf.CertFile, KeyFile: bf.KeyFile, CAFile: bf.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := auth.NewTransport(r, auth.ClientAuthRequested)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := auth.NewReloader(auth.TLSFiles{CertFile: files.CertFile, KeyFile: files.KeyFile, CAFile: files.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	h.logs = logs
	srv, err := httpapi.Start(context.Background(), httpapi.Config{Addr: "127.0.0.1:0", Broker: h.b, Metrics: metrics, Console: h.b, Logger: zap.New(core),
		TLS: tr, Sessions: h.b, Auth: httpapi.AuthRequired, FailedLogins: limits,
		ClientOpts: []client.Opt{client.TLS(cr.ClientConfig("")), client.SASL(h.b.OperatorLogin())}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h.base = "https://" + srv.Addr()

	pem, err := os.ReadFile(files.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	h.pool = x509.NewCertPool()
	h.pool.AppendCertsFromPEM(pem)
	h.plain = h.httpClient(t, nil)
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	h.withCert = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.pool, Certificates: []tls.Certificate{cert}}}}
	t.Cleanup(h.withCert.CloseIdleConnections) // no client connection outlives the test (goleak)
	return h
}

// httpClient is an HTTPS client without a certificate, dialing from
// local (nil: any address).
func (h *secureHTTP) httpClient(t *testing.T, local net.Addr) *http.Client {
	d := &net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.pool}, DialContext: d.DialContext}}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

type answer struct {
	status int
	body   string
	header http.Header
}

// do sends a request with hc, with Basic credentials unless user is "".
func (h *secureHTTP) do(t *testing.T, hc *http.Client, method, path, user, password string, body any) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(raw), resp.Header}
}

// The HTTP endpoint of a broker that requires logins and enforces ACLs,
// over TLS: every request but the probes authenticates (HTTP Basic
// against the SCRAM credentials, or a client certificate) and is checked
// with the broker core's Session, as on the client listeners.
func TestHTTPAuthAndACLs(t *testing.T) {
	// Its failed logins all come from 127.0.0.1: no throttling here
	// (TestHTTPFailedLoginLimits).
	h := startSecureHTTP(t, httpapi.FailedLoginLimits{ByAddress: auth.LoginLimits{Free: 100}})
	b, op, plain, withCert := h.b, h.op, h.plain, h.withCert
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"visible", "hidden"} {
		createTopic(t, op, client.TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 1})
	}
	allow := func(rt auth.ResourceType, name string, op auth.Operation) auth.ACL {
		return auth.ACL{Principal: "User:alice", Host: "*", Resource: rt, Name: name, Pattern: auth.PatternLiteral, Op: op, Permission: auth.Allow}
	}
	if err := op.CreateACLs(ctx, allow(auth.ResourceCluster, auth.ClusterName, auth.OpDescribe),
		allow(auth.ResourceTopic, "visible", auth.OpDescribe), allow(auth.ResourceTopic, "visible", auth.OpDescribeConfigs)); err != nil {
		t.Fatal(err)
	}
	do := func(hc *http.Client, method, path, user, password string, body any) answer {
		t.Helper()
		return h.do(t, hc, method, path, user, password, body)
	}

	// Probes stay open.
	for _, p := range []string{"/healthz", "/readyz"} {
		if a := do(plain, "GET", p, "", "", nil); a.status != http.StatusOK {
			t.Errorf("%s without credentials: %d %s", p, a.status, a.body)
		}
	}
	// No credentials, a wrong password, an unknown user: the same 401.
	var first answer
	for i, cred := range [][2]string{{"", ""}, {"alice", "wrong"}, {"nobody", "alice-pw"}} {
		for _, p := range []string{"/api/topics", "/metrics", "/"} {
			a := do(plain, "GET", p, cred[0], cred[1], nil)
			if a.status != http.StatusUnauthorized || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic ") {
				t.Fatalf("%s as %q/%q: %d %q, want 401 with a Basic challenge", p, cred[0], cred[1], a.status, a.header.Get("WWW-Authenticate"))
			}
			if i == 0 && p == "/api/topics" {
				first = a
			} else if p == "/api/topics" && a.body != first.body {
				t.Errorf("401 bodies differ: %q and %q (they must not tell an unknown user from a wrong password)", first.body, a.body)
			}
		}
	}

	// alice: describe on the cluster, describe and describe-configs (the
	// topic page shows its configs) on visible only.
	if a := do(plain, "GET", "/api/topics", "alice", "alice-pw", nil); a.status != http.StatusOK ||
		!strings.Contains(a.body, `"visible"`) || strings.Contains(a.body, `"hidden"`) {
		t.Fatalf("alice's topics: %d %s", a.status, a.body)
	}
	for _, p := range []string{"/api/cluster", "/api/topics/visible", "/metrics", "/"} {
		if a := do(plain, "GET", p, "alice", "alice-pw", nil); a.status != http.StatusOK {
			t.Errorf("alice GET %s: %d %s", p, a.status, a.body)
		}
	}
	if a := do(plain, "GET", "/api/topics/hidden", "alice", "alice-pw", nil); a.status != http.StatusForbidden {
		t.Errorf("alice GET hidden: %d %s, want 403", a.status, a.body)
	}
	if a := do(plain, "GET", "/api/topics/hidden/records", "alice", "alice-pw", nil); a.status != http.StatusForbidden {
		t.Errorf("alice browses hidden: %d %s, want 403", a.status, a.body)
	}
	// A write without create: refused, nothing created.
	if a := do(plain, "POST", "/api/topics", "alice", "alice-pw", map[string]any{"name": "alices", "partitions": 1, "replication_factor": 1}); a.status != http.StatusForbidden ||
		!strings.Contains(a.body, "TOPIC_AUTHORIZATION_FAILED") {
		t.Errorf("alice creates a topic: %d %s, want 403", a.status, a.body)
	}
	if a := do(plain, "DELETE", "/api/topics/visible", "alice", "alice-pw", nil); a.status != http.StatusForbidden {
		t.Errorf("alice deletes visible: %d %s, want 403", a.status, a.body)
	}
	if _, ok := b.Metadata().Topics["alices"]; ok || b.Metadata().Topics["visible"] == nil {
		t.Fatalf("refused requests changed the topics: %v", b.Metadata().TopicNames())
	}
	// bob, authenticated without ACLs: no metrics, no cluster, no topics.
	for _, p := range []string{"/metrics", "/api/cluster", "/api/groups"} {
		if a := do(plain, "GET", p, "bob", "bob-pw", nil); a.status != http.StatusForbidden {
			t.Errorf("bob GET %s: %d %s, want 403", p, a.status, a.body)
		}
	}
	if a := do(plain, "GET", "/api/topics", "bob", "bob-pw", nil); a.status != http.StatusOK || strings.Contains(a.body, `"visible"`) {
		t.Errorf("bob's topics: %d %s", a.status, a.body)
	}
	// An endpoint without a rule needs alter on the cluster.
	if a := do(plain, "GET", "/api/nothing-here", "alice", "alice-pw", nil); a.status != http.StatusForbidden {
		t.Errorf("alice GET an endpoint without a rule: %d %s, want 403", a.status, a.body)
	}
	// admin, a super user, creates one.
	if a := do(plain, "POST", "/api/topics", "admin", "admin-pw", map[string]any{"name": "admins", "partitions": 1, "replication_factor": 1}); a.status != http.StatusCreated {
		t.Errorf("admin creates a topic: %d %s", a.status, a.body)
	}
	// A verified client certificate authenticates without a password, as
	// its principal (User:CN=client, no ACLs): in, but shown nothing.
	if a := do(withCert, "GET", "/api/topics", "", "", nil); a.status != http.StatusOK || strings.Contains(a.body, `"visible"`) {
		t.Errorf("client certificate's topics: %d %s", a.status, a.body)
	}
	if a := do(withCert, "GET", "/metrics", "", "", nil); a.status != http.StatusForbidden {
		t.Errorf("client certificate's metrics: %d %s, want 403", a.status, a.body)
	}
}
