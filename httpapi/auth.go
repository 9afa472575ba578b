package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/controller"
)

// Authentication and authorization of the HTTP endpoint. Every request but
// the probes (/healthz, /readyz) gets a broker core Session (broker's
// HTTPSession): User:ANONYMOUS, the principal of a verified TLS client
// certificate, or the user of HTTP Basic credentials checked against the
// SCRAM credentials in the metadata (Session.LoginPassword; TLS only).
// Then the request is checked with the Session's checks — the ones the
// sluice and Kafka listeners use, Kafka's rules — before the handler runs:
// a route's rule below, and the console's core calls through coreOf,
// which leave out topics the session may not describe and refuse the
// changes it may not make. A route without a rule needs alter on the
// cluster: an endpoint added later is closed until it is given one.

// AuthMode says whether the endpoint requires authentication.
type AuthMode int

const (
	// AuthNone serves unauthenticated requests as User:ANONYMOUS (still
	// checked by the broker's authorizer, when on); credentials given are
	// checked all the same.
	AuthNone AuthMode = iota
	// AuthRequired answers 401 to a request (but the probes) without
	// valid credentials or a verified client certificate.
	AuthRequired
)

// ParseAuthMode parses --http-auth: none or required.
func ParseAuthMode(s string) (AuthMode, error) {
	switch s {
	case "none":
		return AuthNone, nil
	case "required":
		return AuthRequired, nil
	}
	return 0, fmt.Errorf("httpapi: auth mode %q: want none or required", s)
}

// Sessions makes the Session of a request (a *broker.Broker).
type Sessions interface {
	HTTPSession(nc net.Conn, host string) *broker.Session
}

// challenge is the WWW-Authenticate of the 401 answers.
const challenge = `Basic realm="sluice", charset="UTF-8"`

type (
	connKey    struct{}
	sessionKey struct{}
)

// sessionOf is the request's Session; nil when the endpoint has no
// Sessions (a test's Server without a broker).
func sessionOf(r *http.Request) *broker.Session {
	s, _ := r.Context().Value(sessionKey{}).(*broker.Session)
	return s
}

// FailedLoginLimits bounds failed HTTP Basic logins: per remote address
// and per user name, a few failures are free, then each further one makes
// that address or name wait before its next try (auth.LoginLimiter). A
// request that must wait is answered 429 with Retry-After, before its
// password is checked: no derivation, and nothing said of the user. The
// limit per user stops a guesser who spreads over many addresses; it also
// lets one who guesses at a user delay that user's own HTTP logins (not
// those of the sluice and Kafka listeners) by up to Max, hence its larger
// Free.
type FailedLoginLimits struct {
	ByAddress auth.LoginLimits
	ByUser    auth.LoginLimits
}

// DefaultFailedLogins are the limits a zero field of FailedLoginLimits
// takes: 5 free failures per address, 20 per user; then waits from 1 s,
// doubling to 1 min; forgotten after 15 min without a failure; 10000
// addresses and 10000 names tracked at most.
var DefaultFailedLogins = FailedLoginLimits{
	ByAddress: auth.LoginLimits{Free: 5, Base: time.Second, Max: time.Minute, Forget: 15 * time.Minute, MaxKeys: 10000},
	ByUser:    auth.LoginLimits{Free: 20, Base: time.Second, Max: time.Minute, Forget: 15 * time.Minute, MaxKeys: 10000},
}

func (l FailedLoginLimits) withDefaults() FailedLoginLimits {
	fill := func(v, d auth.LoginLimits) auth.LoginLimits {
		if v.Free == 0 {
			v.Free = d.Free
		}
		if v.Base == 0 {
			v.Base = d.Base
		}
		if v.Max == 0 {
			v.Max = d.Max
		}
		if v.Forget == 0 {
			v.Forget = d.Forget
		}
		if v.MaxKeys == 0 {
			v.MaxKeys = d.MaxKeys
		}
		return v
	}
	return FailedLoginLimits{ByAddress: fill(l.ByAddress, DefaultFailedLogins.ByAddress), ByUser: fill(l.ByUser, DefaultFailedLogins.ByUser)}
}

// throttleLogEvery is the least time between two log lines about
// throttled logins.
const throttleLogEvery = 10 * time.Second

