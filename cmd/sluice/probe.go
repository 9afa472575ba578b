package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// defaultProbeURL is a broker's readiness endpoint at the HTTP port's
// default (the client port + 3) on this host.
const defaultProbeURL = "http://127.0.0.1:7095/readyz"

func newProbeCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "probe [URL]",
		Short: "Check a broker's HTTP health endpoint: exit 0 on a 2xx answer, 1 otherwise",
		Long: `Send GET URL (default ` + defaultProbeURL + `) and exit 0 if the answer is
2xx, else print the status or the error and exit 1. It is the health check
of the container image, which has no shell, curl or wget: compose's
healthcheck runs it inside the container. An https URL is verified against
--tls-ca (the system's CAs without it), and --tls-cert and --tls-key
are presented to an endpoint that requires a client certificate.`,
		Example: `  sluice probe
  sluice probe http://127.0.0.1:7095/healthz --probe-timeout 2s

  # a broker serving HTTPS with mutual TLS
  sluice probe https://127.0.0.1:7095/readyz --tls-ca ca.crt --tls-cert client.crt --tls-key client.key`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url := defaultProbeURL
			if len(args) == 1 {
				url = args[0]
			}
			cfg, err := clientTLS(g.tlsCA, g.tlsCert, g.tlsKey, g.tlsServerName)
			if err != nil {
				return err
			}
			return probe(cmd.Context(), url, timeout, cfg)
		},
	}
	cmd.Flags().DurationVar(&timeout, "probe-timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// probe GETs url and fails unless the answer is 2xx within timeout; an
// https URL is verified with cfg when it is not nil.
func probe(ctx context.Context, url string, timeout time.Duration, cfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	hc := http.DefaultClient
	if cfg != nil {
		hc = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		defer hc.CloseIdleConnections()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512)) // a reason, if the endpoint gives one
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("probe %s: %s: %s", url, resp.Status, body)
	}
	return nil
}
