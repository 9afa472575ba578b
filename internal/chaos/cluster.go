package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/faultproxy"
	"github.com/sluicemq/sluice/internal/netns"
)

// Ports of every broker, on its host's address. Hosts have addresses of
// their own, so every broker can use the same ones.
const (
	ClientPort = 7092
	RaftPort   = 7093
	GossipPort = 7094
)

// Broker is one `sluice broker` process, broker id ID on host ID. It is
// started again with the same command line and data dir after a kill.
type Broker struct {
	ID   int
	Addr string // client address, host:ClientPort
	// DataDir is the broker's --data-dir; LogPath its stdout and stderr,
	// appended to across restarts.
	DataDir string
	LogPath string
	// FSDir, with Options.DataFSBytes, is the tmpfs DataDir is in.
	FSDir string
	// Proxy, in the root namespace, is what every client of the suite
	// dials to reach this broker: the slow-clients fault slows it.
	Proxy *faultproxy.Proxy

	args  []string
	hosts *netns.Hosts // nil for a local cluster's (StartLocalCluster)
	bin   string
	// raftAddr and gossipAddr are a local cluster's broker's.
	raftAddr, gossipAddr string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	paused bool
	starts int
}

// Cluster is brokers 1..n on hosts 1..n: Raft voters all, each gossiping
// with the others.
type Cluster struct {
	Hosts   *netns.Hosts
	Bin     string
	Dir     string
	Brokers []*Broker // Brokers[i-1] is broker i

	opts   Options
	secure *secure // Options.Secure's material; nil without

	mu    sync.Mutex
	slow  *SlowLinks // the slow-peers fault in force, if any
	flood *Flood     // the conn-flood fault in force, if any
	full  string     // the disk-full fault's filler file, if in force

	closeOnce sync.Once
}

