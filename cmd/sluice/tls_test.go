package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcerts"
)

// peerName dials addr with TLS and returns the common name of the
// certificate the server presented.
func peerName(addr string, client auth.TLSFiles) (string, error) {
	r, err := auth.NewReloader(client)
	if err != nil {
		return "", err
	}
	c, err := auth.Dial(context.Background(), &net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, r.ClientConfig)
	if err != nil {
		return "", err
	}
	defer c.Close()
	st, ok := auth.ConnectionState(c)
	if !ok {
		return "", fmt.Errorf("%T is not a TLS connection", c)
	}
	return st.PeerCertificates[0].Subject.CommonName, nil
}

var httpsListeningRE = regexp.MustCompile(`http listening.*"url": ?"https://[^/"]+/metrics"`)

// A broker started with the --tls-* flags serves TLS with mutual TLS on
// its client listener and HTTPS: the CLI with --tls-ca, --tls-cert and
// --tls-key (or their SLUICE_TLS_* variables) produces and consumes, the
// CLI without them is refused with a hint, and a certificate rotated on
// disk is served after SIGHUP without a restart.
func TestBrokerTLSFlagsAndSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "cli CA")
	bf := ca.Issue(t, dir, "broker", testcerts.Valid)
	cf := ca.Issue(t, dir, "client", testcerts.Valid)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := free.Addr().String()
	free.Close()
	p := startBrokerProcess(t, bin, t.TempDir(), syscall.SIGTERM,
		"--tls-cert", bf.CertFile, "--tls-key", bf.KeyFile, "--tls-ca", bf.CAFile, "--tls-client-auth", "required",
		"--tls-reload-interval", "1h", "--http-addr", httpAddr,
		"--gossip-key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	clientFiles := auth.TLSFiles{CertFile: cf.CertFile, KeyFile: cf.KeyFile, CAFile: cf.CAFile}
	// (The broker's log is read only after it stopped: the HTTP port is
	// chosen here.)

	tlsArgs := []string{"--tls-ca", cf.CAFile, "--tls-cert", cf.CertFile, "--tls-key", cf.KeyFile}
	sluice(t, bin, p.addr, "", append([]string{"topic", "create", "secure"}, tlsArgs...)...)
	sluice(t, bin, p.addr, "one\ntwo\n", append([]string{"produce", "secure"}, tlsArgs...)...)
	// The environment variables instead of the flags.
	cmd := exec.Command(bin, "--brokers", p.addr, "consume", "secure", "--from-beginning", "--max-messages", "2")
	cmd.Env = append(os.Environ(), "SLUICE_TLS_CA="+cf.CAFile, "SLUICE_TLS_CERT="+cf.CertFile, "SLUICE_TLS_KEY="+cf.KeyFile)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "one") || !strings.Contains(string(out), "two") {
		t.Fatalf("consume over TLS: %v\n%s", err, out)
	}

	// Without TLS: refused at once, with a hint.
	_, errOut, err := sluiceResult(bin, p.addr, "", "topic", "list", "--timeout", "5s")
	if err == nil || !strings.Contains(errOut, "is its listener TLS?") {
		t.Fatalf("plaintext CLI: err %v, stderr %q", err, errOut)
	}

	// HTTPS, with the client certificate.
	r, err := auth.NewReloader(clientFiles)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: r.ClientConfig("127.0.0.1")}, Timeout: 10 * time.Second}
	resp, err := hc.Get("https://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %s", resp.Status)
	}
	probeArgs := []string{"probe", "https://" + httpAddr + "/healthz"}
	sluice(t, bin, p.addr, "", append(probeArgs, tlsArgs...)...)
	if _, errOut, err := sluiceResult(bin, p.addr, "", append(probeArgs, "--tls-ca", cf.CAFile)...); err == nil {
		t.Fatal("probe without a client certificate passed against mutual TLS")
	} else {
		t.Logf("probe without a client certificate: %s", strings.TrimSpace(errOut))
	}

	// Rotate the broker's certificate on disk; SIGHUP makes new
	// handshakes take it.
	if name, err := peerName(p.addr, clientFiles); err != nil || name != "broker" {
		t.Fatalf("before rotation: %q, %v", name, err)
	}
	rotated := ca.Issue(t, t.TempDir(), "broker-rotated", testcerts.Valid)
	for _, f := range [][2]string{{rotated.CertFile, bf.CertFile}, {rotated.KeyFile, bf.KeyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1]+".new", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f[1]+".new", f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if name, err := peerName(p.addr, clientFiles); err != nil || name != "broker" {
		t.Fatalf("rotated without SIGHUP, reload interval 1h: %q, %v", name, err)
	}
	if err := syscall.Kill(p.pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the rotated certificate served", func() error {
		name, err := peerName(p.addr, clientFiles)
		if err == nil && name != "broker-rotated" {
			return &nameError{name}
		}
		return err
	})
	sluice(t, bin, p.addr, "", append([]string{"topic", "list"}, tlsArgs...)...)
	p.stop()
	if !httpsListeningRE.MatchString(p.stderr.String()) {
		t.Fatalf("no https listening line:\n%s", p.stderr.String())
	}
}

