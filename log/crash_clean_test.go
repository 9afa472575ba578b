package log

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/record"
)

// The crash test of compaction (make crash): a child process appends
// keyed records with fsync=always and prints each acknowledged one while
// another goroutine cleans the log over and over; the parent SIGKILLs it
// at a random moment — most often in the middle of a clean — reopens the
// log and checks that it reads whole, that no acknowledged record is lost
// (each key's latest acknowledged record is there, or a later record of
// the key), and that nothing is duplicated (offsets strictly increase,
// each value appears once) or changed (a record at an acknowledged offset
// is the one acknowledged).

const crashCleanChildEnv = "SLUICE_CRASH_CLEAN_CHILD"

func crashCleanConfig() Config {
	return Config{
		SegmentBytes:  8 << 10,
		MaxBatchBytes: 4 << 10,
		Fsync:         FsyncAlways,
		CleanupPolicy: CleanupCompact,
		SegmentAge:    -1,
		// Tombstones go at the second clean of their segment.
		DeleteRetention: time.Nanosecond,
	}
}

// crashCleanKeys is the key space: small, so cleaning removes most records.
const crashCleanKeys = 40

// TestCrashCleanChild is the child side; it only runs under
// TestCrashDuringClean.
func TestCrashCleanChild(t *testing.T) {
	dir := os.Getenv(crashCleanChildEnv)
	if dir == "" {
		t.Skip("the child of TestCrashDuringClean")
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	l, err := Open(dir, crashCleanConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(3)
	}
	var out sync.Mutex
	print := func(line []byte) {
		out.Lock()
		os.Stdout.Write(line) // unbuffered: one write(2) per line
		out.Unlock()
	}
	go func() {
		for {
			res, err := l.Clean(context.Background(), CleanOptions{KeyMapBytes: 1 << 10})
			if err != nil {
				fmt.Fprintln(os.Stderr, "child: clean:", err)
				os.Exit(4)
			}
			if res.Segments > 0 {
				print(fmt.Appendf(nil, "clean %d\n", res.Segments))
			}
		}
	}()
	const appenders = 2
	for g := range appenders {
		go func() {
			rnd := rand.New(rand.NewPCG(seed, uint64(g)))
			bld := record.NewBuilder(record.Codec(rnd.IntN(5)))
			var line []byte
			for n := 0; ; n++ {
				bld.Reset()
				count := 1 + rnd.IntN(3)
				keys := make([]string, count)
				vals := make([][]byte, count)
				for i := range count {
					keys[i] = fmt.Sprintf("k%02d", rnd.IntN(crashCleanKeys))
					vals[i] = fmt.Appendf(nil, "%s-%d-%d-%d", keys[i], seed, g, n*4+i)
					if rnd.IntN(20) == 0 {
						vals[i] = nil // a tombstone
					}
					bld.Append(time.Now().UnixMilli(), []byte(keys[i]), vals[i], nil)
				}
				b, err := bld.Build()
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: build:", err)
					os.Exit(5)
				}
				base, err := l.Append(b)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: append:", err)
					os.Exit(6)
				}
				line = line[:0]
				for i := range count {
					v := string(vals[i])
					if vals[i] == nil {
						v = "-"
					}
					line = fmt.Appendf(line, "ack %d %s %s\n", base+int64(i), keys[i], v)
				}
				print(line)
			}
		}()
	}
	time.Sleep(time.Minute) // bounds an orphaned child
	os.Exit(7)
}

// cleanAck is one acknowledged record; value "-" is a tombstone.
type cleanAck struct{ key, value string }