// RepoRoot is the root of this source tree.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildBinary builds cmd/sluice into out, statically (CGO_ENABLED=0), so
// it runs in any namespace whatever the libraries there.
func BuildBinary(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/sluice")
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chaos: build sluice: %w: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

// Options are how StartCluster runs the brokers.
type Options struct {
	// Extra is appended to every broker's command line.
	Extra []string
	// DataFSBytes, when positive, puts each broker's data dir on a tmpfs
	// of that size of its own (FSDir), mounted before the broker first
	// starts and unmounted by Close: a disk that can fill (FillDisk).
	DataFSBytes int64
	// KeepData, when it says so at Close, copies each tmpfs data dir to
	// brokerN/data.kept before the unmount, for a failed run's post-mortem.
	KeepData func() bool
	// Secure runs the brokers with TLS (mutual) on every listener and
	// between them, encrypted gossip, SCRAM logins required and the
	// authorizer on (secure.go); Client logs in as WorkloadUser,
	// AdminClient as the operator.
	Secure bool
}

// StartCluster starts one broker on each of hosts' hosts, with data dirs
// and logs under dir, and waits until every broker is registered and
// alive. The caller must Close it on every path, an error included.
func StartCluster(ctx context.Context, hosts *netns.Hosts, bin, dir string, opts Options) (*Cluster, error) {
	c := &Cluster{Hosts: hosts, Bin: bin, Dir: dir, opts: opts}
	// The brokers log in to each other with the cluster secret.
	secret := make([]byte, 32)
	rand.Read(secret)
	secretFile := filepath.Join(dir, "cluster-secret")
	if err := os.WriteFile(secretFile, []byte(hex.EncodeToString(secret)), 0o600); err != nil {
		return c, fmt.Errorf("chaos: %w", err)
	}
	voters := make([]string, 0, hosts.N)
	addrs := make([]string, 0, hosts.N)
	for i := 1; i <= hosts.N; i++ {
		voters = append(voters, fmt.Sprintf("%d@%s:%d", i, hosts.Addr(i), RaftPort))
		addrs = append(addrs, hosts.Addr(i))
	}
	extra := opts.Extra
	if opts.Secure {
		s, err := newSecure(dir, addrs, []byte(hex.EncodeToString(secret)))
		if err != nil {
			return c, err
		}
		c.secure = s
		extra = append(slices.Clone(s.brokerArgs), opts.Extra...)
	}
	for i := 1; i <= hosts.N; i++ {
		var seeds []string
		for j := 1; j <= hosts.N; j++ {
			if j != i {
				seeds = append(seeds, fmt.Sprintf("%s:%d", hosts.Addr(j), GossipPort))
			}
		}
		bdir := filepath.Join(dir, "broker"+strconv.Itoa(i))
		if err := os.MkdirAll(bdir, 0o755); err != nil {
			return c, fmt.Errorf("chaos: %w", err)
		}
		b := &Broker{ID: i, Addr: fmt.Sprintf("%s:%d", hosts.Addr(i), ClientPort),
			DataDir: filepath.Join(bdir, "data"), LogPath: filepath.Join(bdir, "broker.log"),
			hosts: hosts, bin: bin}
		// In Brokers before the mount: Close unmounts what was mounted,
		// even when StartCluster fails half way.
		c.Brokers = append(c.Brokers, b)
		if opts.DataFSBytes > 0 {
			if err := MountTmpfs(filepath.Join(bdir, "fs"), opts.DataFSBytes); err != nil {
				return c, err
			}
			b.FSDir = filepath.Join(bdir, "fs")
			b.DataDir = filepath.Join(b.FSDir, "data")
		}
		b.args = append([]string{"broker",
			"--broker-id", strconv.Itoa(i),
			"--listen", b.Addr,
			"--raft-addr", fmt.Sprintf("%s:%d", hosts.Addr(i), RaftPort),
			"--gossip-addr", fmt.Sprintf("%s:%d", hosts.Addr(i), GossipPort),
			"--gossip-seeds", strings.Join(seeds, ","),
			"--voters", strings.Join(voters, ","),
			"--data-dir", b.DataDir,
			"--log-format", "json",
			"--cluster-secret-file", secretFile,
		}, extra...)
	}
	for _, b := range c.Brokers {
		p, err := faultproxy.Listen("127.0.0.1:0", b.Addr)
		if err != nil {
			return c, fmt.Errorf("chaos: proxy for broker %d: %w", b.ID, err)
		}
		b.Proxy = p
	}
	for _, b := range c.Brokers {
		if err := b.Start(); err != nil {
			return c, err
		}
	}
	if err := c.WaitHealthy(ctx, time.Minute); err != nil {
		return c, err
	}
	if c.secure != nil {
		return c, c.grant(ctx)
	}
	return c, nil
}

// Broker returns broker id.
func (c *Cluster) Broker(id int) *Broker { return c.Brokers[id-1] }

// Seeds is every broker's client address.
func (c *Cluster) Seeds() []string {
	s := make([]string, len(c.Brokers))
	for i, b := range c.Brokers {
		s[i] = b.Addr
	}
	return s
}

// Client connects a client to the cluster, with timeouts short enough for
// a test to notice a dead or cut-off broker in seconds. Its connections go
// through the brokers' Proxies.
func (c *Cluster) Client(ctx context.Context, id string, extra ...client.Opt) (*client.Client, error) {
	opts := append([]client.Opt{client.ClientID(id)}, c.ClientOptions()...)
	return client.New(ctx, append(opts, extra...)...)
}

// AdminClient is Client logged in as the operator on a secure cluster
// (Options.Secure): for setup, faults and checks, not the workload.
func (c *Cluster) AdminClient(ctx context.Context, id string, extra ...client.Opt) (*client.Client, error) {
	if c.secure != nil {
		extra = append(c.secure.admin(), extra...)
	}
	return c.Client(ctx, id, extra...)
}

// ClientOptions are the options Client connects with, but for the client
// id: the seeds, ClientOpts, the secure cluster's TLS and login, and a
// dialer through the brokers' Proxies. For code that makes its own
// clients (bench's group workload).
func (c *Cluster) ClientOptions() []client.Opt {
	var d net.Dialer
	opts := append([]client.Opt{client.SeedBrokers(c.Seeds()...)}, c.clientOpts()...)
	return append(opts, client.Dialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
		for _, b := range c.Brokers {
			if b.Addr == addr && b.Proxy != nil {
				addr = b.Proxy.Addr()
				break
			}
		}
		return d.DialContext(ctx, network, addr)
	}))
}

// ClientVia connects a client whose every connection goes to broker id
// (through its Proxy, if it has one), whatever address metadata names: it sees the cluster as broker id does
// and sends every request, produce included, to it.
func (c *Cluster) ClientVia(ctx context.Context, id int, clientID string, extra ...client.Opt) (*client.Client, error) {
	addr := c.Broker(id).Addr
	if p := c.Broker(id).Proxy; p != nil {
		addr = p.Addr()
	}
	var d net.Dialer
	opts := append([]client.Opt{client.SeedBrokers(addr), client.ClientID(clientID)}, c.clientOpts()...)
	opts = append(opts, client.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}))
	return client.New(ctx, append(opts, extra...)...)
}

