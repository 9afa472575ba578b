package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/xdg-go/scram"
)

// Mechanism is a SASL mechanism name as clients send it.
type Mechanism string

// The SASL mechanisms sluice accepts. PLAIN is accepted only over TLS.
const (
	ScramSHA256 Mechanism = "SCRAM-SHA-256"
	ScramSHA512 Mechanism = "SCRAM-SHA-512"
	Plain       Mechanism = "PLAIN"
)

// Bounds on SCRAM credentials and exchanges.
const (
	// MinIterations is the fewest PBKDF2 iterations a credential may have
	// (RFC 7677's floor, and Kafka's).
	MinIterations = 4096
	// MaxIterations bounds the work a credential asks of a client.
	MaxIterations = 1 << 20
	// DefaultIterations is what `sluice user create` uses.
	DefaultIterations = 8192
	// MaxSASLMessage is the longest SASL message a server accepts; longer
	// is refused before anything parses it.
	MaxSASLMessage = 8 << 10
	saltBytes      = 32
)

// ErrAuthenticationFailed matches (errors.Is) every failed authentication.
// Its text is what a client may be told: it does not say whether the user
// exists or which step failed. The wrapped detail is for the broker's log.
var ErrAuthenticationFailed = errors.New("authentication failed: unknown user, wrong password or unsupported mechanism")

// ErrBadCredential matches the error of creating or decoding an invalid
// credential (mechanism, iterations, key sizes).
var ErrBadCredential = errors.New("bad SCRAM credential")

// hashFor returns the mechanism's hash, or false for one that is not SCRAM.
func hashFor(m Mechanism) (scram.HashGeneratorFcn, bool) {
	switch m {
	case ScramSHA256:
		return scram.SHA256, true
	case ScramSHA512:
		return scram.SHA512, true
	}
	return nil, false
}

// keySize is the length of the mechanism's StoredKey and ServerKey.
func keySize(m Mechanism) int {
	if m == ScramSHA512 {
		return 64
	}
	return 32
}

// Credential is what the cluster stores for one user and mechanism:
// never the password (RFC 5802 section 3).
type Credential struct {
	Mechanism  Mechanism
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// NewCredential derives the stored credential for password with a fresh
// random salt.
func NewCredential(m Mechanism, password string, iterations int) (Credential, error) {
	if password == "" {
		return Credential{}, fmt.Errorf("%w: empty password", ErrBadCredential)
	}
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return Credential{}, fmt.Errorf("scram salt: %w", err)
	}
	return deriveCredential(m, password, salt, iterations)
}

// derivations counts PBKDF2 derivations (Derivations).
var derivations atomic.Uint64

// Derivations is how many times this process has derived a SCRAM key
// from a password (PBKDF2, the credential's iterations: milliseconds of
// CPU each): user creation, PLAIN and HTTP Basic logins not answered from
// a LoginCache, and the decoys of unknown users.
func Derivations() uint64 { return derivations.Load() }

func deriveCredential(m Mechanism, password string, salt []byte, iterations int) (Credential, error) {
	h, ok := hashFor(m)
	if !ok {
		return Credential{}, fmt.Errorf("%w: mechanism %q is not SCRAM-SHA-256 or SCRAM-SHA-512", ErrBadCredential, m)
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return Credential{}, fmt.Errorf("%w: %d iterations, want %d to %d", ErrBadCredential, iterations, MinIterations, MaxIterations)
	}
	c, err := h.NewClient("", password, "")
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %v", ErrBadCredential, err)
	}
	derivations.Add(1)
	sc, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %v", ErrBadCredential, err)
	}
	return Credential{Mechanism: m, Salt: salt, Iterations: iterations, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}, nil
}

// CredentialFromSaltedPassword derives the stored credential from a
// SCRAM SaltedPassword (RFC 5802: Hi(password, salt, iterations)), the
// form Kafka's AlterUserScramCredentials carries: StoredKey is
// H(HMAC(SaltedPassword, "Client Key")), ServerKey HMAC(SaltedPassword,
// "Server Key"). The salted password itself is not kept. The result is
// validated (mechanism, iterations, salt; the salted password must be the
// hash's size).
func CredentialFromSaltedPassword(m Mechanism, salt, saltedPassword []byte, iterations int) (Credential, error) {
	if _, ok := hashFor(m); !ok {
		return Credential{}, fmt.Errorf("%w: mechanism %q is not SCRAM-SHA-256 or SCRAM-SHA-512", ErrBadCredential, m)
	}
	if len(saltedPassword) != keySize(m) {
		return Credential{}, fmt.Errorf("%w: salted password of %d bytes, want %d", ErrBadCredential, len(saltedPassword), keySize(m))
	}
	newHash := hashOf(m)
	h := newHash()
	h.Write(mac(newHash, saltedPassword, "Client Key"))
	c := Credential{Mechanism: m, Salt: bytes.Clone(salt), Iterations: iterations, StoredKey: h.Sum(nil),
		ServerKey: mac(newHash, saltedPassword, "Server Key")}
	if err := c.Validate(); err != nil {
		return Credential{}, err
	}
	return c, nil
}

