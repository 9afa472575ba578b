package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// localVoters is how many brokers of a local cluster are Raft voters;
// the others join as non-voters, as scripts/cluster.sh starts them.
const localVoters = 3

// StartLocalCluster starts n brokers as plain processes on 127.0.0.1, no
// network namespaces (the elastic checks need no network faults, and no
// root): the first three are Raft voters, the others join through broker
// 1 as non-voters. Each broker has ports of its own, free when chosen;
// clients connect straight to them (no Proxy). AddBroker grows the
// cluster. The caller must Close it on every path, an error included.
func StartLocalCluster(ctx context.Context, bin, dir string, n int, extra []string) (*Cluster, error) {
	c := &Cluster{Bin: bin, Dir: dir, opts: Options{Extra: extra}}
	secret := make([]byte, 32)
	rand.Read(secret)
	if err := os.WriteFile(c.secretFile(), []byte(hex.EncodeToString(secret)), 0o600); err != nil {
		return c, fmt.Errorf("chaos: %w", err)
	}
	for range n {
		if _, err := c.addLocal(); err != nil {
			return c, err
		}
	}
	var voters []string
	for _, b := range c.Brokers[:min(n, localVoters)] {
		voters = append(voters, fmt.Sprintf("%d@%s", b.ID, b.raftAddr))
	}
	for _, b := range c.Brokers {
		if b.ID <= localVoters {
			b.args = append(b.args, "--voters", strings.Join(voters, ","))
		} else {
			b.args = append(b.args, "--join", c.Brokers[0].Addr)
		}
		b.args = append(b.args, extra...)
	}
	for _, b := range c.Brokers {
		if err := b.Start(); err != nil {
			return c, err
		}
	}
	return c, c.WaitHealthy(ctx, time.Minute)
}

// AddBroker starts one more broker in a local cluster (StartLocalCluster),
// a non-voter joining through broker 1, and waits until every broker is
// alive.
func (c *Cluster) AddBroker(ctx context.Context) (*Broker, error) {
	if c.Hosts != nil {
		return nil, errors.New("chaos: AddBroker is for local clusters (StartLocalCluster)")
	}
	b, err := c.addLocal()
	if err != nil {
		return nil, err
	}
	b.args = append(b.args, "--join", c.Brokers[0].Addr)
	b.args = append(b.args, c.opts.Extra...)
	if err := b.Start(); err != nil {
		return b, err
	}
	return b, c.WaitHealthy(ctx, time.Minute)
}

func (c *Cluster) secretFile() string { return filepath.Join(c.Dir, "cluster-secret") }

// addLocal appends broker len(Brokers)+1 to a local cluster, with free
// ports and every other broker's gossip address as seeds; it starts
// nothing, and its command line lacks --voters or --join.
func (c *Cluster) addLocal() (*Broker, error) {
	id := len(c.Brokers) + 1
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	bdir := filepath.Join(c.Dir, "broker"+strconv.Itoa(id))
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	b := &Broker{ID: id, Addr: "127.0.0.1:" + strconv.Itoa(ports[0]),
		DataDir: filepath.Join(bdir, "data"), LogPath: filepath.Join(bdir, "broker.log"), bin: c.Bin,
		raftAddr: "127.0.0.1:" + strconv.Itoa(ports[1]), gossipAddr: "127.0.0.1:" + strconv.Itoa(ports[2])}
	var seeds []string
	for _, o := range c.Brokers {
		seeds = append(seeds, o.gossipAddr)
	}
	b.args = []string{"broker",
		"--broker-id", strconv.Itoa(id),
		"--listen", b.Addr,
		"--raft-addr", b.raftAddr,
		"--gossip-addr", b.gossipAddr,
		"--data-dir", b.DataDir,
		"--http-addr", "off",
		"--log-format", "json",
		"--cluster-secret-file", c.secretFile(),
	}
	if len(seeds) > 0 {
		b.args = append(b.args, "--gossip-seeds", strings.Join(seeds, ","))
	}
	c.Brokers = append(c.Brokers, b)
	return b, nil
}

// freePorts returns n distinct ports of 127.0.0.1 free for TCP and UDP
// (gossip uses both) when asked, none handed out before by this process:
// each is held open until all n are found, since the kernel may hand a
// port just closed out again (a broker once got one port for its client
// listener and its gossip, and could not start).
func freePorts(n int) ([]int, error) {
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	var ports []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 100 {
			return nil, errors.New("chaos: no free ports on 127.0.0.1")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("chaos: free port: %w", err)
		}
		held = append(held, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		if handedOut.ports[port] {
			continue
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			continue
		}
		held = append(held, pc)
		ports = append(ports, port)
	}
	for _, p := range ports {
		handedOut.ports[p] = true
	}
	return ports, nil
}

// handedOut is every port freePorts gave, so no two brokers of one test
// process get the same one.
var handedOut = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Stop sends SIGTERM (a controlled shutdown: leaderships move first) and
// waits up to timeout for the process to exit; past it, it kills it and
// fails.
func (b *Broker) Stop(timeout time.Duration) error {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("chaos: stop broker %d: not running", b.ID)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("chaos: stop broker %d: %w", b.ID, err)
	}
	select {
	case <-done:
		b.mu.Lock()
		b.cmd, b.done, b.paused = nil, nil, false
		b.mu.Unlock()
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("chaos: broker %d exited with status %d after SIGTERM: see %s", b.ID, code, b.LogPath)
		}
		return nil
	case <-time.After(timeout):
		_ = b.Kill()
		return fmt.Errorf("chaos: broker %d did not exit %v after SIGTERM; killed", b.ID, timeout)
	}
}
