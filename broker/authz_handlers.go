package broker

import (
	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/protocol"
)

// gate decides, by API key alone, whether the connection may send a
// request at all: nothing but ApiVersions and SASL before authenticating
// on a listener that requires it; the broker-internal and cluster-wide
// APIs by their cluster check. Requests about topics and groups are
// checked by their handlers, per topic or group. A refusal is definite:
// nothing was done.
func (c *conn) gate(h *protocol.RequestHeader) protocol.ErrorCode {
	switch h.Key {
	case protocol.APIVersions, protocol.SaslHandshake, protocol.SaslAuthenticate:
		return protocol.NoError
	}
	if c.sess.NeedsAuth() {
		return protocol.ErrSaslAuthenticationFailed
	}
	var err error
	switch h.Key {
	case protocol.ControllerForward:
		err = c.sess.BrokerOnly()
	case protocol.DescribeCluster, protocol.DescribeReplicas, protocol.DescribeAcls, protocol.DescribeUserScramCredentials:
		err = c.sess.CanCluster(auth.OpDescribe)
	case protocol.CreateAcls, protocol.DeleteAcls, protocol.AlterUserScramCredentials, protocol.ElectLeaders, protocol.AlterClusterMembership:
		err = c.sess.CanCluster(auth.OpAlter)
	}
	code, _ := ErrorCode(err)
	return code
}

// handleSaslHandshake chooses the connection's SASL mechanism.
func (c *conn) handleSaslHandshake(h *protocol.RequestHeader, resp *response) error {
	var req protocol.SaslHandshakeRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	out := protocol.SaslHandshakeResponse{ErrorCode: c.sess.Handshake(req.Mechanism), Mechanisms: c.sess.Mechanisms()}
	c.encode(resp, h, &out)
	return nil
}

// handleSaslAuthenticate runs one step of the exchange; the connection is
// closed after its last allowed failure.
func (c *conn) handleSaslAuthenticate(h *protocol.RequestHeader, resp *response) error {
	var req protocol.SaslAuthenticateRequest
	if err := req.Decode(&c.dec, h.Version); err != nil {
		return errMalformed{err}
	}
	var out protocol.SaslAuthenticateResponse
	var closeConn bool
	out.AuthBytes, out.ErrorCode, closeConn = c.sess.Authenticate(req.AuthBytes)
	if out.ErrorCode != protocol.NoError {
		out.ErrorMessage = out.ErrorCode.Message()
	}
	c.encode(resp, h, &out)
	resp.closeAfter = closeConn
	return nil
}