// Validate checks a credential read from storage or the network.
func (c Credential) Validate() error {
	if _, ok := hashFor(c.Mechanism); !ok {
		return fmt.Errorf("%w: mechanism %q", ErrBadCredential, c.Mechanism)
	}
	switch {
	case c.Iterations < MinIterations || c.Iterations > MaxIterations:
		return fmt.Errorf("%w: %d iterations", ErrBadCredential, c.Iterations)
	case len(c.Salt) == 0 || len(c.Salt) > 1024:
		return fmt.Errorf("%w: salt of %d bytes", ErrBadCredential, len(c.Salt))
	case len(c.StoredKey) != keySize(c.Mechanism) || len(c.ServerKey) != keySize(c.Mechanism):
		return fmt.Errorf("%w: keys of %d and %d bytes, want %d", ErrBadCredential, len(c.StoredKey), len(c.ServerKey), keySize(c.Mechanism))
	}
	return nil
}

// Credentials looks up a user's stored credential for a mechanism.
type Credentials interface {
	Credential(user string, m Mechanism) (Credential, bool)
}

// ServerExchange is the server side of one SCRAM exchange on one
// connection. A user the cluster does not know gets a made-up credential
// derived from the server secret, so the exchange runs to the same final
// failure as a wrong password and reveals nothing (RFC 5802 section 9).
type ServerExchange struct {
	mech Mechanism
	conv *scram.ServerConversation
	// known is false when the lookup made up a credential: such an
	// exchange must fail even if a proof somehow matched.
	known bool
	done  bool
	user  string
	// cred is the credential the exchange runs against (made up when not
	// known); first and reply are the client-first message and the
	// server-first answer, for the lenient final step (scram_compat.go).
	cred         Credential
	first, reply string
	steps        int
	compatValid  bool
}

// NewServerExchange starts an exchange for mechanism m. secret is the
// broker's key for made-up credentials (any stable random bytes).
func NewServerExchange(m Mechanism, creds Credentials, secret []byte) (*ServerExchange, error) {
	h, ok := hashFor(m)
	if !ok {
		return nil, fmt.Errorf("%w: mechanism %q", ErrAuthenticationFailed, m)
	}
	e := &ServerExchange{mech: m}
	srv, err := h.NewServer(func(user string) (scram.StoredCredentials, error) {
		e.user = user
		c, found := creds.Credential(user, m)
		defer func() { e.cred = c }()
		if found && c.Validate() == nil {
			e.known = true
		} else {
			c = decoyCredential(m, user, secret)
		}
		return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
			StoredKey: c.StoredKey, ServerKey: c.ServerKey}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("scram server: %w", err)
	}
	e.conv = srv.NewConversation()
	return e, nil
}

// decoyCredential is a stable made-up credential for a user that does not
// exist: the same salt every time (a changing salt would tell), keys no
// password matches.
func decoyCredential(m Mechanism, user string, secret []byte) Credential {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("sluice scram decoy\x00"))
	mac.Write([]byte(m))
	mac.Write([]byte{0})
	mac.Write([]byte(user))
	seed := mac.Sum(nil)
	n := keySize(m)
	keys := bytes.Repeat(seed, (2*n+len(seed)-1)/len(seed))
	return Credential{Mechanism: m, Salt: seed, Iterations: DefaultIterations, StoredKey: keys[:n], ServerKey: keys[n : 2*n]}
}

// Step takes the client's next message and returns the server's answer.
// An error wraps ErrAuthenticationFailed; the exchange is then over. The
// exchange succeeded when Step returns no error and Done is true.
func (e *ServerExchange) Step(msg []byte) ([]byte, error) {
	if e.done {
		return nil, fmt.Errorf("%w: the exchange is already over", ErrAuthenticationFailed)
	}
	if len(msg) > MaxSASLMessage {
		e.done = true
		return nil, fmt.Errorf("%w: a SASL message of %d bytes (at most %d)", ErrAuthenticationFailed, len(msg), MaxSASLMessage)
	}
	e.steps++
	if e.steps == 2 {
		if resp, ok, err := e.compatFinal(string(msg)); ok {
			e.done = true
			return resp, err
		}
	}
	resp, err := e.conv.Step(string(msg))
	if e.steps == 1 {
		e.first, e.reply = string(msg), resp
	}
	if err != nil {
		e.done = true
		return nil, fmt.Errorf("%w: user %q: %v", ErrAuthenticationFailed, e.user, err)
	}
	if e.conv.Done() {
		e.done = true
		if !e.conv.Valid() || !e.known {
			return nil, fmt.Errorf("%w: user %q: proof not valid", ErrAuthenticationFailed, e.user)
		}
	}
	return []byte(resp), nil
}

