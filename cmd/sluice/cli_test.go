package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// buildBinary compiles the sluice binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// listeningRE finds the broker's client address in its "broker listening"
// line, JSON or console.
var listeningRE = regexp.MustCompile(`broker listening.*"addr": ?"([^"]+)"`)

// binaryAndBroker skips under -short; else it builds the binary and
// starts a broker on a fresh data directory (startBroker).
func binaryAndBroker(t *testing.T) (bin, addr string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin = buildBinary(t)
	addr, _ = startBroker(t, bin, t.TempDir())
	return bin, addr
}

// startBroker runs `sluice broker` on a free loopback port and returns its
// address; the broker is stopped with SIGTERM at cleanup and must exit 0.
func startBroker(t *testing.T, bin, dataDir string) (addr string, stop func()) {
	t.Helper()
	p := startBrokerProcess(t, bin, dataDir, syscall.SIGTERM)
	return p.addr, p.stop
}

// startBrokerKillable is startBroker whose stop sends SIGKILL.
func startBrokerKillable(t *testing.T, bin, dataDir string) (addr string, kill func()) {
	t.Helper()
	p := startBrokerProcess(t, bin, dataDir, syscall.SIGKILL)
	return p.addr, p.stop
}

// brokerProcess is a `sluice broker` a test started. Once stop returned,
// stderr and stdout hold everything the process printed.
type brokerProcess struct {
	addr           string
	pid            int
	stop           func()
	stderr, stdout bytes.Buffer
}

// startBrokerProcess starts a broker with args added to its command line;
// stop sends it sig.
func startBrokerProcess(t *testing.T, bin, dataDir string, sig syscall.Signal, args ...string) *brokerProcess {
	t.Helper()
	p := &brokerProcess{}
	cmd := exec.Command(bin, append([]string{"broker", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}, args...)...)
	cmd.Stdout = &p.stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	logs := &p.stderr
	found := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			logs.WriteString(line + "\n")
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case p.addr = <-found:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("broker did not start:\n%s", logs.String())
	}
	stopped := false
	p.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(sig)
		<-done
		if err := cmd.Wait(); err != nil && sig != syscall.SIGKILL {
			t.Errorf("broker exit after SIGTERM: %v\n%s", err, logs.String())
		}
	}
	t.Cleanup(p.stop)
	return p
}

// sluice runs the CLI with stdin and returns stdout; it fails the test on a
// non-zero exit.
func sluice(t *testing.T, bin, addr, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := sluiceResult(bin, addr, stdin, args...)
	if err != nil {
		t.Fatalf("sluice %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func sluiceResult(bin, addr, stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--brokers", addr}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func TestCLIProduceConsumeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	addr, stop := startBroker(t, bin, data)

	sluice(t, bin, addr, "", "topic", "create", "cli", "--partitions", "3", "--config", "fsync=always")
	if got := sluice(t, bin, addr, "", "topic", "list"); !strings.Contains(got, "cli\n") {
		t.Fatalf("topic list = %q, want cli", got)
	}
	var in strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&in, "key%d:value-%d\n", i%7, i)
	}
	sluice(t, bin, addr, in.String(), "produce", "cli", "--key-separator", ":")

	consumeAll := func(addr string) map[string]string {
		out := sluice(t, bin, addr, "", "consume", "cli", "--from-beginning", "--max-messages", "300",
			"--timeout", "10s", "--format", "{partition} {offset} {key} {value}")
		got := map[string]string{} // value -> key
		lastOffset := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var part, key, value string
			var off int
			if _, err := fmt.Sscanf(line, "%s %d %s %s", &part, &off, &key, &value); err != nil {
				t.Fatalf("bad consume line %q: %v", line, err)
			}
			if prev, ok := lastOffset[part]; ok && off <= prev {
				t.Fatalf("partition %s: offset %d after %d", part, off, prev)
			}
			lastOffset[part] = off
			got[value] = key
		}
		return got
	}
	check := func(got map[string]string) {
		t.Helper()
		if len(got) != 300 {
			t.Fatalf("consumed %d distinct records, want 300", len(got))
		}
		for i := 0; i < 300; i++ {
			if k := got[fmt.Sprintf("value-%d", i)]; k != fmt.Sprintf("key%d", i%7) {
				t.Fatalf("value-%d has key %q", i, k)
			}
		}
	}
	check(consumeAll(addr))

	// A graceful restart keeps the topic and every record.
	stop()
	addr, _ = startBroker(t, bin, data)
	check(consumeAll(addr))

	desc := sluice(t, bin, addr, "", "topic", "describe", "cli", "--json")
	if !strings.Contains(desc, `"fsync": "always"`) {
		t.Errorf("describe --json lacks fsync=always:\n%s", desc)
	}
}

func TestCLIErrorsAreOneLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	addr, _ := startBroker(t, bin, t.TempDir())
	for _, args := range [][]string{
		{"topic", "create", "bad/name"},
		{"topic", "describe", "missing"},
		{"produce", "t", "--acks", "2"},
		{"consume", "t", "--offset", "5"},
	} {
		out, errOut, err := sluiceResult(bin, addr, "", args...)
		if err == nil {
			t.Errorf("sluice %v succeeded, want an error (stdout %q)", args, out)
			continue
		}
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "sluice: ") || strings.Contains(errOut, "goroutine") {
			t.Errorf("sluice %v stderr = %q, want one line starting with 'sluice: '", args, errOut)
		}
	}
}

func TestFormat(t *testing.T) {
	r := &client.Record{Topic: "t", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(1700000000123)}
	for _, tc := range []struct{ format, want string }{
		{"{value}", "v\n"},
		{"{topic}/{partition}@{offset} {key}={value} {timestamp}", "t/2@41 k=v 1700000000123\n"},
		{`{key}\t{value}`, "k\tv\n"},
		{"{unknown} {value", "{unknown} {value\n"},
		{"", "\n"},
	} {
		if got := string(appendFormatted(nil, compileFormat(tc.format), r)); got != tc.want {
			t.Errorf("format %q = %q, want %q", tc.format, got, tc.want)
		}
	}
}

// --timeout bounds the client's bootstrap: a seed that accepts and never
// answers (a paused broker) fails the command after --timeout, not after
// 1 + RequestRetries request timeouts.
func TestCLITimeoutBoundsBootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	start := time.Now()
	_, errOut, err := sluiceResult(bin, hung.Addr().String(), "", "topic", "list", "--timeout", "2s")
	el := time.Since(start)
	if err == nil || !strings.Contains(errOut, "no broker answered within --timeout 2s") {
		t.Fatalf("err %v, stderr %q; want a failure naming --timeout", err, errOut)
	}
	if el > 5*time.Second {
		t.Fatalf("gave up after %v with --timeout 2s", el)
	}
}
