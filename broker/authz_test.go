package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// secureBroker runs a broker that requires SASL (both SCRAM mechanisms),
// with the authorizer on when authz, and users alice and bob
// (passwords "alice-pw", "bob-pw") and the super user admin.
func secureBroker(t testing.TB, authz bool) *Broker {
	t.Helper()
	b := startBroker(t, "", func(c *Config) {
		c.Security = Security{SASLMechanisms: []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512}, RequireAuth: true,
			Authorizer: authz, SuperUsers: []string{"User:admin"}, ClusterSecret: []byte("0123456789abcdef0123456789abcdef")}
	})
	for _, u := range []string{"alice", "bob", "admin"} {
		for _, m := range []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512} {
			cred, err := auth.NewCredential(m, u+"-pw", auth.MinIterations)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.store.Propose(context.Background(), controller.UpsertCredential{User: u, Credential: cred}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b
}

// loginAs authenticates c as user with password, returning the error
// code of the step that failed (NoError on success) and at which
// SaslAuthenticate it failed (1-based; 0 on success).
func (c *testClient) loginAs(m auth.Mechanism, user, password string) (protocol.ErrorCode, int) {
	c.t.Helper()
	var hs protocol.SaslHandshakeResponse
	c.call(&protocol.SaslHandshakeRequest{Mechanism: string(m)}, &hs)
	if hs.ErrorCode != protocol.NoError {
		return hs.ErrorCode, 0
	}
	var failed protocol.ErrorCode
	step := 0
	err := auth.Login(m, user, password, func(msg []byte) ([]byte, error) {
		step++
		var ar protocol.SaslAuthenticateResponse
		c.call(&protocol.SaslAuthenticateRequest{AuthBytes: msg}, &ar)
		if ar.ErrorCode != protocol.NoError {
			failed = ar.ErrorCode
			if ar.ErrorMessage != protocol.ErrSaslAuthenticationFailed.Message() {
				c.t.Errorf("failure message %q says more than the code", ar.ErrorMessage)
			}
			return nil, ar.ErrorCode
		}
		return bytes.Clone(ar.AuthBytes), nil
	})
	if err != nil && failed == protocol.NoError {
		c.t.Fatalf("login: %v", err)
	}
	if failed == protocol.NoError {
		step = 0
	}
	return failed, step
}

// closed reports whether the broker closed c (read returns EOF).
func (c *testClient) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.fr.Next()
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// A listener that requires authentication refuses every request but
// ApiVersions and SASL until the connection logs in; both SCRAM
// mechanisms log in.
func TestSASLRequiredBeforeAnyRequest(t *testing.T) {
	b := secureBroker(t, false)

	c := dial(t, b.Addr())
	var versions protocol.APIVersionsResponse
	c.call(&protocol.APIVersionsRequest{}, &versions)
	if versions.ErrorCode != protocol.NoError {
		t.Fatalf("ApiVersions before login: %v", versions.ErrorCode)
	}
	var md protocol.MetadataResponse
	c.call(&protocol.MetadataRequest{AllTopics: true}, &md)
	if md.ErrorCode != protocol.ErrSaslAuthenticationFailed {
		t.Fatalf("Metadata before login: %v, want SASL_AUTHENTICATION_FAILED", md.ErrorCode)
	}
	if code, _ := c.loginAs(auth.ScramSHA512, "alice", "alice-pw"); code != protocol.NoError {
		t.Fatalf("login after a refused request: %v", code)
	}
	c.call(&protocol.MetadataRequest{AllTopics: true}, &md)
	if md.ErrorCode != protocol.NoError {
		t.Fatalf("Metadata after login on the same connection: %v", md.ErrorCode)
	}

	for _, m := range []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512} {
		c := dial(t, b.Addr())
		if code, _ := c.loginAs(m, "alice", "alice-pw"); code != protocol.NoError {
			t.Fatalf("%s login: %v", m, code)
		}
		c.call(&protocol.MetadataRequest{AllTopics: true}, &md)
		if md.ErrorCode != protocol.NoError {
			t.Fatalf("%s: Metadata after login: %v", m, md.ErrorCode)
		}
		// A second login on an authenticated connection is refused.
		var hs protocol.SaslHandshakeResponse
		c.call(&protocol.SaslHandshakeRequest{Mechanism: string(m)}, &hs)
		if hs.ErrorCode != protocol.ErrIllegalSaslState {
			t.Fatalf("handshake after login: %v", hs.ErrorCode)
		}
	}

	// PLAIN needs TLS; a mechanism not offered is refused with the list.
	var hs protocol.SaslHandshakeResponse
	c = dial(t, b.Addr())
	for _, m := range []string{"PLAIN", "GSSAPI"} {
		c.call(&protocol.SaslHandshakeRequest{Mechanism: m}, &hs)
		if hs.ErrorCode != protocol.ErrUnsupportedSaslMechanism || len(hs.Mechanisms) != 2 {
			t.Fatalf("%s handshake: %v %v", m, hs.ErrorCode, hs.Mechanisms)
		}
	}
}

