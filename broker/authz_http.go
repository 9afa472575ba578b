package broker

import (
	"fmt"
	"net"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/auth"
)

// Sessions of the HTTP endpoint (httpapi): one per request, with the same
// checks as a connection of the client listeners, so the console and
// /metrics obey the ACLs the sluice and Kafka protocols do, never a rule
// set of their own.

// HTTPSession is a session for one HTTP request that arrived on nc from
// host: User:ANONYMOUS, or the principal of nc's verified TLS client
// certificate (through --tls-principal-mapping). LoginPassword may then
// authenticate it with HTTP Basic credentials.
func (b *Broker) HTTPSession(nc net.Conn, host string) *Session {
	s := &Session{}
	s.init(b, nc, host)
	s.frontEnd = true // no broker login over HTTP
	return s
}

// LoginPassword authenticates the session as user, checking password
// against the user's SCRAM credentials in the metadata (auth.VerifyPlain:
// the StoredKey derived from it with the stored salt and iterations,
// compared in constant time; no password is stored), through the broker's
// auth.LoginCache: the same user and password again within its TTL, while
// the user's credential is unchanged, derives nothing. Like PLAIN, it is
// refused on a connection without TLS. Every failure is
// auth.ErrAuthenticationFailed whatever the cause, logged at info with the
// remote address and the cause.
func (s *Session) LoginPassword(user, password string) error {
	nc, _ := s.nc.(net.Conn)
	if _, overTLS := auth.ConnectionState(nc); !overTLS {
		s.b.logger.Info("http authentication failed", zap.String("remote", s.host), zap.String("reason", "credentials over plain HTTP"))
		return fmt.Errorf("%w: credentials over a connection without TLS", auth.ErrAuthenticationFailed)
	}
	if s.checkTLS(); s.certRefused {
		s.b.logger.Info("http authentication failed", zap.String("remote", s.host), zap.String("reason", "client certificate maps to no principal"))
		return auth.ErrAuthenticationFailed
	}
	p, err := s.b.authz.logins.Verify(s.b.credentials(), user, password, s.b.authz.secret)
	if err != nil {
		s.b.logger.Info("http authentication failed", zap.String("remote", s.host), zap.Error(err))
		return auth.ErrAuthenticationFailed
	}
	s.principal, s.authed, s.byCert = p, true, false
	return nil
}

// CertRefused reports whether the connection's TLS client certificate
// maps to no principal: every request of it is refused, never served as
// anonymous.
func (s *Session) CertRefused() bool {
	s.checkTLS()
	return s.certRefused
}

// OperatorLogin is the SASL mechanism, user and password with which a
// client inside this broker's process (the web console's) logs in to the
// cluster as the operator: a front end that has checked its caller's
// Session reads through it.
func (b *Broker) OperatorLogin() (m auth.Mechanism, user, password string) {
	return auth.BrokerMechanism, auth.OperatorUser, auth.BrokerPassword(b.authz.secret)
}
