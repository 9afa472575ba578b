// Package netns drives scripts/netns.sh from Go: it makes hosts for
// multi-process tests and the chaos suite, one Linux network namespace each
// on a private bridge, and cuts and heals the links between them with
// iptables.
//
// Host i (1-based) has the address 10.77.0.(10+i) inside its namespace; the
// test process, in the root namespace, reaches every host through the
// bridge address 10.77.0.1 whatever cuts are in force (cuts and isolation
// only act between hosts). Every fault is a rule in the hosts' own
// namespaces, tagged so that Down removes it even after a crash.
//
// The namespaces are machine-wide state, so one user at a time: Setup holds
// a machine-wide lock for the test's lifetime. Hosts is safe for concurrent
// use only in the sense that netns.sh serialises its own commands.
package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ErrUnavailable is wrapped by Available when this machine cannot make
// hosts (not root, not Linux, no ip command, no script).
var ErrUnavailable = errors.New("netns: network namespaces unavailable")

// testLock serialises whole tests that use the hosts, across processes
// (go test runs packages in parallel). It is not the script's own lock.
const testLock = "/run/lock/sluice-netns-test.lock"

// Hosts are namespaces sluice-h1..sluice-hN made by netns.sh up.
type Hosts struct {
	// N is the number of hosts, numbered 1..N.
	N      int
	script string
}

// Script is the path of scripts/netns.sh in this source tree.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "netns.sh")
}

// Available reports why hosts cannot be made on this machine, or nil.
func Available() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w: needs Linux, have %s", ErrUnavailable, runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (uid %d)", ErrUnavailable, os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: no ip command (Debian package iproute2): %v", ErrUnavailable, err)
	}
	if _, err := os.Stat(Script()); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Up makes n hosts. The caller owns them and must call Down on every exit
// path; tests use Setup, which does.
func Up(ctx context.Context, n int) (*Hosts, error) {
	h := &Hosts{N: n, script: Script()}
	if err := h.run(ctx, "up", strconv.Itoa(n)); err != nil {
		return nil, err
	}
	return h, nil
}

// Setup makes n hosts for a test and removes them at its cleanup. It skips
// the test under -short or when Available fails, and waits (up to a minute)
// for any other test using the hosts to finish.
func Setup(t testing.TB, n int) *Hosts {
	t.Helper()
	if testing.Short() {
		t.Skip("netns: skipped with -short (makes network namespaces)")
	}
	if err := Available(); err != nil {
		t.Skipf("netns: skipped: %v", err)
	}
	unlock, err := lockMachine(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A crashed run may have left hosts behind; they are ours to remove.
	down := &Hosts{N: n, script: Script()}
	if err := down.Down(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := Up(ctx, n)
	// Registered before checking err: a half-made Up is torn down too.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := down.Down(ctx); err != nil {
			t.Errorf("netns cleanup: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Addr is host i's IPv4 address.
func (h *Hosts) Addr(i int) string { return fmt.Sprintf("10.77.0.%d", 10+i) }

// Cut drops all traffic between hosts a and b, both ways.
func (h *Hosts) Cut(ctx context.Context, a, b int) error {
	return h.run(ctx, "cut", strconv.Itoa(a), strconv.Itoa(b))
}

// Heal undoes Cut(a, b).
func (h *Hosts) Heal(ctx context.Context, a, b int) error {
	return h.run(ctx, "heal", strconv.Itoa(a), strconv.Itoa(b))
}

// Isolate cuts host a from every other host; the root namespace still
// reaches it.
func (h *Hosts) Isolate(ctx context.Context, a int) error {
	return h.run(ctx, "isolate", strconv.Itoa(a))
}

// Rejoin undoes Isolate(a).
func (h *Hosts) Rejoin(ctx context.Context, a int) error {
	return h.run(ctx, "rejoin", strconv.Itoa(a))
}

// CutClients drops, in the root namespace, everything host a sends there:
// the clients (this process) lose a, silently, while the hosts keep their
// links to each other.
func (h *Hosts) CutClients(ctx context.Context, a int) error {
	return h.run(ctx, "cutclients", strconv.Itoa(a))
}

// HealClients undoes CutClients(a).
func (h *Hosts) HealClients(ctx context.Context, a int) error {
	return h.run(ctx, "healclients", strconv.Itoa(a))
}

// CutPort drops TCP and UDP to and from port between host a and every
// other host, both ways (each side drops what arrives from the other):
// a cut of one service, such as gossip, with every other port and the
// root namespace's links to a left alone.
func (h *Hosts) CutPort(ctx context.Context, a, port int) error {
	return h.run(ctx, "cutport", strconv.Itoa(a), strconv.Itoa(port))
}

// HealPort undoes every CutPort of host a.
func (h *Hosts) HealPort(ctx context.Context, a int) error {
	return h.run(ctx, "healport", strconv.Itoa(a))
}

// Redirect makes host a's new TCP connections to host b's port go to
// 127.0.0.1:toPort inside a (a nat OUTPUT rule), where the caller's proxy,
// listening in a's namespace (see In), forwards them. a's established
// connections to b's port that do not already go through toPort are reset
// (both ends), so they come back through the proxy.
func (h *Hosts) Redirect(ctx context.Context, a, b, port, toPort int) error {
	return h.run(ctx, "redirect", strconv.Itoa(a), strconv.Itoa(b), strconv.Itoa(port), strconv.Itoa(toPort))
}

// Unredirect removes every Redirect of host a. The connections they
// redirected are not translated any more (iptables-nft): what the host
// sends on one goes straight to the peer, which resets it, and what its
// proxy sends back, a FIN or RST included, arrives from 127.0.0.1 and
// matches no socket, so a side only reading waits for its own timeout.
// End them through their proxy before (SlowLinks.Heal does).
func (h *Hosts) Unredirect(ctx context.Context, a int) error {
	return h.run(ctx, "unredirect", strconv.Itoa(a))
}

// In runs f on an OS thread moved into host i's network namespace and
// returns f's error. Sockets f makes (net.Listen, a net.Dialer) belong to
// that namespace for life, whichever thread uses them later; goroutines f
// starts do not run in it. The thread goes back to the process's
// namespace afterwards, or, if it cannot, exits rather than run other
// goroutines there.
func (h *Hosts) In(i int, f func() error) error {
	if i < 1 || i > h.N {
		return fmt.Errorf("netns: no host %d (hosts 1..%d)", i, h.N)
	}
	target, err := os.Open(filepath.Join("/run/netns", nsName(i)))
	if err != nil {
		return fmt.Errorf("netns: host %d: %w", i, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked unless the thread is back home: a goroutine that
		// returns locked takes its thread with it.
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: own namespace: %w", err)
			return
		}
		defer home.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: enter host %d: %w", i, err)
			return
		}
		ferr := f()
		if err := setns(home); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netns: leave host %d: %w", i, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Down removes every host, the processes in them, the bridge and every
// tagged rule. It is idempotent.
func (h *Hosts) Down(ctx context.Context) error { return h.run(ctx, "down") }

// Command is a command that runs name in host i's namespace.
func (h *Hosts) Command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nsName(i), name}, args...)...)
}

// nsName is host i's namespace, as netns.sh names it.
func nsName(i int) string { return fmt.Sprintf("sluice-h%d", i) }

func (h *Hosts) run(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, h.script, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns.sh %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lockMachine takes the machine-wide test lock, polling until timeout.
func lockMachine(timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(testLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("netns: open lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("netns: lock %s: %w", testLock, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
