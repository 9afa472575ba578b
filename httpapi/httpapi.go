// Package httpapi is a broker's HTTP endpoint: Prometheus metrics at
// /metrics, liveness at /healthz, readiness at /readyz
// (docs/observability.md lists every metric and says what each endpoint
// checks), and the web console at / with its JSON API under /api/
// (console.go; docs/console.md).
//
// The broker does not import Prometheus. It reports timed events (request
// stages, fsyncs, controller commits) to a broker.Observer — Metrics here —
// as they happen, and keeps its counters and state as plain values that
// Broker.Stats reads; the collector (collector.go) turns a Stats snapshot
// into metrics at scrape time. So a gauge is never out of step with the
// state it reports, and the produce and fetch paths pay an atomic add per
// batch and a clock read per request stage, never per record.
//
// Metrics have their own prometheus.Registry (no global one), so several
// brokers in one process (tests) each have theirs. At LevelInfo the
// series are per broker, per API or per topic; LevelDebug adds series per
// partition.
//
// Concurrency: Start binds the listener and serves from one goroutine,
// owned by the Server: it stops when the context given to Start is
// cancelled or Close is called, and Close returns once it has. The
// console's client of the cluster, made at its first use, is closed with
// the Server.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
)

// Source is what the endpoint reads from the broker (a *broker.Broker).
type Source interface {
	// Stats returns a snapshot for the metrics; partitions adds each
	// topic's partitions.
	Stats(partitions bool) broker.Stats
	// Ready returns nil when the broker serves clients, or why not.
	Ready() error
}

// Config configures a Server.
type Config struct {
	// Addr is the address to listen on, host:port (port 0 picks one).
	Addr string
	// Broker is the broker served.
	Broker Source
	// Metrics is the broker's Observer, whose registry /metrics serves;
	// Start adds the broker's collector to it. Required.
	Metrics *Metrics
	// Logger receives the server's logs. Default zap.NewNop().
	Logger *zap.Logger
	// Console, when set, serves the web console at / and its API under
	// /api/, over this broker core (the same broker as Broker).
	Console Core
	// ClientOpts are added to the options of the clients the console
	// reads the cluster with (bootstrapped from Console.Addr()).
	ClientOpts []client.Opt
	// TLS, when set, serves HTTPS: every connection completes a TLS
	// handshake (auth.Listener) before the HTTP server sees it. Default
	// plain HTTP.
	TLS *auth.Transport
	// Sessions, when set, authenticates and authorizes every request but
	// the probes with a broker core Session (auth.go); Auth says whether
	// a request must authenticate. Without Sessions, nothing is checked.
	Sessions Sessions
	Auth     AuthMode
	// FailedLogins limits failed HTTP Basic logins (with Sessions); zero
	// fields take the defaults of DefaultFailedLogins.
	FailedLogins FailedLoginLimits
}

// DefaultPortOffset is how far above the client port the HTTP endpoint
// listens by default (Raft is at +1, gossip at +2).
const DefaultPortOffset = 3

// DefaultAddr is the default HTTP address for a broker listening for
// clients on listen: the same host, the port plus DefaultPortOffset (port 0
// stays 0).
func DefaultAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("httpapi: default address from %q: %w", listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535-DefaultPortOffset {
		return "", fmt.Errorf("httpapi: default address from %q: port %q: want 0 to %d", listen, port, 65535-DefaultPortOffset)
	}
	if p > 0 {
		p += DefaultPortOffset
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// Server is a running HTTP endpoint.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	logger *zap.Logger
	done   chan struct{}
	stop   func() bool
	// console is nil without Config.Console.
	console *console

	closeOnce sync.Once
}

// Start listens on cfg.Addr and serves until ctx is cancelled or Close
// is called.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Broker == nil || cfg.Metrics == nil {
		return nil, errors.New("httpapi: Config.Broker and Config.Metrics are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := cfg.Metrics.collect(cfg.Broker); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("httpapi: listen: %w", err)
	}
	// With TLS, connections reach the HTTP server only once handshaken
	// (within the transport's timeout, failures logged at a bounded rate).
	ln = cfg.TLS.Listen(ln, "http", cfg.Logger)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics.reg, promhttp.HandlerOpts{
		ErrorLog:            zap.NewStdLog(cfg.Logger.Named("metrics")),
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := cfg.Broker.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	var cons *console
	if cfg.Console != nil {
		cons = newConsole(cfg.Console, cfg.Broker, cfg.Metrics, cfg.ClientOpts, cfg.Logger.Named("console"))
		cons.register(mux)
	}
	var handler http.Handler = mux
	if cfg.Sessions != nil {
		handler = newGuard(mux, cfg.Sessions, cfg.Auth, cfg.FailedLogins, cfg.Logger)
	}
	s := &Server{
		ln:      ln,
		console: cons,
		srv: &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: zap.NewStdLog(cfg.Logger.Named("http")),
			// The connection, for its TLS state (a client certificate's
			// principal): auth.Listener's connections are not *tls.Conn.
			ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) }},
		logger: cfg.Logger,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http endpoint stopped", zap.Error(err))
		}
		if s.console != nil {
			s.console.close()
		}
	}()
	s.stop = context.AfterFunc(ctx, func() { s.srv.Close() })
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: open connections are closed, not drained (a
// scrape is cheap to retry). It is idempotent and returns once the
// serving goroutine has stopped.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.stop()
		err = s.srv.Close()
	})
	<-s.done
	return err
}
