package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/auth"
)

// The listeners --tls-listeners names.
const (
	listenerClient = "client" // the sluice listener, and so the brokers' fetches and forwarded writes
	listenerKafka  = "kafka"
	listenerHTTP   = "http"
	listenerRaft   = "raft"
)

var tlsListenerNames = []string{listenerClient, listenerKafka, listenerHTTP, listenerRaft}

// tlsFlags are the broker's TLS and gossip-encryption settings.
type tlsFlags struct {
	cert, key, ca  string
	clientAuth     string
	listeners      []string
	reloadInterval time.Duration
	gossipKey      string
}

func (o *tlsFlags) register(f *pflag.FlagSet) {
	f.StringVar(&o.cert, "tls-cert", "", "PEM certificate chain of this broker; set: TLS on the --tls-listeners, and between brokers")
	f.StringVar(&o.key, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&o.ca, "tls-ca", "", "PEM CA certificates that verify clients' certificates and other brokers; empty: the system's CAs verify brokers, and no client certificates")
	f.StringVar(&o.clientAuth, "tls-client-auth", "none", "client certificates: none, requested (verified when given) or required (mutual TLS; brokers then present --tls-cert to each other)")
	f.StringSliceVar(&o.listeners, "tls-listeners", tlsListenerNames, "listeners that speak TLS when --tls-cert is set: client (also carries replication and forwarded controller writes), kafka, http, raft")
	f.DurationVar(&o.reloadInterval, "tls-reload-interval", 10*time.Second, "how often the TLS files are checked for changes and reloaded (SIGHUP reloads them at once)")
	f.StringVar(&o.gossipKey, "gossip-key", "", "base64 key of 16, 24 or 32 bytes that encrypts and authenticates gossip (serf/memberlist keyring, AES-GCM); the same on every broker; e.g. $(head -c 32 /dev/urandom | base64). During a rotation NEW,OLD: sent with the first, all accepted (docs/operations.md)")
}

// brokerTLS is the broker's TLS, loaded from its files: one certificate
// for every listener that has TLS, and for the broker's dials to the
// others.
type brokerTLS struct {
	reloader  *auth.Reloader
	transport *auth.Transport
	on        map[string]bool
}

// load reads the files and checks the settings; nil without --tls-cert.
func (o *tlsFlags) load(changed func(string) bool) (*brokerTLS, error) {
	for _, l := range o.listeners {
		if !slices.Contains(tlsListenerNames, l) {
			return nil, fmt.Errorf("--tls-listeners: %q: want some of %s", l, strings.Join(tlsListenerNames, ","))
		}
	}
	if o.cert == "" {
		for _, f := range []string{"tls-key", "tls-ca", "tls-client-auth", "tls-listeners"} {
			if changed(f) {
				return nil, fmt.Errorf("--%s: needs --tls-cert (and --tls-key)", f)
			}
		}
		return nil, nil
	}
	ca, err := auth.ParseClientAuth(o.clientAuth)
	if err != nil {
		return nil, fmt.Errorf("--tls-client-auth: %w", err)
	}
	r, err := auth.NewReloader(auth.TLSFiles{CertFile: o.cert, KeyFile: o.key, CAFile: o.ca})
	if err != nil {
		return nil, fmt.Errorf("--tls-cert, --tls-key, --tls-ca: %w", err)
	}
	t, err := auth.NewTransport(r, ca)
	if err != nil {
		return nil, fmt.Errorf("--tls-client-auth %s: %w", o.clientAuth, err)
	}
	bt := &brokerTLS{reloader: r, transport: t, on: map[string]bool{}}
	for _, l := range o.listeners {
		bt.on[l] = true
	}
	return bt, nil
}

// gossipKeyBytes decodes --gossip-key: the key gossip is sent with and,
// during a rotation, the others accepted (comma-separated after it).
func (o *tlsFlags) gossipKeyBytes() (key []byte, accepted [][]byte, err error) {
	if strings.TrimSpace(o.gossipKey) == "" {
		return nil, nil, nil
	}
	for i, s := range strings.Split(o.gossipKey, ",") {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return nil, nil, fmt.Errorf("--gossip-key: key %d: not base64: %w", i+1, err)
		}
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return nil, nil, fmt.Errorf("--gossip-key: key %d: %d bytes, want 16, 24 or 32", i+1, n)
		}
		if i == 0 {
			key = k
		} else {
			accepted = append(accepted, k)
		}
	}
	return key, accepted, nil
}

// transport is the TLS of the listener named l; nil (plaintext) when it
// has none.
func (bt *brokerTLS) transportFor(l string) *auth.Transport {
	if bt == nil || !bt.on[l] {
		return nil
	}
	return bt.transport
}

// clientConfig is the TLS of a client of this broker's own client
// listener (the web console's); nil when that listener is plaintext.
func (bt *brokerTLS) clientConfig() *tls.Config {
	if bt == nil || !bt.on[listenerClient] {
		return nil
	}
	return bt.reloader.ClientConfig("")
}

// watch reloads the files when they change (every interval) and on
// SIGHUP, until the returned stop is called: new handshakes take the new
// files. A reload that fails keeps the previous files and is logged.
func (bt *brokerTLS) watch(interval time.Duration, logger *zap.Logger) (stop func()) {
	if bt == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		bt.reloader.Watch(ctx, interval, func(err error) {
			logger.Warn("TLS files changed but did not load; keeping the previous ones", zap.Error(err))
		})
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := bt.reloader.Reload(); err != nil {
					logger.Warn("SIGHUP: TLS files did not load; keeping the previous ones", zap.Error(err))
				} else {
					logger.Info("SIGHUP: TLS files reloaded")
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}

// clientTLS loads the TLS of a command's client from --tls-ca, --tls-cert,
// --tls-key and --tls-server-name; nil when none is set.
func clientTLS(ca, cert, key, serverName string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" && serverName == "" {
		return nil, nil
	}
	r, err := auth.NewReloader(auth.TLSFiles{CertFile: cert, KeyFile: key, CAFile: ca})
	if err != nil {
		return nil, fmt.Errorf("--tls-ca, --tls-cert, --tls-key: %w", err)
	}
	return r.ClientConfig(serverName), nil
}
