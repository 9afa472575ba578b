package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/controller"
)

// secureSingle starts a broker whose Kafka listener requires SCRAM
// logins, with the authorizer on when authz, the super user admin and the
// users admin and bob (passwords "<user>-pw", both SCRAM mechanisms).
func secureSingle(t *testing.T, authz bool) (*broker.Broker, string) {
	t.Helper()
	b, addr := single(t, func(c *broker.Config) {
		c.Security = broker.Security{SASLMechanisms: []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512}, RequireAuth: true,
			Authorizer: authz, SuperUsers: []string{"User:admin"}}
	})
	addUsers(t, b, "admin", "bob")
	return b, addr
}

// addUsers creates users through the broker core, with both SCRAM
// mechanisms and the password "<user>-pw".
func addUsers(t *testing.T, b *broker.Broker, users ...string) {
	t.Helper()
	var upserts []controller.UpsertCredential
	for _, u := range users {
		for _, m := range []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512} {
			cred, err := auth.NewCredential(m, u+"-pw", auth.MinIterations)
			if err != nil {
				t.Fatal(err)
			}
			upserts = append(upserts, controller.UpsertCredential{User: u, Credential: cred})
		}
	}
	for _, err := range b.UpsertCredentials(context.Background(), upserts, nil) {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func scramClient(t *testing.T, addr, user, password string, sha512 bool, opts ...kgo.Opt) *kgo.Client {
	a := scram.Auth{User: user, Pass: password}
	mech := a.AsSha256Mechanism()
	if sha512 {
		mech = a.AsSha512Mechanism()
	}
	return newClient(t, []string{addr}, append([]kgo.Opt{kgo.SASL(mech)}, opts...)...)
}

// franz-go logs in with SCRAM-SHA-256 and -512 unchanged and produces and
// consumes; a wrong password is SASL_AUTHENTICATION_FAILED; a client that
// does not log in gets nothing; ApiVersions lists the SASL APIs only when
// a mechanism is offered.
func TestFranzSCRAM(t *testing.T) {
	ctx := testContext(t)
	_, addr := secureSingle(t, false)
	for _, sha512 := range []bool{false, true} {
		cl := scramClient(t, addr, "admin", "admin-pw", sha512, kgo.AllowAutoTopicCreation())
		topic := "t256"
		if sha512 {
			topic = "t512"
		}
		createTopic(t, ctx, kadm.NewClient(cl), topic, 1, 1, nil)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("hello")}).FirstErr(); err != nil {
			t.Fatalf("produce after SCRAM login (sha512 %v): %v", sha512, err)
		}
		cons := scramClient(t, addr, "admin", "admin-pw", sha512, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil || fs.NumRecords() != 1 || string(fs.Records()[0].Value) != "hello" {
			t.Fatalf("consume after SCRAM login: %v, %d records", err, fs.NumRecords())
		}
	}

	bad := scramClient(t, addr, "admin", "wrong", true)
	err := bad.Ping(ctx)
	if !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	unknown := scramClient(t, addr, "mallory", "whatever", true)
	if err := unknown.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("unknown user: %v, want SASL_AUTHENTICATION_FAILED", err)
	}

	anon := newClient(t, []string{addr})
	md := kmsg.NewPtrMetadataRequest()
	if _, err := md.RequestWith(ctx, anon); err == nil {
		t.Fatal("metadata without a login answered")
	}
	var versions kmsg.ApiVersionsResponse
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, anon)
	if err != nil {
		t.Fatalf("ApiVersions without a login: %v", err)
	}
	versions = *resp
	found := 0
	for _, k := range versions.ApiKeys {
		if k.ApiKey == saslHandshakeKey || k.ApiKey == saslAuthenticateKey {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("ApiVersions lists %d of the SASL APIs", found)
	}
	_, plain := single(t, nil)
	resp, err = kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, newClient(t, []string{plain}))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == saslHandshakeKey || k.ApiKey == saslAuthenticateKey {
			t.Fatalf("a listener without SASL advertises key %d", k.ApiKey)
		}
	}
}