// Done reports whether the exchange is over.
func (e *ServerExchange) Done() bool { return e.done }

// Principal is the authenticated principal, once the exchange succeeded.
func (e *ServerExchange) Principal() (Principal, bool) {
	if !e.done || !e.known || !(e.conv.Valid() || e.compatValid) {
		return Principal{}, false
	}
	return User(e.user), true
}

// ClientExchange is the client side of one SCRAM exchange.
type ClientExchange struct {
	conv *scram.ClientConversation
}

// NewClientExchange starts an exchange as user with password.
func NewClientExchange(m Mechanism, user, password string) (*ClientExchange, error) {
	h, ok := hashFor(m)
	if !ok {
		return nil, fmt.Errorf("sasl: mechanism %q is not SCRAM-SHA-256 or SCRAM-SHA-512", m)
	}
	c, err := h.NewClient(user, password, "")
	if err != nil {
		return nil, fmt.Errorf("sasl: %w", err)
	}
	return &ClientExchange{conv: c.WithMinIterations(MinIterations).NewConversation()}, nil
}

// Step takes the server's last message (nil for the first step) and
// returns the client's next one.
func (c *ClientExchange) Step(challenge []byte) ([]byte, error) {
	resp, err := c.conv.Step(string(challenge))
	if err != nil {
		return nil, fmt.Errorf("sasl: %w", err)
	}
	return []byte(resp), nil
}

// Done reports whether the client has verified the server's final
// message: a server that could not prove it knows the credential leaves
// Done true and Valid false.
func (c *ClientExchange) Done() bool { return c.conv.Done() }

// Valid reports whether the server proved itself.
func (c *ClientExchange) Valid() bool { return c.conv.Valid() }

// ParsePlain splits a SASL PLAIN message (RFC 4616: authzid NUL authcid
// NUL passwd). An authzid other than empty or the user itself is refused:
// sluice does not let one user act as another.
func ParsePlain(msg []byte) (user, password string, err error) {
	if len(msg) > MaxSASLMessage {
		return "", "", fmt.Errorf("%w: a PLAIN message of %d bytes", ErrAuthenticationFailed, len(msg))
	}
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 || len(parts[2]) == 0 {
		return "", "", fmt.Errorf("%w: malformed PLAIN message", ErrAuthenticationFailed)
	}
	if len(parts[0]) != 0 && !bytes.Equal(parts[0], parts[1]) {
		return "", "", fmt.Errorf("%w: PLAIN authorization id %q differs from user %q", ErrAuthenticationFailed, parts[0], parts[1])
	}
	return string(parts[1]), string(parts[2]), nil
}

// VerifyPlain checks a PLAIN user and password against the stored SCRAM
// credentials (SHA-512 first, then SHA-256). An unknown user costs the
// same derivation as a known one.
func VerifyPlain(creds Credentials, user, password string, secret []byte) (Principal, error) {
	_, err := verifyPlain(creds, user, password, secret)
	if err != nil {
		return Principal{}, err
	}
	return User(user), nil
}

// verifyPlain is VerifyPlain, returning the credential the password
// matched.
func verifyPlain(creds Credentials, user, password string, secret []byte) (Credential, error) {
	for _, m := range []Mechanism{ScramSHA512, ScramSHA256} {
		c, ok := creds.Credential(user, m)
		if !ok || c.Validate() != nil {
			continue
		}
		got, err := deriveCredential(m, password, c.Salt, c.Iterations)
		if err != nil || !hmac.Equal(got.StoredKey, c.StoredKey) {
			return Credential{}, fmt.Errorf("%w: user %q: wrong password", ErrAuthenticationFailed, user)
		}
		return c, nil
	}
	d := decoyCredential(ScramSHA256, user, secret)
	_, _ = deriveCredential(ScramSHA256, password, d.Salt, d.Iterations) // same cost as a known user
	return Credential{}, fmt.Errorf("%w: user %q: unknown", ErrAuthenticationFailed, user)
}
