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
