package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// principalEcho is a front end that answers every frame with the
// connection's principal, length-prefixed.
type principalEcho struct{}

func (principalEcho) Name() string { return "echo" }

func (principalEcho) Handle(fc *FrontConn, frame []byte) *Reply {
	if len(frame) > 1 { // a PLAIN login first
		if code := fc.Session().Handshake("PLAIN"); code != protocol.NoError {
			frame = []byte(code.String())
			return &Reply{Frame: [][]byte{binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame}}
		}
		fc.Session().Authenticate(frame)
	}
	p := fc.Session().Principal().String()
	if fc.Session().Authenticated() {
		p += " authenticated"
	}
	if fc.Session().NeedsAuth() {
		p += " refused"
	}
	return &Reply{Frame: [][]byte{binary.BigEndian.AppendUint32(nil, uint32(len(p))), []byte(p)}}
}

// cert makes a certificate for cn signed by ca (self-signed when ca is
// nil).
func cert(t *testing.T, cn string, ca *tls.Certificate, isCA bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"Example"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.Leaf, ca.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// A connection on a TLS listener with a verified client certificate acts
// as the principal --tls-principal-mapping gives its subject; without a
// certificate it stays User:ANONYMOUS; one no rule maps is refused every
// request, never anonymous; PLAIN is accepted over TLS only.
func TestTLSClientCertificatePrincipal(t *testing.T) {
	b := startBroker(t, "", func(c *Config) {
		c.Security.TLSPrincipalMapping = "RULE:^CN=([a-z]+),O=Example$/$1/"
		c.Security.SASLMechanisms = []auth.Mechanism{auth.Plain}
	})
	ca := cert(t, "test CA", nil, true)
	server := cert(t, "broker", &ca, false)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: pool,
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go b.ServeConn(ctx, nc, principalEcho{})
		}
	}()
	askWith := func(frame []byte, nc net.Conn) string {
		t.Helper()
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)); err != nil {
			t.Fatal(err)
		}
		var n [4]byte
		if _, err := io.ReadFull(nc, n[:]); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, binary.BigEndian.Uint32(n[:]))
		if _, err := io.ReadFull(nc, p); err != nil {
			t.Fatal(err)
		}
		return string(p)
	}
	dialTLS := func(certs ...tls.Certificate) net.Conn {
		nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, Certificates: certs, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		return nc
	}
	ask := func(certs ...tls.Certificate) string { return askWith([]byte{0}, dialTLS(certs...)) }
	if got := ask(cert(t, "alice", &ca, false)); got != "User:alice authenticated" {
		t.Fatalf("with alice's certificate: %q", got)
	}
	if got := ask(); got != "User:ANONYMOUS" {
		t.Fatalf("without a certificate: %q", got)
	}
	if got := ask(cert(t, "Bob Smith", &ca, false)); got != "User:ANONYMOUS refused" {
		t.Fatalf("with a certificate no rule maps: %q", got)
	}

	// PLAIN: on a TLS connection only.
	cred, err := auth.NewCredential(auth.ScramSHA512, "carol-pw", auth.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Propose(ctx, controller.UpsertCredential{User: "carol", Credential: cred}); err != nil {
		t.Fatal(err)
	}
	if got := askWith([]byte("\x00carol\x00carol-pw"), dialTLS()); got != "User:carol authenticated" {
		t.Fatalf("PLAIN over TLS: %q", got)
	}
	if got := askWith([]byte("\x00carol\x00wrong"), dialTLS()); got != "User:ANONYMOUS" {
		t.Fatalf("PLAIN over TLS, wrong password: %q", got)
	}
	plainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plainLn.Close()
	go func() {
		if nc, err := plainLn.Accept(); err == nil {
			b.ServeConn(ctx, nc, principalEcho{})
		}
	}()
	nc, err := net.Dial("tcp", plainLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if got := askWith([]byte("\x00carol\x00carol-pw"), nc); got != "UNSUPPORTED_SASL_MECHANISM" {
		t.Fatalf("PLAIN over plain TCP: %q", got)
	}
}