// clientOpts are ClientOpts and, on a secure cluster, the workload's TLS
// and login.
func (c *Cluster) clientOpts() []client.Opt {
	if c.secure == nil {
		return ClientOpts()
	}
	return append(ClientOpts(), c.secure.login()...)
}

// ClientOpts are the timeouts every client of the suite uses: a request to
// a dead or cut-off broker fails within seconds, and the producer retries
// for a bounded time.
func ClientOpts() []client.Opt {
	return []client.Opt{
		client.DialTimeout(2 * time.Second),
		client.RequestTimeout(5 * time.Second),
		client.ProduceTimeout(5 * time.Second),
		client.DeliveryTimeout(30 * time.Second),
		client.RetryBackoff(20*time.Millisecond, 500*time.Millisecond),
		client.MetadataMaxAge(5 * time.Second),
	}
}

// WaitHealthy waits until every broker of the cluster is registered and
// alive and a controller leader is known.
func (c *Cluster) WaitHealthy(ctx context.Context, d time.Duration) error {
	var cl *client.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	return Poll(ctx, d, "every broker alive", func(ctx context.Context) error {
		if cl == nil {
			// Bootstrap fails until some broker answers.
			var err error
			if cl, err = c.AdminClient(ctx, "chaos-health"); err != nil {
				return err
			}
		}
		cd, err := cl.DescribeCluster(ctx)
		if err != nil {
			return err
		}
		alive := 0
		for _, b := range cd.Brokers {
			if b.State == "alive" {
				alive++
			}
		}
		if alive < len(c.Brokers) || cd.ControllerID < 0 {
			return fmt.Errorf("%d of %d brokers alive, controller %d", alive, len(c.Brokers), cd.ControllerID)
		}
		return nil
	})
}

// SlowPeers slows broker id's links to and from every other broker on
// PeerPorts with link (SlowHostLinks) until HealPeers.
func (c *Cluster) SlowPeers(ctx context.Context, id int, link faultproxy.Link) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slow != nil {
		return fmt.Errorf("chaos: the links of broker %d are slowed already", c.slow.id)
	}
	s, err := SlowHostLinks(ctx, c.Hosts, id, PeerPorts, link)
	if err != nil {
		return err
	}
	c.slow = s
	return nil
}

// HealPeers undoes SlowPeers, if in force; after an error it can be
// called again.
func (c *Cluster) HealPeers(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slow == nil {
		return nil
	}
	if err := c.slow.Heal(ctx); err != nil {
		return err
	}
	c.slow = nil
	return nil
}

// Close kills every broker (SIGCONT first, for paused ones), waits for
// them to exit, and closes the proxies. Idempotent; the hosts (and the
// rules in them) are the caller's.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		for _, b := range c.Brokers {
			_ = b.Kill()
			if b.Proxy != nil {
				_ = b.Proxy.Close()
			}
		}
		c.mu.Lock()
		if c.slow != nil {
			_ = c.slow.close()
			c.slow = nil
		}
		if c.flood != nil {
			c.flood.Close()
			c.flood = nil
		}
		c.full = ""
		c.mu.Unlock()
		keep := c.opts.KeepData != nil && c.opts.KeepData()
		for _, b := range c.Brokers {
			if b.FSDir == "" {
				continue
			}
			if keep {
				// Beside the tmpfs, not in it: brokerN/data.kept.
				_ = exec.Command("cp", "-a", b.DataDir, filepath.Join(filepath.Dir(b.FSDir), "data.kept")).Run()
			}
			_ = Unmount(b.FSDir)
		}
	})
}

// FillDisk fills broker id's tmpfs (Options.DataFSBytes) with a file
// beside its data dir until not a byte is left, until UnfillDisk.
func (c *Cluster) FillDisk(id int) (Filled, error) {
	b := c.Broker(id)
	if b.FSDir == "" {
		return Filled{}, errors.New("chaos: disk-full needs the data dirs on tmpfs (Options.DataFSBytes)")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full != "" {
		return Filled{}, fmt.Errorf("chaos: %s fills a disk already", c.full)
	}
	path := filepath.Join(b.FSDir, fillerName)
	// Set before the fill: UnfillDisk removes a half-written file too.
	c.full = path
	return Fill(path, c.opts.DataFSBytes, 30*time.Second)
}

// UnfillDisk removes FillDisk's file, if any; after an error it can be
// called again.
func (c *Cluster) UnfillDisk() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full == "" {
		return nil
	}
	if err := os.Remove(c.full); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("chaos: free the disk: %w", err)
	}
	c.full = ""
	return nil
}

