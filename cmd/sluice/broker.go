package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/httpapi"
	"github.com/sluicemq/sluice/kafka"
)

func newBrokerCmd() *cobra.Command {
	var (
		cfg       broker.Config
		logFormat string
		logLevel  string
		pprofAddr string
		web       webOptions

		configPath  string
		printConfig bool
		kafkaAddr   string
		kafkaSlots  int
		tlsOpts     tlsFlags
		sec         brokerSecurity
	)
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run a broker",
		Long: `Run a broker: listen for clients, keep partitions under the data directory.

Every broker runs the controller: a member of the Raft group that holds the
cluster metadata, with its state in <data-dir>/raft. With no --voters (and
no --join) the broker is a one-voter cluster of its own. Brokers named in
--voters bootstrap the group together (start them all within a minute);
a broker started with --join asks that broker for the voters and joins as
a non-voter.

Brokers notice each other's failures by gossip (serf) on --gossip-addr, UDP
and TCP. Each broker records its gossip address with the controller and
joins those of the brokers registered there; --gossip-seeds adds addresses
to join at start (any one that answers is enough). A failed broker's
partitions get new leaders from their in-sync replicas; a follower that has
not caught up for --replica-max-lag leaves the ISR until it catches up.

SIGTERM or SIGINT shuts it down gracefully: it moves the leadership of its
partitions to other in-sync replicas (waiting at most
--controlled-shutdown-timeout), stops accepting, finishes the requests in
flight, flushes every log and writes clean-shutdown markers, then exits 0.
A second signal exits at once.

Connection limits: --max-connections in all and --max-connections-per-ip
from one IP address. A client past either gets THROTTLING_QUOTA_EXCEEDED
for its first request and is disconnected (sluice clients report
"connection refused: broker at its connection limit"); another broker's
connection takes one of --reserved-broker-connections more slots, so
replication and controller traffic go on while clients hold every slot. A
connection that sends nothing for --first-request-timeout is closed.
Refusals are logged at warn, at most one line per 10 s with counts.

HTTP: --http-addr serves /metrics (Prometheus text format), /healthz (the
process is up) and /readyz (200 once the broker is registered with the
controller, leads every partition the metadata names it leader of, and is
not shutting down; 503 with the reason otherwise). By default it listens on
the --listen host at the --listen port + 3; --http-addr '' or off turns it
off. --metrics-level debug adds series per partition (docs/observability.md
lists every metric). --http-auth required (the default with
--require-auth) asks every request but /healthz and /readyz for a sluice
user's password (HTTP Basic, over TLS only) or a verified client
certificate, answering 401 otherwise; with --authorizer each request
needs the ACLs its client-protocol twin needs (/metrics: describe on the
cluster; docs/security.md lists every route).

Settings: every flag below (but --config and --print-config) is also an
environment variable, SLUICE_ and the flag's name in capitals with _ for -
(--replica-max-lag: SLUICE_REPLICA_MAX_LAG; an empty variable counts as
unset), and a key of the YAML file --config (or SLUICE_CONFIG) names,
spelt as the flag (replica-max-lag: 2s; a list is joined with commas).
A flag wins over the environment, which wins over the file, which wins
over the default. An unknown key or a value a flag would refuse stops the
broker at start, naming the key and the reason. --print-config prints the
effective settings as a config file, each with where it came from, and
exits: a way to check a file, and to start one. A secret (--gossip-key)
prints as <redacted>; files (--tls-key, --cluster-secret-file) as their
paths.

--kafka-listen adds a listener speaking Apache Kafka's protocol, so Kafka
clients (kcat, franz-go, librdkafka, the Java client) produce, consume and
manage topics unchanged; off by default. Each broker advertises its own
--kafka-advertised-addr (default: the bound Kafka address) to the others,
and Kafka clients see broker ids as node ids. docs/kafka.md lists what it
serves. Consumers that support fetch sessions (KIP-227: franz-go, the Java
client) send only what changed after their first fetch;
--kafka-fetch-session-slots bounds the sessions kept (0 turns them off).

TLS: --tls-cert and --tls-key (PEM) turn TLS on for the listeners
--tls-listeners names (default all: client, kafka, http, raft) with one
certificate. The client listener carries the brokers' own traffic too
(replica fetches, forwarded controller writes), so with it on every
broker dials the others with TLS, verifying them against --tls-ca and
presenting its certificate. --tls-client-auth required asks every client
(brokers included) for a certificate --tls-ca verifies: the broker's
certificate must then allow client authentication too. A connection has
10 s to complete its handshake. The files are reloaded when they change
(checked every --tls-reload-interval) and on SIGHUP; connections
already open keep what they negotiated. Gossip (UDP) cannot run over
TLS: --gossip-key encrypts and authenticates it with memberlist's
keyring instead. docs/security.md walks through a setup.`,
		Example: `  # a single-node broker on 127.0.0.1:7092 (Raft on 7093) with data in ./data
  sluice broker

  # three voters on one machine (Raft on listen port + 1, gossip on + 2)
  V=1@127.0.0.1:7093,2@127.0.0.1:7193,3@127.0.0.1:7293
  sluice broker --broker-id 1 --listen 127.0.0.1:7092 --data-dir d1 --voters $V \
    --gossip-seeds 127.0.0.1:7194,127.0.0.1:7294
  sluice broker --broker-id 2 --listen 127.0.0.1:7192 --data-dir d2 --voters $V \
    --gossip-seeds 127.0.0.1:7094,127.0.0.1:7294
  sluice broker --broker-id 3 --listen 127.0.0.1:7292 --data-dir d3 --voters $V \
    --gossip-seeds 127.0.0.1:7094,127.0.0.1:7194

  # a fourth broker joining as a non-voter
  sluice broker --broker-id 4 --listen 127.0.0.1:7392 --data-dir d4 --join 127.0.0.1:7092 \
    --gossip-seeds 127.0.0.1:7094,127.0.0.1:7194,127.0.0.1:7294

  # followers out of the ISR after 2 s behind instead of 10 s
  sluice broker --replica-max-lag 2s

  # at most 2000 connections, 100 from any one host
  sluice broker --max-connections 2000 --max-connections-per-ip 100

  # metrics on all interfaces, with per-partition series; then scrape them
  sluice broker --http-addr 0.0.0.0:9095 --metrics-level debug
  curl -s http://127.0.0.1:9095/metrics | grep sluice_partitions_led

  # no HTTP endpoint
  sluice broker --http-addr off

  # the console and /metrics behind logins and ACLs, over HTTPS
  sluice broker --tls-cert b.crt --tls-key b.key --cluster-secret-file secret \
    --sasl-mechanisms SCRAM-SHA-512 --require-auth --authorizer --super-users User:admin
  curl --cacert ca.crt -u admin:"$ADMIN_PW" https://127.0.0.1:7095/metrics

  # settings from a file; flags and SLUICE_* variables override it
  printf 'listen: 0.0.0.0:7092\ndata-dir: /var/lib/sluice\nlog-level: warn\n' > sluice.yaml
  SLUICE_LOG_LEVEL=debug sluice broker --config sluice.yaml --rack r1

  # the effective settings, as a config file to start from
  sluice broker --config sluice.yaml --print-config

  # a Kafka listener too: point kcat -b 127.0.0.1:9092 (or any Kafka client) at it
  sluice broker --kafka-listen 127.0.0.1:9092
  sluice broker --kafka-listen 127.0.0.1:9092 --kafka-fetch-session-slots 0   # no fetch sessions: full fetches only

  # TLS everywhere, mutual TLS, encrypted gossip (go run ./internal/testcerts/gencerts
  # -dir certs broker client writes test files; every broker gets the same key);
  # then reload rotated files at once
  GOSSIP_KEY=$(head -c 32 /dev/urandom | base64)
  sluice broker --tls-cert certs/broker.crt --tls-key certs/broker.key --tls-ca certs/ca.crt \
    --tls-client-auth required --gossip-key "$GOSSIP_KEY"
  kill -HUP "$(pidof sluice)"

  # TLS on the client and Kafka listeners only; Raft and HTTP stay plaintext
  sluice broker --tls-cert b.crt --tls-key b.key --tls-listeners client,kafka

  # SCRAM logins required, ACLs enforced, admin allowed everything
  openssl rand -hex 32 > secret
  sluice broker --cluster-secret-file secret --sasl-mechanisms SCRAM-SHA-512,SCRAM-SHA-256 \
    --require-auth --authorizer --super-users User:admin

  # another port and directory, JSON logs
  sluice broker --listen 127.0.0.1:9092 --data-dir /var/lib/sluice --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			settings := cmd.LocalFlags()
			sources, err := loadSettings(settings, configPath, lookupEnv)
			if err != nil {
				return err
			}
			if err := sec.apply(&cfg); err != nil {
				return err
			}
			logger, err := broker.NewLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			if printConfig {
				if err := cfg.Validate(); err != nil {
					return err
				}
				return printSettings(cmd.OutOrStdout(), settings, sources)
			}
			defer logger.Sync() //nolint:errcheck // stderr sync errors are not actionable
			// From here on every line goes through the logger, in its
			// format: the libraries' standard-log lines too, and the error
			// the broker stops with (a JSON log stays all JSON).
			defer zap.RedirectStdLog(logger.Named("stdlog"))()
			cfg.Logger = logger
			// loadSettings marks a flag set from the environment or the
			// file as changed: an explicit --http-addr '' turns it off.
			web.set = cmd.Flags().Changed("http-addr")
			if cfg.GossipKey, cfg.GossipAcceptedKeys, err = tlsOpts.gossipKeyBytes(); err != nil {
				return err
			}
			bt, err := tlsOpts.load(cmd.Flags().Changed)
			if err != nil {
				return err
			}
			cfg.TLS, cfg.RaftTLS = bt.transportFor(listenerClient), bt.transportFor(listenerRaft)
			defer bt.watch(tlsOpts.reloadInterval, logger.With(zap.Int32("broker", cfg.BrokerID)))()
			if err := runBroker(cmd.Context(), cfg, logger, pprofAddr, kafkaAddr, kafkaSlots, web, bt); err != nil {
				logger.WithOptions(zap.AddStacktrace(zapcore.FatalLevel)).Error("broker failed",
					zap.Int32("broker", cfg.BrokerID), zap.Error(err))
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	def := broker.Config{}.WithDefaults() // the library's defaults, shown in --help
	f.StringVar(&cfg.ListenAddr, "listen", broker.DefaultListenAddr, "address to listen on for clients")
	f.StringVar(&cfg.AdvertisedAddr, "advertised-addr", "", "address clients are told to connect to; default: the listen address")
	f.StringVar(&cfg.DataDir, "data-dir", broker.DefaultDataDir, "directory for partition logs and metadata")
	f.StringVar(&kafkaAddr, "kafka-listen", "", "address to listen on for Kafka clients (Kafka's wire protocol); empty: no Kafka listener")
	f.IntVar(&kafkaSlots, "kafka-fetch-session-slots", kafka.DefaultFetchSessionSlots, "fetch sessions (KIP-227) the Kafka listener keeps, as Kafka's max.incremental.fetch.session.cache.slots; 0: none (clients send full fetches)")
	f.StringVar(&cfg.KafkaAdvertisedAddr, "kafka-advertised-addr", "", "address Kafka clients are told to connect to; default: the Kafka listen address")
	f.Int32Var(&cfg.BrokerID, "broker-id", broker.DefaultBrokerID, "this broker's id")
	f.StringVar(&cfg.RaftAddr, "raft-addr", "", "address of the controller's Raft transport; default: the listen port + 1")
	f.StringVar(&cfg.Voters, "voters", "", "Raft voters, id@raft-host:port,...; empty: this broker alone")
	f.StringVar(&cfg.Join, "join", "", "client address of a broker of an existing cluster to join as a non-voter")
	f.StringVar(&cfg.GossipAddr, "gossip-addr", "", "address for gossip membership and failure detection, UDP and TCP; default: the listen port + 2")
	f.StringVar(&cfg.GossipSeeds, "gossip-seeds", "", "other brokers' gossip addresses to join at start, host:port,...; optional: registered brokers' are joined too")
	f.DurationVar(&cfg.ReplicaMaxLag, "replica-max-lag", def.ReplicaMaxLag, "how long a follower may go without catching up to the leader before it leaves the ISR")
	f.DurationVar(&cfg.ReplicaFetchWait, "replica-fetch-wait", def.ReplicaFetchWait, "how long a follower's fetch waits at the leader for new records")
	f.DurationVar(&cfg.ProducerIDExpiration, "producer-id-expiration", def.ProducerIDExpiration, "how long a partition keeps an idempotent producer's state after its last batch (producer.id.expiration.ms)")
	f.IntVar(&cfg.ProducerIDMax, "producer-id-max", def.ProducerIDMax, "most (idempotent producer id, partition) entries of state the broker keeps over all its partitions; past it the least recently written are evicted (producer.id.max)")
	f.IntVar(&cfg.CleanerKeyMapBytes, "cleaner-key-map-bytes", def.CleanerKeyMapBytes, "memory of the log cleaner's key map (24 bytes a key); compacted partitions with more keys in their dirty part are cleaned in several passes")
	f.DurationVar(&cfg.CleanerInterval, "cleaner-interval", def.CleanerInterval, "how often the log cleaner looks for compacted partitions due for cleaning; a failed partition is retried after a backoff starting here")
	f.DurationVar(&cfg.ControlledShutdownTimeout, "controlled-shutdown-timeout", def.ControlledShutdownTimeout, "how long shutdown waits for the controller to move this broker's leaderships to other replicas")
	f.DurationVar(&cfg.LeaderRebalanceInterval, "leader-rebalance-interval", def.LeaderRebalanceInterval, "how often leadership returns to preferred replicas that are back in sync; negative: never")
	f.StringVar(&cfg.BootIDFile, "boot-id-file", broker.DefaultBootIDFile, "file holding the kernel boot id: a restart after a crash under the same id lost nothing the page cache held (R11); tests point it elsewhere to simulate a reboot")
	f.Int32Var(&cfg.OffsetsTopicPartitions, "offsets-topic-partitions", def.OffsetsTopicPartitions, "partitions of the offsets topic (__consumer_offsets) when this broker creates it, at the first consumer-group request; fixed afterwards")
	f.DurationVar(&cfg.Group.SessionTimeout, "group-session-timeout", def.Group.SessionTimeout, "a consumer-group member that has not heartbeated for this long is removed and its partitions reassigned (group.consumer.session.timeout.ms)")
	f.DurationVar(&cfg.Group.HeartbeatInterval, "group-heartbeat-interval", def.Group.HeartbeatInterval, "how often consumer-group members are told to heartbeat; below --group-session-timeout (group.consumer.heartbeat.interval.ms)")
	f.DurationVar(&cfg.Group.ClassicInitialRebalanceDelay, "group-initial-rebalance-delay", group.DefaultClassicInitialRebalanceDelay, "how long the first rebalance of an empty classic (Kafka JoinGroup) group waits for more members, each join extending it up to the rebalance timeout; 0: none (group.initial.rebalance.delay.ms)")
	f.IntVar(&cfg.Group.MaxQueueGroups, "max-queue-groups", def.Group.MaxQueueGroups, "most queue groups one group coordinator holds (each keeps a window of up to queue.max.in.flight records per partition it reads in memory); a new group past it is refused with GROUP_MAX_SIZE_REACHED; 0: the default")
	f.DurationVar(&cfg.Group.OffsetsRetention, "offsets-retention", def.Group.OffsetsRetention, "how long the committed offsets of a group with no members are kept after their commit (offsets.retention.minutes)")
	f.StringVar(&cfg.Rack, "rack", "", "this broker's rack, for replica placement")
	f.IntVar(&cfg.MaxFrameBytes, "max-frame-bytes", broker.DefaultMaxFrameBytes, "largest request frame accepted; a larger one closes the connection")
	f.IntVar(&cfg.MaxConnections, "max-connections", broker.DefaultMaxConnections, "most connections open at once; past it only other brokers' connections are kept, in --reserved-broker-connections more")
	f.IntVar(&cfg.MaxConnectionsPerIP, "max-connections-per-ip", broker.DefaultMaxConnectionsPerIP, "most connections from one IP address (brokers' connections past it take reserved slots); negative: no limit")
	f.IntVar(&cfg.ReservedBrokerConnections, "reserved-broker-connections", broker.DefaultReservedBrokerConnections, "slots past --max-connections and --max-connections-per-ip kept for other brokers (replica fetches, forwarded controller writes); negative: none")
	f.DurationVar(&cfg.FirstRequestTimeout, "first-request-timeout", broker.DefaultFirstRequestTimeout, "how long a new connection has to send its first request before it is closed")
	f.Int64Var(&cfg.MemoryBudget, "memory-budget", broker.DefaultMemoryBudget, "bytes of requests held in memory across all connections")
	f.StringVar(&logFormat, "log-format", "auto", "log format: auto (console on a terminal, else JSON), console or json")
	f.StringVar(&configPath, "config", "", "YAML file of settings: keys are the flags' names (env SLUICE_CONFIG)")
	f.BoolVar(&printConfig, "print-config", false, "print the effective settings as a config file, with where each came from, and exit")
	f.StringVar(&pprofAddr, "pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); off by default")
	f.StringVar(&web.addr, "http-addr", "", "address of the HTTP endpoint (/metrics, /healthz, /readyz, the web console at /); default: the listen host at the listen port + 3; '' or off: none")
	f.StringVar(&web.auth, "http-auth", "", "authentication on the HTTP endpoint but /healthz and /readyz: required (HTTP Basic with a sluice user's password, over TLS only, or a verified client certificate) or none (anonymous, still under --authorizer); default: required with --require-auth, else none")
	f.StringVar(&web.level, "metrics-level", "info", "metrics detail: info (per broker, API and topic) or debug (adds per-partition series)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.Uint8Var(&cfg.MaxCommandVersion, "max-command-version", 0, "for tests: behave as a build whose newest controller command version is this one (a rolling upgrade's old build); 0: this build's")
	_ = f.MarkHidden("max-command-version")
	tlsOpts.register(f)
	sec.flags(f)
	return cmd
}

// webOptions are the HTTP endpoint's flags; set: --http-addr was given.
type webOptions struct {
	addr, level, auth string
	set               bool
}

// authMode is --http-auth's mode; unset, required when the broker
// requires logins (--require-auth).
func (w webOptions) authMode(requireAuth bool) (httpapi.AuthMode, error) {
	if w.auth == "" {
		if requireAuth {
			return httpapi.AuthRequired, nil
		}
		return httpapi.AuthNone, nil
	}
	m, err := httpapi.ParseAuthMode(w.auth)
	if err != nil {
		return 0, fmt.Errorf("--http-auth: %w", err)
	}
	return m, nil
}

// runBroker runs the broker, its HTTP endpoint and, when kafkaAddr is
// set, its Kafka listener until ctx is cancelled, then closes them.
func runBroker(ctx context.Context, cfg broker.Config, logger *zap.Logger, pprofAddr, kafkaAddr string, kafkaSlots int, web webOptions, bt *brokerTLS) error {
	httpAddr := web.addr
	if !web.set {
		a, err := httpapi.DefaultAddr(cfg.ListenAddr)
		if err != nil {
			return fmt.Errorf("--http-addr: %w", err)
		}
		httpAddr = a
	}
	var metrics *httpapi.Metrics
	if httpAddr != "" && httpAddr != "off" {
		level, err := httpapi.ParseLevel(web.level)
		if err != nil {
			return fmt.Errorf("--metrics-level: %w", err)
		}
		metrics = httpapi.NewMetrics(level)
		cfg.Observer = metrics
	}
	var kln net.Listener
	if kafkaAddr != "" {
		// Bound before the broker starts: its address goes into the
		// broker's registration gossip.
		var err error
		if kln, err = net.Listen("tcp", kafkaAddr); err != nil {
			return fmt.Errorf("--kafka-listen: %w", err)
		}
		defer func() {
			if kln != nil {
				kln.Close() // unless the Kafka listener took it
			}
		}()
		if cfg.KafkaAdvertisedAddr == "" {
			cfg.KafkaAdvertisedAddr = kln.Addr().String()
		}
	}
	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	logger = logger.With(zap.Int32("broker", cfg.BrokerID))
	if metrics != nil {
		// Before the broker starts: /healthz answers and /readyz says why
		// not ready while it registers.
		mode, err := web.authMode(cfg.Security.RequireAuth)
		if err != nil {
			return err
		}
		// Every request but the probes gets a broker core Session and its
		// checks (httpapi/auth.go), the console's included.
		hc := httpapi.Config{Addr: httpAddr, Broker: b, Metrics: metrics, Logger: logger, Console: b, TLS: bt.transportFor(listenerHTTP),
			Sessions: b, Auth: mode}
		if c := bt.clientConfig(); c != nil {
			hc.ClientOpts = []client.Opt{client.TLS(c)} // the console reads through the client listener
		}
		if cfg.Security.RequireAuth || cfg.Security.Authorizer {
			// The console reads through its client as the operator, after
			// checking the request's Session.
			hc.ClientOpts = append(hc.ClientOpts, client.SASL(b.OperatorLogin()))
		}
		if mode == httpapi.AuthRequired && hc.TLS == nil {
			logger.Warn("--http-auth required without TLS on the HTTP endpoint: credentials are refused over plain HTTP, so only /healthz and /readyz answer (set --tls-cert, with http in --tls-listeners)")
		}
		srv, err := httpapi.Start(ctx, hc)
		if err != nil {
			return fmt.Errorf("--http-addr: %w", err)
		}
		defer srv.Close()
		scheme := "http://"
		if hc.TLS != nil {
			scheme = "https://"
		}
		logger.Info("http listening", zap.String("url", scheme+srv.Addr()+"/metrics"), zap.String("console", scheme+srv.Addr()+"/"))
	}
	if err := b.Start(ctx); err != nil { // logs "broker listening" with its addresses
		return err
	}
	if kln != nil {
		// The Kafka listener stops after the broker: during the
		// controlled shutdown its clients are told where leadership went.
		ln := bt.transportFor(listenerKafka).Listen(kln, "kafka", logger)
		kln = nil
		ks := kafka.New(b, cfg.Logger, kafka.FetchSessionSlots(kafkaSlots))
		if metrics != nil {
			if err := metrics.CollectFetchSessions(ks.FetchSessionStats); err != nil {
				ln.Close()
				b.Close()
				return err
			}
		}
		kctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := ks.Serve(kctx, ln); err != nil {
				logger.Error("kafka listener", zap.Error(err))
			}
		}()
		defer func() { cancel(); <-done }()
	}
	if pprofAddr != "" {
		stop, addr, err := servePprof(pprofAddr, logger)
		if err != nil {
			b.Close()
			return err
		}
		defer stop()
		logger.Info("pprof listening", zap.String("url", "http://"+addr+"/debug/pprof/"))
	}
	<-ctx.Done()
	// The first signal cancelled ctx; from here on a second one gets the
	// default action and ends the process at once.
	restoreSignals()
	return b.Close()
}

// servePprof serves the runtime profiles on their own listener, never the
// client port, and returns a stop that closes it and waits for the server.
func servePprof(addr string, logger *zap.Logger) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: zap.NewStdLog(logger.Named("pprof"))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("pprof", zap.Error(err))
		}
	}()
	return func() { srv.Close(); <-done }, ln.Addr().String(), nil
}
