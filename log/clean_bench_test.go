package log

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/record"
)

// benchCleanLog fills a compacted log with about size bytes of batches of
// 10 records (keys drawn from keys, 100-byte values, codec) in 8 MiB
// segments, synced, and returns it and its dirty bytes.
func benchCleanLog(b *testing.B, size int64, keys int, codec record.Codec) (*Log, int64) {
	b.Helper()
	cfg := Config{SegmentBytes: 8 << 20, CleanupPolicy: CleanupCompact, SegmentAge: -1, MaxBatchBytes: 1 << 20}
	l, err := Open(filepath.Join(b.TempDir(), "log"), cfg)
	if err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	bld := record.NewBuilder(codec)
	val := make([]byte, 100)
	for l.EndOffset() == 0 || l.segs[len(l.segs)-1].Base() == 0 || sizeOf(l) < size {
		bld.Reset()
		for range 10 {
			for i := range val {
				val[i] = byte('a' + rnd.IntN(26))
			}
			bld.Append(1, fmt.Appendf(nil, "key-%08d", rnd.IntN(keys)), val, nil)
		}
		batch, err := bld.Build()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	return l, l.CleanerStatus().DirtyBytes
}

func sizeOf(l *Log) int64 {
	var n int64
	for _, s := range l.segs {
		n += s.Size()
	}
	return n
}

// BenchmarkClean measures the cleaner's throughput in bytes of dirty log
// (MB/s): one op is a Clean of a fresh 64 MiB log, key map included.
// 100,000 keys over about 500,000 records: most records are superseded.
func BenchmarkClean(b *testing.B) {
	for _, codec := range []record.Codec{record.None, record.LZ4} {
		b.Run(codec.String(), func(b *testing.B) {
			var dirty int64
			for range b.N {
				b.StopTimer()
				l, d := benchCleanLog(b, 64<<20, 100_000, codec)
				dirty = d
				b.StartTimer()
				res, err := l.Clean(context.Background(), CleanOptions{})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if res.Segments == 0 {
					b.Fatal("nothing cleaned")
				}
				b.ReportMetric(float64(res.BytesAfter)/float64(res.BytesBefore), "kept-ratio")
				l.Close()
			}
			b.SetBytes(dirty)
		})
	}
}

// BenchmarkAppendWhileCleaning measures appends of 1 KiB batches (MB/s)
// with the cleaner idle and with it cleaning the same log back to back.
func BenchmarkAppendWhileCleaning(b *testing.B) {
	for _, cleaning := range []bool{false, true} {
		b.Run(map[bool]string{false: "idle", true: "cleaning"}[cleaning], func(b *testing.B) {
			l, _ := benchCleanLog(b, 32<<20, 100_000, record.None)
			defer l.Close()
			var cleans atomic.Int64
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			if cleaning {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						// Each pass sees what was appended since: keep it due.
						if _, err := l.Clean(ctx, CleanOptions{}); err == nil {
							cleans.Add(1)
						}
						time.Sleep(time.Millisecond)
					}
				}()
			}
			bld := record.NewBuilder(record.None)
			rnd := rand.New(rand.NewPCG(3, 4))
			val := make([]byte, 90)
			for range 10 {
				bld.Append(1, fmt.Appendf(nil, "key-%08d", rnd.IntN(100_000)), val, nil)
			}
			batch, _ := bld.Build()
			b.SetBytes(int64(len(batch)))
			b.ResetTimer()
			for range b.N {
				if _, err := l.Append(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			b.ReportMetric(float64(cleans.Load()), "cleans")
		})
	}
}