// FloodConns opens FloodConns idle connections from the root namespace
// (the clients' host) straight to broker id's client port, not through
// its Proxy, until UnfloodConns. It returns the flood for its counts.
func (c *Cluster) FloodConns(ctx context.Context, id int) (*Flood, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flood != nil {
		return nil, errors.New("chaos: a connection flood is in force already")
	}
	c.flood = OpenFlood(ctx, FloodDialer(), c.Broker(id).Addr, FloodConns, floodParallel, floodOpenTime)
	return c.flood, nil
}

// UnfloodConns closes FloodConns' connections, if any, and returns how
// many the broker had closed itself.
func (c *Cluster) UnfloodConns() (peerClosed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flood == nil {
		return 0
	}
	n := c.flood.Close()
	c.flood = nil
	return n
}

// Start starts the broker process in its host. It fails if it runs.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return fmt.Errorf("chaos: broker %d is running (pid %d)", b.ID, b.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(b.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: broker %d: %w", b.ID, err)
	}
	b.starts++
	fmt.Fprintf(logf, "=== chaos: start %d of broker %d at %s: %s %s\n", b.starts, b.ID,
		time.Now().UTC().Format(time.RFC3339Nano), b.bin, strings.Join(b.args, " "))
	// Not tied to a context: the broker lives until Kill, whatever the
	// caller's context; `ip netns exec` execs it, so the pid is the
	// broker's own.
	cmd := b.command()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("chaos: start broker %d: %w", b.ID, err)
	}
	done := make(chan struct{})
	b.cmd, b.done, b.paused = cmd, done, false
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	return nil
}

// Running reports whether the process is alive (paused counts).
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd != nil
}

// Paused reports whether the process is stopped by SIGSTOP.
func (b *Broker) Paused() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.paused
}

// Kill sends SIGKILL and waits for the process to exit. Killing a broker
// that is not running does nothing.
func (b *Broker) Kill() error {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd, b.done, b.paused = nil, nil, false
	b.mu.Unlock()
	if cmd == nil {
		return nil
	}
	// A stopped process dies of SIGKILL too; SIGCONT first anyway, so
	// nothing is left stopped if the kill is refused.
	_ = cmd.Process.Signal(syscall.SIGCONT)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("chaos: kill broker %d: %w", b.ID, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("chaos: broker %d (pid %d) did not exit 10 s after SIGKILL", b.ID, cmd.Process.Pid)
	}
}

// Pause stops the process with SIGSTOP: a hung broker, sockets open.
func (b *Broker) Pause() error { return b.signal(syscall.SIGSTOP, true) }

// Resume continues a paused process with SIGCONT.
func (b *Broker) Resume() error { return b.signal(syscall.SIGCONT, false) }

func (b *Broker) signal(sig syscall.Signal, paused bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return fmt.Errorf("chaos: signal %v: broker %d is not running", sig, b.ID)
	}
	if err := b.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("chaos: signal %v to broker %d: %w", sig, b.ID, err)
	}
	b.paused = paused
	return nil
}

// Exited reports whether the process exited by itself (not by Kill) and
// so is no longer running: a crash the suite did not cause.
func (b *Broker) Exited() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done == nil {
		return false
	}
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// CommandLine is the broker's command line, as run in its host.
func (b *Broker) CommandLine() string {
	if b.hosts == nil { // a local cluster's (StartLocalCluster)
		return b.bin + " " + strings.Join(b.args, " ")
	}
	return fmt.Sprintf("ip netns exec sluice-h%d %s %s", b.ID, b.bin, strings.Join(b.args, " "))
}

// command is the broker's process: in its host, or on this one for a
// local cluster.
func (b *Broker) command() *exec.Cmd {
	if b.hosts == nil {
		return exec.Command(b.bin, b.args...)
	}
	return b.hosts.Command(context.Background(), b.ID, b.bin, b.args...)
}

// Poll calls cond until it returns nil, each call with a 3 s context, and
// fails with what and cond's last error after d or when ctx ends.
func Poll(ctx context.Context, d time.Duration, what string, cond func(ctx context.Context) error) error {
	deadline := time.Now().Add(d)
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := cond(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("chaos: %s: not within %v: %w", what, d, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
