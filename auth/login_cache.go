package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

// LoginCache remembers successful password verifications (VerifyPlain) for
// a while, so a client that sends its password with every request (HTTP
// Basic: the web console polls every second, Prometheus scrapes) costs one
// PBKDF2 derivation per TTL instead of one per request.
//
// What it keeps, per entry: the user, an HMAC-SHA-256 of the password
// under a key made at random when the cache is made (never the password;
// the key never leaves the process), the StoredKey of the credential the
// password matched, and when the entry expires. An entry answers only
// while the user's current credential (looked up at every call) still has
// that StoredKey: a changed password (a new salt, so a new StoredKey) or
// a deleted user misses at the next call, without any notification. The
// cache holds at most Max entries; past that, an expired entry or else an
// arbitrary one is dropped.
//
// Only successes are cached: a wrong password derives every time, which
// is what the failed-login limits (LoginLimiter) are for.
//
// Safe for concurrent use.
type LoginCache struct {
	key [32]byte
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[loginKey]loginEntry
}

type loginKey struct {
	user   string
	digest [sha256.Size]byte
}

type loginEntry struct {
	mech      Mechanism
	storedKey []byte
	expires   time.Time
}

// Defaults of NewLoginCache.
const (
	DefaultLoginCacheTTL  = 5 * time.Minute
	DefaultLoginCacheSize = 1024
)

// NewLoginCache makes a cache whose entries live ttl (DefaultLoginCacheTTL
// when <= 0), at most max of them (DefaultLoginCacheSize when <= 0), with
// now the clock (time.Now when nil).
func NewLoginCache(ttl time.Duration, max int, now func() time.Time) *LoginCache {
	if ttl <= 0 {
		ttl = DefaultLoginCacheTTL
	}
	if max <= 0 {
		max = DefaultLoginCacheSize
	}
	if now == nil {
		now = time.Now
	}
	c := &LoginCache{ttl: ttl, max: max, now: now, entries: make(map[loginKey]loginEntry)}
	if _, err := rand.Read(c.key[:]); err != nil {
		panic("auth: no randomness for the login cache key: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return c
}

// Verify is VerifyPlain, answered from the cache when the same user gave
// the same password within the TTL and the user's credential has not
// changed since.
func (c *LoginCache) Verify(creds Credentials, user, password string, secret []byte) (Principal, error) {
	k := c.keyOf(user, password)
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		if cur, found := creds.Credential(user, e.mech); found && hmac.Equal(cur.StoredKey, e.storedKey) {
			return User(user), nil
		}
	}
	cred, err := verifyPlain(creds, user, password, secret)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.entries, k)
		return Principal{}, err
	}
	if _, present := c.entries[k]; !present && len(c.entries) >= c.max {
		c.evictLocked(now)
	}
	c.entries[k] = loginEntry{mech: cred.Mechanism, storedKey: cred.StoredKey, expires: now.Add(c.ttl)}
	return User(user), nil
}

// Len is the number of entries held.
func (c *LoginCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// keyOf is the entry key of a user and password: the password only as an
// HMAC under the cache's own key.
func (c *LoginCache) keyOf(user, password string) loginKey {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	k := loginKey{user: user}
	m.Sum(k.digest[:0])
	return k
}

// evictLocked makes room for one entry: every expired entry goes; when
// none had, an arbitrary one (Go's map order).
func (c *LoginCache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max {
			return
		}
		delete(c.entries, k)
	}
}
