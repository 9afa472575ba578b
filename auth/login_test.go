package auth

import (
	"errors"
	"testing"
)

// Login's SCRAM client against ServerExchange: the right password
// authenticates and verifies the server; a server that does not know the
// credential (a decoy) fails the login.
func TestLoginAgainstServerExchange(t *testing.T) {
	cred, err := NewCredential(ScramSHA256, "pw", MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	creds := memCreds{"alice": cred}
	for _, tc := range []struct {
		user, password string
		ok             bool
	}{{"alice", "pw", true}, {"alice", "nope", false}, {"bob", "pw", false}} {
		srv, err := NewServerExchange(ScramSHA256, creds, []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		err = Login(ScramSHA256, tc.user, tc.password, srv.Step)
		if (err == nil) != tc.ok {
			t.Errorf("%s/%s: %v", tc.user, tc.password, err)
		}
		if !tc.ok && !errors.Is(err, ErrAuthenticationFailed) {
			t.Errorf("%s/%s: %v, want ErrAuthenticationFailed", tc.user, tc.password, err)
		}
	}
}

// Broker credentials: every broker derives the same from the secret, a
// different secret does not log in, and names other than broker-<id>
// are not brokers.
func TestBrokerCredentials(t *testing.T) {
	secret := []byte("0123456789abcdef")
	login := func(serverSecret, clientSecret []byte, user string) error {
		srv, err := NewServerExchange(ScramSHA512, NewBrokerCredentials(serverSecret), serverSecret)
		if err != nil {
			t.Fatal(err)
		}
		return Login(BrokerMechanism, user, BrokerPassword(clientSecret), srv.Step)
	}
	if err := login(secret, secret, BrokerUser(3)); err != nil {
		t.Fatalf("same secret: %v", err)
	}
	if err := login(secret, []byte("fedcba9876543210"), BrokerUser(3)); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("other secret: %v", err)
	}
	if err := login(secret, secret, "alice"); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("a user that is not a broker: %v", err)
	}
	for name, ok := range map[string]bool{"broker-0": true, "broker-12": true, "broker-": false, "broker-012": false, "broker--1": false, "broker-x": false, "admin": false} {
		if p, got := BrokerPrincipal(name); got != ok || (ok && p.Type != PrincipalBroker) {
			t.Errorf("BrokerPrincipal(%q) = %v, %v", name, p, got)
		}
	}
}

// A rotation of the cluster secret: a broker accepting old and new takes
// a login with either, named by its SecretID, and a name without one with
// its first secret; a broker that accepts only new refuses a login named
// with old. At every step of the procedure (accept both logging in with
// old; accept both logging in with new; new only) each pair of brokers
// accepts the login of the other.
func TestBrokerCredentialsRotation(t *testing.T) {
	oldS, newS := []byte("old secret 0123456789"), []byte("new secret 0123456789")
	type broker struct{ secrets [][]byte }
	login := func(server, client broker, id int32) error {
		creds := NewBrokerCredentials(server.secrets[0], server.secrets[1:]...)
		srv, err := NewServerExchange(ScramSHA512, creds, server.secrets[0])
		if err != nil {
			t.Fatal(err)
		}
		user := BrokerLoginUser(id, client.secrets[0], len(client.secrets) > 1)
		err = Login(BrokerMechanism, user, BrokerPassword(client.secrets[0]), srv.Step)
		if err == nil {
			if p, ok := srv.Principal(); !ok || p.Name != user {
				t.Fatalf("principal %v %v, want %s", p, ok, user)
			}
			if p, ok := BrokerPrincipal(user); !ok || p.Name != "7" {
				t.Fatalf("BrokerPrincipal(%q) = %v, %v", user, p, ok)
			}
		}
		return err
	}
	steps := [][]broker{
		{{[][]byte{oldS}}, {[][]byte{oldS, newS}}},
		{{[][]byte{oldS, newS}}, {[][]byte{newS, oldS}}},
		{{[][]byte{newS, oldS}}, {[][]byte{newS}}},
	}
	for i, step := range steps {
		for _, pair := range [][2]broker{{step[0], step[1]}, {step[1], step[0]}} {
			if err := login(pair[0], pair[1], 7); err != nil {
				t.Errorf("step %d: server %q, client %q: %v", i+1, pair[0].secrets, pair[1].secrets, err)
			}
		}
	}
	// Skipping a step fails: a broker logging in with old (named) to one
	// that dropped it, and one with new alone to one that has only old.
	for _, pair := range [][2]broker{{{[][]byte{newS}}, {[][]byte{oldS, newS}}}, {{[][]byte{oldS}}, {[][]byte{newS}}}} {
		if err := login(pair[0], pair[1], 7); !errors.Is(err, ErrAuthenticationFailed) {
			t.Errorf("server %q, client %q: %v, want refused", pair[0].secrets, pair[1].secrets, err)
		}
	}
	for name, ok := range map[string]bool{"broker-1." + SecretID(oldS): true, "operator." + SecretID(newS): true,
		"broker-1.": false, "broker-1.xyz": false, "broker-1.0123456789": false, "broker-1.zzzzzzzz": false} {
		if _, got := BrokerPrincipal(name); got != ok {
			t.Errorf("BrokerPrincipal(%q) = %v", name, got)
		}
	}
}

type memCreds map[string]Credential

func (m memCreds) Credential(user string, mech Mechanism) (Credential, bool) {
	c, ok := m[user]
	return c, ok && c.Mechanism == mech
}