// A wrong password and an unknown user fail alike: the same code and
// message, at the same step (the unknown user gets a made-up salt and
// the exchange runs to the proof), so neither the answer nor the number
// of round trips tells whether the user exists. The attempts are
// limited per connection.
func TestSASLFailuresSayNothing(t *testing.T) {
	b := secureBroker(t, false)
	c := dial(t, b.Addr())
	wrongCode, wrongStep := c.loginAs(auth.ScramSHA512, "alice", "not-her-password")
	unknownCode, unknownStep := c.loginAs(auth.ScramSHA512, "mallory", "whatever")
	if wrongCode != protocol.ErrSaslAuthenticationFailed || unknownCode != wrongCode {
		t.Fatalf("wrong password %v, unknown user %v: want SASL_AUTHENTICATION_FAILED for both", wrongCode, unknownCode)
	}
	if wrongStep != 2 || unknownStep != wrongStep {
		t.Fatalf("wrong password failed at step %d, unknown user at step %d: want both at 2 (the proof)", wrongStep, unknownStep)
	}
	// The third failure is the last: the connection is closed after it.
	if code, _ := c.loginAs(auth.ScramSHA256, "alice", "nope"); code != protocol.ErrSaslAuthenticationFailed {
		t.Fatalf("third attempt: %v", code)
	}
	if !c.closed() {
		t.Fatal("connection open after three failed attempts")
	}
}

// A recorded exchange cannot be replayed on another connection (the
// server's nonce is new), and an exchange cut short leaves the
// connection unauthenticated.
func TestSASLReplayAndTruncation(t *testing.T) {
	b := secureBroker(t, false)
	var sent [][]byte
	c := dial(t, b.Addr())
	var hs protocol.SaslHandshakeResponse
	c.call(&protocol.SaslHandshakeRequest{Mechanism: string(auth.ScramSHA512)}, &hs)
	err := auth.Login(auth.ScramSHA512, "alice", "alice-pw", func(msg []byte) ([]byte, error) {
		sent = append(sent, bytes.Clone(msg))
		var ar protocol.SaslAuthenticateResponse
		c.call(&protocol.SaslAuthenticateRequest{AuthBytes: msg}, &ar)
		return bytes.Clone(ar.AuthBytes), ar.ErrorCode.Err()
	})
	if err != nil || len(sent) != 2 {
		t.Fatalf("recorded login: %v (%d messages)", err, len(sent))
	}

	replay := dial(t, b.Addr())
	replay.call(&protocol.SaslHandshakeRequest{Mechanism: string(auth.ScramSHA512)}, &hs)
	var ar protocol.SaslAuthenticateResponse
	replay.call(&protocol.SaslAuthenticateRequest{AuthBytes: sent[0]}, &ar)
	if ar.ErrorCode != protocol.NoError {
		t.Fatalf("replayed client-first: %v", ar.ErrorCode)
	}
	replay.call(&protocol.SaslAuthenticateRequest{AuthBytes: sent[1]}, &ar)
	if ar.ErrorCode != protocol.ErrSaslAuthenticationFailed {
		t.Fatalf("replayed client-final: %v, want SASL_AUTHENTICATION_FAILED", ar.ErrorCode)
	}

	// Truncated: a client-first message cut before its nonce fails; a client that stops
	// after its first message is not authenticated.
	trunc := dial(t, b.Addr())
	trunc.call(&protocol.SaslHandshakeRequest{Mechanism: string(auth.ScramSHA512)}, &hs)
	trunc.call(&protocol.SaslAuthenticateRequest{AuthBytes: sent[0][:len("n,,n=al")]}, &ar)
	if ar.ErrorCode != protocol.ErrSaslAuthenticationFailed {
		t.Fatalf("truncated client-first: %v", ar.ErrorCode)
	}
	trunc.call(&protocol.SaslAuthenticateRequest{AuthBytes: sent[0]}, &ar)
	if ar.ErrorCode != protocol.ErrIllegalSaslState {
		t.Fatalf("authenticate without a new handshake: %v, want ILLEGAL_SASL_STATE", ar.ErrorCode)
	}
	half := dial(t, b.Addr())
	half.call(&protocol.SaslHandshakeRequest{Mechanism: string(auth.ScramSHA512)}, &hs)
	half.call(&protocol.SaslAuthenticateRequest{AuthBytes: sent[0]}, &ar)
	var md protocol.MetadataResponse
	half.call(&protocol.MetadataRequest{AllTopics: true}, &md)
	if md.ErrorCode != protocol.ErrSaslAuthenticationFailed {
		t.Fatalf("Metadata mid-exchange: %v", md.ErrorCode)
	}
}

