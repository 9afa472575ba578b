package broker

import (
	"crypto/rand"
	"errors"
	"fmt"
	"iter"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// Authentication and authorization in the broker core, shared by every
// front end. Each connection has a Session: who it is (User:ANONYMOUS
// until it authenticates by SASL or a verified TLS client certificate;
// Broker:<id> for another broker of the cluster, which proved it holds
// the cluster secret) and what it may do. The rules of which operation a
// request needs (Kafka's) live here once, in the Session's checks; a front
// end calls the check of each request before the core call it guards.
//
// Decisions take no lock: the authorizer is an immutable snapshot of the
// ACLs (auth.Authorizer) rebuilt when the metadata's ACLs change, and a
// session caches its decisions per snapshot, so a change reaches open
// connections at their next request. A check is per request (per topic of
// a request), never per record.

// authzState is the broker's current authorizer and the metadata version
// it was checked against.
type authzState struct {
	version uint64
	acls    []auth.ACL
	az      *auth.Authorizer
}

// authzCore is the broker's security state, made by New.
type authzCore struct {
	cfg     *Security
	rules   []auth.MappingRule
	secret  []byte // the cluster secret, or random bytes nobody else has
	brokers *auth.BrokerCredentials
	// logins caches HTTP Basic logins (Session.LoginPassword): one PBKDF2
	// derivation per user and password per TTL, not per request.
	logins *auth.LoginCache
	state  atomic.Pointer[authzState]
}

func newAuthzCore(cfg *Security) *authzCore {
	a := &authzCore{cfg: cfg, secret: cfg.ClusterSecret, logins: auth.NewLoginCache(0, 0, nil)}
	a.rules, _ = auth.ParseMappingRules(cfg.TLSPrincipalMapping) // validated
	if len(a.secret) == 0 {
		// A broker alone: no other broker can log in.
		a.secret = make([]byte, 32)
		rand.Read(a.secret)
	}
	a.brokers = auth.NewBrokerCredentials(a.secret, cfg.AcceptedClusterSecrets...)
	return a
}

// authorizer returns the authorizer of md's ACLs, rebuilding it only when
// they changed.
func (a *authzCore) authorizer(md *controller.Metadata) *auth.Authorizer {
	cur := a.state.Load()
	if cur != nil && cur.version == md.Version {
		return cur.az
	}
	if cur != nil && slices.Equal(cur.acls, md.ACLs) {
		a.state.CompareAndSwap(cur, &authzState{version: md.Version, acls: cur.acls, az: cur.az})
		return cur.az
	}
	n := &authzState{version: md.Version, acls: md.ACLs, az: auth.NewAuthorizer(md.ACLs, a.cfg.SuperUsers)}
	a.state.Store(n)
	return n.az
}

// credentials looks users up in the metadata (auth.Credentials).
type credentials struct{ md *controller.Metadata }

func (c credentials) Credential(user string, m auth.Mechanism) (auth.Credential, bool) {
	cr, ok := c.md.Users[user][m]
	return cr, ok
}

// credentials are the users of this broker's metadata (none while it
// starts).
func (b *Broker) credentials() auth.Credentials {
	if b.store == nil {
		return credentials{controller.NewMetadata()}
	}
	return credentials{b.store.Metadata()}
}

// Session is one connection's identity and access. It belongs to the
// connection's handler goroutine.
type Session struct {
	b         *Broker
	nc        any // the net.Conn, checked for TLS
	host      string
	principal auth.Principal
	authed    bool // by SASL, a client certificate or as a broker
	// byCert: authed by the TLS client certificate only; a SASL login
	// (another broker's, say, over mutual TLS) may still replace it.
	byCert  bool
	broker  bool // another broker of the cluster
	tlsDone bool // the TLS client certificate was looked at
	// certRefused: the client certificate maps to no principal; the
	// connection is refused everything (never anonymous).
	certRefused bool
	frontEnd    bool // a front end's listener (Kafka): no broker login there

	// SASL: the mechanism SaslHandshake chose and the exchange under way.
	mech     auth.Mechanism
	scram    *auth.ServerExchange
	failures int
	bare     bool // Kafka's SaslHandshake v0: bare messages follow
	// KIP-368 (Security.ReauthInterval): the mechanism of the login, a
	// re-authentication under way, and when the login ends (zero: never).
	loginMech auth.Mechanism
	reauth    bool
	expires   time.Time

	// cache holds decisions made with az.
	az    *auth.Authorizer
	cache map[authzKey]bool
}

type authzKey struct {
	rt   auth.ResourceType
	op   auth.Operation
	name string
}

func (s *Session) init(b *Broker, nc any, host string) {
	*s = Session{b: b, nc: nc, host: host, principal: auth.Anonymous}
}

// Principal is who the connection acts as.
func (s *Session) Principal() auth.Principal {
	s.checkTLS()
	return s.principal
}

// Authenticated reports whether the connection authenticated.
func (s *Session) Authenticated() bool {
	s.checkTLS()
	return s.authed
}

// IsBroker reports whether the connection is another broker's.
func (s *Session) IsBroker() bool { return s.broker }

// checkTLS takes the principal from a verified client certificate, once
// the handshake is over (by the first request, a frame was read).
func (s *Session) checkTLS() {
	if s.tlsDone {
		return
	}
	s.tlsDone = true
	nc, _ := s.nc.(net.Conn)
	state, ok := auth.ConnectionState(nc)
	if !ok || s.authed {
		return
	}
	p, ok, err := auth.PeerPrincipal(state, s.b.authz.rules)
	switch {
	case err != nil:
		s.certRefused = true
		s.b.logger.Info("client certificate maps to no principal: refusing the connection's requests", zap.String("remote", s.host), zap.Error(err))
	case ok:
		s.principal, s.authed, s.byCert = p, true, true
	}
}

// NeedsAuth reports whether a request of a key other than ApiVersions and
// the SASL ones must be refused: the listener requires authentication and
// the connection has not, or its client certificate maps to no principal.
func (s *Session) NeedsAuth() bool {
	authed := s.Authenticated()
	return s.certRefused || (s.b.cfg.Security.RequireAuth && !authed)
}

// Mechanisms lists the SASL mechanisms the connection may use.
func (s *Session) Mechanisms() []string {
	var out []string
	for _, m := range s.b.cfg.Security.SASLMechanisms {
		out = append(out, string(m))
	}
	return out
}

// Handshake chooses the SASL mechanism (SaslHandshake): it returns
// UNSUPPORTED_SASL_MECHANISM for one not offered (PLAIN without TLS
// included) and ILLEGAL_SASL_STATE on a connection already authenticated,
// but for a re-authentication (Security.ReauthInterval) with the
// mechanism of the login.
func (s *Session) Handshake(mech string) protocol.ErrorCode {
	m := auth.Mechanism(mech)
	if s.certRefused {
		return protocol.ErrIllegalSaslState
	}
	// On an authenticated connection, only a re-authentication (KIP-368),
	// with the same mechanism.
	reauth := s.Authenticated() && !s.byCert
	if reauth && (!s.reauthenticates() || m != s.loginMech) {
		return protocol.ErrIllegalSaslState
	}
	nc, _ := s.nc.(net.Conn)
	_, overTLS := auth.ConnectionState(nc)
	switch {
	case m == auth.BrokerMechanism && !s.frontEnd:
	case m == auth.Plain && !overTLS:
		return protocol.ErrUnsupportedSaslMechanism
	case !s.b.cfg.Security.offers(m):
		return protocol.ErrUnsupportedSaslMechanism
	}
	s.mech, s.scram, s.reauth = m, nil, reauth
	return protocol.NoError
}

// Authenticate takes the client's next SASL message (SaslAuthenticate) and
// returns the server's answer. Every failure is
// protocol.ErrSaslAuthenticationFailed, whatever the cause (the cause is
// logged with the remote address); ILLEGAL_SASL_STATE before a handshake
// or after success. closeConn says the connection has used up its
// attempts and must be closed after the answer.
func (s *Session) Authenticate(msg []byte) (out []byte, code protocol.ErrorCode, closeConn bool) {
	if s.mech == "" || s.Authenticated() && !s.byCert && !s.reauth {
		return nil, protocol.ErrIllegalSaslState, false
	}
	out, err := s.step(msg)
	if err == nil {
		return out, protocol.NoError, false
	}
	s.mech, s.scram, s.reauth = "", nil, false
	s.failures++
	limit := s.b.cfg.Security.MaxAuthAttempts
	if limit == 0 {
		limit = DefaultMaxAuthAttempts
	}
	s.b.logger.Info("authentication failed", zap.String("remote", s.host), zap.Int("attempt", s.failures), zap.Error(err))
	return nil, protocol.ErrSaslAuthenticationFailed, s.failures >= limit
}

// step runs one step of the chosen mechanism; an error ends the attempt.
func (s *Session) step(msg []byte) ([]byte, error) {
	secret := s.b.authz.secret
	if s.mech == auth.Plain {
		user, password, err := auth.ParsePlain(msg)
		if err != nil {
			return nil, err
		}
		p, err := auth.VerifyPlain(s.b.credentials(), user, password, secret)
		if err != nil {
			return nil, err
		}
		return []byte{}, s.loggedIn(p)
	}
	if s.scram == nil {
		var creds = s.b.credentials()
		m := s.mech
		if m == auth.BrokerMechanism {
			creds, m = s.b.authz.brokers, auth.ScramSHA512
		}
		e, err := auth.NewServerExchange(m, creds, secret)
		if err != nil {
			return nil, err
		}
		s.scram = e
	}
	out, err := s.scram.Step(msg)
	if err != nil {
		return nil, err
	}
	if s.scram.Done() {
		p, ok := s.scram.Principal()
		if !ok {
			return nil, auth.ErrAuthenticationFailed
		}
		if s.mech == auth.BrokerMechanism {
			p, _ = auth.BrokerPrincipal(p.Name)
			s.broker = true
		}
		if err := s.loggedIn(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// loggedIn ends a successful exchange as p. A re-authentication must be
// p's again (KIP-368: a connection never changes principal).
func (s *Session) loggedIn(p auth.Principal) error {
	if s.reauth && p != s.principal {
		return fmt.Errorf("%w: re-authentication as %s on a connection of %s", auth.ErrAuthenticationFailed, p, s.principal)
	}
	reauth := s.reauth
	s.loginMech = s.mech
	s.principal, s.authed, s.byCert, s.mech, s.scram, s.reauth = p, true, false, "", nil, false
	s.expires = time.Time{}
	if s.reauthenticates() {
		s.expires = time.Now().Add(s.b.cfg.Security.ReauthInterval)
	}
	s.b.logger.Debug("authenticated", zap.String("remote", s.host), zap.Stringer("principal", p), zap.Bool("reauthentication", reauth))
	return nil
}

// reauthenticates reports whether the session's logins have a lifetime
// and may be renewed (KIP-368): SASL logins of users on the Kafka
// listener with Security.ReauthInterval set.
func (s *Session) reauthenticates() bool {
	return s.frontEnd && !s.broker && s.b.cfg.Security.ReauthInterval > 0
}

// Expired reports whether the session's SASL login has outlived its
// lifetime (Security.ReauthInterval) without a re-authentication: the
// front end closes the connection rather than serve it.
func (s *Session) Expired() bool {
	return !s.expires.IsZero() && !time.Now().Before(s.expires)
}

// SessionLifetime is what remains of the SASL login (SaslAuthenticate
// v1's SessionLifetimeMs); 0 when it has no end.
func (s *Session) SessionLifetime() time.Duration {
	if s.expires.IsZero() {
		return 0
	}
	return max(time.Until(s.expires), time.Millisecond)
}

// allowed decides op on a resource: everything without the authorizer
// and for brokers, else the ACLs (cached per authorizer snapshot).
func (s *Session) allowed(rt auth.ResourceType, name string, op auth.Operation) bool {
	if !s.b.cfg.Security.Authorizer || s.broker {
		return true
	}
	s.checkTLS()
	az := s.b.authz.authorizer(s.b.store.Metadata())
	if az != s.az || s.cache == nil {
		s.az, s.cache = az, make(map[authzKey]bool)
	}
	k := authzKey{rt: rt, op: op, name: name}
	if ok, hit := s.cache[k]; hit {
		return ok
	}
	ok := az.Authorize(s.principal, s.host, rt, name, op)
	if len(s.cache) < 4096 {
		s.cache[k] = ok
	}
	return ok
}

// Allowed reports whether the session may do op on the resource.
func (s *Session) Allowed(rt auth.ResourceType, name string, op auth.Operation) bool {
	return s.allowed(rt, name, op)
}

// The checks of each request, Kafka's rules. Each returns nil or the
// authorization error code to answer with (definite: nothing was done).

// CanWrite: produce needs write on the topic.
func (s *Session) CanWrite(topic string) error {
	return s.topic(topic, auth.OpWrite)
}

// CanRead: fetch, and committing or fetching a group's offsets for a
// topic, need read on the topic.
func (s *Session) CanRead(topic string) error { return s.topic(topic, auth.OpRead) }

// CanDescribe: list offsets and metadata need describe on the topic.
func (s *Session) CanDescribe(topic string) error { return s.topic(topic, auth.OpDescribe) }

// CanDeleteTopic needs delete on the topic.
func (s *Session) CanDeleteTopic(topic string) error { return s.topic(topic, auth.OpDelete) }

// CanAlterConfigs needs alter-configs on the topic.
func (s *Session) CanAlterConfigs(topic string) error {
	return s.topic(topic, auth.OpAlterConfigs)
}

// CanDescribeConfigs needs describe-configs on the topic.
func (s *Session) CanDescribeConfigs(topic string) error {
	return s.topic(topic, auth.OpDescribeConfigs)
}

// CanCreateTopic needs create on the cluster or on the topic.
func (s *Session) CanCreateTopic(topic string) error {
	if s.allowed(auth.ResourceCluster, auth.ClusterName, auth.OpCreate) {
		return nil
	}
	return s.topic(topic, auth.OpCreate)
}

// CanIdempotentWrite: an idempotent producer id needs idempotent-write on
// the cluster, or write on some topic (Kafka's rule).
func (s *Session) CanIdempotentWrite() error {
	if s.allowed(auth.ResourceCluster, auth.ClusterName, auth.OpIdempotentWrite) {
		return nil
	}
	if !s.b.cfg.Security.Authorizer || s.broker {
		return nil
	}
	az := s.b.authz.authorizer(s.b.store.Metadata())
	if az.AuthorizeAny(s.principal, s.host, auth.ResourceTopic, auth.OpWrite) {
		return nil
	}
	return protocol.ErrClusterAuthorizationFailed
}

// CanGroup: group operations need op (read for membership and commits,
// describe, delete) on the group.
func (s *Session) CanGroup(group string, op auth.Operation) error {
	if s.allowed(auth.ResourceGroup, group, op) {
		return nil
	}
	return protocol.ErrGroupAuthorizationFailed
}

// CanCluster: user and ACL administration, cluster description and
// elections need op on the cluster.
func (s *Session) CanCluster(op auth.Operation) error {
	if s.allowed(auth.ResourceCluster, auth.ClusterName, op) {
		return nil
	}
	return protocol.ErrClusterAuthorizationFailed
}

// BrokerOnly: the broker-internal APIs (a replica's fetch, a forwarded
// controller write, a leader's handover request) serve only other brokers
// of the cluster, whatever the authorizer says.
func (s *Session) BrokerOnly() error {
	if s.broker {
		return nil
	}
	return protocol.ErrClusterAuthorizationFailed
}

func (s *Session) topic(name string, op auth.Operation) error {
	if s.allowed(auth.ResourceTopic, name, op) {
		return nil
	}
	return protocol.ErrTopicAuthorizationFailed
}

// loginFunc authenticates a new broker-to-broker connection before its
// first request.
type loginFunc func(c *protocol.Conn, deadline time.Time) error

// brokerLogin is how this broker logs in to another: the broker mechanism
// with the cluster secret (auth.BrokerMechanism).
func (b *Broker) brokerLogin(c *protocol.Conn, deadline time.Time) error {
	user := auth.BrokerLoginUser(b.cfg.BrokerID, b.authz.secret, len(b.cfg.Security.AcceptedClusterSecrets) > 0)
	return login(c, deadline, auth.BrokerMechanism, user, auth.BrokerPassword(b.authz.secret))
}

// ErrLogin matches a refused broker login: the peer does not hold the same
// cluster secret (or is not a sluice broker).
var ErrLogin = errors.New("broker login refused")

// login runs a SASL login on a blocking connection.
func login(c *protocol.Conn, deadline time.Time, m auth.Mechanism, user, password string) error {
	var hs protocol.SaslHandshakeResponse
	if err := c.RoundTrip(deadline, &protocol.SaslHandshakeRequest{Mechanism: string(m)}, &hs, 0); err != nil {
		return fmt.Errorf("sasl handshake: %w", err)
	}
	if hs.ErrorCode != protocol.NoError {
		return fmt.Errorf("%w: sasl handshake: %w", ErrLogin, hs.ErrorCode.Err())
	}
	err := auth.Login(m, user, password, func(msg []byte) ([]byte, error) {
		var ar protocol.SaslAuthenticateResponse
		if err := c.RoundTrip(deadline, &protocol.SaslAuthenticateRequest{AuthBytes: msg}, &ar, 0); err != nil {
			return nil, err
		}
		if ar.ErrorCode != protocol.NoError {
			return nil, fmt.Errorf("%w: %w", ErrLogin, ar.ErrorCode.Err())
		}
		return ar.AuthBytes, nil
	})
	if err != nil {
		return fmt.Errorf("sasl %s: %w", m, err)
	}
	return nil
}

// ExpectBareTokens says the connection's next frames are the SASL
// exchange's messages without a request header (Kafka's SaslHandshake
// v0), until it authenticates or fails.
func (s *Session) ExpectBareTokens(on bool) { s.bare = on }

// BareTokens reports whether the next frame is a bare SASL message.
func (s *Session) BareTokens() bool { return s.bare }

// CanAlterTopic: growing a topic (CreatePartitions) needs alter on it.
func (s *Session) CanAlterTopic(topic string) error { return s.topic(topic, auth.OpAlter) }

// CanConsume: committing a consumer group's offsets, and receiving from,
// acknowledging to or resetting a queue group, need read on the group,
// then read on every topic named (Kafka's rule for OffsetCommit and for
// share groups, whose resource type is the group's too). It returns the
// first refusal: the caller then does nothing of the request.
func (s *Session) CanConsume(group string, topics iter.Seq[string]) error {
	if err := s.CanGroup(group, auth.OpRead); err != nil {
		return err
	}
	for t := range topics {
		if err := s.CanRead(t); err != nil {
			return err
		}
	}
	return nil
}

// The group and cluster checks by what a request does, for front ends
// that do not speak in ACL operations (Kafka's).

// CanReadGroup: a group's membership (join, sync, heartbeat, leave)
// needs read on the group.
func (s *Session) CanReadGroup(group string) error { return s.CanGroup(group, auth.OpRead) }

// CanDescribeGroup: finding a group's coordinator, fetching its offsets,
// describing and listing it need describe on the group.
func (s *Session) CanDescribeGroup(group string) error { return s.CanGroup(group, auth.OpDescribe) }

// CanDeleteGroup needs delete on the group.
func (s *Session) CanDeleteGroup(group string) error { return s.CanGroup(group, auth.OpDelete) }

// CanAlterCluster: moving partitions needs alter on the cluster.
func (s *Session) CanAlterCluster() error { return s.CanCluster(auth.OpAlter) }

// CanDescribeCluster: listing partition moves needs describe on the
// cluster.
func (s *Session) CanDescribeCluster() error { return s.CanCluster(auth.OpDescribe) }

// CanAlterClusterConfigs: the cluster's (a broker resource's) configs
// need alter-configs on the cluster.
func (s *Session) CanAlterClusterConfigs() error { return s.CanCluster(auth.OpAlterConfigs) }

// CanDescribeClusterConfigs needs describe-configs on the cluster.
func (s *Session) CanDescribeClusterConfigs() error { return s.CanCluster(auth.OpDescribeConfigs) }

// RegexFilter is what a consumer group member's regex subscription may
// give it (group.Heartbeat.RegexFilter): the topics the session's
// principal may describe, Kafka's rule. nil without the authorizer. The
// coordinator keeps it and calls it from other connections' goroutines,
// so it asks the broker's current authorizer snapshot directly, not the
// session's cache (which belongs to the connection's goroutine); an ACL
// change applies to the group's next resolution.
func (s *Session) RegexFilter() func(topic string) bool {
	if !s.b.cfg.Security.Authorizer {
		return nil
	}
	s.checkTLS()
	if s.broker {
		return func(string) bool { return true }
	}
	if s.certRefused {
		return func(string) bool { return false }
	}
	b, p, host := s.b, s.principal, s.host
	return func(topic string) bool {
		return b.authz.authorizer(b.store.Metadata()).Authorize(p, host, auth.ResourceTopic, topic, auth.OpDescribe)
	}
}

// OffsetVisible applies Kafka's topic rule to a committed offset a
// group's OffsetFetch answers (the group's describe is checked before):
// all is whether every committed topic was asked for. It returns whether
// to answer the offset (not when all and the caller may not describe its
// topic: the topic is left out) and, for a named topic the caller may not
// describe, the error to answer instead of the offset.
func (s *Session) OffsetVisible(topic string, all bool) (show bool, err error) {
	if err = s.CanDescribe(topic); err != nil {
		return !all, err
	}
	return true, nil
}

// CanSubscribe: a consumer group member's heartbeat needs read on the
// group, then describe on every topic its subscription names (Kafka's
// rule; a regex subscription gets only topics RegexFilter allows).
func (s *Session) CanSubscribe(group string, topics []string) error {
	if err := s.CanReadGroup(group); err != nil {
		return err
	}
	for _, t := range topics {
		if err := s.CanDescribe(t); err != nil {
			return err
		}
	}
	return nil
}
