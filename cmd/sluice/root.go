package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

const (
	defaultBrokers = "127.0.0.1:7092"
	defaultTimeout = 30 * time.Second
)

// globals are the flags every command shares.
type globals struct {
	brokers string
	timeout time.Duration

	tlsCA, tlsCert, tlsKey, tlsServerName string
	tls                                   *tls.Config // loaded from the tls flags; nil: plaintext

	sasl clientSASL
}

// clientOpts are the client options the globals set: the seeds, and the
// request timeout, which also bounds opening a connection. (A broker that
// does not answer is left for the next one after a few seconds: the
// client bounds each attempt while other brokers remain.)
func (g *globals) clientOpts() []client.Opt {
	opts := []client.Opt{client.SeedBrokers(g.brokerList()...), client.RequestTimeout(g.timeout),
		client.DialTimeout(min(g.timeout, client.DefaultDialTimeout))}
	if g.tls != nil {
		opts = append(opts, client.TLS(g.tls))
	}
	return append(opts, g.sasl.opts()...)
}

// envTimeout is the default of --timeout: SLUICE_TIMEOUT, or
// defaultTimeout if it is unset.
func envTimeout() (time.Duration, error) {
	v := os.Getenv("SLUICE_TIMEOUT")
	if v == "" {
		return defaultTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return defaultTimeout, fmt.Errorf("SLUICE_TIMEOUT=%q: want a positive duration such as 10s", v)
	}
	return d, nil
}

func (g *globals) brokerList() []string {
	var out []string
	for _, b := range strings.Split(g.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "sluice",
		Short: "sluice: a partitioned, replicated commit log",
		Long: `sluice is a partitioned commit log in the family of Kafka.

Start a broker, create a topic, produce and consume:

  sluice broker --data-dir ./data
  sluice topic create orders --partitions 3
  echo hello | sluice produce orders
  sluice consume orders --from-beginning --max-messages 1

Every command takes --brokers (SLUICE_BROKERS), a comma-separated seed list,
and --timeout (SLUICE_TIMEOUT, default 30s) for each request; a broker that
does not answer is left for the next one after a few seconds:

  sluice cluster status --brokers 10.0.0.1:7092,10.0.0.2:7092 --timeout 10s

With TLS on the brokers, --tls-ca (SLUICE_TLS_CA) names the CA that
verifies them, and --tls-cert and --tls-key (SLUICE_TLS_CERT,
SLUICE_TLS_KEY) a client certificate when they require one:

  sluice topic list --tls-ca ca.crt --tls-cert client.crt --tls-key client.key

On a cluster that requires authentication, log in with --sasl-mechanism,
--sasl-user and --sasl-password-file (SLUICE_SASL_MECHANISM,
SLUICE_SASL_USER, SLUICE_SASL_PASSWORD_FILE; docs/security.md):

  sluice topic list --sasl-mechanism SCRAM-SHA-512 --sasl-user alice --sasl-password-file ~/.sluice-pw`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildInfo().Version, // --version
	}
	root.SetVersionTemplate(buildInfo().String())
	timeout, envErr := envTimeout()
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Name() == "broker" || cmd.Name() == "version" || cmd.Name() == "probe" || cmd.HasParent() && cmd.Parent().Name() == "completion" {
			return nil // no client: a bad SLUICE_TIMEOUT must not stop a broker
		}
		if envErr != nil && !root.PersistentFlags().Changed("timeout") {
			return envErr
		}
		if g.timeout <= 0 {
			return fmt.Errorf("--timeout %v: must be positive", g.timeout)
		}
		var err error
		if g.tls, err = clientTLS(g.tlsCA, g.tlsCert, g.tlsKey, g.tlsServerName); err != nil {
			return err
		}
		return g.sasl.resolve()
	}
	root.PersistentFlags().StringVar(&g.brokers, "brokers", envOr("SLUICE_BROKERS", defaultBrokers),
		"comma-separated broker addresses to bootstrap from (env SLUICE_BROKERS)")
	root.PersistentFlags().DurationVar(&g.timeout, "timeout", timeout,
		"how long to wait for a broker's answer to each request before giving up on it, and for connecting to the cluster at start (env SLUICE_TIMEOUT)")
	root.PersistentFlags().StringVar(&g.tlsCA, "tls-ca", envOr("SLUICE_TLS_CA", ""),
		"PEM CA certificates that verify the brokers; set (or any --tls-* flag): connect with TLS (env SLUICE_TLS_CA)")
	root.PersistentFlags().StringVar(&g.tlsCert, "tls-cert", envOr("SLUICE_TLS_CERT", ""),
		"PEM client certificate for brokers that require one (mutual TLS) (env SLUICE_TLS_CERT)")
	root.PersistentFlags().StringVar(&g.tlsKey, "tls-key", envOr("SLUICE_TLS_KEY", ""),
		"PEM private key of --tls-cert (env SLUICE_TLS_KEY)")
	root.PersistentFlags().StringVar(&g.tlsServerName, "tls-server-name", envOr("SLUICE_TLS_SERVER_NAME", ""),
		"name the brokers' certificates must carry; default: the host of each broker's address (env SLUICE_TLS_SERVER_NAME)")
	g.sasl.flags(root.PersistentFlags())
	root.AddCommand(
		newBrokerCmd(),
		newTopicCmd(g),
		newProduceCmd(g),
		newConsumeCmd(g),
		newGroupCmd(g),
		newQueueCmd(g),
		newBenchCmd(g),
		newClusterCmd(g),
		newUserCmd(g),
		newACLCmd(g),
		newVersionCmd(),
		newProbeCmd(g),
	)
	return root
}

// envOr is the environment variable key, or def when it is unset or empty.
func envOr(key, def string) string {
	if v, ok := lookupEnv(key); ok {
		return v
	}
	return def
}

// lookupEnv is os.LookupEnv with an empty variable counted as unset, so
// that SLUICE_RACK= in a script or a manifest means the default.
func lookupEnv(key string) (string, bool) {
	v := os.Getenv(key)
	return v, v != ""
}
