package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// defaultProbeURL is a broker's readiness endpoint at the HTTP port's
// default (the client port + 3) on this host.
const defaultProbeURL = "http://127.0.0.1:7095/readyz"

func newProbeCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "probe [URL]",
		Short: "Check a broker's HTTP health endpoint: exit 0 on a 2xx answer, 1 otherwise",
		Long: `Send GET URL (default ` + defaultProbeURL + `) and exit 0 if the answer is
2xx, else print the status or the error and exit 1. It is the health check
of the container image, which has no shell, curl or wget: compose's
healthcheck runs it inside the container.`,
		Example: `  sluice probe
  sluice probe http://127.0.0.1:7095/healthz --probe-timeout 2s`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url := defaultProbeURL
			if len(args) == 1 {
				url = args[0]
			}
			return probe(cmd.Context(), url, timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "probe-timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// probe GETs url and fails unless the answer is 2xx within timeout.
func probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
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
