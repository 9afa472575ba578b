package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// ClientAuth is whether a TLS server asks for client certificates (Kafka's
// ssl.client.auth).
type ClientAuth int

// The client-certificate modes.
const (
	ClientAuthNone      ClientAuth = iota // no client certificate asked for
	ClientAuthRequested                   // verified when given; principal from it then
	ClientAuthRequired                    // refused without a valid one (mutual TLS)
)

// ParseClientAuth reads "none", "requested" or "required".
func ParseClientAuth(s string) (ClientAuth, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return ClientAuthNone, nil
	case "requested":
		return ClientAuthRequested, nil
	case "required":
		return ClientAuthRequired, nil
	}
	return 0, fmt.Errorf("client auth %q: want none, requested or required", s)
}

// ErrTLSFiles matches the error of loading certificate, key or CA files.
var ErrTLSFiles = errors.New("TLS files")

// TLSFiles names the PEM files of one side of a TLS connection.
type TLSFiles struct {
	CertFile string // certificate chain; "" for a client without one
	KeyFile  string // the certificate's private key
	CAFile   string // CAs that verify the peer; "" for the system's (client) or none (server)
}

// material is one loaded generation of the files.
type material struct {
	cert  *tls.Certificate // nil without CertFile
	pool  *x509.CertPool   // nil without CAFile
	stamp []byte           // the files' sizes and modification times
}

// Reloader holds certificates and CAs loaded from files and loads them
// again when they change (Watch) or when asked (Reload, e.g. on SIGHUP),
// so certificates rotate without a restart. Connections already open keep
// what they negotiated; new handshakes use the newest files. A reload that
// fails (a half-written file) keeps the previous generation.
type Reloader struct {
	files TLSFiles
	cur   atomic.Pointer[material]
}

// NewReloader loads the files now.
func NewReloader(files TLSFiles) (*Reloader, error) {
	if (files.CertFile == "") != (files.KeyFile == "") {
		return nil, fmt.Errorf("%w: a certificate needs its key and a key its certificate (cert %q, key %q)", ErrTLSFiles, files.CertFile, files.KeyFile)
	}
	r := &Reloader{files: files}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload loads the files again. On error the previous generation stays.
func (r *Reloader) Reload() error {
	m := &material{stamp: r.stamp()}
	if r.files.CertFile != "" {
		c, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrTLSFiles, err)
		}
		if c.Leaf == nil && len(c.Certificate) > 0 {
			c.Leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
		m.cert = &c
	}
	if r.files.CAFile != "" {
		pem, err := os.ReadFile(r.files.CAFile)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrTLSFiles, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: %s holds no PEM certificate", ErrTLSFiles, r.files.CAFile)
		}
		m.pool = pool
	}
	r.cur.Store(m)
	return nil
}

// stamp is the files' sizes and modification times, which change when
// any file is rewritten.
func (r *Reloader) stamp() []byte {
	var b bytes.Buffer
	for _, f := range []string{r.files.CertFile, r.files.KeyFile, r.files.CAFile} {
		if f == "" {
			continue
		}
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%s %d %d;", f, st.Size(), st.ModTime().UnixNano())
		}
	}
	return b.Bytes()
}

// Changed reports whether a file changed since the last load.
func (r *Reloader) Changed() bool { return !bytes.Equal(r.stamp(), r.cur.Load().stamp) }

// Watch reloads the files every interval when they changed, until ctx is
// done; a failed reload is reported to onErr (and retried at the next
// change). The caller runs it on a goroutine it owns.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !r.Changed() {
				continue
			}
			if err := r.Reload(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// Certificate is the current certificate (nil without one).
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load().cert }

// ServerConfig is a TLS server configuration (TLS 1.2 and up, 1.3
// preferred by Go) that takes the newest certificate and CAs at each
// handshake. Its records are always full (16 KiB) ones: crypto/tls
// otherwise sends a connection's first 128 KiB in small records that grow
// by about 1 KiB each (DynamicRecordSizingDisabled), which helps a browser
// render the first bytes of a page and only costs a broker more records
// to seal and its client more to open.
func (r *Reloader) ServerConfig(auth ClientAuth) (*tls.Config, error) {
	if r.files.CertFile == "" {
		return nil, fmt.Errorf("%w: a TLS listener needs a certificate and key", ErrTLSFiles)
	}
	if auth != ClientAuthNone && r.files.CAFile == "" {
		return nil, fmt.Errorf("%w: client certificates need a CA file to verify them", ErrTLSFiles)
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, DynamicRecordSizingDisabled: true}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := r.cur.Load()
		c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*m.cert}, ClientCAs: m.pool,
			DynamicRecordSizingDisabled: true}
		switch auth {
		case ClientAuthRequested:
			c.ClientAuth = tls.VerifyClientCertIfGiven
		case ClientAuthRequired:
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return c, nil
	}
	return base, nil
}

// ClientConfig is a TLS client configuration for serverName with the
// current files: the CA file (or the system pool) verifies the server, and
// the certificate, if any, is offered for mutual TLS. Take one per dial to
// follow reloads.
func (r *Reloader) ClientConfig(serverName string) *tls.Config {
	m := r.cur.Load()
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, RootCAs: m.pool}
	if m.cert != nil {
		c.Certificates = []tls.Certificate{*m.cert}
	}
	return c
}

// PeerPrincipal maps the verified client certificate of a TLS connection
// to a principal. ok is false when the client sent no certificate.
func PeerPrincipal(state tls.ConnectionState, rules []MappingRule) (p Principal, ok bool, err error) {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return Principal{}, false, nil
	}
	p, err = PrincipalFromCert(state.VerifiedChains[0][0], rules)
	return p, err == nil, err
}
