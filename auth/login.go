package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// ErrServerNotVerified matches a SCRAM exchange whose server could not
// prove it knows the user's credential: the client stops before trusting
// the connection.
var ErrServerNotVerified = errors.New("sasl: the server did not prove it knows the credential")

// Login runs the client side of mechanism m as user: each message the
// mechanism produces goes to the server through exchange, which returns
// the server's answer (an error ends the login). SCRAM's last step checks
// the server's proof. PLAIN is one message; send it only over TLS.
func Login(m Mechanism, user, password string, exchange func(msg []byte) ([]byte, error)) error {
	if m == Plain {
		_, err := exchange([]byte("\x00" + user + "\x00" + password))
		return err
	}
	if m == BrokerMechanism {
		m = ScramSHA512
	}
	c, err := NewClientExchange(m, user, password)
	if err != nil {
		return err
	}
	var challenge []byte
	for !c.Done() {
		msg, err := c.Step(challenge)
		if err != nil {
			return err
		}
		if c.Done() {
			break // the server's final message verified: nothing left to send
		}
		if challenge, err = exchange(msg); err != nil {
			return err
		}
	}
	if !c.Valid() {
		return ErrServerNotVerified
	}
	return nil
}

// Brokers of one cluster authenticate to each other with the cluster
// secret, a random value every broker is given: a SCRAM-SHA-512 exchange
// under the mechanism name BrokerMechanism, as the user "broker-<id>",
// whose password and salt are derived from the secret. The secret itself
// never crosses the wire, an exchange cannot be replayed, and a peer that
// does not hold the secret learns nothing from trying.
const BrokerMechanism Mechanism = "SLUICE-BROKER-SCRAM-SHA-512"

// PrincipalBroker is the type of a broker's principal ("Broker:2"). No
// ACL names it: brokers are authorized for everything.
const PrincipalBroker = "Broker"

// MinClusterSecret is the fewest bytes a cluster secret may have.
const MinClusterSecret = 16

// BrokerUser is the user name broker id logs in as.
func BrokerUser(id int32) string { return "broker-" + strconv.Itoa(int(id)) }

// Rotating the cluster secret: a broker may accept several secrets (the
// one it logs in with first). While it does, it logs in as
// "broker-<id>.<SecretID>" so the broker it logs in to knows which secret
// the password and salt come from; a name without the suffix means the
// receiving broker's first secret (a broker given one secret logs in
// that way, as before rotations existed). docs/operations.md has the
// procedure: every broker accepts old and new, then every broker logs in
// with new, then old is dropped — at each step every pair of brokers
// accepts the secret the other logs in with.

// SecretID names a cluster secret without telling anything about it: 8
// hex digits of an HMAC keyed by the secret.
func SecretID(secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("sluice cluster secret id v1"))
	return hex.EncodeToString(mac.Sum(nil)[:4])
}

// BrokerLoginUser is the user broker id logs in as with secret: BrokerUser,
// with ".<SecretID>" when rotating (it accepts several secrets).
func BrokerLoginUser(id int32, secret []byte, rotating bool) string {
	if !rotating {
		return BrokerUser(id)
	}
	return BrokerUser(id) + "." + SecretID(secret)
}

// splitSecretID splits "name.<SecretID>" into name and the id ("" for a
// name without one); ok is false for a suffix that is not 8 hex digits.
func splitSecretID(user string) (name, id string, ok bool) {
	name, id, found := strings.Cut(user, ".")
	if !found {
		return user, "", true
	}
	if len(id) != 8 {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", false
	}
	return name, id, true
}

// OperatorUser is the user an operator holding the cluster secret logs in
// as with the broker mechanism (Broker:operator), to create the first
// users and ACLs of a cluster that requires authentication.
const OperatorUser = "operator"

// BrokerPassword is the password every broker of the cluster uses,
// derived from the cluster secret.
func BrokerPassword(secret []byte) string {
	mac := hmac.New(sha512.New, secret)
	mac.Write([]byte("sluice broker password v1"))
	return base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

// BrokerPrincipal returns the principal of a broker user name, or false
// for a name that is not "broker-<id>" or OperatorUser.
func BrokerPrincipal(user string) (Principal, bool) {
	user, _, ok := splitSecretID(user)
	if !ok {
		return Principal{}, false
	}
	if user == OperatorUser {
		return Principal{Type: PrincipalBroker, Name: OperatorUser}, true
	}
	id, ok := strings.CutPrefix(user, "broker-")
	if !ok {
		return Principal{}, false
	}
	if n, err := strconv.ParseInt(id, 10, 32); err != nil || n < 0 || strconv.Itoa(int(n)) != id {
		return Principal{}, false
	}
	return Principal{Type: PrincipalBroker, Name: id}, true
}

// BrokerCredentials is the Credentials of the broker users, derived from
// the cluster secrets (never stored). The derivation (PBKDF2) runs once per
// user name and is kept.
type BrokerCredentials struct {
	secrets [][]byte // the first is for names without a SecretID
	mu      sync.Mutex
	cache   map[string]Credential
}

// NewBrokerCredentials returns the broker users' credentials for secret
// and, during a rotation, the other secrets accepted: a user name with a
// SecretID gets the credential of the secret it names, if accepted.
func NewBrokerCredentials(secret []byte, accepted ...[]byte) *BrokerCredentials {
	return &BrokerCredentials{secrets: append([][]byte{secret}, accepted...), cache: map[string]Credential{}}
}

// Credential returns the credential of a broker user for SCRAM-SHA-512.
func (b *BrokerCredentials) Credential(user string, m Mechanism) (Credential, bool) {
	if m != ScramSHA512 {
		return Credential{}, false
	}
	if _, ok := BrokerPrincipal(user); !ok {
		return Credential{}, false
	}
	name, id, _ := splitSecretID(user)
	secret := b.secrets[0]
	if id != "" {
		secret = nil
		for _, s := range b.secrets {
			if SecretID(s) == id {
				secret = s
				break
			}
		}
		if secret == nil {
			return Credential{}, false // not a secret this broker accepts
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.cache[user]; ok {
		return c, true
	}
	// The salt from the name without its SecretID: the same secret gives
	// the same credential with and without it.
	mac := hmac.New(sha512.New, secret)
	mac.Write([]byte("sluice broker salt v1\x00" + name))
	c, err := deriveCredential(ScramSHA512, BrokerPassword(secret), mac.Sum(nil)[:saltBytes], MinIterations)
	if err != nil {
		panic(fmt.Sprintf("auth: broker credential: %v", err)) // fixed, valid parameters
	}
	if len(b.cache) < 1024 {
		b.cache[user] = c
	}
	return c, true
}
