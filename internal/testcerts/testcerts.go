// Package testcerts makes certificate authorities and certificates for
// tests and for scripts/cluster.sh's TLS cluster: ECDSA P-256 keys, a CA
// per call of NewCA, certificates with the loopback addresses and
// localhost (or the hosts given) that serve both as server and as client
// certificates, valid or already expired. Nothing here is for production:
// the keys are written unencrypted and the validity is short.
//
// The one place tests of every package get certificates from:
//
//	ca := testcerts.NewCA(t, "test CA")
//	files := ca.Issue(t, dir, "broker", testcerts.Valid)
//	// files.CertFile, files.KeyFile, files.CAFile
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority.
type CA struct {
	Cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	PEM    []byte // the CA certificate, PEM
	CAFile string // where PEM was written (Write)
}

// Files names the PEM files of an issued certificate.
type Files struct {
	CertFile, KeyFile, CAFile string
}

// Validity of an issued certificate.
type Validity int

// The validities Issue knows.
const (
	Valid   Validity = iota // from an hour ago to a day from now
	Expired                 // ended an hour ago
)

// New makes a CA named name.
func New(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA key: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA certificate: %w", err)
	}
	return &CA{Cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// NewCA is New for a test: it fails t on error.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// Write writes the CA certificate to dir/ca.crt (once) and, for
// commonName, a certificate and key to dir/<commonName>.crt and .key,
// valid for hosts (default 127.0.0.1, ::1 and localhost) as both server
// and client certificate.
func (ca *CA) Write(dir, commonName string, v Validity, hosts ...string) (Files, error) {
	if ca.CAFile == "" {
		ca.CAFile = filepath.Join(dir, "ca.crt")
		if err := writeFile(ca.CAFile, ca.PEM); err != nil {
			return Files{}, err
		}
	}
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "::1", "localhost"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Files{}, fmt.Errorf("testcerts: key: %w", err)
	}
	notBefore, notAfter := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if v == Expired {
		notBefore, notAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: commonName},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return Files{}, fmt.Errorf("testcerts: certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Files{}, fmt.Errorf("testcerts: key: %w", err)
	}
	f := Files{CertFile: filepath.Join(dir, commonName+".crt"), KeyFile: filepath.Join(dir, commonName+".key"), CAFile: ca.CAFile}
	if err := writeFile(f.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return Files{}, err
	}
	if err := writeFile(f.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})); err != nil {
		return Files{}, err
	}
	return f, nil
}

// Issue is Write for a test: it fails t on error.
func (ca *CA) Issue(t testing.TB, dir, commonName string, v Validity, hosts ...string) Files {
	t.Helper()
	f, err := ca.Write(dir, commonName, v, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// writeFile replaces path atomically (temp file and rename), so a
// reloading reader never sees half a file.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("testcerts: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("testcerts: %w", err)
	}
	return nil
}
