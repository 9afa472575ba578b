package replica

import (
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/record"
)

// nullLog is a LeaderLog that only counts offsets: with it an append costs
// the producer state alone, which is where contention on a shared lock
// would show.
type nullLog struct{ next atomic.Int64 }

func (l *nullLog) AppendNoWait(b record.Batch) (log.Appended, error) {
	next := l.next.Add(int64(b.LastOffsetDelta()) + 1)
	return log.Appended{Base: next - int64(b.LastOffsetDelta()) - 1, Next: next}, nil
}

// BenchmarkAppendLeaderPartitions appends 10-record idempotent batches
// to 16 partitions in parallel (at least 16 goroutines, each its own
// producer id, spread over the partitions), the partitions sharing one ProducerLimit as a broker's
// do ("shared") or each with its own ("own": no lock common to two
// partitions). The ratio of the two is what the broker-wide limit's lock
// costs across partitions. "null" logs only count offsets, so the
// producer state is the whole op; "file" logs write to disk
// (fsync=interval) as the broker does.
func BenchmarkAppendLeaderPartitions(b *testing.B) {
	const parts = 16
	for _, logKind := range []string{"null", "file"} {
		for _, limit := range []string{"shared", "own"} {
			b.Run(logKind+"/"+limit, func(b *testing.B) {
				logs := make([]LeaderLog, parts)
				states := make([]*Producers, parts)
				shared := NewProducerLimit(0, nil, nil)
				for i := range parts {
					cfg := ProducersConfig{}
					if limit == "shared" {
						cfg.Limit = shared
					}
					if logKind == "null" {
						logs[i] = &nullLog{}
					} else {
						l, err := log.Open(filepath.Join(b.TempDir(), "p"), log.Config{SegmentBytes: 1 << 30})
						if err != nil {
							b.Fatal(err)
						}
						b.Cleanup(func() { l.Close() })
						logs[i] = l
						cfg.Dir = l.Dir()
					}
					states[i] = NewProducers(cfg)
				}
				var next atomic.Int64
				// At least one goroutine per partition.
				b.SetParallelism((parts + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					g := next.Add(1) - 1
					p := int(g % parts)
					batch := pbatch(b, 1000+g, 0, 0, 10, testTS)
					for seq := int32(0); pb.Next(); seq += 10 {
						setSequence(batch, seq)
						if _, err := states[p].AppendLeader(logs[p], batch); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkRollSnapshot is what a segment roll costs the append that
// rolled, for a partition holding 100 producers' state, on the test's
// file system: "inline" writes the snapshot there (Snapshot: temp file,
// fsync, rename, directory fsync), as rolls did before; "background" is
// Rolled, which encodes it and leaves the write to the background writer.
//
//	go test ./replica -run '^$' -bench BenchmarkRollSnapshot -count 5
func BenchmarkRollSnapshot(b *testing.B) {
	for _, mode := range []string{"inline", "background"} {
		b.Run(mode, func(b *testing.B) {
			l, ps := benchPartition(b)
			for id := range int64(100) {
				if _, err := ps.AppendLeader(l, pbatch(b, id, 0, 0, 2, testTS)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				if mode == "inline" {
					if err := ps.Snapshot(l); err != nil {
						b.Fatal(err)
					}
				} else {
					ps.Rolled(l)
				}
			}
			b.StopTimer()
		})
	}
}

// benchPartition opens a log of one big segment in a new directory and
// its producer state.
func benchPartition(b *testing.B) (*log.Log, *Producers) {
	l, err := log.Open(filepath.Join(b.TempDir(), "p"), log.Config{SegmentBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	ps := NewProducers(ProducersConfig{Dir: l.Dir()})
	b.Cleanup(ps.Wait)
	return l, ps
}
