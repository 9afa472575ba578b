// Package cost measures what a fixed amount of work costs the process:
// CPU time (user + system, getrusage) and heap allocations per record,
// and compares two ways of doing the same work in interleaved pairs.
//
// It exists because wall-clock throughput on a shared machine moves 2-5x
// with other work, which hides differences of a few percent; the CPU
// time a fixed number of records costs moves far less (it still drifts
// with cache and memory-bandwidth contention from the other work, so
// compare only runs made close together: the pairs). A pair runs A and
// B back to back, in an order alternating from pair to pair, and the
// figure is the median of the per-pair ratios B/A with their range.
//
// The CPU time is the whole process's: in a benchmark that runs brokers
// and clients in one process it is both, plus whatever runs in the
// background (Raft heartbeats, gossip), which is the same in A and B.
package cost

import (
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

// CPUTime is the CPU time this process has used, user and system.
func CPUTime() (time.Duration, error) {
	u, err := usage()
	return u.user + u.sys, err
}

// rusage is what getrusage says of this process.
type rusage struct {
	user, sys time.Duration
	switches  int64 // context switches, voluntary and not
}

func usage() (rusage, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return rusage{}, fmt.Errorf("cost: getrusage: %w", err)
	}
	return rusage{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano()), switches: ru.Nvcsw + ru.Nivcsw}, nil
}

// Sample is what one run of n units of work cost, per unit.
type Sample struct {
	N   int64
	CPU float64 // ns of CPU time per unit, user and system
	Sys float64 // ns of it in the kernel
	// Switches is context switches (voluntary: a thread blocked; and
	// not) per unit.
	Switches float64
	Allocs   float64 // heap allocations per unit
	Bytes    float64 // heap bytes allocated per unit
	Wall     float64 // ns of wall-clock time per unit
}

// Measure runs work, which does n units of work, after a collection (so
// that the previous run's garbage is not collected on this run's time)
// and returns its cost per unit.
func Measure(n int64, work func() error) (Sample, error) {
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	u0, err := usage()
	if err != nil {
		return Sample{}, err
	}
	start := time.Now()
	if err := work(); err != nil {
		return Sample{}, err
	}
	wall := time.Since(start)
	u1, err := usage()
	if err != nil {
		return Sample{}, err
	}
	runtime.ReadMemStats(&m1)
	f := float64(n)
	return Sample{N: n, CPU: float64(u1.user+u1.sys-u0.user-u0.sys) / f, Sys: float64(u1.sys-u0.sys) / f,
		Switches: float64(u1.switches-u0.switches) / f, Allocs: float64(m1.Mallocs-m0.Mallocs) / f,
		Bytes: float64(m1.TotalAlloc-m0.TotalAlloc) / f, Wall: float64(wall) / f}, nil
}

// Pairs is the outcome of Compare: the samples of A and of B, pair by pair.
type Pairs struct {
	A, B []Sample
}

// Compare runs a and b pairs times each, interleaved: A then B in even
// pairs, B then A in odd ones, so that a drift in the machine's load
// weighs on both alike. Before the pairs each runs once as a warm-up,
// not counted (the first runs of a process pay for growing its heap and
// buffers). Each function gets the pair's index, -1 for the warm-up (for
// a fresh topic name, say), and returns its sample.
func Compare(pairs int, a, b func(pair int) (Sample, error)) (Pairs, error) {
	var p Pairs
	for _, f := range []func(int) (Sample, error){a, b} {
		if _, err := f(-1); err != nil {
			return p, err
		}
	}
	for i := range pairs {
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		s1, err := first(i)
		if err != nil {
			return p, err
		}
		s2, err := second(i)
		if err != nil {
			return p, err
		}
		if i%2 == 1 {
			s1, s2 = s2, s1
		}
		p.A, p.B = append(p.A, s1), append(p.B, s2)
	}
	return p, nil
}

// Ratio summarises the per-pair ratios B/A of one figure: their median
// and range.
func (p Pairs) Ratio(of func(Sample) float64) Summary {
	r := make([]float64, len(p.A))
	for i := range p.A {
		r[i] = of(p.B[i]) / of(p.A[i])
	}
	return Summarise(r)
}

// Summary is the median of some figures and their range.
type Summary struct {
	Median, Min, Max float64
}

// Summarise returns xs's median and range (zero for no figures).
func Summarise(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Summary{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// Of summarises one figure of some samples.
func Of(samples []Sample, of func(Sample) float64) Summary {
	xs := make([]float64, len(samples))
	for i, s := range samples {
		xs[i] = of(s)
	}
	return Summarise(xs)
}

// String is the sample on one line.
func (s Sample) String() string {
	return fmt.Sprintf("%.0f CPU ns (%.0f system), %.4f context switches, %.4f allocs, %.0f B, %.0f wall ns per op",
		s.CPU, s.Sys, s.Switches, s.Allocs, s.Bytes, s.Wall)
}

// Print writes one line of a run to standard output: a benchmark's log
// keeps only 10 lines, and there are more runs than that.
func Print(tb testing.TB, pair int, mode string, s Sample) {
	fmt.Printf("%s: pair %d (0: warm-up) %s: %v\n", tb.Name(), pair+1, mode, s)
}

// String is "median [min, max]".
func (s Summary) String() string {
	return fmt.Sprintf("%.3f [%.3f, %.3f]", s.Median, s.Min, s.Max)
}

// Report reports the medians of p's CPU time and allocations per unit
// for each mode (a and b name them) and the median of the per-pair CPU
// ratios b/a as benchmark metrics, and logs the per-pair ratios b/a of
// CPU time, allocations and wall-clock time, median and range.
func (p Pairs) Report(tb testing.TB, a, b string) {
	tb.Helper()
	cpu := func(s Sample) float64 { return s.CPU }
	allocs := func(s Sample) float64 { return s.Allocs }
	wall := func(s Sample) float64 { return s.Wall }
	sys := func(s Sample) float64 { return s.Sys }
	user := func(s Sample) float64 { return s.CPU - s.Sys }
	switches := func(s Sample) float64 { return s.Switches }
	if bb, ok := tb.(*testing.B); ok {
		bb.ReportMetric(Of(p.A, cpu).Median, a+"-cpu-ns/op")
		bb.ReportMetric(Of(p.B, cpu).Median, b+"-cpu-ns/op")
		bb.ReportMetric(Of(p.A, allocs).Median, a+"-allocs/op")
		bb.ReportMetric(Of(p.B, allocs).Median, b+"-allocs/op")
		bb.ReportMetric(p.Ratio(cpu).Median, b+"/"+a+"-cpu")
		bb.ReportMetric(p.Ratio(user).Median, b+"/"+a+"-user-cpu")
	}
	tb.Logf("%s/%s over %d pairs, median [range] of the per-pair ratios: CPU per op %v (user %v, system %v); context switches %v; allocations per op %v; wall-clock per op %v",
		b, a, len(p.A), p.Ratio(cpu), p.Ratio(user), p.Ratio(sys), p.Ratio(switches), p.Ratio(allocs), p.Ratio(wall))
}