// addACL adds an ACL through the admin connection.
func addACL(t *testing.T, admin *testClient, acl auth.ACL) {
	t.Helper()
	var resp protocol.CreateAclsResponse
	admin.call(&protocol.CreateAclsRequest{ACLs: []protocol.ACLBinding{aclToWire(acl)}}, &resp)
	if resp.ErrorCode != protocol.NoError || len(resp.Results) != 1 || resp.Results[0].ErrorCode != protocol.NoError {
		t.Fatalf("create ACL %v: %+v", acl, resp)
	}
}

func allow(principal string, rt auth.ResourceType, name string, op auth.Operation) auth.ACL {
	return auth.ACL{Principal: principal, Host: "*", Resource: rt, Name: name, Pattern: auth.PatternLiteral, Op: op, Permission: auth.Allow}
}

// With the authorizer on, every request is checked: bob, with no ACL,
// is refused produce, fetch, list offsets, commit, create, delete and
// config changes, each with its authorization code and nothing changed;
// metadata leaves out the topics he may not describe. alice, allowed to
// write, produces.
func TestAuthorizerRefusesAndChangesNothing(t *testing.T) {
	b := secureBroker(t, true)
	admin := dial(t, b.Addr())
	if code, _ := admin.loginAs(auth.ScramSHA512, "admin", "admin-pw"); code != protocol.NoError {
		t.Fatalf("admin login: %v", code)
	}
	admin.createTopic("orders", 1)
	admin.produce("orders", 0, protocol.AcksLeader, makeBatch(t, record.None, "a", 3, 0))
	addACL(t, admin, allow("User:alice", auth.ResourceTopic, "orders", auth.OpWrite))

	alice := dial(t, b.Addr())
	if code, _ := alice.loginAs(auth.ScramSHA256, "alice", "alice-pw"); code != protocol.NoError {
		t.Fatalf("alice login: %v", code)
	}
	if r := alice.produce("orders", 0, protocol.AcksLeader, makeBatch(t, record.None, "b", 2, 0)); r.ErrorCode != protocol.NoError {
		t.Fatalf("alice produce: %v", r.ErrorCode)
	}
	end := admin.listOffset("orders", 0, protocol.LatestTimestamp).Offset

	bob := dial(t, b.Addr())
	if code, _ := bob.loginAs(auth.ScramSHA512, "bob", "bob-pw"); code != protocol.NoError {
		t.Fatalf("bob login: %v", code)
	}
	if r := bob.produce("orders", 0, protocol.AcksLeader, makeBatch(t, record.None, "x", 2, 0)); r.ErrorCode != protocol.ErrTopicAuthorizationFailed {
		t.Fatalf("bob produce: %v", r.ErrorCode)
	}
	if got := admin.listOffset("orders", 0, protocol.LatestTimestamp).Offset; got != end {
		t.Fatalf("log end %d after a denied produce, was %d", got, end)
	}
	if r := bob.fetch("orders", 0, 0); r.ErrorCode != protocol.ErrTopicAuthorizationFailed || len(r.Records) != 0 {
		t.Fatalf("bob fetch: %v, %d bytes", r.ErrorCode, len(r.Records))
	}
	if r := bob.listOffset("orders", 0, protocol.LatestTimestamp); r.ErrorCode != protocol.ErrTopicAuthorizationFailed {
		t.Fatalf("bob list offsets: %v", r.ErrorCode)
	}
	var ipid protocol.InitProducerIDResponse
	bob.call(&protocol.InitProducerIDRequest{ProducerID: -1, ProducerEpoch: -1}, &ipid)
	if ipid.ErrorCode != protocol.ErrClusterAuthorizationFailed {
		t.Fatalf("bob idempotent producer id: %v", ipid.ErrorCode)
	}
	alice.call(&protocol.InitProducerIDRequest{ProducerID: -1, ProducerEpoch: -1}, &ipid)
	if ipid.ErrorCode != protocol.NoError {
		t.Fatalf("alice (write on a topic) idempotent producer id: %v", ipid.ErrorCode)
	}

	var ct protocol.CreateTopicsResponse
	bob.call(&protocol.CreateTopicsRequest{Topics: []protocol.CreatableTopic{{Name: "bobs", Partitions: 1, ReplicationFactor: 1}}}, &ct)
	if len(ct.Topics) != 1 || ct.Topics[0].ErrorCode != protocol.ErrTopicAuthorizationFailed {
		t.Fatalf("bob create: %+v", ct)
	}
	var dt protocol.DeleteTopicsResponse
	bob.call(&protocol.DeleteTopicsRequest{Topics: []string{"orders"}}, &dt)
	if len(dt.Topics) != 1 || dt.Topics[0].ErrorCode != protocol.ErrTopicAuthorizationFailed {
		t.Fatalf("bob delete: %+v", dt)
	}
	var ac protocol.AlterConfigsResponse
	bob.call(&protocol.AlterConfigsRequest{Resources: []protocol.AlterConfigsResource{{Type: protocol.ResourceTopic, Name: "orders",
		Configs: []protocol.AlterableConfig{{Name: "retention.ms", Op: protocol.ConfigSet, Value: "1000"}}}}}, &ac)
	if len(ac.Resources) != 1 || ac.Resources[0].ErrorCode != protocol.ErrTopicAuthorizationFailed {
		t.Fatalf("bob alter configs: %+v", ac)
	}
	md := b.Metadata()
	if _, ok := md.Topics["bobs"]; ok || md.Topics["orders"] == nil || md.Topics["orders"].Configs["retention.ms"] != "" {
		t.Fatalf("metadata changed by denied requests: topics %v, orders configs %v", md.TopicNames(), md.Topics["orders"].Configs)
	}
	var acls protocol.CreateAclsResponse
	bob.call(&protocol.CreateAclsRequest{ACLs: []protocol.ACLBinding{aclToWire(allow("User:bob", auth.ResourceTopic, "*", auth.OpAll))}}, &acls)
	if acls.ErrorCode != protocol.ErrClusterAuthorizationFailed || len(b.Metadata().ACLs) != 1 {
		t.Fatalf("bob grants himself everything: %v, %d ACLs", acls.ErrorCode, len(b.Metadata().ACLs))
	}

	// Commits: read on the group, then read on each topic.
	var commit protocol.OffsetCommitResponse
	commitReq := &protocol.OffsetCommitRequest{GroupID: "g", MemberEpoch: -1, Topics: []protocol.OffsetCommitTopic{
		{Name: "orders", Partitions: []protocol.OffsetCommitPartition{{Partition: 0, Offset: 2, LeaderEpoch: -1}}}}}
	bob.call(commitReq, &commit)
	if commit.ErrorCode != protocol.ErrGroupAuthorizationFailed {
		t.Fatalf("bob commit without group ACL: %v", commit.ErrorCode)
	}
	addACL(t, admin, allow("User:bob", auth.ResourceGroup, "g", auth.OpRead))
	bob.call(commitReq, &commit)
	if commit.ErrorCode != protocol.ErrTopicAuthorizationFailed {
		t.Fatalf("bob commit without topic read: %v", commit.ErrorCode)
	}
	var fetched protocol.OffsetFetchResponse
	poll.Until(t, 20*time.Second, "the group's offsets", func() error {
		var co protocol.FindCoordinatorResponse
		if admin.call(&protocol.FindCoordinatorRequest{CoordinatorKey: "g"}, &co); co.ErrorCode != protocol.NoError {
			return co.ErrorCode.Err()
		}
		admin.call(&protocol.OffsetFetchRequest{GroupID: "g", MemberEpoch: -1, AllTopics: true}, &fetched)
		return fetched.ErrorCode.Err()
	})
	if len(fetched.Topics) != 0 {
		t.Fatalf("offsets committed by denied commits: %+v", fetched.Topics)
	}

	// Metadata: all topics leaves orders out for bob; named, it says why.
	var bm protocol.MetadataResponse
	bob.call(&protocol.MetadataRequest{AllTopics: true}, &bm)
	for _, tm := range bm.Topics {
		if tm.Name == "orders" {
			t.Fatalf("bob's metadata shows orders: %+v", bm.Topics)
		}
	}
	bob.call(&protocol.MetadataRequest{Topics: []string{"orders"}}, &bm)
	if len(bm.Topics) != 1 || bm.Topics[0].ErrorCode != protocol.ErrTopicAuthorizationFailed || len(bm.Topics[0].Partitions) != 0 {
		t.Fatalf("bob's metadata of orders: %+v", bm.Topics)
	}
	var am protocol.MetadataResponse
	alice.call(&protocol.MetadataRequest{AllTopics: true}, &am)
	if len(am.Topics) == 0 || am.Topics[0].Name != "orders" {
		t.Fatalf("alice (write implies describe) does not see orders: %+v", am.Topics)
	}
}

