package kafka

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/internal/poll"
)

// ACLs through kadm on the Kafka listener: created ACLs are the core's
// (bob may produce once granted, through the same listener, and the core
// lists them); MATCH, LITERAL and ANY filters select as Kafka's do;
// transactional-id ACLs are refused; a delete removes what its filter
// matched and bob is refused again; a filter with an UNKNOWN field is
// INVALID_REQUEST; bob himself may not list ACLs.
func TestKafkaACLAdmin(t *testing.T) {
	ctx := testContext(t)
	b, addr, adm := authzBroker(t)
	bob := scramClient(t, addr, "bob", "bob-pw", false, kgo.RecordRetries(0), kgo.DisableIdempotentWrite())

	if res, err := kadm.NewClient(bob).DescribeACLs(ctx, kadm.NewACLs().Allow().AllowHosts().Topics("orders").ResourcePatternType(kadm.ACLPatternAny).Operations()); err != nil ||
		len(res) != 1 || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("bob lists ACLs: %v %+v, want CLUSTER_AUTHORIZATION_FAILED", err, res)
	}
	if err := bob.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob produce before the ACL: %v", err)
	}

	created, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:bob").Topics("ord").ResourcePatternType(kadm.ACLPatternPrefixed).
		Operations(kadm.OpWrite, kadm.OpDescribe))
	if err != nil || len(created) != 2 {
		t.Fatalf("create: %v %+v", err, created)
	}
	for _, c := range created {
		if c.Err != nil {
			t.Fatalf("create %+v: %v %s", c, c.Err, c.ErrMessage)
		}
	}
	if _, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:bob").Groups("g").Operations(kadm.OpRead)); err != nil {
		t.Fatal(err)
	}
	txn, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:bob").TransactionalIDs("tx").Operations(kadm.OpWrite))
	if err != nil || len(txn) != 1 || !errors.Is(txn[0].Err, kerr.InvalidRequest) {
		t.Fatalf("transactional-id ACL: %v %+v, want INVALID_REQUEST", err, txn)
	}
	if core := b.DescribeACLs(auth.Filter{}); len(core) != 3 {
		t.Fatalf("the core lists %d ACLs, want 3: %v", len(core), core)
	}
	poll.Until(t, 10*time.Second, "bob produces once granted", func() error {
		return bob.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("granted")}).FirstErr()
	})

	for _, c := range []struct {
		name    string
		builder *kadm.ACLBuilder
		want    []string
	}{
		{"match orders", kadm.NewACLs().Allow().AllowHosts().Topics("orders").ResourcePatternType(kadm.ACLPatternMatch).Operations(), []string{"ord/PREFIXED/WRITE", "ord/PREFIXED/DESCRIBE"}},
		{"literal orders", kadm.NewACLs().Allow().AllowHosts().Topics("orders").ResourcePatternType(kadm.ACLPatternLiteral).Operations(), nil},
		{"any ord", kadm.NewACLs().Allow().AllowHosts().Topics("ord").ResourcePatternType(kadm.ACLPatternAny).Operations(), []string{"ord/PREFIXED/WRITE", "ord/PREFIXED/DESCRIBE"}},
		{"every group", kadm.NewACLs().Allow().AllowHosts().Groups().ResourcePatternType(kadm.ACLPatternAny).Operations(), []string{"g/LITERAL/READ"}},
		{"bob's describes", kadm.NewACLs().Allow("User:bob").AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpDescribe),
			[]string{"ord/PREFIXED/DESCRIBE"}},
	} {
		res, err := adm.DescribeACLs(ctx, c.builder)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got []string
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("%s: %v %s", c.name, r.Err, r.ErrMessage)
			}
			for _, d := range r.Described {
				if d.Principal != "User:bob" || d.Host != "*" || d.Permission != kmsg.ACLPermissionTypeAllow {
					t.Errorf("%s: described %+v", c.name, d)
				}
				got = append(got, d.Name+"/"+d.Pattern.String()+"/"+d.Operation.String())
			}
		}
		slices.Sort(got)
		slices.Sort(c.want)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: described %v, want %v", c.name, got, c.want)
		}
	}

	deleted, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow().AllowHosts().Topics("ord").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite))
	if err != nil || len(deleted) != 1 || deleted[0].Err != nil || len(deleted[0].Deleted) != 1 ||
		deleted[0].Deleted[0].Name != "ord" || deleted[0].Deleted[0].Operation != kadm.OpWrite {
		t.Fatalf("delete: %v %+v", err, deleted)
	}
	if core := b.DescribeACLs(auth.Filter{}); len(core) != 2 {
		t.Fatalf("the core lists %d ACLs after the delete, want 2: %v", len(core), core)
	}
	poll.Until(t, 10*time.Second, "bob refused again", func() error {
		if err := bob.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			return errors.New("produce not refused")
		}
		return nil
	})

	unknown := kmsg.NewPtrDescribeACLsRequest()
	unknown.ResourcePatternType, unknown.Operation, unknown.PermissionType = kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	resp, err := unknown.RequestWith(ctx, scramClient(t, addr, "admin", "admin-pw", true)) // ResourceType UNKNOWN
	if err != nil || resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("describe with an UNKNOWN resource type: %v %+v", err, resp)
	}
}

