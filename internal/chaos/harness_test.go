package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/netns"
)

// enableEnv turns the suite on: it runs real brokers in network namespaces
// for minutes, so plain `go test ./...` skips it.
const enableEnv = "SLUICE_CHAOS"

// keepEnv keeps a passing run's directory too, to read its broker logs.
const keepEnv = "SLUICE_CHAOS_KEEP"

// secureEnv=1 runs the cluster secure (Options.Secure).
const secureEnv = "SLUICE_CHAOS_SECURE"

func TestMain(m *testing.M) {
	// Interrupted (Ctrl-C, SIGTERM from a CI runner): the test's cleanups
	// will not run, so remove the hosts and the brokers in them here.
	// scripts/chaos.sh covers a test timeout and SIGKILL the same way.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "chaos: %v: removing the hosts (netns.sh down)\n", s)
		if err := netns.Available(); err == nil {
			out, err := exec.Command(netns.Script(), "down").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "chaos: netns.sh down: %v: %s\n", err, out)
			}
		}
		os.Exit(2)
	}()
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// envDuration is the duration in env var name, or def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// envInt is the integer in env var name, or def.
func envInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// env is the string in env var name, or def.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// brokerArgs are the flags every broker of the suite runs with: followers
// leave the ISR after 3 s behind, so a pause of a few seconds shrinks it;
// at most 1,000 client connections, so that conn-flood's FloodConns pass
// the limit.
var brokerArgs = []string{"--replica-max-lag", "3s", "--log-level", "info", "--max-connections", "1000"}

// harness is a running cluster for one test, its directory (data dirs,
// logs, history) kept when the test fails, with the command that
// reproduces the run.
type harness struct {
	t     *testing.T
	c     *Cluster
	dir   string
	admin *client.Client
	keep  bool // keep dir even if the test passes
}

// setup skips unless SLUICE_CHAOS is set and hosts can be made, then
// starts a 3-broker cluster, with the data dirs on tmpfs of dataFS bytes
// each if dataFS > 0 (Options.DataFSBytes). repro is the command that
// runs the test again as it ran.
func setup(t *testing.T, repro string, dataFS int64) *harness {
	t.Helper()
	if os.Getenv(enableEnv) == "" {
		t.Skipf("chaos suite: set %s=1 to run it (make chaos-short, make chaos)", enableEnv)
	}
	hosts := netns.Setup(t, 3) // skips when not root or no ip netns
	if os.Getenv(secureEnv) == "1" {
		repro = secureEnv + "=1 " + repro
	}
	h, bin := newHarness(t, repro)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := brokerArgs
	if lvl := os.Getenv("SLUICE_CHAOS_BROKER_LOG_LEVEL"); lvl != "" {
		args = append(slices.Clone(brokerArgs), "--log-level", lvl) // the last one wins
	}
	c, err := StartCluster(ctx, hosts, bin, h.dir, Options{Extra: args, DataFSBytes: dataFS,
		KeepData: func() bool { return h.keep || t.Failed() || os.Getenv(keepEnv) != "" },
		Secure:   os.Getenv(secureEnv) == "1"})
	h.started(ctx, c, err)
	return h
}