func TestCrashDuringClean(t *testing.T) {
	if os.Getenv(crashCleanChildEnv) != "" || os.Getenv(crashChildEnv) != "" {
		t.Skip("in a child")
	}
	iters, seed := crashParams(t, 40, 6)
	rnd := rand.New(rand.NewPCG(seed, 2))
	const runsPerDir = 10
	var (
		dir          string
		acked        map[int64]cleanAck
		totalAcked   int
		totalCleans  int
		swapsResumed int
	)
	// Under load a child may be killed before its cleaner rewrote
	// anything; more kills (up to 4x) until one did.
	it := 0
	for ; it < iters || (totalCleans == 0 && it < 4*iters); it++ {
		if it%runsPerDir == 0 {
			dir = filepath.Join(t.TempDir(), "log")
			acked = make(map[int64]cleanAck)
		}
		n, cleans := runCrashCleanChild(t, dir, seed+uint64(it), time.Duration(50+rnd.IntN(400))*time.Millisecond, acked)
		totalAcked += n
		totalCleans += cleans
		if _, err := os.Stat(filepath.Join(dir, swapDir)); err == nil {
			swapsResumed++
		}
		l, err := Open(dir, crashCleanConfig())
		if err != nil {
			t.Fatalf("iteration %d: reopen after SIGKILL: %v", it, err)
		}
		checkCrashClean(t, it, l, acked)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			t.Fatalf("iteration %d failed (seed %d)", it, seed)
		}
	}
	t.Logf("%d kills, %d acknowledged records, %d cleans that rewrote segments, %d kills after a swap's commit point", it, totalAcked, totalCleans, swapsResumed)
	if totalCleans == 0 {
		t.Fatal("no clean rewrote a segment: the test tested nothing")
	}
}

// runCrashCleanChild runs the child, SIGKILLs it after delay, adds the
// records it acknowledged to acked and returns how many, and how many
// cleans it reported.
func runCrashCleanChild(t *testing.T, dir string, seed uint64, delay time.Duration, acked map[int64]cleanAck) (int, int) {
	t.Helper()
	lines := runChild(t, "TestCrashCleanChild", []string{crashCleanChildEnv + "=" + dir, crashSeedEnv + "=" + strconv.FormatUint(seed, 10)}, delay)
	n, cleans := 0, 0
	for _, line := range lines {
		var off int64
		var a cleanAck
		var k int
		if _, err := fmt.Sscanf(string(line), "ack %d %s %s", &off, &a.key, &a.value); err == nil {
			acked[off] = a
			n++
		} else if _, err := fmt.Sscanf(string(line), "clean %d", &k); err == nil {
			cleans++
		}
	}
	return n, cleans
}

// checkCrashClean checks a reopened compacted log against what was
// acknowledged.
func checkCrashClean(t *testing.T, it int, l *Log, acked map[int64]cleanAck) {
	t.Helper()
	recs, _ := readRecords(t, l) // whole, valid, chained batches
	latest := map[string]int64{} // key → offset of its latest record in the log
	seen := map[string]int64{}   // value → offset
	prev := int64(-1)
	for _, r := range recs {
		if r.offset <= prev {
			t.Errorf("iteration %d: record at %d after one at %d", it, r.offset, prev)
		}
		prev = r.offset
		v := string(r.value)
		if r.value == nil {
			v = "-"
		}
		if a, ok := acked[r.offset]; ok && (a.key != string(r.key) || a.value != v) {
			t.Errorf("iteration %d: offset %d holds %s=%s, acknowledged %s=%s", it, r.offset, r.key, v, a.key, a.value)
		}
		if v != "-" {
			if o, dup := seen[v]; dup {
				t.Errorf("iteration %d: value %s at %d and %d", it, v, o, r.offset)
			}
			seen[v] = r.offset
		}
		latest[string(r.key)] = r.offset
	}
	ackedLatest := map[string]int64{}
	for off, a := range acked {
		if cur, ok := ackedLatest[a.key]; !ok || off > cur {
			ackedLatest[a.key] = off
		}
	}
	for k, off := range ackedLatest {
		got, ok := latest[k]
		if acked[off].value == "-" && !ok {
			continue // a tombstone removed after delete.retention.ms, with everything before it
		}
		if !ok || got < off {
			t.Errorf("iteration %d: key %s: latest record at %d (present %v), acknowledged one at %d", it, k, got, ok, off)
		}
	}
}
