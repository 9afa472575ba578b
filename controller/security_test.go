package controller

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sluicemq/sluice/auth"
)

func TestSecurityCommands(t *testing.T) {
	m := twoBrokers(t)
	cred, err := auth.NewCredential(auth.ScramSHA512, "s3cret", auth.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	m1, _ := applyChecked(t, m, UpsertCredential{User: "alice", Credential: cred})
	m2, _ := applyChecked(t, m1, UpsertCredential{User: "alice", Credential: sampleCredential})
	if got := m2.Users["alice"]; len(got) != 2 || !bytes.Equal(got[auth.ScramSHA512].StoredKey, cred.StoredKey) {
		t.Fatalf("alice's credentials: %v", got)
	}
	if len(m1.Users["alice"]) != 1 {
		t.Fatal("an upsert modified the earlier metadata's user")
	}
	m3, _ := applyChecked(t, m2, DeleteCredential{User: "alice", Mechanism: auth.ScramSHA512})
	m4, _ := applyChecked(t, m3, DeleteCredential{User: "alice", Mechanism: auth.ScramSHA256})
	if len(m3.Users["alice"]) != 1 || len(m4.Users) != 0 || len(m4.UserNames()) != 0 {
		t.Fatalf("after deletes: %v then %v", m3.Users, m4.Users)
	}

	deny := sampleACL
	deny.Permission = auth.Deny
	m5, _ := applyChecked(t, m4, CreateACLs{ACLs: []auth.ACL{sampleACL, deny, sampleACL}})
	if len(m5.ACLs) != 2 {
		t.Fatalf("ACLs %v, want 2 (one given twice)", m5.ACLs)
	}
	m6, _ := applyChecked(t, m5, CreateACLs{ACLs: []auth.ACL{sampleACL}})
	if len(m6.ACLs) != 2 {
		t.Fatalf("creating an existing ACL again: %v", m6.ACLs)
	}
	matched := m6.MatchingACLs(auth.Filter{Permission: auth.Deny})
	if len(matched) != 1 || matched[0] != deny {
		t.Fatalf("filter matched %v", matched)
	}
	m7, _ := applyChecked(t, m6, DeleteACLs{ACLs: matched})
	if len(m7.ACLs) != 1 || m7.ACLs[0] != sampleACL || len(m6.ACLs) != 2 {
		t.Fatalf("after delete: %v (before: %v)", m7.ACLs, m6.ACLs)
	}

	// The snapshot keeps users and ACLs, and one metadata encodes one way.
	m8, _ := applyChecked(t, m7, UpsertCredential{User: "bob", Credential: cred})
	got, index, err := decodeSnapshot(encodeSnapshot(m8, 42))
	if err != nil || index != 42 || !bytes.Equal(appendMetadata(nil, got), appendMetadata(nil, m8)) {
		t.Fatalf("snapshot round trip: %v", err)
	}
	if len(got.Users["bob"]) != 1 || len(got.ACLs) != 1 {
		t.Fatalf("restored users %v, ACLs %v", got.Users, got.ACLs)
	}
	clone := m8.Clone()
	clone.Users["bob"][auth.ScramSHA512].StoredKey[0] ^= 0xff
	if m8.Users["bob"][auth.ScramSHA512].StoredKey[0] == clone.Users["bob"][auth.ScramSHA512].StoredKey[0] {
		t.Fatal("Clone shares credential bytes")
	}

	for _, tc := range []struct {
		name string
		cmd  Command
		err  error
	}{
		{"empty user", UpsertCredential{User: "", Credential: cred}, ErrInvalidCredential},
		{"comma in user", UpsertCredential{User: "a,b", Credential: cred}, ErrInvalidCredential},
		{"short key", UpsertCredential{User: "carol", Credential: auth.Credential{Mechanism: auth.ScramSHA256, Salt: []byte("s"), Iterations: 4096, StoredKey: []byte{1}, ServerKey: []byte{2}}}, ErrInvalidCredential},
		{"few iterations", UpsertCredential{User: "carol", Credential: auth.Credential{Mechanism: auth.ScramSHA256, Salt: []byte("s"), Iterations: 10, StoredKey: make([]byte, 32), ServerKey: make([]byte, 32)}}, ErrInvalidCredential},
		{"unknown user", DeleteCredential{User: "zed", Mechanism: auth.ScramSHA256}, ErrUnknownUser},
		{"mechanism the user lacks", DeleteCredential{User: "bob", Mechanism: auth.ScramSHA256}, ErrUnknownUser},
		{"bad ACL", CreateACLs{ACLs: []auth.ACL{{Principal: "alice", Host: "*", Resource: auth.ResourceTopic, Name: "t", Pattern: auth.PatternLiteral, Op: auth.OpRead, Permission: auth.Allow}}}, ErrInvalidACL},
	} {
		if next, _, err := Apply(m8, tc.cmd); !errors.Is(err, tc.err) || next != m8 {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}

	// A snapshot with its ACLs out of canonical order is refused.
	bad := m8.Clone()
	bad.ACLs = []auth.ACL{sampleACL, deny}
	if compareACL(bad.ACLs[0], bad.ACLs[1]) < 0 {
		bad.ACLs[0], bad.ACLs[1] = bad.ACLs[1], bad.ACLs[0]
	}
	if _, _, err := decodeSnapshot(encodeSnapshot(bad, 1)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ACLs out of order: %v, want ErrCorrupt", err)
	}
}

// The forwarded error table carries the security errors, so a broker that
// forwarded a write can still branch on them.
func TestSecurityErrorsCrossAForward(t *testing.T) {
	for _, e := range []error{ErrInvalidCredential, ErrUnknownUser, ErrInvalidACL} {
		d := &decoder{b: appendError(nil, e)}
		if got := d.error(); !errors.Is(got, e) {
			t.Errorf("%v came back as %v", e, got)
		}
	}
}
