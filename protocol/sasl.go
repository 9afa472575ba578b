package protocol

// SASL authentication on a connection (Kafka's SaslHandshake v1 and
// SaslAuthenticate, in sluice's framing): the client names a mechanism
// (SaslHandshake), then exchanges the mechanism's messages as opaque bytes
// (SaslAuthenticate), one request per client message, until the broker
// answers NONE with the final server message or SASL_AUTHENTICATION_FAILED.
// The broker limits the bytes of one message (auth.MaxSASLMessage) and the
// attempts on one connection; a failure never says whether the user
// exists.

// SaslHandshakeRequest names the mechanism the client will use.
type SaslHandshakeRequest struct {
	Mechanism string
}

// Key returns SaslHandshake.
func (*SaslHandshakeRequest) Key() APIKey { return SaslHandshake }

// Append encodes the body.
func (r *SaslHandshakeRequest) Append(dst []byte, version int16) []byte {
	return appendString(dst, r.Mechanism)
}

// Decode parses the body.
func (r *SaslHandshakeRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(SaslHandshake, false, version); err != nil {
		return err
	}
	r.Mechanism = d.string("mechanism", r.Mechanism)
	return d.finish()
}

// SaslHandshakeResponse lists the mechanisms the listener offers; its
// code is UNSUPPORTED_SASL_MECHANISM when the one asked for is not among
// them, ILLEGAL_SASL_STATE when the connection already authenticated.
type SaslHandshakeResponse struct {
	ErrorCode  ErrorCode
	Mechanisms []string
}

// Key returns SaslHandshake.
func (*SaslHandshakeResponse) Key() APIKey { return SaslHandshake }

// Append encodes the body.
func (r *SaslHandshakeResponse) Append(dst []byte, version int16) []byte {
	return appendStrings(appendInt16(dst, int16(r.ErrorCode)), r.Mechanisms)
}

// Decode parses the body.
func (r *SaslHandshakeResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(SaslHandshake, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.Mechanisms = r.Mechanisms[:0]
		return d.err
	}
	r.Mechanisms = d.strings("mechanisms", r.Mechanisms)
	return d.finish()
}

// SaslAuthenticateRequest carries the client's next message of the
// mechanism chosen by SaslHandshake.
type SaslAuthenticateRequest struct {
	AuthBytes []byte
}

// Key returns SaslAuthenticate.
func (*SaslAuthenticateRequest) Key() APIKey { return SaslAuthenticate }

// Append encodes the body.
func (r *SaslAuthenticateRequest) Append(dst []byte, version int16) []byte {
	return appendBytes(dst, r.AuthBytes)
}

// Decode parses the body. AuthBytes aliases the input.
func (r *SaslAuthenticateRequest) Decode(d *Decoder, version int16) error {
	if err := d.beginMessage(SaslAuthenticate, false, version); err != nil {
		return err
	}
	r.AuthBytes = d.bytes("auth_bytes")
	return d.finish()
}

// SaslAuthenticateResponse carries the server's next message; a failed
// exchange has SASL_AUTHENTICATION_FAILED and a message that does not say
// why.
type SaslAuthenticateResponse struct {
	ErrorCode    ErrorCode
	ErrorMessage string
	AuthBytes    []byte
}

// Key returns SaslAuthenticate.
func (*SaslAuthenticateResponse) Key() APIKey { return SaslAuthenticate }

// Append encodes the body.
func (r *SaslAuthenticateResponse) Append(dst []byte, version int16) []byte {
	dst = appendString(appendInt16(dst, int16(r.ErrorCode)), r.ErrorMessage)
	return appendBytes(dst, r.AuthBytes)
}

// Decode parses the body. AuthBytes aliases the input.
func (r *SaslAuthenticateResponse) Decode(d *Decoder, version int16) error {
	if d.beginMessage(SaslAuthenticate, true, version) != nil || d.errorOnly(&r.ErrorCode) {
		r.ErrorMessage, r.AuthBytes = "", nil
		return d.err
	}
	r.ErrorMessage = d.string("error_message", r.ErrorMessage)
	r.AuthBytes = d.bytes("auth_bytes")
	return d.finish()
}