type nameError struct{ name string }

func (e *nameError) Error() string { return "served certificate " + e.name }

// The files are reloaded when they change on disk, without a signal.
func TestBrokerTLSReloadsOnFileChange(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "CA")
	bf := ca.Issue(t, dir, "broker", testcerts.Valid)
	o := tlsFlags{cert: bf.CertFile, key: bf.KeyFile, ca: bf.CAFile, clientAuth: "none", listeners: tlsListenerNames}
	bt, err := o.load(func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	stop := bt.watch(20*time.Millisecond, zap.NewNop())
	defer stop()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := bt.transportFor(listenerClient).Listen(raw, "client", zap.NewNop())
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	client := auth.TLSFiles{CAFile: bf.CAFile}
	if name, err := peerName(ln.Addr().String(), client); err != nil || name != "broker" {
		t.Fatalf("before: %q, %v", name, err)
	}
	// Overwrite the broker's files with another certificate's (renames).
	next := ca.Issue(t, t.TempDir(), "broker-next", testcerts.Valid)
	for _, f := range [][2]string{{next.CertFile, bf.CertFile}, {next.KeyFile, bf.KeyFile}} {
		b, _ := os.ReadFile(f[0])
		os.WriteFile(f[1]+".new", b, 0o600)
		if err := os.Rename(f[1]+".new", f[1]); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 10*time.Second, "the new certificate served", func() error {
		name, err := peerName(ln.Addr().String(), client)
		if err == nil && name != "broker-next" {
			return &nameError{name}
		}
		return err
	})
}

func TestTLSFlagsRefused(t *testing.T) {
	ca := testcerts.NewCA(t, "CA")
	bf := ca.Issue(t, t.TempDir(), "broker", testcerts.Valid)
	for _, tc := range []struct {
		name    string
		o       tlsFlags
		changed string
		want    string
	}{
		{"unknown listener", tlsFlags{cert: bf.CertFile, key: bf.KeyFile, listeners: []string{"client", "smtp"}}, "", "--tls-listeners"},
		{"key without cert", tlsFlags{key: bf.KeyFile, listeners: tlsListenerNames}, "tls-key", "needs --tls-cert"},
		{"bad client auth", tlsFlags{cert: bf.CertFile, key: bf.KeyFile, clientAuth: "maybe", listeners: tlsListenerNames}, "", "--tls-client-auth"},
		{"required without CA", tlsFlags{cert: bf.CertFile, key: bf.KeyFile, clientAuth: "required", listeners: tlsListenerNames}, "", "CA file"},
		{"missing key file", tlsFlags{cert: bf.CertFile, key: bf.KeyFile + ".gone", listeners: tlsListenerNames}, "", "TLS files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.o.load(func(f string) bool { return f == tc.changed })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	for _, k := range []string{"not base64!", "c2hvcnQ=", "MDEyMzQ1Njc4OWFiY2RlZg==,c2hvcnQ="} {
		o := tlsFlags{gossipKey: k}
		if _, _, err := o.gossipKeyBytes(); err == nil || !strings.Contains(err.Error(), "--gossip-key") {
			t.Fatalf("--gossip-key %q: err = %v", k, err)
		}
	}
	// During a rotation: NEW,OLD, the first sent with, both accepted.
	o := tlsFlags{gossipKey: "MDEyMzQ1Njc4OWFiY2RlZg==, ZmVkY2JhOTg3NjU0MzIxMA=="}
	key, accepted, err := o.gossipKeyBytes()
	if err != nil || string(key) != "0123456789abcdef" || len(accepted) != 1 || string(accepted[0]) != "fedcba9876543210" {
		t.Fatalf("--gossip-key NEW,OLD: %q %q %v", key, accepted, err)
	}
}
