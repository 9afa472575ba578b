package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// librdkafka2Final is the client-final message librdkafka 2.0 sends: its
// own nonce, then the server's whole nonce, signed as sent.
func librdkafka2Final(t *testing.T, clientFirst, serverFirst, password string) string {
	t.Helper()
	attrs := map[string]string{}
	for _, kv := range strings.Split(serverFirst, ",") {
		attrs[kv[:1]] = kv[2:]
	}
	salt, _ := base64.StdEncoding.DecodeString(attrs["s"])
	cnonce := strings.TrimPrefix(clientFirst[strings.Index(clientFirst, ",r=")+1:], "r=")
	withoutProof := "c=biws,r=" + cnonce + attrs["r"]
	salted, err := pbkdf2.Key(sha512.New, password, salt, 4096, 64)
	if err != nil {
		t.Fatal(err)
	}
	clientKey := mac(sha512.New, salted, "Client Key")
	h := sha512.Sum512(clientKey)
	sig := mac(sha512.New, h[:], clientFirst[3:]+","+serverFirst+","+withoutProof)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey)
}

// Kafka's lenient nonce check (the client's nonce may precede the
// server's): the right password authenticates and the server signature
// verifies; a wrong password, an unknown user and a replay on a new
// exchange fail.
func TestSCRAMLibrdkafkaNonce(t *testing.T) {
	cred, err := NewCredential(ScramSHA512, "pw", 4096)
	if err != nil {
		t.Fatal(err)
	}
	creds := memCreds{"alice": cred}
	run := func(user, password string, replay string) (string, error) {
		srv, err := NewServerExchange(ScramSHA512, creds, []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		first := "n,,n=" + user + ",r=abc~|]>def"
		sf, err := srv.Step([]byte(first))
		if err != nil {
			t.Fatal(err)
		}
		final := replay
		if final == "" {
			final = librdkafka2Final(t, first, string(sf), password)
		}
		out, err := srv.Step([]byte(final))
		if err == nil {
			if p, ok := srv.Principal(); !ok || p != User(user) {
				t.Fatalf("principal %v %v", p, ok)
			}
			// The server's signature is the one the client expects.
			salted, _ := pbkdf2.Key(sha512.New, password, cred.Salt, 4096, 64)
			serverKey := mac(sha512.New, salted, "Server Key")
			withoutProof := final[:strings.Index(final, ",p=")]
			want := "v=" + base64.StdEncoding.EncodeToString(mac(sha512.New, serverKey, first[3:]+","+string(sf)+","+withoutProof))
			if !hmac.Equal(out, []byte(want)) {
				t.Fatalf("server signature %q, want %q", out, want)
			}
		}
		return final, err
	}
	final, err := run("alice", "pw", "")
	if err != nil {
		t.Fatalf("librdkafka's nonce with the right password: %v", err)
	}
	for what, f := range map[string]func() error{
		"wrong password": func() error { _, err := run("alice", "nope", ""); return err },
		"unknown user":   func() error { _, err := run("bob", "pw", ""); return err },
		"replay":         func() error { _, err := run("alice", "pw", final); return err },
	} {
		if err := f(); !errors.Is(err, ErrAuthenticationFailed) {
			t.Errorf("%s: %v, want ErrAuthenticationFailed", what, err)
		}
	}
}

// FuzzCompatFinal feeds final messages that carry the server's nonce
// after arbitrary bytes (the lenient path) with arbitrary attributes and
// proofs: none may authenticate without the password, none may panic.
func FuzzCompatFinal(f *testing.F) {
	cred, err := NewCredential(ScramSHA256, "pw", MinIterations)
	if err != nil {
		f.Fatal(err)
	}
	creds := memCreds{"alice": cred}
	f.Add([]byte("n,,n=alice,r=abc"), []byte("abc"), []byte("c=biws"), []byte(",p=AAAA"))
	f.Add([]byte("n,,n=alice,r=abc"), []byte("x"), []byte("c=biws"), []byte(",e=1,p="+strings.Repeat("A", 44)))
	f.Add([]byte("n,a=alice,n=alice,r=abc"), []byte("abc"), []byte("c=bixhbGljZSw="), []byte(",p=!!"))
	f.Fuzz(func(t *testing.T, first, prefix, cbind, rest []byte) {
		srv, err := NewServerExchange(ScramSHA256, creds, []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		sf, err := srv.Step(first)
		if err != nil {
			return
		}
		nonce, _, _ := strings.Cut(strings.TrimPrefix(string(sf), "r="), ",")
		final := string(cbind) + ",r=" + string(prefix) + nonce + string(rest)
		if _, err := srv.Step([]byte(final)); err == nil {
			t.Fatalf("authenticated without the password: %q then %q", first, final)
		}
		if _, ok := srv.Principal(); ok {
			t.Fatal("principal after a failed exchange")
		}
	})
}
