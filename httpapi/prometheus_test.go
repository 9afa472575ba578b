package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/httpapi"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// TestRealPrometheusScrapesCluster runs the Prometheus server (Debian
// package prometheus) against a 3-broker cluster's endpoints: every
// target must be up, and queries over what it scraped must see one
// controller leader, three ready brokers, and a 3-partition topic's
// leaders in full ISR. It loads deploy/prometheus/alerts.yml too: every
// rule must evaluate without error on the real series, and none fire.
func TestRealPrometheusScrapesCluster(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install prometheus): the real-Prometheus scrape test is skipped")
	}
	if testing.Short() {
		t.Skip("starts a Prometheus server")
	}
	o := startObserved(t, 3, httpapi.LevelInfo, true)
	cl := o.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "p", Partitions: 3, ReplicationFactor: 3})
	testcluster.WaitFullISR(t, cl, "p", 20*time.Second)
	var targets []string
	for _, id := range o.IDs() {
		targets = append(targets, fmt.Sprintf("%q", o.servers[id].Addr()))
	}
	dir := t.TempDir()
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	// A scrape of a broker built with -race on a loaded 2-core machine
	// can take over a second: at a 400 ms scrape timeout, targets went
	// down (deadline exceeded) and the abandoned scrapes, still running
	// on the broker, filled its 4 in-flight /metrics slots (503) at load
	// 25-30. The timeout is the interval, the most Prometheus allows.
	cfg := fmt.Sprintf(`global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: sluice
    static_configs:
      - targets: [%s]
`, rules, strings.Join(targets, ", "))
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	logFile := filepath.Join(dir, "prometheus.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the child holds its own descriptor
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(logFile)
			t.Logf("prometheus output:\n%s", log)
		}
	})
	api := "http://" + promAddr + "/api/v1/"

	poll.Until(t, 60*time.Second, "Prometheus to see the 3 brokers' endpoints up", func() error {
		var r struct {
			Data struct {
				ActiveTargets []struct {
					ScrapeURL string `json:"scrapeUrl"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := getJSON(api+"targets", &r); err != nil {
			return err
		}
		up := 0
		for _, tg := range r.Data.ActiveTargets {
			if tg.Health != "up" {
				return fmt.Errorf("target %s: %s %s", tg.ScrapeURL, tg.Health, tg.LastError)
			}
			up++
		}
		if up != 3 {
			return fmt.Errorf("%d targets up, want 3", up)
		}
		return nil
	})
	for _, q := range []struct{ query, want string }{
		{"sum(sluice_controller_is_leader)", "1"},
		{"count(sluice_broker_ready == 1)", "3"},
		{"count(sluice_log_fsync_duration_seconds_count)", "3"},
		{"count(sluice_controller_applied_index > 0)", "3"},
		// Each partition was led once, by one broker, in full ISR.
		{"sum(sluice_partitions_led)", "3"},
		{"sum(sluice_partition_leader_elections_total)", "3"},
		{"sum(sluice_partitions_under_replicated)", "0"},
	} {
		poll.Until(t, 30*time.Second, "Prometheus to answer "+q.query+" = "+q.want, func() error {
			got, err := promQuery(api, q.query)
			if err != nil {
				return err
			}
			if got != q.want {
				return fmt.Errorf("%s = %q", q.query, got)
			}
			return nil
		})
	}

	want := len(readAlerts(t))
	poll.Until(t, 30*time.Second, "Prometheus to evaluate the alert rules without error", func() error {
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name           string `json:"name"`
						Health         string `json:"health"`
						LastError      string `json:"lastError"`
						State          string `json:"state"`
						LastEvaluation string `json:"lastEvaluation"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := getJSON(api+"rules?type=alert", &r); err != nil {
			return err
		}
		n := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				switch {
				case rule.Health != "ok":
					return fmt.Errorf("rule %s: health %q %s", rule.Name, rule.Health, rule.LastError)
				case rule.State == "firing":
					return fmt.Errorf("rule %s fires on a healthy cluster", rule.Name)
				}
				n++
			}
		}
		if n != want {
			return fmt.Errorf("%d rules evaluated, want %d", n, want)
		}
		return nil
	})
}

// promQuery runs an instant query whose answer is one sample and returns
// its value.
func promQuery(api, query string) (string, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(api+"query?query="+url.QueryEscape(query), &r); err != nil {
		return "", err
	}
	if r.Status != "success" {
		return "", fmt.Errorf("query %s: %s %s", query, r.Status, r.Error)
	}
	if len(r.Data.Result) != 1 {
		return "", fmt.Errorf("query %s: %d samples", query, len(r.Data.Result))
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v, nil
}

func getJSON(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// freeAddr returns a loopback address with a port free a moment ago, for
// a server in another process that must be told its port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
