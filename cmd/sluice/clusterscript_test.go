package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// freeBase finds a base port for scripts/cluster.sh whose client, raft,
// gossip and HTTP ports (base+10*i+1, +2, +3, +4; gossip over TCP and
// UDP; HTTP at the client port + 3 by default) are free for n brokers.
func freeBase(t *testing.T, n int) int {
	t.Helper()
	free := func(base int) bool {
		for i := 1; i <= n; i++ {
			for k := 1; k <= 5; k++ { // client, Raft, gossip, HTTP, Kafka (scripts/cluster.sh)
				addr := fmt.Sprintf("127.0.0.1:%d", base+10*i+k)
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return false
				}
				ln.Close()
				if k == 3 {
					pc, err := net.ListenPacket("udp", addr)
					if err != nil {
						return false
					}
					pc.Close()
				}
			}
		}
		return true
	}
	for range 50 {
		if base := 20000 + rand.IntN(2000)*10; free(base) {
			return base
		}
	}
	t.Fatal("no free port range for the cluster")
	return 0
}

// scriptCluster is a cluster of `sluice broker` processes run by
// scripts/cluster.sh in a directory of the test's own, on a port base of
// its own, so tests cannot collide. Cleanup runs `down` (and, when the
// test failed, logs the tail of every broker's log first).
type scriptCluster struct {
	t      *testing.T
	script string
	dir    string
	env    []string
	n      int
	addrs  []string // client addresses, broker i at addrs[i-1]
}

