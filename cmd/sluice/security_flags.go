package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
)

// brokerSecurity holds the broker's authentication and authorization
// flags until apply puts them into the broker's Config.
type brokerSecurity struct {
	mechanisms  []string
	requireAuth bool
	authorizer  bool
	superUsers  []string
	mapping     string
	secretFile  string
	maxAttempts int
	maxReauth   time.Duration
}

func (s *brokerSecurity) flags(f *pflag.FlagSet) {
	f.StringSliceVar(&s.mechanisms, "sasl-mechanisms", nil, "SASL mechanisms clients may log in with on the sluice and Kafka listeners: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN (TLS connections only); empty: none")
	f.BoolVar(&s.requireAuth, "require-auth", false, "refuse every request but ApiVersions and SASL from a connection that has not authenticated (SASL or a TLS client certificate)")
	f.BoolVar(&s.authorizer, "authorizer", false, "check every request against the ACLs (sluice acl): without a matching allow, refused")
	f.StringSliceVar(&s.superUsers, "super-users", nil, "principals the authorizer allows everything, e.g. User:admin")
	f.StringVar(&s.mapping, "tls-principal-mapping", "", "rules mapping a verified client certificate's subject to a principal, Kafka's ssl.principal.mapping.rules (RULE:^CN=(.*?),.*$/$1/,DEFAULT); empty: DEFAULT")
	f.StringVar(&s.secretFile, "cluster-secret-file", "", "file holding the cluster secret (at least 16 bytes; e.g. openssl rand -hex 32), else env SLUICE_CLUSTER_SECRET: brokers prove it to each other before any broker-internal API is served; required with --voters naming several brokers or --join. During a rotation, two lines: the first logged in with, both accepted (docs/operations.md)")
	f.IntVar(&s.maxAttempts, "max-auth-attempts", broker.DefaultMaxAuthAttempts, "failed authentications a connection may make before it is closed")
	f.DurationVar(&s.maxReauth, "connections-max-reauth", 0, "how long a SASL login on the Kafka listener lasts (Kafka's connections.max.reauth.ms, KIP-368): clients log in again on the connection before it ends (franz-go does, as do the Java client and librdkafka since 2.2), else the connection is closed at its next request; e.g. 1h. 0: as long as the connection")
}

// apply sets cfg.Security, reading the cluster secret's file.
func (s *brokerSecurity) apply(cfg *broker.Config) error {
	sec := broker.Security{RequireAuth: s.requireAuth, Authorizer: s.authorizer, SuperUsers: s.superUsers,
		TLSPrincipalMapping: s.mapping, MaxAuthAttempts: s.maxAttempts, ReauthInterval: s.maxReauth}
	for _, m := range s.mechanisms {
		if m = strings.TrimSpace(m); m != "" {
			sec.SASLMechanisms = append(sec.SASLMechanisms, auth.Mechanism(strings.ToUpper(m)))
		}
	}
	// The secret from its file, else SLUICE_CLUSTER_SECRET (for
	// compose files and the like; never a flag, which ps would show).
	secret, from := os.Getenv("SLUICE_CLUSTER_SECRET"), "SLUICE_CLUSTER_SECRET"
	if s.secretFile != "" {
		b, err := os.ReadFile(s.secretFile)
		if err != nil {
			return fmt.Errorf("--cluster-secret-file: %w", err)
		}
		secret, from = string(b), "--cluster-secret-file "+s.secretFile
	}
	// One secret a line: the first is logged in with, the others are
	// accepted too (a rolling rotation, docs/operations.md).
	var secrets [][]byte
	for _, line := range strings.Split(secret, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if len(line) < auth.MinClusterSecret {
			return fmt.Errorf("%s: secret %d: %d bytes, want at least %d (e.g. openssl rand -hex 32)", from, len(secrets)+1, len(line), auth.MinClusterSecret)
		}
		secrets = append(secrets, []byte(line))
	}
	if len(secrets) > 0 {
		sec.ClusterSecret, sec.AcceptedClusterSecrets = secrets[0], secrets[1:]
	}
	cfg.Security = sec
	return nil
}

// clientSASL is the global SASL flags of the client commands.
type clientSASL struct {
	mechanism, user, password, passwordFile string
	// operatorSecretFile logs in as the cluster operator instead.
	operatorSecretFile string
	operatorSecret     []byte
}

func (s *clientSASL) flags(f *pflag.FlagSet) {
	f.StringVar(&s.mechanism, "sasl-mechanism", envOr("SLUICE_SASL_MECHANISM", ""), "log in with this SASL mechanism: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN (TLS only) (env SLUICE_SASL_MECHANISM); empty: no login")
	f.StringVar(&s.user, "sasl-user", envOr("SLUICE_SASL_USER", ""), "user to log in as (env SLUICE_SASL_USER)")
	f.StringVar(&s.password, "sasl-password", envOr("SLUICE_SASL_PASSWORD", ""), "password to log in with (env SLUICE_SASL_PASSWORD; prefer --sasl-password-file, which other users cannot read in the process list)")
	f.StringVar(&s.passwordFile, "sasl-password-file", envOr("SLUICE_SASL_PASSWORD_FILE", ""), "file holding the password (env SLUICE_SASL_PASSWORD_FILE)")
	f.StringVar(&s.operatorSecretFile, "operator-secret-file", envOr("SLUICE_OPERATOR_SECRET_FILE", ""), "log in as the cluster operator, allowed everything, with the brokers' cluster secret file: to create the first users and ACLs (env SLUICE_OPERATOR_SECRET_FILE)")
}

// resolve reads the password file and checks the flags go together.
func (s *clientSASL) resolve() error {
	if s.operatorSecretFile != "" {
		if s.mechanism != "" {
			return fmt.Errorf("--operator-secret-file and --sasl-mechanism: give one")
		}
		b, err := os.ReadFile(s.operatorSecretFile)
		if err != nil {
			return fmt.Errorf("--operator-secret-file: %w", err)
		}
		s.operatorSecret = []byte(strings.TrimSpace(string(b)))
		return nil
	}
	if s.passwordFile != "" {
		if s.password != "" {
			return fmt.Errorf("--sasl-password and --sasl-password-file: give one")
		}
		b, err := os.ReadFile(s.passwordFile)
		if err != nil {
			return fmt.Errorf("--sasl-password-file: %w", err)
		}
		s.password = strings.TrimRight(string(b), "\r\n")
	}
	if s.mechanism == "" {
		if s.user != "" || s.password != "" {
			return fmt.Errorf("--sasl-user and --sasl-password need --sasl-mechanism (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN)")
		}
		return nil
	}
	m := auth.Mechanism(strings.ToUpper(s.mechanism))
	if m != auth.ScramSHA256 && m != auth.ScramSHA512 && m != auth.Plain {
		return fmt.Errorf("--sasl-mechanism %q: want SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", s.mechanism)
	}
	if s.user == "" || s.password == "" {
		return fmt.Errorf("--sasl-mechanism %s needs --sasl-user and --sasl-password (or --sasl-password-file)", m)
	}
	s.mechanism = string(m)
	return nil
}

// opts is the client option of the flags: none without a mechanism.
func (s *clientSASL) opts() []client.Opt {
	if s.operatorSecret != nil {
		return []client.Opt{client.OperatorLogin(s.operatorSecret)}
	}
	if s.mechanism == "" {
		return nil
	}
	return []client.Opt{client.SASL(auth.Mechanism(s.mechanism), s.user, s.password)}
}
