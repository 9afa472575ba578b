package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
)

// compatFinal verifies a client-final message whose nonce is not the
// server's nonce but ends with it: librdkafka 2.0 (Debian's kcat) sends
// its own nonce followed by the server's, and Kafka's server accepts any
// nonce that ends with its own (ScramSaslServer), so Kafka clients work.
// The check is otherwise RFC 5802's: the channel binding must be the
// client-first's GS2 header, the proof must match the stored key over
// the AuthMessage the client signed. ok is false for a message with the
// exact nonce (or one that does not parse), which the library checks.
func (e *ServerExchange) compatFinal(msg string) (resp []byte, ok bool, err error) {
	attrs, proof, found := strings.Cut(msg, ",p=")
	if !found || e.reply == "" {
		return nil, false, nil
	}
	withoutProof := attrs
	cbind, rest, _ := strings.Cut(attrs, ",")
	nonce, _, _ := strings.Cut(rest, ",")
	serverNonce, _, _ := strings.Cut(strings.TrimPrefix(e.reply, "r="), ",")
	if !strings.HasPrefix(cbind, "c=") || !strings.HasPrefix(nonce, "r=") || !strings.HasPrefix(e.reply, "r=") {
		return nil, false, nil
	}
	nonce = nonce[2:]
	if nonce == serverNonce || !strings.HasSuffix(nonce, serverNonce) {
		return nil, false, nil
	}
	// The client-first's GS2 header ("n,," or "n,a=user,") and bare part.
	i := strings.IndexByte(e.first, ',')
	j := -1
	if i >= 0 {
		j = strings.IndexByte(e.first[i+1:], ',')
	}
	if j < 0 {
		return nil, true, fmt.Errorf("%w: user %q: client-first message without a GS2 header", ErrAuthenticationFailed, e.user)
	}
	gs2, bare := e.first[:i+1+j+1], e.first[i+1+j+1:]
	if cbind[2:] != base64.StdEncoding.EncodeToString([]byte(gs2)) {
		return nil, true, fmt.Errorf("%w: user %q: channel binding does not match", ErrAuthenticationFailed, e.user)
	}
	p, err := base64.StdEncoding.DecodeString(proof)
	newHash := hashOf(e.mech)
	if err != nil || len(p) != newHash().Size() || len(e.cred.StoredKey) != len(p) {
		return nil, true, fmt.Errorf("%w: user %q: malformed proof", ErrAuthenticationFailed, e.user)
	}
	authMessage := bare + "," + e.reply + "," + withoutProof
	clientSig := mac(newHash, e.cred.StoredKey, authMessage)
	clientKey := make([]byte, len(p))
	for k := range p {
		clientKey[k] = p[k] ^ clientSig[k]
	}
	h := newHash()
	h.Write(clientKey)
	if !hmac.Equal(h.Sum(nil), e.cred.StoredKey) || !e.known {
		return nil, true, fmt.Errorf("%w: user %q: proof not valid", ErrAuthenticationFailed, e.user)
	}
	e.compatValid = true
	return []byte("v=" + base64.StdEncoding.EncodeToString(mac(newHash, e.cred.ServerKey, authMessage))), true, nil
}

func hashOf(m Mechanism) func() hash.Hash {
	if m == ScramSHA512 {
		return sha512.New
	}
	return sha256.New
}

func mac(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
