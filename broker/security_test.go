package broker

import (
	"testing"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/protocol"
)

// Users and ACLs round-trip through the wire, the core and the controller;
// no key ever comes back out.
func TestSecurityAdminAPIs(t *testing.T) {
	b := startBroker(t, "", nil)
	c := dial(t, b.Addr())

	cred, err := auth.NewCredential(auth.ScramSHA256, "s3cret", auth.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	var alter protocol.AlterUserScramCredentialsResponse
	c.call(&protocol.AlterUserScramCredentialsRequest{
		Upsertions: []protocol.ScramUpsertion{
			{User: "alice", Mechanism: string(cred.Mechanism), Iterations: int32(cred.Iterations), Salt: cred.Salt, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey},
			{User: "bad,name", Mechanism: string(cred.Mechanism), Iterations: int32(cred.Iterations), Salt: cred.Salt, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey},
			{User: "weak", Mechanism: string(cred.Mechanism), Iterations: 100, Salt: cred.Salt, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey},
		},
		Deletions: []protocol.ScramDeletion{{User: "nobody", Mechanism: "SCRAM-SHA-256"}},
	}, &alter)
	want := []protocol.ErrorCode{protocol.NoError, protocol.ErrUnacceptableCredential, protocol.ErrUnacceptableCredential, protocol.ErrResourceNotFound}
	if len(alter.Results) != len(want) {
		t.Fatalf("results %+v", alter.Results)
	}
	for i, w := range want {
		if alter.Results[i].ErrorCode != w {
			t.Errorf("change %d (%s): %v %q, want %v", i, alter.Results[i].User, alter.Results[i].ErrorCode, alter.Results[i].ErrorMessage, w)
		}
	}
	// The stored credential is the one sent: a SCRAM exchange against
	// the broker's metadata authenticates with the password.
	got := b.store.Metadata().Users["alice"][auth.ScramSHA256]
	srv, _ := auth.NewServerExchange(auth.ScramSHA256, credsOf{b}, []byte("k"))
	cli, _ := auth.NewClientExchange(auth.ScramSHA256, "alice", "s3cret")
	var challenge []byte
	for !srv.Done() {
		msg, err := cli.Step(challenge)
		if err != nil {
			t.Fatal(err)
		}
		if challenge, err = srv.Step(msg); err != nil {
			t.Fatalf("exchange against the stored credential (%d iterations): %v", got.Iterations, err)
		}
	}

	var desc protocol.DescribeUserScramCredentialsResponse
	c.call(&protocol.DescribeUserScramCredentialsRequest{Users: []string{"alice", "zed"}}, &desc)
	if len(desc.Results) != 2 || desc.Results[0].ErrorCode != protocol.NoError || len(desc.Results[0].Credentials) != 1 ||
		desc.Results[0].Credentials[0] != (protocol.ScramInfo{Mechanism: "SCRAM-SHA-256", Iterations: auth.MinIterations}) ||
		desc.Results[1].ErrorCode != protocol.ErrResourceNotFound {
		t.Fatalf("describe users: %+v", desc.Results)
	}

	topicWrite := protocol.ACLBinding{ResourceType: int8(auth.ResourceTopic), Name: "orders", PatternType: int8(auth.PatternLiteral),
		Principal: "User:alice", Host: "*", Operation: int8(auth.OpWrite), Permission: int8(auth.Allow)}
	groupWrite := topicWrite
	groupWrite.ResourceType = int8(auth.ResourceGroup)
	var created protocol.CreateAclsResponse
	c.call(&protocol.CreateAclsRequest{ACLs: []protocol.ACLBinding{topicWrite, groupWrite}}, &created)
	if len(created.Results) != 2 || created.Results[0].ErrorCode != protocol.NoError || created.Results[1].ErrorCode != protocol.ErrInvalidRequest {
		t.Fatalf("create ACLs: %+v", created.Results)
	}
	anyFilter := protocol.ACLBinding{ResourceType: int8(auth.ResourceAny), PatternType: int8(auth.PatternAny), Operation: int8(auth.OpAny), Permission: int8(auth.PermissionAny)}
	var listed protocol.DescribeAclsResponse
	c.call(&protocol.DescribeAclsRequest{Filter: anyFilter}, &listed)
	if len(listed.ACLs) != 1 || listed.ACLs[0] != topicWrite {
		t.Fatalf("describe ACLs: %+v", listed.ACLs)
	}
	var deleted protocol.DeleteAclsResponse
	byBob := anyFilter
	byBob.Principal = "User:bob"
	c.call(&protocol.DeleteAclsRequest{Filters: []protocol.ACLBinding{byBob, anyFilter}}, &deleted)
	if len(deleted.Results) != 2 || len(deleted.Results[0].Deleted) != 0 || len(deleted.Results[1].Deleted) != 1 {
		t.Fatalf("delete ACLs: %+v", deleted.Results)
	}
	c.call(&protocol.DescribeAclsRequest{Filter: anyFilter}, &listed)
	if len(listed.ACLs) != 0 {
		t.Fatalf("after delete: %+v", listed.ACLs)
	}
}

// credsOf reads credentials from a broker's metadata, as a listener will.
type credsOf struct{ b *Broker }

func (c credsOf) Credential(user string, m auth.Mechanism) (auth.Credential, bool) {
	cr, ok := c.b.store.Metadata().Users[user][m]
	return cr, ok
}
