package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/protocol"
)

// OperatorLogin logs every connection in as the cluster operator
// (Broker:operator, allowed everything) with the cluster secret the
// brokers share: how the first users and ACLs of a cluster that requires
// authentication are created. Whoever holds the secret controls the
// cluster.
func OperatorLogin(clusterSecret []byte) Opt {
	return SASL(auth.BrokerMechanism, auth.OperatorUser, auth.BrokerPassword(clusterSecret))
}

// ErrAuthentication matches (errors.Is) a connection the broker refused to
// authenticate: unknown user, wrong password or a mechanism it does not
// offer (it does not say which). Nothing was sent on it; retrying with the
// same credentials fails the same way.
var ErrAuthentication = errors.New("client: authentication failed")

// saslConfig is the SASL option.
type saslConfig struct {
	mechanism auth.Mechanism
	user      string
	password  string
}

// SASL authenticates every connection as user with mechanism
// (auth.ScramSHA256, auth.ScramSHA512, or auth.Plain, which the broker
// accepts only over TLS) before its first request. Default: none (the
// principal User:ANONYMOUS).
func SASL(mechanism auth.Mechanism, user, password string) Opt {
	return func(c *config) { c.sasl = &saslConfig{mechanism: mechanism, user: user, password: password} }
}

func (s *saslConfig) validate() error {
	switch {
	case s.mechanism != auth.ScramSHA256 && s.mechanism != auth.ScramSHA512 && s.mechanism != auth.Plain && s.mechanism != auth.BrokerMechanism:
		return fmt.Errorf("mechanism %q: want SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", s.mechanism)
	case s.user == "":
		return errors.New("empty user")
	case s.password == "":
		return errors.New("empty password")
	}
	return nil
}

// login authenticates a new connection (SaslHandshake, then the
// mechanism's SaslAuthenticate round trips). A refusal is
// ErrAuthentication.
func (c *conn) login(ctx context.Context, s *saslConfig) error {
	var hs protocol.SaslHandshakeResponse
	if err := c.do(ctx, &protocol.SaslHandshakeRequest{Mechanism: string(s.mechanism)}, &hs, time.Hour, false); err != nil {
		return fmt.Errorf("broker %s: sasl handshake: %w", c.addr, err)
	}
	if hs.ErrorCode != protocol.NoError {
		return fmt.Errorf("broker %s: %w: mechanism %s: %w (the broker offers %v)", c.addr, ErrAuthentication, s.mechanism, hs.ErrorCode.Err(), hs.Mechanisms)
	}
	err := auth.Login(s.mechanism, s.user, s.password, func(msg []byte) ([]byte, error) {
		var ar protocol.SaslAuthenticateResponse
		if err := c.do(ctx, &protocol.SaslAuthenticateRequest{AuthBytes: msg}, &ar, time.Hour, true); err != nil {
			return nil, err
		}
		if ar.ErrorCode != protocol.NoError {
			return nil, fmt.Errorf("%w: %w", ErrAuthentication, ar.ErrorCode.Err())
		}
		return ar.AuthBytes, nil
	})
	if err != nil {
		if errors.Is(err, auth.ErrServerNotVerified) {
			err = fmt.Errorf("%w: %w", ErrAuthentication, err)
		}
		return fmt.Errorf("broker %s: sasl %s as %q: %w", c.addr, s.mechanism, s.user, err)
	}
	return nil
}
