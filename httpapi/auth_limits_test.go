package httpapi_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/httpapi"
	"github.com/sluicemq/sluice/internal/poll"
)

// A login the broker verified is answered from its cache: repeating it
// derives nothing (auth.Derivations counts PBKDF2 runs), while a changed
// password and a deleted user are refused as soon as the broker's
// metadata has the change.
func TestHTTPLoginCache(t *testing.T) {
	h := startSecureHTTP(t, httpapi.FailedLoginLimits{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	get := func(user, password string) int {
		t.Helper()
		return h.do(t, h.plain, "GET", "/api/topics", user, password, nil).status
	}
	if s := get("alice", "alice-pw"); s != http.StatusOK {
		t.Fatalf("alice: %d", s)
	}
	before := auth.Derivations()
	for range 10 {
		if s := get("alice", "alice-pw"); s != http.StatusOK {
			t.Fatalf("alice again: %d", s)
		}
	}
	if n := auth.Derivations() - before; n != 0 {
		t.Fatalf("10 repeated logins derived %d times, want 0 (cached)", n)
	}
	// A wrong password is derived (and refused) each time.
	before = auth.Derivations()
	if s := get("alice", "wrong"); s != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", s)
	}
	if n := auth.Derivations() - before; n != 1 {
		t.Fatalf("a wrong password derived %d times, want 1", n)
	}

	// The password changes: the old one is refused at once.
	old := string(h.b.Metadata().Users["alice"][auth.ScramSHA512].StoredKey)
	if err := h.op.UpsertUser(ctx, "alice", "alice-new", auth.ScramSHA512, 0); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the new credential in the broker's metadata", func() bool {
		return string(h.b.Metadata().Users["alice"][auth.ScramSHA512].StoredKey) != old
	})
	if s := get("alice", "alice-pw"); s != http.StatusUnauthorized {
		t.Fatalf("the old password after a change: %d, want 401", s)
	}
	if s := get("alice", "alice-new"); s != http.StatusOK {
		t.Fatalf("the new password: %d", s)
	}
	// The user is deleted: refused at once.
	if err := h.op.DeleteUser(ctx, "alice", auth.ScramSHA512); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "alice gone from the broker's metadata", func() bool { return len(h.b.Metadata().Users["alice"]) == 0 })
	if s := get("alice", "alice-new"); s != http.StatusUnauthorized {
		t.Fatalf("a deleted user: %d, want 401", s)
	}
}

// Failed logins are limited per remote address and per user name: past
// the free failures, the address (or name) is answered 429 with
// Retry-After before its password is checked, whether the password is
// right, the user exists or not, while other addresses and users still
// log in.
func TestHTTPFailedLoginLimits(t *testing.T) {
	h := startSecureHTTP(t, httpapi.FailedLoginLimits{
		ByAddress: auth.LoginLimits{Free: 3, Base: time.Hour, Max: time.Hour},
		ByUser:    auth.LoginLimits{Free: 6, Base: time.Hour, Max: time.Hour},
	})
	from := func(ip string) *http.Client {
		return h.httpClient(t, &net.TCPAddr{IP: net.ParseIP(ip)})
	}
	a, b := from("127.0.0.1"), from("127.0.0.2")
	get := func(hc *http.Client, user, password string) answer {
		t.Helper()
		return h.do(t, hc, "GET", "/api/topics", user, password, nil)
	}
	// Three free failures and a fourth that starts the wait.
	for i := range 4 {
		if s := get(a, "alice", "wrong").status; s != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, s)
		}
	}
	before := auth.Derivations()
	var first answer
	for i, cred := range [][2]string{{"alice", "wrong"}, {"alice", "alice-pw"}, {"nobody", "x"}} {
		got := get(a, cred[0], cred[1])
		if got.status != http.StatusTooManyRequests || got.header.Get("Retry-After") != "3600" {
			t.Fatalf("%s/%s from a throttled address: %d Retry-After %q, want 429 and 3600", cred[0], cred[1], got.status, got.header.Get("Retry-After"))
		}
		if i == 0 {
			first = got
		} else if got.body != first.body {
			t.Fatalf("429 bodies differ: %q and %q", first.body, got.body)
		}
	}
	if n := auth.Derivations() - before; n != 0 {
		t.Fatalf("throttled logins derived %d times, want 0", n)
	}
	// One warning (rate-limited) with the address.
	warned := h.logs.FilterMessage("http logins throttled after failures").All()
	if len(warned) != 1 || warned[0].ContextMap()["remote"] != "127.0.0.1" {
		t.Fatalf("throttle warnings: %v, want one naming 127.0.0.1", warned)
	}
	// Another address logs in.
	if s := get(b, "alice", "alice-pw").status; s != http.StatusOK {
		t.Fatalf("alice from another address: %d, want 200", s)
	}

	// bob's name fails from two more addresses, three times each (free
	// per address): six failures of the name, and a seventh.
	for _, ip := range []string{"127.0.0.3", "127.0.0.4"} {
		hc := from(ip)
		for range 3 {
			if s := get(hc, "bob", "wrong").status; s != http.StatusUnauthorized {
				t.Fatalf("bob from %s: %d, want 401", ip, s)
			}
		}
	}
	if s := get(from("127.0.0.5"), "bob", "wrong").status; s != http.StatusUnauthorized {
		t.Fatalf("bob's seventh failure: %d, want 401", s)
	}
	c := from("127.0.0.6")
	if s := get(c, "bob", "bob-pw").status; s != http.StatusTooManyRequests {
		t.Fatalf("bob, throttled by name, from a fresh address: %d, want 429", s)
	}
	if s := get(c, "alice", "alice-pw").status; s != http.StatusOK {
		t.Fatalf("alice from the same fresh address: %d, want 200", s)
	}
}
