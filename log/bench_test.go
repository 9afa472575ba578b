package log

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sluicemq/sluice/record"
)

const benchBatch = 64 << 10

func benchConfig(p FsyncPolicy) Config {
	return Config{
		SegmentBytes:  256 << 20,
		MaxBatchBytes: benchBatch,
		Fsync:         p,
		SegmentAge:    -1,
		RetentionAge:  -1,
	}
}

// BenchmarkAppend64K compares Append of 64 KiB batches with fsync=interval
// (background flush at the defaults) against plain sequential write(2) of
// the same bytes. Run with a fixed -benchtime=Nx: every op writes 64 KiB.
func BenchmarkAppend64K(b *testing.B) {
	batch := makeBatch(nil, 16, benchBatch, 1, rand.New(rand.NewPCG(1, 1)))
	run := func(b *testing.B, cfg Config) {
		l, err := Open(filepath.Join(b.TempDir(), "log"), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.SetBytes(benchBatch)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := l.Append(batch); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer() // Close's final fsync is not part of Append
	}
	// The default: a background fdatasync every second. A 256 MiB run
	// (-benchtime=4000x, as in BENCHMARKS.md) mostly ends before it fires;
	// longer runs measure the kernel's writeback more than the log.
	b.Run("log-interval", func(b *testing.B) { run(b, benchConfig(FsyncInterval)) })
	// An fdatasync every 64 MiB as well: what the opt-in bytes trigger costs.
	b.Run("log-interval-64MiB", func(b *testing.B) {
		cfg := benchConfig(FsyncInterval)
		cfg.FlushBytes = 64 << 20
		run(b, cfg)
	})
	b.Run("write(2)", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(benchBatch)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := f.Write(batch); err != nil {
				b.Fatal(err)
			}
		}
		// Leave no dirty pages behind for the next run to pay for, as the
		// log's Close does not either.
		b.StopTimer()
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkAppendAlways64K compares Append with fsync=always from 16
// concurrent appenders (group commit) against one sequential writer that
// calls fdatasync every 1 MiB.
func BenchmarkAppendAlways64K(b *testing.B) {
	b.Run("log-always-16", func(b *testing.B) {
		l, err := Open(filepath.Join(b.TempDir(), "log"), benchConfig(FsyncAlways))
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		par := max(1, 16/runtimeProcs())
		batches := make(chan record.Batch, par*runtimeProcs())
		for range cap(batches) {
			batches <- makeBatch(nil, 16, benchBatch, 1, rand.New(rand.NewPCG(1, 2)))
		}
		b.SetBytes(benchBatch)
		b.ReportAllocs()
		b.SetParallelism(par)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			batch := <-batches
			for pb.Next() {
				if _, err := l.Append(batch); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
	})
	b.Run("write-fdatasync-1MiB", func(b *testing.B) {
		batch := makeBatch(nil, 16, benchBatch, 1, rand.New(rand.NewPCG(1, 2)))
		f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(benchBatch)
		b.ReportAllocs()
		b.ResetTimer()
		unsynced := 0
		for range b.N {
			if _, err := f.Write(batch); err != nil {
				b.Fatal(err)
			}
			if unsynced += len(batch); unsynced >= 1<<20 {
				if err := fdatasync(f); err != nil {
					b.Fatal(err)
				}
				unsynced = 0
			}
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkReadSequential reads a 256 MiB log (page cache) from start to
// end in 1 MiB Reads, copying the bytes out as a socket write would.
func BenchmarkReadSequential(b *testing.B) {
	const total = 1 << 30 // the 1 GiB log
	l, err := Open(filepath.Join(b.TempDir(), "log"), benchConfig(FsyncInterval))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := makeBatch(nil, 16, benchBatch, 1, rand.New(rand.NewPCG(1, 3)))
	for range total / benchBatch {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 1<<20+benchBatch)
	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var n int
		for off := l.StartOffset(); off < l.EndOffset(); {
			v, err := l.Read(off, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			bs := v.Bytes()
			n += copy(buf, bs)
			last, _ := record.ParseHeader(bs[lastBatchPos(bs):], 0)
			off = last.NextOffset()
			v.Release()
		}
		if n != total {
			b.Fatalf("read %d bytes, want %d", n, total)
		}
	}
}

// lastBatchPos returns the position of the last batch in whole batches bs.
func lastBatchPos(bs []byte) int {
	pos := 0
	for {
		n := record.Batch(bs[pos:]).Size()
		if pos+n >= len(bs) {
			return pos
		}
		pos += n
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