// newHarness makes the run's directory, removed at the test's end unless
// it failed or is to be kept, and returns the binary to run: SLUICE_BIN
// or one built into the directory.
func newHarness(t *testing.T, repro string) (*harness, string) {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	dir, err := os.MkdirTemp("", "sluice-chaos-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir}
	t.Cleanup(func() {
		switch {
		case h.keep:
			t.Logf("kept for a look: data dirs and broker logs in %s; rerun: %s", dir, repro)
		case t.Failed():
			t.Logf("FAILED: data dirs, broker logs and history kept in %s", dir)
			t.Logf("reproduce: %s", repro)
		case os.Getenv(keepEnv) != "":
			t.Logf("data dirs and broker logs kept in %s (%s is set)", dir, keepEnv)
		default:
			_ = os.RemoveAll(dir)
		}
	})
	bin := os.Getenv("SLUICE_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "sluice")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err := BuildBinary(ctx, bin)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	return h, bin
}

// started takes a cluster StartCluster or StartLocalCluster returned:
// closed at the test's end, the test failed if it did not start, an
// admin client connected.
func (h *harness) started(ctx context.Context, c *Cluster, err error) {
	t := h.t
	t.Helper()
	if c != nil {
		t.Cleanup(c.Close) // before the hosts' down: cleanups run last first
	}
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	for _, b := range c.Brokers {
		t.Logf("broker %d: %s", b.ID, b.CommandLine())
	}
	if c.secure != nil {
		t.Logf("secure cluster (%s=1): TLS everywhere, mutual TLS, SCRAM, authorizer; workload user %s", secureEnv, WorkloadUser)
	}
	admin, err := c.AdminClient(ctx, "chaos-admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	h.c, h.admin = c, admin
}

// createTopic creates topic: partitions, RF 3 (min ISR 2 by default),
// 2 MiB segments (above max.message.bytes) so that runs roll segments, and configs; then waits for
// every replica to be in sync and every partition on its preferred leader.
func (h *harness) createTopic(topic string, partitions int32, configs map[string]string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := map[string]string{"segment.bytes": "2097152"}
	for k, v := range configs {
		cfg[k] = v
	}
	if err := h.admin.CreateTopics(ctx, client.TopicSpec{Name: topic, Partitions: partitions, ReplicationFactor: 3, Configs: cfg}); err != nil {
		h.t.Fatalf("create topic %s: %v", topic, err)
	}
	// Settled, so faults start from the leaders a fresh cluster has:
	// a leader still to be handed back to its preferred replica would
	// move during whatever fault runs at the next rebalance (30 s), and
	// the checks that a fault moves no leader (CheckGossipCut) would
	// count it.
	start := time.Now()
	if err := WaitSettled(ctx, h.c, topic, 50*time.Second); err != nil {
		h.t.Fatal(err)
	}
	h.t.Logf("topic %s created and settled (full ISR, preferred leaders) after %v", topic, time.Since(start).Round(time.Millisecond))
}

// save writes v as JSON into the run's directory, as name.
func (h *harness) save(name string, v any) {
	f, err := os.Create(filepath.Join(h.dir, name))
	if err != nil {
		h.t.Logf("save %s: %v", name, err)
		return
	}
	defer f.Close()
	if err := json.NewEncoder(f).Encode(v); err != nil {
		h.t.Logf("save %s: %v", name, err)
	}
}

// checkNoCrash fails the test for every broker that exited by itself.
func (h *harness) checkNoCrash() {
	h.t.Helper()
	for _, b := range h.c.Brokers {
		if b.Exited() {
			h.t.Errorf("broker %d exited by itself: see %s", b.ID, b.LogPath)
		}
	}
}

// report checks a history and logs the figures; it fails the test when
// the check does.
func (h *harness) report(o Outcome) bench.Result {
	h.t.Helper()
	r := bench.Check(o.History)
	h.t.Logf("verify: sent %d, acknowledged %d, failed %d, unknown %d (%d of them present), live reads %d, final reads %d",
		r.Sent, r.Acked, r.Failed, r.Unknown, r.UnknownPresent, r.LiveReads, r.FinalReads)
	h.t.Logf("verify: lost %d, unexpected %d, failed-present %d, inconsistent %d, vanished %d, reordered %d, non-monotonic %d, duplicates %d (idempotent %v: %d unknown outcomes resolved by retries)",
		r.Lost, r.Unexpected, r.FailedPresent, r.Inconsistent, r.Vanished, r.Reordered, r.NonMonotonic, r.Duplicates, r.Idempotent, r.ResolvedUnknown)
	lat := o.Latency.Summary()
	h.t.Logf("ack latency: p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, max %.1f ms (%d acks); live reader fetch errors %d",
		lat.P50Ms, lat.P99Ms, lat.P999Ms, lat.MaxMs, lat.Count, o.FetchErrors)
	if o.Producing > 0 {
		h.t.Logf("acks/s: %.0f over %v; by 10 s: %s", float64(r.Acked)/o.Producing.Seconds(), o.Producing.Round(time.Millisecond),
			FormatRates(AckRates(o.Acks, 10*time.Second, o.Producing), 10*time.Second))
	}
	logSendErrors(h.t, o.SendErrors)
	if !r.OK() {
		h.save("history.json", o.History)
		h.t.Errorf("check failed: %+v", r)
		for _, e := range r.Examples {
			h.t.Log("  ", e)
		}
	}
	if r.Acked == 0 {
		h.t.Error("nothing was acknowledged")
	}
	return r
}

// checkReplicas waits for identical replicas and logs them.
func (h *harness) checkReplicas(topic string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := WaitIdentical(ctx, h.admin, topic, 3, 60*time.Second)
	if brs, derr := h.admin.DescribeReplicaChecksums(ctx, 1<<62, topic); derr == nil {
		for _, l := range ReplicaSummary(brs) {
			h.t.Log("replicas:", l)
		}
	}
	if err != nil {
		h.t.Errorf("replicas not identical: %v", err)
	}
}

// logSendErrors logs the most frequent messages of the sends that ended
// unknown or failed: a stall shows as one producer's timeouts at one
// leader.
func logSendErrors(t *testing.T, errs map[string]int) {
	t.Helper()
	msgs := slices.SortedFunc(maps.Keys(errs), func(a, b string) int { return cmp.Or(errs[b]-errs[a], strings.Compare(a, b)) })
	for _, m := range msgs[:min(len(msgs), 6)] {
		t.Logf("send errors: %d× %s", errs[m], m)
	}
}
