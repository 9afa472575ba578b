package broker

import (
	"fmt"
	"slices"
	"time"

	"github.com/sluicemq/sluice/auth"
)

// Security is a broker's authentication and authorization settings
// (docs/security.md). The zero value: clients need not authenticate and
// may do everything; the broker-internal APIs accept only brokers that
// hold the cluster secret, and without one (a broker alone) nobody.
type Security struct {
	// SASLMechanisms are the mechanisms clients may authenticate with on
	// the sluice and Kafka listeners: SCRAM-SHA-256, SCRAM-SHA-512,
	// PLAIN (accepted only on a TLS connection). Empty: SASL is off for
	// clients.
	SASLMechanisms []auth.Mechanism
	// RequireAuth refuses every request but ApiVersions and the SASL ones
	// from a connection that has not authenticated (by SASL or a verified
	// TLS client certificate).
	RequireAuth bool
	// Authorizer checks every request against the ACLs in the cluster
	// metadata: no matching allow, no access.
	Authorizer bool
	// SuperUsers are principals ("User:admin") the authorizer allows
	// everything.
	SuperUsers []string
	// TLSPrincipalMapping maps a verified client certificate's subject to
	// a principal (Kafka's ssl.principal.mapping.rules; empty: DEFAULT).
	TLSPrincipalMapping string
	// ClusterSecret is the secret every broker of the cluster is given;
	// brokers prove they hold it to each other (auth.BrokerMechanism)
	// before any broker-internal API is served. Required for a cluster
	// of more than one broker (Voters naming several, or Join); at least
	// auth.MinClusterSecret bytes.
	ClusterSecret []byte
	// AcceptedClusterSecrets are secrets accepted from other brokers
	// besides ClusterSecret, which this broker logs in with: set during a
	// rolling rotation of the secret (docs/operations.md), else empty.
	AcceptedClusterSecrets [][]byte
	// MaxAuthAttempts is how many failed authentications a connection may
	// make before it is closed. Default DefaultMaxAuthAttempts.
	MaxAuthAttempts int
	// ReauthInterval is Kafka's connections.max.reauth.ms (KIP-368) on the
	// Kafka listener: a SASL login there lasts this long. SaslAuthenticate
	// v1 and later tells the client (SessionLifetimeMs), which logs in
	// again on the same connection before the end (same mechanism, same
	// principal); a connection that has not is closed at its first
	// request after it. 0: a login lasts as long as its connection.
	ReauthInterval time.Duration
}

// DefaultMaxAuthAttempts is Security.MaxAuthAttempts's default.
const DefaultMaxAuthAttempts = 3

func (s Security) validate(cluster bool) error {
	for _, m := range s.SASLMechanisms {
		if m != auth.ScramSHA256 && m != auth.ScramSHA512 && m != auth.Plain {
			return fieldError("Security.SASLMechanisms", m, "want SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN")
		}
	}
	for _, u := range s.SuperUsers {
		if _, err := auth.ParsePrincipal(u); err != nil {
			return fieldError("Security.SuperUsers", u, err.Error())
		}
	}
	if _, err := auth.ParseMappingRules(s.TLSPrincipalMapping); err != nil {
		return fieldError("Security.TLSPrincipalMapping", s.TLSPrincipalMapping, err.Error())
	}
	for _, a := range s.AcceptedClusterSecrets {
		if len(a) < auth.MinClusterSecret {
			return fieldError("Security.AcceptedClusterSecrets", fmt.Sprintf("%d bytes", len(a)), fmt.Sprintf("below %d bytes", auth.MinClusterSecret))
		}
	}
	switch {
	case len(s.AcceptedClusterSecrets) > 0 && len(s.ClusterSecret) == 0:
		return fieldError("Security.AcceptedClusterSecrets", len(s.AcceptedClusterSecrets), "without a ClusterSecret to log in with")
	case len(s.ClusterSecret) > 0 && len(s.ClusterSecret) < auth.MinClusterSecret:
		return fieldError("Security.ClusterSecret", fmt.Sprintf("%d bytes", len(s.ClusterSecret)), fmt.Sprintf("below %d bytes", auth.MinClusterSecret))
	case cluster && len(s.ClusterSecret) == 0:
		return fieldError("Security.ClusterSecret", "none", "a cluster of several brokers needs the cluster secret (--cluster-secret-file): brokers prove it to each other before any broker-internal API is served")
	case s.MaxAuthAttempts < 0:
		return fieldError("Security.MaxAuthAttempts", s.MaxAuthAttempts, "negative")
	case s.ReauthInterval < 0:
		return fieldError("Security.ReauthInterval", s.ReauthInterval, "negative")
	}
	return nil
}

// offers reports whether clients may use mechanism m.
func (s *Security) offers(m auth.Mechanism) bool { return slices.Contains(s.SASLMechanisms, m) }
