package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64 = 1

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate for subject signed by ca, and its key, into
// dir as prefix.crt and prefix.key. notAfter in the past makes it expired.
func (ca *testCA) issue(t *testing.T, dir, prefix string, subject pkix.Name, notAfter time.Time) (certFile, keyFile string, serialNo int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: subject,
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, prefix+".crt"), filepath.Join(dir, prefix+".key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile, serial
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// handshake runs one TLS handshake over loopback TCP and returns the
// client's view (the server's certificate) and the server's view (the
// client's verified chain), or the first error of either side.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		st  tls.ConnectionState
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		s := tls.Server(c, server)
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		err = s.Handshake()
		done <- result{s.ConnectionState(), err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := tls.Client(c, client)
	_ = cl.SetDeadline(time.Now().Add(10 * time.Second))
	cerr := cl.Handshake()
	if cerr == nil {
		// TLS 1.3 reports a refused client certificate only on the first
		// read after the handshake.
		_ = cl.SetReadDeadline(time.Now().Add(2 * time.Second))
		var b [1]byte
		if _, err := cl.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !strings.Contains(err.Error(), "EOF") {
			cerr = err
		}
	}
	srv := <-done
	if cerr != nil {
		return tls.ConnectionState{}, tls.ConnectionState{}, cerr
	}
	return cl.ConnectionState(), srv.st, srv.err
}

func TestMutualTLSGivesThePrincipalFromTheCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "sluice test CA")
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, ca.pem)
	scrt, skey, _ := ca.issue(t, dir, "server", pkix.Name{CommonName: "broker-1"}, time.Now().Add(time.Hour))
	ccrt, ckey, _ := ca.issue(t, dir, "client", pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"eng"}}, time.Now().Add(time.Hour))

	srv, err := NewReloader(TLSFiles{CertFile: scrt, KeyFile: skey, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := srv.ServerConfig(ClientAuthRequired)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewReloader(TLSFiles{CertFile: ccrt, KeyFile: ckey, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	_, sst, err := handshake(t, scfg, cli.ClientConfig("localhost"))
	if err != nil {
		t.Fatalf("mutual TLS handshake: %v", err)
	}
	rules, err := ParseMappingRules("RULE:^CN=([^,]*),OU=eng$/$1/L,DEFAULT")
	if err != nil {
		t.Fatal(err)
	}
	p, ok, err := PeerPrincipal(sst, rules)
	if err != nil || !ok || p != User("alice") {
		t.Fatalf("principal = %v, %v, %v; want User:alice", p, ok, err)
	}
	if sst.Version < tls.VersionTLS12 {
		t.Fatalf("negotiated version %x", sst.Version)
	}
}

func TestTLSRefusesForeignAndExpiredClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, other := newCA(t, "ours"), newCA(t, "theirs")
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, ca.pem)
	scrt, skey, _ := ca.issue(t, dir, "server", pkix.Name{CommonName: "broker-1"}, time.Now().Add(time.Hour))
	srv, err := NewReloader(TLSFiles{CertFile: scrt, KeyFile: skey, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	scfg, _ := srv.ServerConfig(ClientAuthRequired)

	for name, issuer := range map[string]struct {
		ca       *testCA
		notAfter time.Time
	}{
		"another CA": {other, time.Now().Add(time.Hour)},
		"expired":    {ca, time.Now().Add(-time.Hour)},
	} {
		crt, key, _ := issuer.ca.issue(t, dir, strings.ReplaceAll(name, " ", "-"), pkix.Name{CommonName: "mallory"}, issuer.notAfter)
		cli, err := NewReloader(TLSFiles{CertFile: crt, KeyFile: key, CAFile: caFile})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := handshake(t, scfg, cli.ClientConfig("localhost")); err == nil {
			t.Errorf("%s: client certificate accepted", name)
		}
	}
	// Without a certificate at all, "required" refuses too.
	cli, _ := NewReloader(TLSFiles{CAFile: caFile})
	if _, _, err := handshake(t, scfg, cli.ClientConfig("localhost")); err == nil {
		t.Error("no client certificate: accepted")
	}
	// A client that does not trust the server's CA refuses it.
	foreign := filepath.Join(dir, "other.pem")
	writeFile(t, foreign, other.pem)
	cli, _ = NewReloader(TLSFiles{CAFile: foreign})
	scfg, _ = srv.ServerConfig(ClientAuthNone)
	if _, _, err := handshake(t, scfg, cli.ClientConfig("localhost")); err == nil {
		t.Error("server certificate from an untrusted CA: accepted")
	}
}

// A rotated certificate is served from the next handshake on, without a
// restart; a half-written file keeps the old one.
func TestReloaderFollowsRotatedCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "ca")
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, ca.pem)
	crt, key, first := ca.issue(t, dir, "server", pkix.Name{CommonName: "broker-1"}, time.Now().Add(time.Hour))
	srv, err := NewReloader(TLSFiles{CertFile: crt, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	scfg, _ := srv.ServerConfig(ClientAuthNone)
	cli, _ := NewReloader(TLSFiles{CAFile: caFile})
	servedSerial := func() int64 {
		t.Helper()
		cst, _, err := handshake(t, scfg, cli.ClientConfig("localhost"))
		if err != nil {
			t.Fatal(err)
		}
		return cst.PeerCertificates[0].SerialNumber.Int64()
	}
	if got := servedSerial(); got != first {
		t.Fatalf("serial %d, want %d", got, first)
	}

	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	errs := make(chan error, 8)
	go func() {
		defer close(watched)
		// A failed reload is retried (and reported) every tick until the
		// files change: never block Watch on a full channel.
		srv.Watch(ctx, 10*time.Millisecond, func(err error) {
			select {
			case errs <- err:
			default:
			}
		})
	}()
	defer func() { cancel(); <-watched }()

	// A torn write: the certificate file holds garbage for a moment.
	writeFile(t, crt, []byte("-----BEGIN CERTIFICATE-----\ngarbage"))
	select {
	case err := <-errs:
		if !errors.Is(err, ErrTLSFiles) {
			t.Fatalf("reload error %v, want ErrTLSFiles", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a broken certificate file was not reported")
	}
	if got := servedSerial(); got != first {
		t.Fatalf("after a failed reload: serial %d, want the old %d", got, first)
	}

	_, _, second := ca.issue(t, dir, "server", pkix.Name{CommonName: "broker-1"}, time.Now().Add(time.Hour))
	poll.Until(t, 10*time.Second, "the rotated certificate loaded", func() bool {
		return srv.Certificate().Leaf.SerialNumber.Int64() == second
	})
	if got := servedSerial(); got != second {
		t.Fatalf("after rotation: serial %d, want %d", got, second)
	}
}

func TestReloaderRefusesHalfConfigurations(t *testing.T) {
	if _, err := NewReloader(TLSFiles{CertFile: "x.crt"}); !errors.Is(err, ErrTLSFiles) {
		t.Errorf("cert without key: %v", err)
	}
	r, err := NewReloader(TLSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ServerConfig(ClientAuthNone); !errors.Is(err, ErrTLSFiles) {
		t.Errorf("server without a certificate: %v", err)
	}
	if _, err := NewReloader(TLSFiles{CAFile: filepath.Join(t.TempDir(), "missing.pem")}); !errors.Is(err, ErrTLSFiles) {
		t.Errorf("missing CA file: %v", err)
	}
}

func TestMappingRules(t *testing.T) {
	rules, err := ParseMappingRules("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/U,DEFAULT")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cn, ou, o string
		want      string
	}{
		{"svc-a", "ServiceUsers", "Example", "svc-a"},
		{"bob", "eng", "Example", "BOB@ENG"},
		{"carol", "", "", "CN=carol"},
	} {
		n := pkix.Name{CommonName: c.cn}
		if c.ou != "" {
			n.OrganizationalUnit = []string{c.ou}
		}
		if c.o != "" {
			n.Organization = []string{c.o}
		}
		p, err := PrincipalFromCert(&x509.Certificate{Subject: n}, rules)
		if err != nil || p.Name != c.want {
			t.Errorf("%v: %v, %v; want %q", n, p, err, c.want)
		}
	}
	only, _ := ParseMappingRules("RULE:^CN=admin$/admin/")
	if _, err := PrincipalFromCert(&x509.Certificate{Subject: pkix.Name{CommonName: "eve"}}, only); !errors.Is(err, ErrBadPrincipal) {
		t.Errorf("no rule matches: %v, want ErrBadPrincipal", err)
	}
	for _, bad := range []string{"RULE:(/x/", "RULE:^CN=a$/x", "NOPE", "DEFAULT;"} {
		if _, err := ParseMappingRules(bad); !errors.Is(err, ErrBadPrincipal) {
			t.Errorf("%q: %v, want ErrBadPrincipal", bad, err)
		}
	}
}