// SCRAM users through kadm on the Kafka listener: AlterUserScramCredentials
// creates carol from kadm's salted password (the core stores the derived
// keys, not the salted password), DescribeUserScramCredentials shows her
// mechanism and iterations, she logs in with kgo's SCRAM; deleted, she is
// unknown and her login is refused. A salted password of the wrong size
// and an unknown mechanism are refused with Kafka's codes; bob, without
// describe on the cluster, may not list users.
func TestKafkaSCRAMAdmin(t *testing.T) {
	ctx := testContext(t)
	b, addr := secureSingle(t, true)
	adm := kadm.NewClient(scramClient(t, addr, "admin", "admin-pw", true))

	if _, err := kadm.NewClient(scramClient(t, addr, "bob", "bob-pw", true)).DescribeUserSCRAMs(ctx); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("bob lists users: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
	up := []kadm.UpsertSCRAM{{User: "carol", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "carol-pw"}}
	altered, err := adm.AlterUserSCRAMs(ctx, nil, up)
	if err != nil || altered.Error() != nil {
		t.Fatalf("create carol: %v %+v", err, altered)
	}
	stored := b.Metadata().Users["carol"][auth.ScramSHA512]
	if stored.Iterations != 8192 || !slices.Equal(stored.Salt, up[0].Salt) || slices.Equal(stored.ServerKey, up[0].SaltedPassword) ||
		slices.Equal(stored.StoredKey, up[0].SaltedPassword) || len(up[0].SaltedPassword) != 64 {
		t.Fatalf("stored credential %+v for salted password %x", stored, up[0].SaltedPassword)
	}
	described, err := adm.DescribeUserSCRAMs(ctx, "carol")
	if err != nil || described.Error() != nil || len(described["carol"].CredInfos) != 1 ||
		described["carol"].CredInfos[0] != (kadm.CredInfo{Mechanism: kadm.ScramSha512, Iterations: 8192}) {
		t.Fatalf("describe carol: %v %+v", err, described)
	}
	if all, err := adm.DescribeUserSCRAMs(ctx); err != nil || len(all) != 3 {
		t.Fatalf("describe every user: %v %+v, want admin, bob, carol", err, all)
	}
	if err := scramClient(t, addr, "carol", "carol-pw", true).Ping(ctx); err != nil {
		t.Fatalf("carol's login: %v", err)
	}

	raw := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	short := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	short.Name, short.Mechanism, short.Iterations, short.Salt, short.SaltedPassword = "dave", 2, 4096, []byte("salt"), []byte("short")
	unknown := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	unknown.Name, unknown.Mechanism, unknown.Iterations, unknown.Salt, unknown.SaltedPassword = "erin", 3, 4096, []byte("salt"), make([]byte, 32)
	raw.Upsertions = append(raw.Upsertions, short, unknown)
	rr, err := raw.RequestWith(ctx, scramClient(t, addr, "admin", "admin-pw", true))
	if err != nil || len(rr.Results) != 2 || rr.Results[0].ErrorCode != kerr.UnacceptableCredential.Code ||
		rr.Results[1].ErrorCode != kerr.UnsupportedSaslMechanism.Code {
		t.Fatalf("bad upsertions: %v %+v", err, rr)
	}
	if _, ok := b.Metadata().Users["dave"]; ok {
		t.Fatal("dave stored from a bad upsertion")
	}

	altered, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha512}}, nil)
	if err != nil || altered.Error() != nil {
		t.Fatalf("delete carol: %v %+v", err, altered)
	}
	described, err = adm.DescribeUserSCRAMs(ctx, "carol")
	if err != nil || !errors.Is(described["carol"].Err, kerr.ResourceNotFound) {
		t.Fatalf("describe deleted carol: %v %+v, want RESOURCE_NOT_FOUND", err, described)
	}
	if err := scramClient(t, addr, "carol", "carol-pw", true).Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("deleted carol's login: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}
