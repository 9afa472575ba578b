package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestCLIBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	addr, _ := startBroker(t, bin, t.TempDir())

	var rep struct {
		Workload      string  `json:"workload"`
		Records       int64   `json:"records"`
		Bytes         int64   `json:"bytes"`
		Errors        int64   `json:"errors"`
		RecordsPerSec float64 `json:"records_per_sec"`
		Latency       *struct {
			Count int64   `json:"count"`
			P50Ms float64 `json:"p50_ms"`
			P999  float64 `json:"p99_9_ms"`
		} `json:"latency"`
	}
	out := sluice(t, bin, addr, "", "bench", "produce", "--topic", "b", "--create", "--partitions", "2",
		"--records", "20000", "--acks", "1", "--json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench produce --json: %v\n%s", err, out)
	}
	if rep.Workload != "produce" || rep.Records != 20000 || rep.Bytes != 20000*100 || rep.Errors != 0 ||
		rep.RecordsPerSec <= 0 || rep.Latency == nil || rep.Latency.Count != 20000 || rep.Latency.P999 < rep.Latency.P50Ms {
		t.Fatalf("bench produce report: %s", out)
	}

	out = sluice(t, bin, addr, "", "bench", "consume", "--topic", "b", "--json")
	rep.Latency = nil
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Records != 20000 || rep.Latency != nil {
		t.Fatalf("bench consume report (%v): %s", err, out)
	}

	out = sluice(t, bin, addr, "", "bench", "verify", "--producers", "2", "--consumers", "2", "--records", "4000", "--json")
	var v struct {
		OK    bool  `json:"ok"`
		Acked int64 `json:"acked"`
		Lost  int64 `json:"lost"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || !v.OK || v.Acked != 4000 {
		t.Fatalf("bench verify (%v): %s", err, out)
	}

	// Errors are one line, with a non-zero exit.
	for _, args := range [][]string{
		{"bench", "produce", "--topic", "missing", "--records", "10"},
		{"bench", "e2e", "--record-size", "4", "--create"},
		{"bench", "produce", "--acks", "2"},
		{"bench", "verify", "--topic", "b"}, // not empty
	} {
		_, errOut, err := sluiceResult(bin, addr, "", args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if err == nil || len(lines) != 1 || !strings.HasPrefix(lines[0], "sluice: ") {
			t.Errorf("sluice %v: err %v, stderr %q: want a one-line error", args, err, errOut)
		}
	}
}

func TestPprofServer(t *testing.T) {
	stop, addr, err := servePprof("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("GET /debug/pprof/: %d %.200s", resp.StatusCode, body)
	}
	stop()
	if _, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Fatal("pprof still served after stop")
	}
	if _, _, err := servePprof("256.0.0.1:1"); err == nil {
		t.Fatal("bad address: no error")
	}
}
