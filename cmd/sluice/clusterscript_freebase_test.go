package main

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cluster.sh free-base N prints a base port whose ports for N brokers
// (base+11 .. base+10*N+5) are free: each of them can be listened on.
func TestClusterScriptFreeBase(t *testing.T) {
	script, err := filepath.Abs("../../scripts/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	out, err := exec.Command(script, "free-base", strconv.Itoa(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("free-base: %v: %s", err, out)
	}
	base, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || base < 20000 || base+10*n+5 > 65535 || base%100 != 0 {
		t.Fatalf("free-base printed %q (%v), want a multiple of 100 from 20000", out, err)
	}
	for p := base + 11; p <= base+10*n+5; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d of base %d: %v", p, base, err)
		}
		ln.Close()
	}
	if out, err := exec.Command(script, "free-base", "x").CombinedOutput(); err == nil || !strings.Contains(string(out), "positive number") {
		t.Fatalf("free-base x: %v, %s; want an error", err, out)
	}
}
