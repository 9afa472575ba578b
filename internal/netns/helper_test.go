package netns

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv makes the test binary, run inside a host's namespace, act as the
// echo server or the prober instead of running tests.
const helperEnv = "SLUICE_NETNS_HELPER"

const (
	port         = 7000
	probeTimeout = 500 * time.Millisecond
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

func helperMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "helper: usage: serve ADDR | probe PROTO:ADDR...")
		return 2
	}
	switch args[0] {
	case "serve":
		if err := serve(args[1]); err != nil {
			fmt.Fprintln(os.Stderr, "helper serve:", err)
			return 1
		}
		return 0
	case "probe":
		// One line per target, in order: "ok" or the error.
		res := make([]string, len(args)-1)
		var wg sync.WaitGroup
		for i, target := range args[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				proto, addr, _ := strings.Cut(target, ":")
				res[i] = "ok"
				if err := probe(proto, addr); err != nil {
					res[i] = strings.ReplaceAll(err.Error(), "\n", " ")
				}
			}()
		}
		wg.Wait()
		fmt.Println(strings.Join(res, "\n"))
		return 0
	}
	fmt.Fprintln(os.Stderr, "helper: unknown mode", args[0])
	return 2
}

// serve echoes TCP and UDP on addr until stdin closes, so the helper never
// outlives the test that started it.
func serve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	defer pc.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// probe sends "ping" to addr over proto and wants it echoed within
// probeTimeout.
func probe(proto, addr string) error {
	c, err := net.DialTimeout(proto, addr, probeTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(probeTimeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != "ping" {
		return fmt.Errorf("echo %q, want %q", got, "ping")
	}
	return nil
}

// helperEnviron is the environment of a helper process. Under -race a
// binary sleeps a second at exit to let reports flush; the probes would
// spend most of the test there.
func helperEnviron() []string {
	return append(os.Environ(), helperEnv+"=1", "GORACE=atexit_sleep_ms=0")
}

// server is a helper serving in one host.
type server struct {
	stdin io.WriteCloser
	done  chan error
	out   bytes.Buffer
}

// startServers starts an echo server in every host, stopped at cleanup, and
// waits until the root namespace reaches them all.
func startServers(t *testing.T, h *Hosts) {
	t.Helper()
	for i := 1; i <= h.N; i++ {
		s := &server{done: make(chan error, 1)}
		cmd := h.Command(t.Context(), i, os.Args[0], "serve", fmt.Sprintf("%s:%d", h.Addr(i), port))
		cmd.Env = helperEnviron()
		cmd.Stdout, cmd.Stderr = &s.out, &s.out
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		s.stdin = stdin
		if err := cmd.Start(); err != nil {
			t.Fatalf("start server in host %d: %v", i, err)
		}
		go func() { s.done <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = s.stdin.Close()
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-s.done
			}
		})
	}
	for i := 1; i <= h.N; i++ {
		addr := fmt.Sprintf("%s:%d", h.Addr(i), port)
		deadline := time.Now().Add(10 * time.Second)
		for probe("tcp", addr) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("server in host %d not reachable at %s within 10s", i, addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// reach probes, from host from (0: the root namespace, this process), each
// target "proto:host"; it returns nil or the failure per target.
func reach(t *testing.T, h *Hosts, from int, targets []string) []error {
	t.Helper()
	args := []string{"probe"}
	for _, tg := range targets {
		proto, host, _ := strings.Cut(tg, ":")
		var n int
		if _, err := fmt.Sscan(host, &n); err != nil {
			t.Fatalf("bad target %q", tg)
		}
		args = append(args, fmt.Sprintf("%s:%s:%d", proto, h.Addr(n), port))
	}
	errs := make([]error, len(targets))
	if from == 0 {
		for i, a := range args[1:] {
			proto, addr, _ := strings.Cut(a, ":")
			errs[i] = probe(proto, addr)
		}
		return errs
	}
	cmd := h.Command(t.Context(), from, os.Args[0], args...)
	cmd.Env = helperEnviron()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe from host %d: %v", from, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(targets) {
		t.Fatalf("probe from host %d: %d results for %d targets: %q", from, len(lines), len(targets), out)
	}
	for i, l := range lines {
		if l != "ok" {
			errs[i] = errors.New(l)
		}
	}
	return errs
}
