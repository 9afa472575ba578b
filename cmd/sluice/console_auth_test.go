package main

import (
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
)

// --http-auth through the binary: the HTTP endpoint (console, API and
// /metrics) follows --require-auth unless told otherwise, checks every
// request with the broker's Session (anonymous without credentials), and
// leaves the probes open. Over plain HTTP no credentials are accepted, so
// a required login answers 401 to everything but the probes.
// (httpapi's TestHTTPAuthAndACLs checks logins and ACLs over TLS.)
func TestHTTPAuthFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	for _, c := range []struct {
		name                  string
		args                  []string
		page, topics, metrics int
	}{
		{"open", nil, http.StatusOK, http.StatusOK, http.StatusOK},
		// Anonymous, under the authorizer: the pages, an empty topic
		// list, no metrics (describe on the cluster).
		{"authorizer", []string{"--authorizer", "--super-users", "User:admin"}, http.StatusOK, http.StatusOK, http.StatusForbidden},
		{"require-auth", []string{"--require-auth", "--sasl-mechanisms", "SCRAM-SHA-512"}, http.StatusUnauthorized, http.StatusUnauthorized, http.StatusUnauthorized},
		{"require-auth, http-auth none", []string{"--require-auth", "--sasl-mechanisms", "SCRAM-SHA-512", "--http-auth", "none"}, http.StatusOK, http.StatusOK, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			free, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			httpAddr := free.Addr().String()
			free.Close()
			p := startBrokerProcess(t, bin, t.TempDir(), syscall.SIGTERM, append([]string{"--http-addr", httpAddr}, c.args...)...)
			defer p.stop()
			hc := &http.Client{Timeout: 5 * time.Second}
			status := func(path string) int {
				resp, err := hc.Get("http://" + httpAddr + path)
				if err != nil {
					return 0
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			poll.Until(t, 20*time.Second, "the HTTP endpoint answers", func() bool { return status("/healthz") == http.StatusOK })
			poll.Until(t, 20*time.Second, "the broker is ready", func() bool { return status("/readyz") == http.StatusOK })
			for path, want := range map[string]int{"/": c.page, "/api/topics": c.topics, "/metrics": c.metrics} {
				if got := status(path); got != want {
					t.Errorf("%s: %d, want %d", path, got, want)
				}
			}
		})
	}
}
