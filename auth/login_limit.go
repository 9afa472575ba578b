package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// LoginLimiter throttles failed logins per key (a remote address, a user
// name): a key may fail Free times, then each further failure makes it
// wait, Base after the first, doubling up to Max. A key's failures are
// forgotten Forget after its last one. Successes reset nothing: an
// attacker holding one valid account must not be able to wipe its
// address's record by logging in with it between guesses.
//
// It keeps at most MaxKeys keys, each of at most maxKeyLen bytes (a
// longer key, a user name a client made up, is kept as its SHA-256). When
// full, keys whose failures are
// forgotten go first; then the key whose last failure is oldest, so an
// attacker who sprays many keys pushes out the quietest records, not the
// ones that are waiting. A full sweep costs O(MaxKeys), once per eviction.
//
// Safe for concurrent use.
type LoginLimiter struct {
	free    int
	base    time.Duration
	max     time.Duration
	forget  time.Duration
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	n     int       // failures since the record began
	last  time.Time // the latest failure
	until time.Time // no attempt before this
}

// LoginLimits configures a LoginLimiter; a zero field takes the default
// named beside it.
type LoginLimits struct {
	Free    int              // failures allowed before any wait (5)
	Base    time.Duration    // the first wait (1s)
	Max     time.Duration    // the longest wait (1m)
	Forget  time.Duration    // quiet time after which failures are forgotten (15m)
	MaxKeys int              // keys tracked at most (10000)
	Now     func() time.Time // the clock (time.Now)
}

// NewLoginLimiter makes a limiter with the limits l.
func NewLoginLimiter(l LoginLimits) *LoginLimiter {
	def := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	ll := &LoginLimiter{free: l.Free, base: def(l.Base, time.Second), max: def(l.Max, time.Minute),
		forget: def(l.Forget, 15*time.Minute), maxKeys: l.MaxKeys, now: l.Now, keys: make(map[string]*failures)}
	if ll.free <= 0 {
		ll.free = 5
	}
	if ll.maxKeys <= 0 {
		ll.maxKeys = 10000
	}
	if ll.now == nil {
		ll.now = time.Now
	}
	return ll
}

// maxKeyLen bounds the bytes a key holds in memory.
const maxKeyLen = 64

// keyOf is key, or its SHA-256 when longer than maxKeyLen.
func keyOf(key string) string {
	if len(key) <= maxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + string(sum[:])
}

// Wait is how long key must wait before its next attempt; 0 lets it try.
func (l *LoginLimiter) Wait(key string) time.Duration {
	key = keyOf(key)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.keys[key]
	if !ok {
		return 0
	}
	if now.Sub(f.last) >= l.forget {
		delete(l.keys, key)
		return 0
	}
	if d := f.until.Sub(now); d > 0 {
		return d
	}
	return 0
}

// Failed records a failed attempt of key and returns the wait it now has
// (0 while it has failures to spare).
func (l *LoginLimiter) Failed(key string) time.Duration {
	key = keyOf(key)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.keys[key]
	if ok && now.Sub(f.last) >= l.forget {
		*f = failures{}
	}
	if !ok {
		if len(l.keys) >= l.maxKeys {
			l.evictLocked(now)
		}
		f = &failures{}
		l.keys[key] = f
	}
	f.n++
	f.last = now
	if over := f.n - l.free; over > 0 {
		wait := l.max
		if over <= 32 && l.base<<(over-1) < l.max && l.base<<(over-1) > 0 {
			wait = l.base << (over - 1)
		}
		f.until = now.Add(wait)
		return wait
	}
	return 0
}

// Len is the number of keys tracked.
func (l *LoginLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// evictLocked makes room for one key: forgotten keys go; when none was,
// the key whose last failure is oldest.
func (l *LoginLimiter) evictLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	found := false
	for k, f := range l.keys {
		if now.Sub(f.last) >= l.forget {
			delete(l.keys, k)
			continue
		}
		if !found || f.last.Before(oldestAt) {
			oldest, oldestAt, found = k, f.last, true
		}
	}
	if len(l.keys) >= l.maxKeys {
		delete(l.keys, oldest)
	}
}

// LogSampler bounds a repeated log line to one per interval: Allow says
// whether to log now and how many were left out since the last line. The
// zero value is ready; safe for concurrent use.
type LogSampler struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether a line may be logged at now, at most one per
// every, and how many calls were refused since the last line.
func (s *LogSampler) Allow(now time.Time, every time.Duration) (suppressed int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.last.IsZero() && now.Sub(s.last) < every {
		s.suppressed++
		return 0, false
	}
	s.last = now
	suppressed, s.suppressed = s.suppressed, 0
	return suppressed, true
}
