package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// With --log-format json every line the broker process prints is a JSON
// object: its start and stop, the libraries' lines, pprof's, and the error
// a broker that cannot start exits with.
func TestBrokerJSONLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	p := startBrokerProcess(t, bin, data, syscall.SIGTERM, "--pprof", "127.0.0.1:0")
	sluice(t, bin, p.addr, "", "topic", "create", "logs", "--partitions", "2")
	sluice(t, bin, p.addr, "a\nb\nc\n", "produce", "logs")

	// A second broker on the same data directory fails to start.
	second := exec.Command(bin, "broker", "--listen", "127.0.0.1:0", "--data-dir", data, "--log-format", "json")
	var out, errOut bytes.Buffer
	second.Stdout, second.Stderr = &out, &errOut
	if err := second.Run(); err == nil {
		t.Fatal("a second broker on the same data directory started")
	}
	p.stop()

	for _, o := range []struct {
		name, text string
		want       []string // messages that must be among the lines
	}{
		{"stderr", p.stderr.String(), []string{"broker listening", "pprof listening", "http listening", "broker stopped"}},
		{"stdout", p.stdout.String(), nil},
		{"second broker's stderr", errOut.String(), []string{"broker failed"}},
		{"second broker's stdout", out.String(), nil},
	} {
		msgs := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSuffix(o.text, "\n"), "\n") {
			if line == "" && o.text == "" {
				continue
			}
			var v struct {
				Msg string `json:"msg"`
			}
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Errorf("%s: a line that is not JSON (%v): %s", o.name, err, line)
				continue
			}
			msgs[v.Msg] = true
		}
		for _, m := range o.want {
			if !msgs[m] {
				t.Errorf("%s: no %q line among:\n%s", o.name, m, o.text)
			}
		}
	}
}

// `sluice broker --help` shows the connection-limit flags with their
// defaults, and an example.
func TestBrokerHelpShowsConnectionLimits(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"broker", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--max-connections int", "(default 10000)",
		"--max-connections-per-ip int", "(default 1000)",
		"--reserved-broker-connections int", "(default 100)",
		"--first-request-timeout duration", "(default 10s)",
		"sluice broker --max-connections 2000 --max-connections-per-ip 100",
		"--http-addr string", "--metrics-level string", "(default \"info\")",
		"sluice broker --http-addr 0.0.0.0:9095 --metrics-level debug",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("broker --help lacks %q", want)
		}
	}
}