// An ACL added while a connection is open applies to its next request,
// within a second.
func TestACLChangeReachesOpenConnections(t *testing.T) {
	b := secureBroker(t, true)
	admin := dial(t, b.Addr())
	admin.loginAs(auth.ScramSHA512, "admin", "admin-pw")
	admin.createTopic("orders", 1)
	bob := dial(t, b.Addr())
	bob.loginAs(auth.ScramSHA512, "bob", "bob-pw")
	if r := bob.produce("orders", 0, protocol.AcksLeader, makeBatch(t, record.None, "x", 1, 0)); r.ErrorCode != protocol.ErrTopicAuthorizationFailed {
		t.Fatalf("bob produce before the ACL: %v", r.ErrorCode)
	}
	addACL(t, admin, allow("User:bob", auth.ResourceTopic, "orders", auth.OpWrite))
	poll.Until(t, time.Second, "bob's produce allowed on his open connection", func() bool {
		return bob.produce("orders", 0, protocol.AcksLeader, makeBatch(t, record.None, "x", 1, 0)).ErrorCode == protocol.NoError
	})
	// And a deny added later wins at once too.
	deny := allow("User:bob", auth.ResourceTopic, "orders", auth.OpWrite)
	deny.Permission = auth.Deny
	addACL(t, admin, deny)
	poll.Until(t, time.Second, "bob's produce refused again", func() bool {
		return bob.produce("orders", 0, protocol.AcksLeader, makeBatch(t, record.None, "x", 1, 0)).ErrorCode == protocol.ErrTopicAuthorizationFailed
	})
}

