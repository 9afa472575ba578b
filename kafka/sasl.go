package kafka

import (
	"encoding/binary"
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/protocol"
)

// SASL on the Kafka listener: Kafka's SaslHandshake (v0 and v1) and
// SaslAuthenticate (v0 to v2), answered by the broker core's Session (the
// exchange, the mechanisms offered, the failure that says nothing),
// advertised in ApiVersions only when the broker offers a mechanism. With
// SaslHandshake v0 the exchange's messages follow as bare length-prefixed
// frames, as Kafka does. A connection that must authenticate (the
// broker's RequireAuth) and sends anything else first is closed, as Kafka
// closes it; so is one whose login failed (Kafka clients reconnect).
// With Security.ReauthInterval (connections.max.reauth.ms, KIP-368) a
// login lasts that long: SaslAuthenticate v1+ says so in
// SessionLifetimeMs, the client logs in again on the connection (same
// mechanism and principal) before the end, and a connection that has not
// is closed at its next request, whatever it is.

// The SASL API keys.
const (
	saslHandshakeKey    = 17
	saslAuthenticateKey = 36
)

// saslTable is what ApiVersions adds to Table when SASL is on.
var saslTable = map[int16]VersionRange{
	saslHandshakeKey:    {0, 1},
	saslAuthenticateKey: {0, 2},
}

// handleSASL answers what comes before the request decoder: bare tokens
// after a v0 handshake, the SASL requests, and a request that must wait
// for authentication. ok is false for a frame it leaves to Handle.
func (s *Server) handleSASL(fc *broker.FrontConn, frame []byte) (r *broker.Reply, ok bool) {
	sess := fc.Session()
	if sess.BareTokens() {
		out, code, _ := sess.Authenticate(frame)
		if code != protocol.NoError {
			return &broker.Reply{Close: true}, true
		}
		if sess.Authenticated() {
			sess.ExpectBareTokens(false)
		}
		buf := binary.BigEndian.AppendUint32(nil, uint32(len(out)))
		return &broker.Reply{Frame: [][]byte{append(buf, out...)}, API: kmsg.NameForKey(saslAuthenticateKey)}, true
	}
	h, body, err := parseHeader(frame)
	if err != nil {
		return nil, false
	}
	if sess.Expired() {
		// Past the login's lifetime, nothing is served, a late
		// re-authentication included: log in on a new connection.
		fc.Logger().Info("kafka: closing connection: SASL session expired without re-authentication (connections.max.reauth)",
			zap.String("api", kmsg.NameForKey(h.key)), zap.Stringer("principal", sess.Principal()))
		return &broker.Reply{Close: true}, true
	}
	switch h.key {
	case apiVersionsKey:
		return nil, false
	case saslHandshakeKey, saslAuthenticateKey:
		if len(sess.Mechanisms()) == 0 {
			return nil, false // not served: Handle closes the connection
		}
		return s.sasl(fc, h, body), true
	}
	if sess.NeedsAuth() {
		fc.Logger().Info("kafka: closing connection: request before authentication", zap.String("api", kmsg.NameForKey(h.key)))
		return &broker.Reply{Close: true}, true
	}
	return nil, false
}

// errSASLVersion refuses a SASL request of a version not served.
var errSASLVersion = errors.New("SASL request version not served")

// decodeSASL reads a SaslHandshake or SaslAuthenticate body (after the
// header's client id); FuzzDecodeSASL exercises it.
func decodeSASL(h header, body []byte) (kmsg.Request, error) {
	vr, ok := saslTable[h.key]
	if !ok || h.version < vr.Min || h.version > vr.Max {
		return nil, errSASLVersion
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	var err error
	if req.IsFlexible() {
		if body, err = skipTags(body); err != nil {
			return nil, err
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, err
	}
	return req, nil
}

// sasl answers SaslHandshake or SaslAuthenticate.
func (s *Server) sasl(fc *broker.FrontConn, h header, body []byte) *broker.Reply {
	req, err := decodeSASL(h, body)
	if err != nil {
		fc.Logger().Info("kafka: closing connection: SASL request", zap.Int16("api_key", h.key), zap.Int16("api_version", h.version), zap.Error(err))
		return &broker.Reply{Close: true}
	}
	sess := fc.Session()
	switch r := req.(type) {
	case *kmsg.SASLHandshakeRequest:
		resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
		if h.version == 0 && sess.SessionLifetime() > 0 {
			// A re-authentication needs SaslAuthenticate (KIP-368), not
			// v0's bare tokens.
			resp.ErrorCode = kafkaCode(protocol.ErrIllegalSaslState)
			resp.SupportedMechanisms = sess.Mechanisms()
			return reply(h.correlation, false, resp)
		}
		resp.ErrorCode = kafkaCode(sess.Handshake(r.Mechanism))
		resp.SupportedMechanisms = sess.Mechanisms()
		if resp.ErrorCode == 0 && h.version == 0 {
			sess.ExpectBareTokens(true)
		}
		return reply(h.correlation, false, resp)
	case *kmsg.SASLAuthenticateRequest:
		resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		out, code, _ := sess.Authenticate(r.SASLAuthBytes)
		resp.ErrorCode, resp.SASLAuthBytes = kafkaCode(code), out
		if code != protocol.NoError {
			msg := code.Message()
			resp.ErrorMessage = &msg
		} else {
			// The login's lifetime (KIP-368), 0 without one (and before
			// the exchange's end); v0 has no field for it.
			resp.SessionLifetimeMillis = sess.SessionLifetime().Milliseconds()
		}
		rep := reply(h.correlation, req.IsFlexible(), resp)
		rep.Close = code != protocol.NoError
		return rep
	}
	return &broker.Reply{Close: true}
}

// kafkaCode is the Kafka code of a sluice code.
func kafkaCode(c protocol.ErrorCode) int16 {
	if row, ok := errorTable[c]; ok {
		return row.code
	}
	return errorTable[protocol.ErrUnknownServerError].code
}

// addSASLVersions adds the SASL keys to an ApiVersions response, keeping
// it sorted by key.
func addSASLVersions(resp *kmsg.ApiVersionsResponse) {
	for _, k := range []int16{saslHandshakeKey, saslAuthenticateKey} {
		v := kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: saslTable[k].Min, MaxVersion: saslTable[k].Max}
		i := 0
		for i < len(resp.ApiKeys) && resp.ApiKeys[i].ApiKey < k {
			i++
		}
		resp.ApiKeys = append(resp.ApiKeys[:i], append([]kmsg.ApiVersionsResponseApiKey{v}, resp.ApiKeys[i:]...)...)
	}
}