// newScriptCluster prepares a cluster of n brokers of bin; brokerArgs is
// passed as SLUICE_BROKER_ARGS. It starts nothing: call up.
func newScriptCluster(t *testing.T, bin string, n int, brokerArgs string) *scriptCluster {
	t.Helper()
	script, err := filepath.Abs("../../scripts/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	// The watchdog (SLUICE_CLUSTER_OWNER) stops the brokers should this
	// process die before its cleanup, on a -timeout panic say.
	c := &scriptCluster{t: t, script: script, dir: t.TempDir(), n: n,
		env: append(os.Environ(), "SLUICE_BIN="+bin, fmt.Sprintf("SLUICE_CLUSTER_PORT=%d", freeBase(t, n)),
			"SLUICE_BROKER_ARGS="+brokerArgs, fmt.Sprintf("SLUICE_CLUSTER_OWNER=%d", os.Getpid()))}
	t.Cleanup(func() {
		if t.Failed() {
			c.logTails(30)
		}
		cmd := exec.Command(script, "down", c.dir)
		cmd.Env = c.env
		cmd.Run()
	})
	return c
}

// run runs cluster.sh with args and DIR; a failure fails the test.
func (c *scriptCluster) run(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.script, append(args, c.dir)...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// up starts the brokers and returns what up printed.
func (c *scriptCluster) up() string {
	c.t.Helper()
	out := strings.TrimSpace(c.run("up", fmt.Sprint(c.n)))
	lines := strings.Split(out, "\n")
	c.addrs = strings.Split(lines[len(lines)-1], ",")
	return out
}

// client returns a client of the test process bootstrapped from every
// broker, closed at cleanup.
func (c *scriptCluster) client(opts ...client.Opt) *client.Client {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.New(ctx, append([]client.Opt{client.SeedBrokers(c.addrs...),
		client.RetryBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// logTails logs the last lines of every broker's log.
func (c *scriptCluster) logTails(lines int) {
	for i := 1; i <= c.n; i++ {
		data, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprint(i), "broker.log"))
		if err != nil {
			continue
		}
		ls := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
		c.t.Logf("broker %d, last %d log lines:\n%s", i, lines, bytes.Join(ls[max(0, len(ls)-lines):], []byte("\n")))
	}
}

// TestClusterScript runs scripts/cluster.sh with the built binary: up 3,
// a topic through the cluster, kill and start a broker (a new epoch),
// pause and resume, wipe refused while running, status, down (which must
// also end a paused broker).
func TestClusterScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster")
	}
	bin := buildBinary(t)
	c := newScriptCluster(t, bin, 3, "--replica-fetch-wait 200ms")
	out := c.up()
	lines := strings.Split(out, "\n")
	addrs := lines[len(lines)-1]
	if got := strings.Count(addrs, ",") + 1; got != 3 {
		t.Fatalf("up printed %q as its last line, want 3 addresses", addrs)
	}
	if saved, err := os.ReadFile(filepath.Join(c.dir, "brokers")); err != nil || strings.TrimSpace(string(saved)) != addrs {
		t.Fatalf("DIR/brokers = %q (%v), want %q", saved, err, addrs)
	}
	cmdLine, err := os.ReadFile(filepath.Join(c.dir, "2", "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--gossip-addr ", "--gossip-seeds ", "--replica-fetch-wait 200ms"} {
		if !strings.Contains(string(cmdLine), want) {
			t.Errorf("broker 2's command line lacks %q: %s", want, cmdLine)
		}
	}
	sluice(t, bin, addrs, "", "topic", "create", "spread", "--partitions", "3")
	sluice(t, bin, addrs, "a\nb\nc\n", "produce", "spread")

	epochOf := func(id int32) int64 {
		t.Helper()
		var brokers []struct {
			ID    int32  `json:"id"`
			Epoch int64  `json:"epoch"`
			State string `json:"state"`
		}
		if err := json.Unmarshal([]byte(sluice(t, bin, addrs, "", "cluster", "brokers", "--json")), &brokers); err != nil {
			t.Fatal(err)
		}
		for _, b := range brokers {
			if b.ID == id {
				return b.Epoch
			}
		}
		t.Fatalf("broker %d not listed", id)
		return 0
	}
	before := epochOf(2)
	c.run("kill", "2")
	c.run("start", "2")
	deadline := time.Now().Add(30 * time.Second)
	for epochOf(2) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("broker 2 restarted but its epoch is still %d", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := sluice(t, bin, addrs, "", "consume", "spread", "--from-beginning", "--max-messages", "3", "--timeout", "10s"); len(strings.Fields(got)) != 3 {
		t.Fatalf("consumed %q after the restart, want 3 records", got)
	}
	if st := c.run("status"); !strings.Contains(st, "3 alive of 3") {
		t.Fatalf("status:\n%s", st)
	}

	// wipe refuses a running broker; pause and resume keep it running.
	cmd := exec.Command(c.script, "wipe", "3", c.dir)
	cmd.Env = c.env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "running") {
		t.Fatalf("wipe of a running broker: %v, %s; want a refusal", err, out)
	}
	c.run("pause", "3")
	c.run("resume", "3")
	c.run("pause", "3") // down must end it although it is stopped
	c.run("down")
	for i := 1; i <= 3; i++ {
		if _, err := os.Stat(filepath.Join(c.dir, fmt.Sprint(i), "pid")); !os.IsNotExist(err) {
			t.Errorf("broker %d pid file left after down", i)
		}
	}
	c.run("wipe", "3")
	if left, err := os.ReadDir(filepath.Join(c.dir, "3", "data")); err != nil || len(left) != 0 {
		t.Errorf("broker 3's data dir after wipe: %d entries (%v), want none", len(left), err)
	}
}

// TestClusterScriptWatchdog: with SLUICE_CLUSTER_OWNER set, the brokers
// are stopped once the owner process has exited, without a down.
func TestClusterScriptWatchdog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker process")
	}
	owner := exec.Command("sleep", "120")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Process.Kill(); owner.Wait() })
	c := newScriptCluster(t, buildBinary(t), 1, "")
	c.env = append(c.env, fmt.Sprintf("SLUICE_CLUSTER_OWNER=%d", owner.Process.Pid)) // the last one wins
	c.up()
	pidFile := filepath.Join(c.dir, "1", "pid")
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatalf("broker 1 has no pid file: %v", err)
	}
	owner.Process.Kill()
	owner.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, statErr := os.Stat(pidFile)
		conn, dialErr := net.DialTimeout("tcp", c.addrs[0], time.Second)
		if dialErr == nil {
			conn.Close()
		}
		if os.IsNotExist(statErr) && dialErr != nil {
			return // down ran, and the broker no longer listens
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the owner exited: pid file %v, dial %v; want the broker stopped", statErr, dialErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterScriptTLS: SLUICE_CLUSTER_TLS=1 starts a cluster with TLS
// everywhere and mutual TLS; the CLI with DIR/tls/env's variables
// produces and consumes, status works, and a plaintext CLI is refused.
func TestClusterScriptTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster")
	}
	bin := buildBinary(t)
	c := newScriptCluster(t, bin, 3, "")
	c.env = append(c.env, "SLUICE_CLUSTER_TLS=1")
	c.up()
	addrs := strings.Join(c.addrs, ",")
	tlsDir := filepath.Join(c.dir, "tls")
	tlsArgs := []string{"--tls-ca", filepath.Join(tlsDir, "ca.crt"), "--tls-cert", filepath.Join(tlsDir, "client.crt"), "--tls-key", filepath.Join(tlsDir, "client.key")}
	sluice(t, bin, addrs, "", append([]string{"topic", "create", "sealed", "--partitions", "3", "--replication-factor", "3"}, tlsArgs...)...)
	sluice(t, bin, addrs, "a\nb\nc\n", append([]string{"produce", "sealed"}, tlsArgs...)...)
	if got := sluice(t, bin, addrs, "", append([]string{"consume", "sealed", "--from-beginning", "--max-messages", "3", "--timeout", "10s"}, tlsArgs...)...); len(strings.Fields(got)) != 3 {
		t.Fatalf("consumed %q, want 3 records", got)
	}
	if st := c.run("status"); !strings.Contains(st, "3 alive of 3") {
		t.Fatalf("status:\n%s", st)
	}
	env, err := os.ReadFile(filepath.Join(tlsDir, "env"))
	if err != nil || !strings.Contains(string(env), "SLUICE_TLS_CA=") {
		t.Fatalf("DIR/tls/env: %q, %v", env, err)
	}
	if _, errOut, err := sluiceResult(bin, addrs, "", "topic", "list", "--timeout", "5s"); err == nil || !strings.Contains(errOut, "is its listener TLS?") {
		t.Fatalf("plaintext CLI against the TLS cluster: %v, %s", err, errOut)
	}
}
