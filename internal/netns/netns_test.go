package netns

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// expect checks from host from (0: the root namespace) that each target
// ("tcp:2", "udp:3") is reachable or not as want says. A reachable target
// that fails is retried, at most 3 times; an unreachable one that answers
// fails at once, since a dropped link never lets a packet through.
func expect(t *testing.T, h *Hosts, from int, want map[string]bool) {
	t.Helper()
	targets := make([]string, 0, len(want))
	for tg := range want {
		targets = append(targets, tg)
	}
	slices.Sort(targets)
	for attempt := 1; ; attempt++ {
		errs := reach(t, h, from, targets)
		retry := false
		for i, tg := range targets {
			switch {
			case want[tg] && errs[i] != nil:
				if attempt == 3 {
					t.Errorf("host %d -> %s: %v, want reachable", from, tg, errs[i])
				}
				retry = true
			case !want[tg] && errs[i] == nil:
				t.Errorf("host %d -> %s: reachable, want cut", from, tg)
			case !want[tg]:
				t.Logf("host %d -> %s: cut as wanted: %v", from, tg, errs[i])
			}
		}
		if !retry || attempt == 3 || t.Failed() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// both is the TCP and UDP targets of host n, reachable or not.
func both(n string, ok bool, more map[string]bool) map[string]bool {
	if more == nil {
		more = map[string]bool{}
	}
	more["tcp:"+n], more["udp:"+n] = ok, ok
	return more
}

func TestCutHealIsolate(t *testing.T) {
	h := Setup(t, 3)
	ctx := t.Context()
	startServers(t, h)

	t.Log("IPv4 only: no IPv6 address the IPv4 cuts would miss")
	for i := 1; i <= h.N; i++ {
		out, err := h.Command(ctx, i, "ip", "-6", "addr", "show").CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) != 0 {
			t.Errorf("host %d has IPv6 (%v): %s", i, err, out)
		}
	}

	t.Log("all hosts reach each other")
	expect(t, h, 1, both("2", true, both("3", true, nil)))
	expect(t, h, 2, both("1", true, both("3", true, nil)))
	expect(t, h, 3, both("1", true, both("2", true, nil)))

	t.Log("cut 1-2: 1 and 2 lose each other, both keep 3")
	if err := h.Cut(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	expect(t, h, 1, both("2", false, both("3", true, nil)))
	expect(t, h, 2, both("1", false, both("3", true, nil)))
	expect(t, h, 3, both("1", true, both("2", true, nil)))

	t.Log("heal 2-1 (either order)")
	if err := h.Heal(ctx, 2, 1); err != nil {
		t.Fatal(err)
	}
	expect(t, h, 1, both("2", true, nil))
	expect(t, h, 2, both("1", true, nil))

	t.Log("isolate 1: cut from 2 and 3, clients in the root namespace still reach it")
	if err := h.Isolate(ctx, 1); err != nil {
		t.Fatal(err)
	}
	expect(t, h, 1, both("2", false, both("3", false, nil)))
	expect(t, h, 2, both("1", false, both("3", true, nil)))
	expect(t, h, 0, both("1", true, nil))

	t.Log("rejoin 1")
	if err := h.Rejoin(ctx, 1); err != nil {
		t.Fatal(err)
	}
	expect(t, h, 1, both("2", true, both("3", true, nil)))

	t.Log("cutclients 2: the root namespace loses 2, the hosts keep it")
	if err := h.CutClients(ctx, 2); err != nil {
		t.Fatal(err)
	}
	expect(t, h, 0, both("2", false, both("1", true, nil)))
	expect(t, h, 1, both("2", true, nil))

	t.Log("healclients 2")
	if err := h.HealClients(ctx, 2); err != nil {
		t.Fatal(err)
	}
	expect(t, h, 0, both("2", true, nil))

	t.Log("cutport 1: hosts 1 and 2, 1 and 3 lose each other's port, both ways; the root namespace keeps it")
	if err := h.CutPort(ctx, 1, port); err != nil {
		t.Fatal(err)
	}
	expect(t, h, 1, both("2", false, both("3", false, nil)))
	expect(t, h, 2, both("1", false, both("3", true, nil)))
	expect(t, h, 3, both("1", false, nil))
	expect(t, h, 0, both("1", true, nil))
	// A probe's answer is lost whichever side drops, so count the rules:
	// each side drops what comes from the other, or a datagram sent one
	// way (gossip's are) would get through. Host 1: 2 peers × TCP, UDP ×
	// to and from the port; hosts 2 and 3: 4 each.
	for i, want := range map[int]int{1: 8, 2: 4, 3: 4} {
		out, err := h.Command(ctx, i, "iptables", "-S", "INPUT").CombinedOutput()
		if err != nil {
			t.Fatalf("host %d: iptables -S: %v: %s", i, err, out)
		}
		if n := strings.Count(string(out), "sluice-netns:port:1"); n != want {
			t.Errorf("host %d has %d port-cut rules, want %d:\n%s", i, n, want, out)
		}
	}

	t.Log("healport 1")
	if err := h.HealPort(ctx, 1); err != nil {
		t.Fatal(err)
	}
	expect(t, h, 1, both("2", true, both("3", true, nil)))
	expect(t, h, 2, both("1", true, nil))

	t.Log("down leaves nothing behind, even with rules in force")
	if err := h.CutClients(ctx, 3); err != nil {
		t.Fatal(err)
	}

	if err := h.Cut(ctx, 2, 3); err != nil {
		t.Fatal(err)
	}
	if err := h.CutPort(ctx, 2, port); err != nil {
		t.Fatal(err)
	}
	if err := h.Down(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t)
	if err := h.Down(ctx); err != nil {
		t.Fatalf("second down: %v", err)
	}
}

func assertGone(t *testing.T) {
	t.Helper()
	for _, c := range [][]string{{"ip", "netns", "list"}, {"ip", "-o", "link", "show"}, {"iptables", "-S"}} {
		out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "sluice-h") || strings.Contains(l, "sluice-v") ||
				strings.Contains(l, "sluice-br0") || strings.Contains(l, "sluice-netns") {
				t.Errorf("left after down: %s: %s", strings.Join(c, " "), l)
			}
		}
	}
}
