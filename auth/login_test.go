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

type memCreds map[string]Credential

func (m memCreds) Credential(user string, mech Mechanism) (Credential, bool) {
	c, ok := m[user]
	return c, ok && c.Mechanism == mech
}
