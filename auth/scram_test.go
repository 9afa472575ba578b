package auth

import (
	"bytes"
	"crypto/pbkdf2"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// store is an in-memory Credentials.
type store map[string]Credential

func (s store) Credential(user string, m Mechanism) (Credential, bool) {
	c, ok := s[user+"/"+string(m)]
	return c, ok
}

func (s store) add(t *testing.T, user, password string, m Mechanism) {
	t.Helper()
	c, err := NewCredential(m, password, MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s[user+"/"+string(m)] = c
}

var secret = []byte("broker secret for decoys")

// exchange runs a whole SCRAM exchange and returns the server's verdict
// and the messages the client sent.
func exchange(t *testing.T, s store, m Mechanism, user, password string) (Principal, []string, error) {
	t.Helper()
	srv, err := NewServerExchange(m, s, secret)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewClientExchange(m, user, password)
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	var challenge []byte
	for !srv.Done() {
		msg, err := cli.Step(challenge)
		if err != nil {
			return Principal{}, sent, err
		}
		sent = append(sent, string(msg))
		challenge, err = srv.Step(msg)
		if err != nil {
			return Principal{}, sent, err
		}
	}
	if _, err := cli.Step(challenge); err != nil || !cli.Valid() {
		t.Fatalf("client did not verify the server: %v", err)
	}
	p, ok := srv.Principal()
	if !ok {
		t.Fatal("exchange done without error but no principal")
	}
	return p, sent, nil
}

func TestScramExchange(t *testing.T) {
	for _, m := range []Mechanism{ScramSHA256, ScramSHA512} {
		t.Run(string(m), func(t *testing.T) {
			s := store{}
			s.add(t, "alice", "s3cret", m)
			p, _, err := exchange(t, s, m, "alice", "s3cret")
			if err != nil || p != User("alice") {
				t.Fatalf("good password: %v, %v", p, err)
			}
			_, wrongSent, err := exchange(t, s, m, "alice", "guess")
			if !errors.Is(err, ErrAuthenticationFailed) {
				t.Fatalf("wrong password: %v", err)
			}
			// An unknown user fails at the same step, with the same
			// client-visible error, as a wrong password.
			_, unknownSent, err2 := exchange(t, s, m, "nobody", "guess")
			if !errors.Is(err2, ErrAuthenticationFailed) {
				t.Fatalf("unknown user: %v", err2)
			}
			if len(unknownSent) != len(wrongSent) {
				t.Fatalf("unknown user failed after %d messages, wrong password after %d", len(unknownSent), len(wrongSent))
			}
			if !strings.HasPrefix(err.Error(), ErrAuthenticationFailed.Error()) {
				t.Fatalf("error %q does not lead with the generic text", err)
			}
			// The made-up salt of an unknown user is stable (a salt
			// that changed per attempt would tell).
			if !bytes.Equal(decoyCredential(m, "nobody", secret).Salt, decoyCredential(m, "nobody", secret).Salt) {
				t.Fatal("decoy salt not stable")
			}
			// The mechanism the user has no credential for fails too.
			other := ScramSHA512
			if m == ScramSHA512 {
				other = ScramSHA256
			}
			if _, _, err := exchange(t, s, other, "alice", "s3cret"); !errors.Is(err, ErrAuthenticationFailed) {
				t.Fatalf("mechanism without a credential: %v", err)
			}
		})
	}
}

// A captured client-final message replayed on a new exchange fails: the
// server's nonce differs.
func TestScramReplayFails(t *testing.T) {
	s := store{}
	s.add(t, "alice", "s3cret", ScramSHA256)
	_, sent, err := exchange(t, s, ScramSHA256, "alice", "s3cret")
	if err != nil || len(sent) != 2 {
		t.Fatalf("exchange: %v, %d messages", err, len(sent))
	}
	srv, _ := NewServerExchange(ScramSHA256, s, secret)
	if _, err := srv.Step([]byte(sent[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Step([]byte(sent[1])); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("replayed final message: %v", err)
	}
	if _, ok := srv.Principal(); ok {
		t.Fatal("replay authenticated")
	}
	if _, err := srv.Step([]byte(sent[1])); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("step after the end: %v", err)
	}
}

func TestScramRefusesMalformedAndOversizedMessages(t *testing.T) {
	s := store{}
	s.add(t, "alice", "s3cret", ScramSHA256)
	for _, msg := range [][]byte{nil, []byte("n,,"), []byte("garbage"), []byte("n,,n=alice"), []byte("p=tls-unique,,n=alice,r=abc"),
		bytes.Repeat([]byte("a"), MaxSASLMessage+1)} {
		srv, _ := NewServerExchange(ScramSHA256, s, secret)
		if _, err := srv.Step(msg); !errors.Is(err, ErrAuthenticationFailed) {
			t.Errorf("%.40q: %v, want ErrAuthenticationFailed", msg, err)
		}
		if !srv.Done() {
			t.Errorf("%.40q: exchange not over after an error", msg)
		}
	}
	// A truncated final message.
	srv, _ := NewServerExchange(ScramSHA256, s, secret)
	cli, _ := NewClientExchange(ScramSHA256, "alice", "s3cret")
	first, _ := cli.Step(nil)
	challenge, err := srv.Step(first)
	if err != nil {
		t.Fatal(err)
	}
	final, _ := cli.Step(challenge)
	if _, err := srv.Step(final[:len(final)/2]); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("truncated final: %v", err)
	}
	if _, err := NewServerExchange("SCRAM-SHA-1", s, secret); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("SCRAM-SHA-1: %v", err)
	}
}

func TestCredentialValidation(t *testing.T) {
	if _, err := NewCredential(ScramSHA256, "pw", MinIterations-1); !errors.Is(err, ErrBadCredential) {
		t.Errorf("too few iterations: %v", err)
	}
	if _, err := NewCredential(Plain, "pw", MinIterations); !errors.Is(err, ErrBadCredential) {
		t.Errorf("PLAIN credential: %v", err)
	}
	if _, err := NewCredential(ScramSHA256, "", MinIterations); !errors.Is(err, ErrBadCredential) {
		t.Errorf("empty password: %v", err)
	}
	a, _ := NewCredential(ScramSHA256, "pw", MinIterations)
	b, _ := NewCredential(ScramSHA256, "pw", MinIterations)
	if bytes.Equal(a.Salt, b.Salt) || bytes.Equal(a.StoredKey, b.StoredKey) {
		t.Error("two credentials for one password share a salt")
	}
	bad := a
	bad.StoredKey = bad.StoredKey[:5]
	if err := bad.Validate(); !errors.Is(err, ErrBadCredential) {
		t.Errorf("short key: %v", err)
	}
}

func TestPlain(t *testing.T) {
	s := store{}
	s.add(t, "alice", "s3cret", ScramSHA512)
	user, pw, err := ParsePlain([]byte("\x00alice\x00s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := VerifyPlain(s, user, pw, secret); err != nil || p != User("alice") {
		t.Fatalf("good password: %v, %v", p, err)
	}
	if _, err := VerifyPlain(s, "alice", "nope", secret); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := VerifyPlain(s, "bob", "nope", secret); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("unknown user: %v", err)
	}
	for _, msg := range []string{"alice\x00s3cret", "\x00\x00pw", "bob\x00alice\x00s3cret", "\x00alice\x00"} {
		if _, _, err := ParsePlain([]byte(msg)); !errors.Is(err, ErrAuthenticationFailed) {
			t.Errorf("%q: %v", msg, err)
		}
	}
}

// FuzzServerExchange feeds arbitrary client messages to the server side:
// never a panic, and never a principal without the password.
func FuzzServerExchange(f *testing.F) {
	s := store{}
	c, err := NewCredential(ScramSHA256, "s3cret", MinIterations)
	if err != nil {
		f.Fatal(err)
	}
	s["alice/"+string(ScramSHA256)] = c
	f.Add([]byte("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"), []byte("c=biws,r=x,p=dHpbWhY="))
	f.Add([]byte("n,a=bob,n=alice,r=abc"), []byte(""))
	f.Add([]byte("y,,n=a=3Dlice,r=abc"), []byte("c=eSws,r=abc,p=AAAA"))
	f.Fuzz(func(t *testing.T, first, final []byte) {
		srv, err := NewServerExchange(ScramSHA256, s, secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Step(first); err != nil {
			return
		}
		if _, err := srv.Step(final); err == nil {
			t.Fatalf("authenticated without the password: %q %q", first, final)
		}
		if _, ok := srv.Principal(); ok {
			t.Fatal("principal after a failed exchange")
		}
	})
}

// A credential from a salted password (Kafka's AlterUserScramCredentials
// form) equals the one derived from the password; a salted password of
// the wrong size, too few iterations or no salt is refused.
func TestCredentialFromSaltedPassword(t *testing.T) {
	salt := []byte("0123456789abcdef")
	for _, m := range []Mechanism{ScramSHA256, ScramSHA512} {
		newHash := hashOf(m)
		salted, err := pbkdf2.Key(newHash, "s3cret", salt, MinIterations, keySize(m))
		if err != nil {
			t.Fatal(err)
		}
		want, err := deriveCredential(m, "s3cret", salt, MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		got, err := CredentialFromSaltedPassword(m, salt, salted, MinIterations)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %+v %v, want %+v", m, got, err, want)
		}
		for name, bad := range map[string]func() error{
			"short salted password": func() error { _, err := CredentialFromSaltedPassword(m, salt, salted[1:], MinIterations); return err },
			"few iterations":        func() error { _, err := CredentialFromSaltedPassword(m, salt, salted, MinIterations-1); return err },
			"no salt":               func() error { _, err := CredentialFromSaltedPassword(m, nil, salted, MinIterations); return err },
			"mechanism":             func() error { _, err := CredentialFromSaltedPassword("PLAIN", salt, salted, MinIterations); return err },
		} {
			if err := bad(); !errors.Is(err, ErrBadCredential) {
				t.Errorf("%s %s: %v, want ErrBadCredential", m, name, err)
			}
		}
	}
}