// The broker-internal APIs serve only brokers that proved they hold the
// cluster secret, whatever else is configured: a client without
// credentials, a super user, and a broker with another secret are all
// refused ControllerForward, a replica's Fetch and OffsetForLeaderEpoch.
func TestBrokerOnlyAPIs(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	b := startBroker(t, "", func(c *Config) { c.Security.ClusterSecret = secret })
	setup := dial(t, b.Addr())
	setup.createTopic("orders", 1)
	setup.produce("orders", 0, protocol.AcksLeader, makeBatch(t, record.None, "a", 3, 0))
	metaBefore := b.Metadata().Version

	refused := func(c *testClient, who string) {
		t.Helper()
		var fwd protocol.ControllerForwardResponse
		c.call(&protocol.ControllerForwardRequest{Payload: []byte{1, 2, 3}}, &fwd)
		if fwd.ErrorCode != protocol.ErrClusterAuthorizationFailed || len(fwd.Payload) != 0 {
			t.Fatalf("%s: ControllerForward: %v", who, fwd.ErrorCode)
		}
		req := fetchRequest("orders", 0, 0, 0, 0)
		req.ReplicaID, req.ReplicaEpoch = 1, b.Epoch()
		var fr protocol.FetchResponse
		c.call(req, &fr)
		if p := onlyFetchPartition(t, &fr); p.ErrorCode != protocol.ErrClusterAuthorizationFailed || len(p.Records) != 0 {
			t.Fatalf("%s: replica fetch: %v, %d bytes", who, p.ErrorCode, len(p.Records))
		}
		var oe protocol.OffsetForLeaderEpochResponse
		c.call(&protocol.OffsetForLeaderEpochRequest{ReplicaID: 1, Topics: []protocol.OffsetForLeaderEpochTopic{{Name: "orders",
			Partitions: []protocol.OffsetForLeaderEpochPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}}, &oe)
		if oe.ErrorCode != protocol.ErrClusterAuthorizationFailed {
			t.Fatalf("%s: replica OffsetForLeaderEpoch: %v", who, oe.ErrorCode)
		}
	}
	refused(dial(t, b.Addr()), "a client without credentials")

	other := dial(t, b.Addr())
	if code, _ := other.loginAs(auth.BrokerMechanism, auth.BrokerUser(2), auth.BrokerPassword([]byte("another cluster's secret...."))); code != protocol.ErrSaslAuthenticationFailed {
		t.Fatalf("broker login with another secret: %v", code)
	}
	refused(other, "a broker with another secret")
	if v := b.Metadata().Version; v != metaBefore {
		t.Fatalf("metadata version %d after refused forwards, was %d", v, metaBefore)
	}

	peer := dial(t, b.Addr())
	if code, _ := peer.loginAs(auth.BrokerMechanism, auth.BrokerUser(2), auth.BrokerPassword(secret)); code != protocol.NoError {
		t.Fatalf("broker login with the cluster secret: %v", code)
	}
	req := fetchRequest("orders", 0, 0, 0, 0)
	req.ReplicaID, req.ReplicaEpoch = 1, b.Epoch() // broker 1 is this one: it answers, as a follower fetch
	var fr protocol.FetchResponse
	peer.call(req, &fr)
	if p := onlyFetchPartition(t, &fr); p.ErrorCode == protocol.ErrClusterAuthorizationFailed {
		t.Fatalf("replica fetch by a logged-in broker: %v", p.ErrorCode)
	}
}

// A broker given no cluster secret lets no one log in as a broker.
func TestNoClusterSecretNoBrokerLogin(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())
	for _, secret := range [][]byte{nil, []byte("0123456789abcdef0123456789abcdef")} {
		if code, _ := c.loginAs(auth.BrokerMechanism, auth.BrokerUser(2), auth.BrokerPassword(secret)); code != protocol.ErrSaslAuthenticationFailed {
			t.Fatalf("broker login with secret %q: %v", secret, code)
		}
	}
}

