package auth

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }
func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }

func derivedSince(before uint64) uint64 { return Derivations() - before }

func mustVerify(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
}

// A cached login derives nothing; a changed password, a deleted user and
// an expired entry each derive again at once; a wrong password is never
// answered from the cache.
func TestLoginCache(t *testing.T) {
	s := store{}
	s.add(t, "alice", "pw1", ScramSHA512)
	clk := newFakeClock()
	c := NewLoginCache(time.Minute, 8, clk.now)

	before := Derivations()
	p, err := c.Verify(s, "alice", "pw1", secret)
	mustVerify(t, err)
	if p != User("alice") {
		t.Fatalf("principal %v", p)
	}
	if n := derivedSince(before); n != 1 {
		t.Fatalf("first login derived %d times, want 1", n)
	}
	before = Derivations()
	for range 5 {
		_, err := c.Verify(s, "alice", "pw1", secret)
		mustVerify(t, err)
	}
	if n := derivedSince(before); n != 0 {
		t.Fatalf("cached logins derived %d times, want 0", n)
	}

	// A wrong password is checked (and refused) every time.
	before = Derivations()
	for range 2 {
		if _, err := c.Verify(s, "alice", "pw2", secret); !errors.Is(err, ErrAuthenticationFailed) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if n := derivedSince(before); n != 2 {
		t.Fatalf("wrong passwords derived %d times, want 2", n)
	}

	// The password changes: the old one fails at once, the new one logs in.
	s.add(t, "alice", "pw2", ScramSHA512)
	if _, err := c.Verify(s, "alice", "pw1", secret); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("old password after a change: %v", err)
	}
	_, err = c.Verify(s, "alice", "pw2", secret)
	mustVerify(t, err)

	// The user is deleted: refused at once.
	delete(s, "alice/"+string(ScramSHA512))
	if _, err := c.Verify(s, "alice", "pw2", secret); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("deleted user: %v", err)
	}

	// Past the TTL the password is derived again.
	s.add(t, "bob", "b", ScramSHA256)
	_, err = c.Verify(s, "bob", "b", secret)
	mustVerify(t, err)
	clk.add(time.Minute)
	before = Derivations()
	_, err = c.Verify(s, "bob", "b", secret)
	mustVerify(t, err)
	if n := derivedSince(before); n != 1 {
		t.Fatalf("login after the TTL derived %d times, want 1", n)
	}
}

// The cache never holds more than its bound, and an entry pushed out only
// costs a derivation.
func TestLoginCacheBounded(t *testing.T) {
	s := store{}
	const users = 20
	for i := range users {
		s.add(t, fmt.Sprintf("u%d", i), "pw", ScramSHA256)
	}
	clk := newFakeClock()
	c := NewLoginCache(time.Hour, 4, clk.now)
	for i := range users {
		_, err := c.Verify(s, fmt.Sprintf("u%d", i), "pw", secret)
		mustVerify(t, err)
		if c.Len() > 4 {
			t.Fatalf("%d entries, bound 4", c.Len())
		}
	}
	if c.Len() != 4 {
		t.Fatalf("%d entries, want 4", c.Len())
	}
	// Expired entries go before live ones.
	clk.add(2 * time.Hour)
	_, err := c.Verify(s, "u0", "pw", secret)
	mustVerify(t, err)
	if c.Len() != 1 {
		t.Fatalf("%d entries after the others expired, want 1", c.Len())
	}
}

// The cache keeps no password: its key is a digest under a random key, a
// different one per cache.
func TestLoginCacheKeepsNoPassword(t *testing.T) {
	a, b := NewLoginCache(0, 0, nil), NewLoginCache(0, 0, nil)
	ka, kb := a.keyOf("alice", "pw"), b.keyOf("alice", "pw")
	if ka.digest == kb.digest {
		t.Fatal("two caches digest a password alike: the key is not random")
	}
	if ka == a.keyOf("alice", "pw2") || ka == a.keyOf("alicep", "w") {
		t.Fatal("different logins share a key")
	}
}
