package log

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/record"
)

// The crash test (docs/testing.md, layer 2): a child process appends with
// fsync=always from several goroutines and prints every acknowledged batch;
// the parent SIGKILLs it at a random moment, reopens the log and checks
// that every acknowledged batch is there, byte for byte, and that every
// batch in the log is whole and valid.
const (
	crashChildEnv = "SLUICE_CRASH_CHILD" // the log directory, set for the child
	crashSeedEnv  = "SLUICE_CRASH_SEED"
	crashItersEnv = "SLUICE_CRASH_ITERS"
)

// crashConfig uses small segments and indexes so that rolls (and index-full
// rolls) happen during the test.
func crashConfig() Config {
	return Config{
		SegmentBytes:       256 << 10,
		MaxBatchBytes:      64<<10 + record.HeaderSize,
		IndexIntervalBytes: 4096,
		MaxIndexBytes:      1024,
		Fsync:              FsyncAlways,
		SegmentAge:         -1,
		RetentionAge:       -1,
	}
}

// TestCrashChild is the child side; it only runs under TestCrash.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the child of TestCrash")
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	l, err := Open(dir, crashConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(3)
	}
	var out sync.Mutex
	const appenders = 4
	for g := range appenders {
		go func() {
			rnd := rand.New(rand.NewPCG(seed, uint64(g)))
			buf := make([]byte, 64<<10+record.HeaderSize)
			var line []byte
			for {
				size := record.HeaderSize + rnd.IntN(1<<(6+rnd.IntN(11))) // 61 B .. 64 KiB, mostly small
				b := makeBatch(buf, 1+rnd.IntN(5), size, time.Now().UnixMilli(), rnd)
				base, err := l.Append(b)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: append:", err)
					os.Exit(4)
				}
				line = fmt.Appendf(line[:0], "ack %d %d %08x\n", base, len(b), crc32.Checksum(b, castagnoli))
				out.Lock()
				os.Stdout.Write(line) // unbuffered: one write(2) per line
				out.Unlock()
			}
		}()
	}
	// The parent kills the child long before this; it only bounds an
	// orphaned child.
	time.Sleep(time.Minute)
	os.Exit(5)
}

type crashAck struct {
	size int
	crc  uint32
}

func TestCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	iters, seed := crashParams(t, 100, 10)
	rnd := rand.New(rand.NewPCG(seed, 1))

	const runsPerDir = 10 // a fresh log every so often bounds its size
	var (
		dir        string
		acked      map[int64]crashAck
		totalAcked int
		maxEnd     int64
	)
	for it := range iters {
		if it%runsPerDir == 0 {
			dir = filepath.Join(t.TempDir(), "log")
			acked = make(map[int64]crashAck)
		}
		n := runCrashChild(t, dir, seed+uint64(it), time.Duration(rnd.IntN(250))*time.Millisecond, acked)
		totalAcked += n

		l, err := Open(dir, crashConfig())
		if err != nil {
			t.Fatalf("iteration %d: reopen after SIGKILL: %v", it, err)
		}
		checkCrashLog(t, it, l, acked)
		maxEnd = max(maxEnd, l.EndOffset())
		// Alternate clean and unclean stops, so the child also appends
		// after recovering an unclean log.
		if it%2 == 0 {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			l.crash()
		}
		if t.Failed() {
			t.Fatalf("iteration %d failed (seed %d)", it, seed)
		}
	}
	t.Logf("%d kills, %d acknowledged batches checked, largest log end offset %d", iters, totalAcked, maxEnd)
}

// crashParams reads the iterations (SLUICE_CRASH_ITERS; def, or short
// under -short) and the seed (SLUICE_CRASH_SEED, or the time) and logs
// them.
func crashParams(t *testing.T, def, short int) (int, uint64) {
	t.Helper()
	iters := def
	if s := os.Getenv(crashItersEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s=%q: %v", crashItersEnv, s, err)
		}
		iters = n
	} else if testing.Short() {
		iters = short
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, s, err)
		}
	}
	t.Logf("seed %d (%s=%d to repeat), %d iterations", seed, crashSeedEnv, seed, iters)
	return iters, seed
}

// runChild runs the test named child in a child process with env added,
// SIGKILLs it after delay and returns the lines it printed.
func runChild(t *testing.T, child string, env []string, delay time.Duration) [][]byte {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, bytes.Clone(sc.Bytes()))
		}
	}()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-readDone: // the child died on its own: report it below
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-readDone
	werr := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child exited by itself (%v): %s", werr, stderr.Bytes())
	}
	return lines
}

// runCrashChild runs the child on dir, SIGKILLs it after delay and adds
// the batches it acknowledged to acked. It returns how many it added.
func runCrashChild(t *testing.T, dir string, seed uint64, delay time.Duration, acked map[int64]crashAck) int {
	t.Helper()
	lines := runChild(t, "TestCrashChild", []string{crashChildEnv + "=" + dir, crashSeedEnv + "=" + strconv.FormatUint(seed, 10)}, delay)
	n := 0
	for _, line := range lines {
		var base int64
		var a crashAck
		if _, err := fmt.Sscanf(string(line), "ack %d %d %x", &base, &a.size, &a.crc); err != nil {
			continue // a test-framework line
		}
		if prev, ok := acked[base]; ok && prev != a {
			t.Fatalf("offset %d acknowledged twice with different batches: an acknowledged batch was lost", base)
		}
		acked[base] = a
		n++
	}
	return n
}

// checkCrashLog checks a reopened log: whole valid chained batches only,
// and every acknowledged batch present and identical.
func checkCrashLog(t *testing.T, it int, l *Log, acked map[int64]crashAck) {
	t.Helper()
	got := make(map[int64]crashAck)
	for _, s := range readAll(t, l) {
		got[s.base] = crashAck{size: len(s.bytes), crc: crc32.Checksum(s.bytes, castagnoli)}
	}
	for base, a := range acked {
		g, ok := got[base]
		if !ok {
			t.Errorf("iteration %d: acknowledged batch at %d missing (log end %d)", it, base, l.EndOffset())
			continue
		}
		if g != a {
			t.Errorf("iteration %d: batch at %d is %d bytes crc %08x, acknowledged %d bytes crc %08x", it, base, g.size, g.crc, a.size, a.crc)
		}
	}
}