// A member subscribed by regex is assigned only partitions of topics its
// principal may describe (Kafka's rule), on the sluice protocol: alice,
// with describe on orders.eu only, gets orders.eu of orders\..*; an ACL
// added later brings orders.us at a following heartbeat. admin (a super
// user) gets every match.
func TestRegexSubscriptionOnlyDescribableTopics(t *testing.T) {
	b := secureBroker(t, true)
	admin := loggedIn(t, b, "admin")
	admin.createTopic("orders.eu", 2)
	admin.createTopic("orders.us", 2)
	admin.createTopic("payments", 1)
	addACL(t, admin, allow("User:alice", auth.ResourceGroup, "rg", auth.OpRead))
	addACL(t, admin, allow("User:alice", auth.ResourceTopic, "orders.eu", auth.OpDescribe))
	addACL(t, admin, allow("User:alice", auth.ResourceTopic, "payments", auth.OpRead))
	alice := loggedIn(t, b, "alice")
	waitCoordinator(t, admin, "rg")

	topicsOf := func(tps []protocol.TopicPartitions) []string {
		var out []string
		for _, tp := range tps {
			if len(tp.Partitions) > 0 {
				out = append(out, tp.Topic)
			}
		}
		slices.Sort(out)
		return out
	}
	// beat heartbeats as c, the one member of group, until its
	// assignment is want (sorted).
	members := map[string]*protocol.ConsumerGroupHeartbeatResponse{}
	beat := func(c *testClient, group string, want ...string) {
		t.Helper()
		if members[group] == nil {
			members[group] = &protocol.ConsumerGroupHeartbeatResponse{}
		}
		hb := members[group]
		poll.Until(t, 20*time.Second, fmt.Sprintf("assignment %v in %s", want, group), func() error {
			c.call(&protocol.ConsumerGroupHeartbeatRequest{GroupID: group, MemberID: hb.MemberID, MemberEpoch: hb.MemberEpoch,
				SubscribedTopicRegex: `orders\..*`, RebalanceTimeoutMs: 30000, OwnedPartitions: hb.Assignment}, hb)
			if err := hb.ErrorCode.Err(); err != nil {
				*hb = protocol.ConsumerGroupHeartbeatResponse{}
				return err
			}
			if got := topicsOf(hb.Assignment); !slices.Equal(got, want) {
				return fmt.Errorf("assigned %v", got)
			}
			return nil
		})
	}
	beat(alice, "rg", "orders.eu")
	beat(admin, "all", "orders.eu", "orders.us")
	addACL(t, admin, allow("User:alice", auth.ResourceTopic, "orders.us", auth.OpRead)) // read implies describe
	beat(alice, "rg", "orders.eu", "orders.us")
}
