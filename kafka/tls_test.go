package kafka

import (
	"context"
	"crypto/tls"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcerts"
)

// singleTLS starts one broker whose Kafka listener speaks TLS (as
// cmd/sluice wraps it: auth.Listener, handshakes before serving) and
// returns the listener's address, the CA file and a client TLS config.
// configure, when not nil, changes the broker's config.
func singleTLS(t *testing.T, clientAuth auth.ClientAuth, configure func(*broker.Config)) (b *broker.Broker, addr, caFile string, client *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "kafka CA")
	bf := ca.Issue(t, dir, "broker", testcerts.Valid)
	cf := ca.Issue(t, dir, "client", testcerts.Valid)
	r, err := auth.NewReloader(auth.TLSFiles{CertFile: bf.CertFile, KeyFile: bf.KeyFile, CAFile: bf.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := auth.NewTransport(r, clientAuth)
	if err != nil {
		t.Fatal(err)
	}
	raw := poll.Listen(t, "127.0.0.1:0")
	cfg := broker.Config{ListenAddr: "127.0.0.1:0", DataDir: t.TempDir(), KafkaAdvertisedAddr: raw.Addr().String(),
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	if configure != nil {
		configure(&cfg)
	}
	b, err = broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	serveKafka(t, b, tr.Listen(raw, "kafka", zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))))
	cr, err := auth.NewReloader(auth.TLSFiles{CertFile: cf.CertFile, KeyFile: cf.KeyFile, CAFile: cf.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return b, raw.Addr().String(), bf.CAFile, cr.ClientConfig("127.0.0.1")
}

// franz-go with kgo.DialTLSConfig produces and consumes over a TLS Kafka
// listener requiring client certificates.
func TestFranzOverTLS(t *testing.T) {
	ctx := testContext(t)
	_, addr, _, ctls := singleTLS(t, auth.ClientAuthRequired, nil)
	cl := newClient(t, []string{addr}, kgo.DialTLSConfig(ctls))
	createTopic(t, ctx, kadm.NewClient(cl), "tls", 1, 1, nil)
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "tls", Value: []byte{byte('a' + i)}}).FirstErr(); err != nil {
			t.Fatalf("produce over TLS: %v", err)
		}
	}
	cons := newClient(t, []string{addr}, kgo.DialTLSConfig(ctls), kgo.ConsumeTopics("tls"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []byte
	for len(got) < 10 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch over TLS: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Value...) })
	}
	if string(got) != "abcdefghij" {
		t.Fatalf("consumed %q", got)
	}
}

// A plaintext Kafka client to a TLS listener, and a TLS one to a
// plaintext listener, each get an error well within the dial timeout,
// never a hang.
func TestFranzTLSMismatch(t *testing.T) {
	_, tlsAddr, _, ctls := singleTLS(t, auth.ClientAuthNone, nil)
	_, plainAddr := single(t, nil)
	for _, tc := range []struct {
		name string
		addr string
		opts []kgo.Opt
	}{
		{"plaintext client, TLS listener", tlsAddr, nil},
		{"TLS client, plaintext listener", plainAddr, []kgo.Opt{kgo.DialTLSConfig(ctls)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newClient(t, []string{tc.addr}, append(tc.opts, kgo.DialTimeout(5*time.Second), kgo.RequestRetries(0))...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := cl.Ping(ctx)
			if err == nil {
				t.Fatal("ping answered")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("failed after %v (dial timeout 5 s): %v", d, err)
			}
			t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// kcat (librdkafka) with security.protocol=SSL produces and consumes
// against a TLS Kafka listener.
func TestKcatSSL(t *testing.T) {
	_, addr, caFile, ctls := singleTLS(t, auth.ClientAuthNone, nil)
	createTopic(t, testContext(t), kadm.NewClient(newClient(t, []string{addr}, kgo.DialTLSConfig(ctls))), "kcat-tls", 1, 1, nil)
	ssl := []string{"-b", addr, "-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + caFile}
	kcat(t, "one\ntwo\nthree\n", append(ssl, "-P", "-t", "kcat-tls")...)
	out, _ := kcat(t, "", append(ssl, "-C", "-t", "kcat-tls", "-o", "beginning", "-c", "3", "-e")...)
	if got := strings.Fields(out); strings.Join(got, ",") != "one,two,three" {
		t.Fatalf("consumed %q", out)
	}
}

// kcat (librdkafka) with security.protocol=SASL_SSL logs in with
// SCRAM-SHA-512 and SCRAM-SHA-256 over TLS (a user created through the
// broker core), produces and consumes; a wrong password is refused with
// librdkafka's authentication error and nothing is produced.
func TestKcatSASLSSL(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed (apt-get install kcat): librdkafka checks skipped")
	}
	b, addr, caFile, ctls := singleTLS(t, auth.ClientAuthNone, func(c *broker.Config) {
		c.Security = broker.Security{SASLMechanisms: []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512}, RequireAuth: true}
	})
	addUsers(t, b, "alice")
	admin := scramClient(t, addr, "alice", "alice-pw", true, kgo.DialTLSConfig(ctls))
	createTopic(t, testContext(t), kadm.NewClient(admin), "kcat-sasl", 1, 1, nil)
	sasl := func(mech, password string) []string {
		return []string{"-b", addr, "-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + caFile,
			"-X", "sasl.mechanisms=" + mech, "-X", "sasl.username=alice", "-X", "sasl.password=" + password}
	}
	want := []string{}
	for _, mech := range []string{"SCRAM-SHA-512", "SCRAM-SHA-256"} {
		want = append(want, mech+"-a", mech+"-b")
		kcat(t, mech+"-a\n"+mech+"-b\n", append(sasl(mech, "alice-pw"), "-P", "-t", "kcat-sasl", "-X", "enable.idempotence=true")...)
		out, _ := kcat(t, "", append(sasl(mech, "alice-pw"), "-C", "-t", "kcat-sasl", "-o", "beginning", "-c", fmt.Sprint(len(want)), "-e")...)
		if got := strings.Fields(out); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: consumed %q, want %q", mech, got, want)
		}
	}

	_, stderr, err := kcatRun(t, "lost\n", append(sasl("SCRAM-SHA-512", "wrong"), "-P", "-t", "kcat-sasl", "-m", "5")...)
	if err == nil {
		t.Fatalf("kcat with a wrong password succeeded; stderr:\n%s", stderr)
	}
	if !strings.Contains(stderr, "SASL authentication error") || !strings.Contains(stderr, "Local: Authentication failure") {
		t.Fatalf("kcat with a wrong password: %v, stderr without librdkafka's authentication error:\n%s", err, stderr)
	}
	if end, err := b.ListOffset(nil, "kcat-sasl", 0, -1); err != nil || end.Offset != int64(len(want)) {
		t.Fatalf("log end %+v (%v) after a refused login, want %d", end, err, len(want))
	}
}