// The authorizer on the Kafka listener: bob, without ACLs, is refused
// produce (nothing appended), fetch and topic creation, and Metadata
// leaves out the topic.
func TestKafkaAuthorizer(t *testing.T) {
	ctx := testContext(t)
	b, addr := secureSingle(t, true)
	admin := scramClient(t, addr, "admin", "admin-pw", true)
	createTopic(t, ctx, kadm.NewClient(admin), "orders", 1, 1, nil)
	bob := scramClient(t, addr, "bob", "bob-pw", false, kgo.RecordRetries(0))

	err := bob.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob produce: %v", err)
	}
	if end, err := b.ListOffset(nil, "orders", 0, -1); err != nil || end.Offset != 0 {
		t.Fatalf("log end %+v (%v) after a denied produce", end, err)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID, fetch.MaxBytes = -1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "orders"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	fr, err := fetch.RequestWith(ctx, bob)
	if err != nil || len(fr.Topics) != 1 || fr.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("bob fetch: %v %+v", err, fr)
	}
	if _, err := kadm.NewClient(bob).CreateTopic(ctx, 1, 1, nil, "bobs"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob create: %v", err)
	}
	mdr, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range mdr.Topics {
		if tm.Topic != nil && *tm.Topic == "orders" {
			t.Fatal("bob's metadata shows orders")
		}
	}
	if _, ok := b.Metadata().Topics["bobs"]; ok {
		t.Fatal("bob's topic created")
	}
}

// kcat (librdkafka) logs in with SCRAM-SHA-512 over SASL_PLAINTEXT and
// produces and consumes.
func TestKcatSCRAM(t *testing.T) {
	_, addr := secureSingle(t, false)
	login := []string{"-b", addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username=admin", "-X", "sasl.password=admin-pw"}
	ctx := testContext(t)
	createTopic(t, ctx, kadm.NewClient(scramClient(t, addr, "admin", "admin-pw", true)), "kc", 1, 1, nil)
	kcat(t, "one\ntwo\n", append(login, "-P", "-t", "kc")...)
	out, _ := kcat(t, "", append(login, "-C", "-t", "kc", "-o", "beginning", "-c", "2", "-e")...)
	if strings.TrimSpace(out) != "one\ntwo" {
		t.Fatalf("kcat consumed %q", out)
	}
}

// FuzzDecodeSASL decodes arbitrary SaslHandshake and SaslAuthenticate
// frames: an error or a request, never a panic, and a request re-encodes
// to something that decodes again.
func FuzzDecodeSASL(f *testing.F) {
	for key, vr := range saslTable {
		for v := vr.Min; v <= vr.Max; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			if r, ok := req.(*kmsg.SASLAuthenticateRequest); ok {
				r.SASLAuthBytes = []byte("n,,n=alice,r=abc")
			}
			if r, ok := req.(*kmsg.SASLHandshakeRequest); ok {
				r.Mechanism = "SCRAM-SHA-512"
			}
			f.Add(frame(key, v, 1, req.IsFlexible(), req.AppendTo(nil))[4:])
		}
	}
	f.Add(frame(saslAuthenticateKey, 2, 1, true, []byte{0x80, 0x80, 0x80, 0x80, 0x08})[4:])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, err := parseHeader(b)
		if err != nil || (h.key != saslHandshakeKey && h.key != saslAuthenticateKey) {
			return
		}
		req, err := decodeSASL(h, body)
		if err != nil {
			return
		}
		if _, err := decodeSASL(h, append(tagsFor(req), req.AppendTo(nil)...)); err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", req, err)
		}
	})
}

// tagsFor is the empty header tag buffer a flexible request carries.
func tagsFor(req kmsg.Request) []byte {
	if req.IsFlexible() {
		return []byte{0}
	}
	return nil
}

// The Kafka listener's limit of login attempts per connection is one, as
// Kafka's: a failed SaslAuthenticate is answered SASL_AUTHENTICATION_FAILED
// and the connection closed (the client reconnects to try again).
func TestKafkaSASLFailureClosesConnection(t *testing.T) {
	_, addr := secureSingle(t, false)
	c := dialRaw(t, addr)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = "SCRAM-SHA-256"
	var hsResp kmsg.SASLHandshakeResponse
	hsResp.SetVersion(1)
	if err := hsResp.ReadFrom(c.request(hs, 1)); err != nil || hsResp.ErrorCode != 0 {
		t.Fatalf("handshake: %v, code %d", err, hsResp.ErrorCode)
	}
	sa := kmsg.NewPtrSASLAuthenticateRequest()
	sa.SetVersion(1)
	sa.SASLAuthBytes = []byte("not a SCRAM message")
	var saResp kmsg.SASLAuthenticateResponse
	saResp.SetVersion(1)
	if err := saResp.ReadFrom(c.request(sa, 2)); err != nil {
		t.Fatal(err)
	}
	if saResp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("a bad SCRAM message: code %d, want SASL_AUTHENTICATION_FAILED", saResp.ErrorCode)
	}
	if !c.closed(5 * time.Second) {
		t.Fatal("the connection stayed open after a failed login")
	}
}