// guard authenticates each request and applies its route's rule before
// next serves it.
type guard struct {
	next     http.Handler
	rules    *http.ServeMux // the routes, each checking its rule then calling next
	sessions Sessions
	mode     AuthMode
	byAddr   *auth.LoginLimiter // failed Basic logins per remote address
	byUser   *auth.LoginLimiter // and per user name
	logger   *zap.Logger
	logs     auth.LogSampler // of the throttled-login warnings
}

// rule checks a request of a route with its Session.
type rule func(s *broker.Session, r *http.Request) error

func newGuard(next http.Handler, sessions Sessions, mode AuthMode, limits FailedLoginLimits, logger *zap.Logger) *guard {
	limits = limits.withDefaults()
	g := &guard{next: next, rules: http.NewServeMux(), sessions: sessions, mode: mode,
		byAddr: auth.NewLoginLimiter(limits.ByAddress), byUser: auth.NewLoginLimiter(limits.ByUser), logger: logger}
	cluster := func(s *broker.Session, _ *http.Request) error { return s.CanDescribeCluster() }
	topic := func(check func(*broker.Session, string) error) rule {
		return func(s *broker.Session, r *http.Request) error { return check(s, r.PathValue("topic")) }
	}
	open := func(*broker.Session, *http.Request) error { return nil }
	rules := map[string]rule{
		// Prometheus: the whole broker's state, as DescribeCluster shows.
		"GET /metrics": cluster,
		// The pages themselves hold no data.
		"GET /{$}":            open,
		"GET /static/":        open,
		"GET /api/cluster":    cluster,
		"GET /api/throughput": cluster,
		"GET /api/stats":      cluster,
		"GET /api/groups":     cluster, // every group (Kafka's ListGroups filters them one by one)
		// The list leaves out what the session may not describe, and a
		// create, delete or config change is checked per topic by the
		// core calls (coreOf).
		"GET /api/topics":                                             open,
		"POST /api/topics":                                            open,
		"DELETE /api/topics/{topic}":                                  open,
		"PATCH /api/topics/{topic}/configs":                           open,
		"GET /api/topics/{topic}":                                     topic((*broker.Session).CanDescribe),
		"GET /api/topics/{topic}/records":                             topic((*broker.Session).CanRead),
		"GET /api/topics/{topic}/records/{partition}/{offset}/{part}": topic((*broker.Session).CanRead),
		"GET /api/groups/{group}": func(s *broker.Session, r *http.Request) error {
			return s.CanDescribeGroup(r.PathValue("group"))
		},
		// A reset moves the group's position, as a commit: read on the
		// group, then read on the topic.
		"POST /api/groups/{group}/reset": func(s *broker.Session, r *http.Request) error {
			if err := s.CanReadGroup(r.PathValue("group")); err != nil {
				return err
			}
			return s.CanRead(peekTopic(r))
		},
		"GET /api/queues": cluster, // every queue group, as GET /api/groups
		"GET /api/queues/{group}": func(s *broker.Session, r *http.Request) error {
			return s.CanDescribeGroup(r.PathValue("group"))
		},
		// POST /api/queues/{group}/redrive has the rule below: it reads
		// dead-letter topics and writes to whatever topics their records
		// name, which no per-topic check can know beforehand.
		// Anything else (an endpoint without a rule of its own).
		"/": func(s *broker.Session, _ *http.Request) error { return s.CanAlterCluster() },
	}
	for pattern, check := range rules {
		g.rules.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := check(sessionOf(r), r); err != nil {
				status, code := apiStatus(err)
				writeError(w, status, code, err)
				return
			}
			g.next.ServeHTTP(w, r)
		})
	}
	return g
}

