package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/testcerts"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// A cluster with TLS everywhere — client listeners, the brokers' fetches
// and forwarded writes, Raft, encrypted gossip — and mutual TLS required:
// the voters form their Raft group and register over TLS, followers
// replicate over TLS into a full ISR, and a produce with acks=all over
// min.insync.replicas=3 (which needs every follower) is consumed back.
func TestTLSEverywhere(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{TLS: true, TLSClientAuth: auth.ClientAuthRequired})
	cl := c.Client()
	ctx := testContext(t)
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "secret", Partitions: 3, ReplicationFactor: 3,
		Configs: map[string]string{"min.insync.replicas": "3"}})
	testcluster.WaitFullISR(t, cl, "secret", 15*time.Second)
	const n = 300
	var recs []*client.Record
	for i := range n {
		recs = append(recs, &client.Record{Topic: "secret", Key: []byte(strconv.Itoa(i)), Value: []byte("v" + strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, recs...); err != nil {
		t.Fatalf("produce acks=all over TLS: %v", err)
	}
	cons := c.Client()
	assign := map[client.TopicPartition]client.Offset{}
	for p := range int32(3) {
		assign[client.TopicPartition{Topic: "secret", Partition: p}] = client.AtStart()
	}
	cons.Assign(assign)
	seen := map[string]bool{}
	for len(seen) < n {
		fs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d records: %v", len(seen), err)
		}
		for _, fe := range fs.Errors {
			t.Fatalf("fetch: %v", fe)
		}
		for _, r := range fs.Records {
			seen[string(r.Value)] = true
		}
	}

	// What the brokers refuse, each within the dial timeout.
	dir := t.TempDir()
	other := testcerts.NewCA(t, "another CA")
	otherFiles := other.Issue(t, dir, "stranger", testcerts.Valid)
	expired := c.CA().Issue(t, dir, "expired", testcerts.Expired)
	good := c.ClientTLS()
	for _, tc := range []struct {
		name  string
		files auth.TLSFiles
		want  string // in the error
	}{
		// Go's client offers a certificate only if the server's list of
		// CAs names its issuer: the test sends it anyway, as another
		// client would, so the broker's verification refuses it.
		{"client certificate from another CA", auth.TLSFiles{CertFile: otherFiles.CertFile, KeyFile: otherFiles.KeyFile, CAFile: good.CAFile}, "unknown certificate authority"},
		{"expired client certificate", auth.TLSFiles{CertFile: expired.CertFile, KeyFile: expired.KeyFile, CAFile: good.CAFile}, "expired certificate"},
		{"no client certificate under mutual TLS", auth.TLSFiles{CAFile: good.CAFile}, "certificate required"},
		{"brokers' certificate from a CA the client does not trust", auth.TLSFiles{CertFile: good.CertFile, KeyFile: good.KeyFile, CAFile: otherFiles.CAFile}, "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := auth.NewReloader(tc.files)
			if err != nil {
				t.Fatal(err)
			}
			cfg := r.ClientConfig("")
			if cert := r.Certificate(); cert != nil {
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
			}
			err = refused(t, client.TLS(cfg), client.SeedBrokers(c.Addrs()[0]))
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	t.Run("plaintext client", func(t *testing.T) {
		err := refused(t, client.SeedBrokers(c.Addrs()[0]))
		if !strings.Contains(err.Error(), "is its listener TLS?") {
			t.Fatalf("error %q does not suggest TLS", err)
		}
	})
}

// refused asserts that a client with opts cannot reach the cluster: its
// first request fails within the dial timeout (3 s), with an error.
func refused(t *testing.T, opts ...client.Opt) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	cl, err := client.New(ctx, append(opts, client.DialTimeout(3*time.Second), client.RequestRetries(0))...)
	if err == nil {
		_, err = cl.ListTopics(ctx)
		cl.Close()
	}
	if err == nil {
		t.Fatal("the cluster answered")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("refused after %v: %v", d, err)
	}
	t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
	return err
}

// A TLS client to a plaintext broker gets auth.ErrHandshake saying the
// listener may be plaintext, within the dial timeout.
func TestTLSClientToPlaintextBroker(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	ca := testcerts.NewCA(t, "ca")
	f := ca.Issue(t, t.TempDir(), "client", testcerts.Valid)
	r, err := auth.NewReloader(auth.TLSFiles{CAFile: f.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	err = refused(t, client.TLS(r.ClientConfig("")), client.SeedBrokers(c.Addrs()[0]))
	if !errors.Is(err, auth.ErrHandshake) || !strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("err = %v, want auth.ErrHandshake naming a plaintext listener", err)
	}
}
