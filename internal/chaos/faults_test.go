package chaos

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Issue 13's faults are in AllKinds with holds, and a schedule of them
// alone draws each one.
func TestScheduleNewKinds(t *testing.T) {
	kinds := []Kind{KillAll, DiskFull, GossipCut, ConnFlood}
	for _, k := range kinds {
		if !slices.Contains(AllKinds, k) {
			t.Errorf("%s is not in AllKinds", k)
		}
	}
	for _, k := range append(slices.Clone(AllKinds), GroupKinds...) {
		if h, ok := holds[k]; !ok || h[0] <= 0 || h[1] < h[0] {
			t.Errorf("%s: holds %v, want 0 < min <= max", k, h)
		}
	}
	seen := map[Kind]int{}
	for _, s := range Schedule(1, kinds, 3, 3*time.Minute) {
		seen[s.Kind]++
	}
	for _, k := range kinds {
		if seen[k] == 0 {
			t.Errorf("3 minutes of %v never drew %s: %v", kinds, k, seen)
		}
	}
	// Rounds: every kind once before any twice, whatever the seed.
	for seed := uint64(1); seed <= 20; seed++ {
		s := Schedule(seed, AllKinds, 3, time.Hour)
		for r := 0; r+len(AllKinds) <= len(s); r += len(AllKinds) {
			round := map[Kind]bool{}
			for _, st := range s[r : r+len(AllKinds)] {
				round[st.Kind] = true
			}
			if len(round) != len(AllKinds) {
				t.Fatalf("seed %d: steps %d-%d draw %d of %d kinds", seed, r, r+len(AllKinds)-1, len(round), len(AllKinds))
			}
		}
	}
	// Gossip's failure detection takes seconds: a shorter cut says
	// nothing about false alarms.
	if holds[GossipCut][0] < 5*time.Second {
		t.Errorf("gossip-cut holds from %v, want at least 5s", holds[GossipCut][0])
	}
}

// Fill stops at its byte limit on a roomy file system, reporting it did
// not fill it.
func TestFillLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), fillerName)
	f, err := Fill(path, 3<<20+5, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Bytes != 3<<20+5 || fi.Size() != f.Bytes || f.Full {
		t.Errorf("filled %+v, file %d bytes; want 3 MiB + 5 bytes, not full", f, fi.Size())
	}
	if _, err := Fill(path, 1, time.Second); err == nil {
		t.Error("a second fill of the same file succeeded, want an error")
	}
}

// On a real 1 MiB tmpfs (root only) Fill leaves not a byte: another
// file's write fails with ENOSPC; removing the filler gives the space
// back; Unmount leaves no mount.
func TestFillTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: root only")
	}
	dir := filepath.Join(t.TempDir(), "fs")
	if err := MountTmpfs(dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = Unmount(dir)
		}
	})
	// A file already there with a partial last page: its page has room
	// the filler cannot take, as the broker's active segment does.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, fillerName)
	f, err := Fill(filler, 2<<20, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %+v", f)
	if !f.Full || f.Bytes < 1<<20-8192 || f.Bytes > 1<<20 {
		t.Errorf("filled %+v, want full after about 1 MiB", f)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bavail != 0 {
		t.Errorf("%d blocks free after the fill, want 0", st.Bavail)
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), make([]byte, 4096), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("a new file's write on the full tmpfs: %v, want ENOSPC", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), make([]byte, 64<<10), 0o644); err != nil {
		t.Errorf("write after the filler went: %v", err)
	}
	if err := Unmount(dir); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file of the tmpfs after Unmount: %v, want it gone with the mount", err)
	}
}

// OpenFlood opens n connections and no more, holds them idle, counts those
// the server closed, and closes the rest.
func TestOpenFlood(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		accepted []net.Conn
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			// The server closes every third, as a broker past its limit.
			if len(accepted)%3 == 0 {
				c.Close()
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range accepted {
			c.Close()
		}
	})
	const n = 90
	f := OpenFlood(t.Context(), FloodDialer(), ln.Addr().String(), n, 8, 10*time.Second)
	if f.Opened() != n || f.Failed != 0 {
		t.Fatalf("opened %d, failed %d (%v); want %d, 0", f.Opened(), f.Failed, f.FirstErr, n)
	}
	var got int
	deadline := time.Now().Add(5 * time.Second)
	for got < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		got = len(accepted)
		mu.Unlock()
	}
	if got != n {
		t.Fatalf("server accepted %d, want %d", got, n)
	}
	if closed := f.Close(); closed != n/3 {
		t.Errorf("Close counted %d closed by the server, want %d", closed, n/3)
	}
	if f.Opened() != 0 || f.Close() != 0 {
		t.Error("Close is not idempotent")
	}
	// Every connection the server kept open sees the flood's end.
	mu.Lock()
	defer mu.Unlock()
	for i, c := range accepted {
		if (i+1)%3 == 0 {
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("server conn %d after Close: %v, want EOF", i, err)
		}
	}
}

// OpenFlood is bounded in time: dials that hang are cancelled at d.
func TestOpenFloodBounded(t *testing.T) {
	var dials int
	var mu sync.Mutex
	hang := func(ctx context.Context, _, _ string) (net.Conn, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	start := time.Now()
	f := OpenFlood(t.Context(), hang, "10.77.0.11:7092", 1000, 4, 200*time.Millisecond)
	took := time.Since(start)
	if took > 2*time.Second {
		t.Errorf("OpenFlood took %v with d = 200ms", took)
	}
	if f.Opened() != 0 || f.Failed != dials || dials != 4 || !errors.Is(f.FirstErr, context.DeadlineExceeded) {
		t.Errorf("opened %d, failed %d of %d dials (%v); want 4 dials, all failed by the deadline", f.Opened(), f.Failed, dials, f.FirstErr)
	}
}

func TestCheckGossipCut(t *testing.T) {
	cut := func(changes int) Event {
		return Event{Step: Step{Kind: GossipCut}, Target: "broker1", LeaderChanges: changes}
	}
	kill := Event{Step: Step{Kind: KillLeader}, LeaderChanges: 1}
	for _, c := range []struct {
		name   string
		events []Event
		fail   bool
	}{
		{"first cut, no change", []Event{cut(0)}, false},
		{"first cut moved leadership", []Event{cut(2)}, true},
		{"after cuts only", []Event{cut(0), cut(0), cut(1)}, true},
		{"after another fault", []Event{kill, cut(1)}, false},
		{"unknown count", []Event{cut(-1)}, false},
		{"last is not a cut", []Event{cut(0), kill}, false},
	} {
		if err := CheckGossipCut(c.events); (err != nil) != c.fail {
			t.Errorf("%s: CheckGossipCut = %v, want failure %v", c.name, err, c.fail)
		}
	}
}