// peekTopic reads the "topic" of a JSON body and puts the body back for
// the handler (which refuses a bad one); "" when there is none.
func peekTopic(r *http.Request) string {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return ""
	}
	var v struct {
		Topic string `json:"topic"`
	}
	_ = json.Unmarshal(body, &v)
	return v.Topic
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
		g.next.ServeHTTP(w, r) // probes stay open
		return
	}
	nc, _ := r.Context().Value(connKey{}).(net.Conn)
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	s := g.sessions.HTTPSession(nc, host)
	user, password, basic := r.BasicAuth()
	switch {
	case basic:
		if wait := max(g.byAddr.Wait(host), g.byUser.Wait(user)); wait > 0 {
			g.throttled(w, host, user, wait)
			return
		}
		if err := s.LoginPassword(user, password); err != nil {
			g.byAddr.Failed(host)
			g.byUser.Failed(user)
			g.unauthorized(w)
			return
		}
	case g.mode == AuthRequired && !s.Authenticated():
		g.unauthorized(w)
		return
	}
	if s.CertRefused() {
		g.unauthorized(w) // a client certificate that maps to no principal
		return
	}
	g.rules.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
}

// unauthorized answers 401 with the Basic challenge, saying nothing of
// why (unknown user, wrong password, none given, no TLS): the cause is in
// the broker's log with the remote address.
func (g *guard) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, "", errUnauthorized)
}

// throttled answers 429 to a login that must wait, with Retry-After in
// whole seconds, and logs a warning at most once per throttleLogEvery.
func (g *guard) throttled(w http.ResponseWriter, host, user string, wait time.Duration) {
	if suppressed, ok := g.logs.Allow(time.Now(), throttleLogEvery); ok {
		if len(user) > 64 {
			user = user[:64] + "…" // a made-up name may be long
		}
		g.logger.Warn("http logins throttled after failures", zap.String("remote", host), zap.String("user", user),
			zap.Duration("wait", wait), zap.Int("others_since_last_line", suppressed))
	}
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, "", errThrottled)
}

var errThrottled = errors.New("too many failed logins: retry later (see Retry-After)")

var errUnauthorized = errors.New("authentication required: HTTP Basic with a sluice user's password (over TLS), or a client certificate")

// coreOf is the console's core for request r: the Session's checks
// before every call, and the metadata without the topics it may not
// describe. The core itself without a Session.
func (c *console) coreOf(r *http.Request) Core {
	if s := sessionOf(r); s != nil {
		return sessionCore{Core: c.core, s: s}
	}
	return c.core
}

// sessionCore is a Core that checks its Session first.
type sessionCore struct {
	Core
	s *broker.Session
}

func (sc sessionCore) Metadata() *controller.Metadata {
	md := sc.Core.Metadata()
	out := *md
	out.Topics = make(map[string]*controller.Topic, len(md.Topics))
	for name, t := range md.Topics {
		if sc.s.CanDescribe(name) == nil {
			out.Topics[name] = t
		}
	}
	return &out
}

// each runs check on each of n names; the core is called with the
// allowed ones only (call's indexes are of them) and the answers merged.
func each[T any](items []T, check func(T) error, call func([]T) []error) []error {
	errs := make([]error, len(items))
	var allowed []T
	var at []int
	for i, it := range items {
		if errs[i] = check(it); errs[i] == nil {
			allowed, at = append(allowed, it), append(at, i)
		}
	}
	if len(allowed) > 0 {
		for j, err := range call(allowed) {
			errs[at[j]] = err
		}
	}
	return errs
}

func (sc sessionCore) CreateTopics(ctx context.Context, topics []broker.NewTopic, validateOnly bool) []error {
	return each(topics, func(t broker.NewTopic) error { return sc.s.CanCreateTopic(t.Name) },
		func(ts []broker.NewTopic) []error { return sc.Core.CreateTopics(ctx, ts, validateOnly) })
}

func (sc sessionCore) DeleteTopics(ctx context.Context, names []string) []error {
	return each(names, sc.s.CanDeleteTopic, func(ns []string) []error { return sc.Core.DeleteTopics(ctx, ns) })
}

func (sc sessionCore) DescribeTopicConfigs(topic string, keys []string) ([]broker.ConfigValue, error) {
	if err := sc.s.CanDescribeConfigs(topic); err != nil {
		return nil, err
	}
	return sc.Core.DescribeTopicConfigs(topic, keys)
}

func (sc sessionCore) AlterTopicConfigs(ctx context.Context, changes []broker.ConfigAlteration, validateOnly bool) []error {
	return each(changes, func(c broker.ConfigAlteration) error { return sc.s.CanAlterConfigs(c.Topic) },
		func(cs []broker.ConfigAlteration) []error { return sc.Core.AlterTopicConfigs(ctx, cs, validateOnly) })
}
