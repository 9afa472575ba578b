package main

import (
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/poll"
)

// The web console has no login, so a broker that enforces logins or ACLs
// does not serve it (it would act for anyone who reaches the HTTP port);
// /metrics and the health endpoints stay.
func TestConsoleOffWhenTheBrokerEnforcesACLs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	for _, c := range []struct {
		name    string
		args    []string
		console int
	}{
		{"open", nil, http.StatusOK},
		{"authorizer", []string{"--authorizer", "--super-users", "User:admin"}, http.StatusNotFound},
		{"require-auth", []string{"--require-auth", "--sasl-mechanisms", "SCRAM-SHA-512"}, http.StatusNotFound},
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
			if got := status("/metrics"); got != http.StatusOK {
				t.Errorf("/metrics: %d, want 200", got)
			}
			for _, path := range []string{"/", "/api/topics"} {
				if got := status(path); got != c.console {
					t.Errorf("%s: %d, want %d", path, got, c.console)
				}
			}
		})
	}
}
