package segment

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicemq/sluice/record"
)

// The append and read benchmarks move 64 KiB batches through 64 MiB
// segments in b.TempDir(): a full segment is deleted and a new one created
// with the timer stopped, so the disk never holds more than one segment.
const (
	benchBatchBytes = 64 << 10
	benchSegBytes   = 64 << 20
)

func benchBatch() record.Batch {
	return makeBatch(0, spec{count: 64, epoch: 1, maxTS: 1, payload: benchBatchBytes - record.HeaderSize})
}

// BenchmarkAppendWrite appends through pwrite at the tail (the kept path).
func BenchmarkAppendWrite(b *testing.B) { benchAppend(b, false) }

// BenchmarkAppendMmap appends by copying into a writable mapping of a
// preallocated log file.
func BenchmarkAppendMmap(b *testing.B) { benchAppend(b, true) }

func benchAppend(b *testing.B, mmap bool) {
	dir := b.TempDir()
	cfg := Config{MaxLogBytes: benchSegBytes, mmapAppend: mmap}
	batch := benchBatch()
	s := mustCreate(b, dir, 0, cfg)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if s.Full(len(batch)) {
			b.StopTimer()
			base := s.NextOffset()
			if err := s.Delete(); err != nil {
				b.Fatal(err)
			}
			s.Close()
			s = mustCreate(b, dir, base, cfg)
			b.StartTimer()
		}
		batch.SetBaseOffset(s.NextOffset())
		if err := s.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s.Delete()
	s.Close()
}

// BenchmarkRawWrite is the floor for appends: sequential write(2) of the same
// bytes into a plain file, rotated at the same size.
func BenchmarkRawWrite(b *testing.B) {
	dir := b.TempDir()
	batch := benchBatch()
	var f *os.File
	var written int64
	rotate := func() {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
		var err error
		if f, err = os.Create(filepath.Join(dir, "raw")); err != nil {
			b.Fatal(err)
		}
		written = 0
	}
	rotate()
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if written+int64(len(batch)) > benchSegBytes {
			b.StopTimer()
			rotate()
			b.StartTimer()
		}
		if _, err := f.Write(batch); err != nil {
			b.Fatal(err)
		}
		written += int64(len(batch))
	}
	b.StopTimer()
	f.Close()
}

// benchRead fills one segment with 64 KiB batches, then runs read(s,
// offset, buf) b.N times over their base offsets, cycling.
func benchRead(b *testing.B, read func(s *Segment, offset int64, buf []byte)) {
	s := mustCreate(b, b.TempDir(), 0, Config{MaxLogBytes: benchSegBytes})
	batch := benchBatch()
	var offsets []int64
	for !s.Full(len(batch)) {
		offsets = append(offsets, s.NextOffset())
		batch.SetBaseOffset(s.NextOffset())
		if err := s.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	defer s.Close()
	buf := make([]byte, benchBatchBytes)
	b.SetBytes(benchBatchBytes)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		read(s, offsets[i%len(offsets)], buf)
	}
}

// BenchmarkReadMmap reads one batch at a time through Read (index lookup,
// reference, View from the mapping) and copies it out, as a socket write
// from the View would.
func BenchmarkReadMmap(b *testing.B) {
	benchRead(b, func(s *Segment, offset int64, buf []byte) {
		v, err := s.Read(offset, math.MaxInt64, benchBatchBytes)
		if err != nil || v.Len() != benchBatchBytes {
			b.Fatalf("Read: %d bytes, %v", v.Len(), err)
		}
		copy(buf, v.Bytes())
		v.Release()
	})
}

// BenchmarkReadPread finds the same ranges as Read, then preads them into a
// buffer instead of using the mapping.
func BenchmarkReadPread(b *testing.B) {
	benchRead(b, func(s *Segment, offset int64, buf []byte) {
		m, err := s.acquire()
		if err != nil {
			b.Fatal(err)
		}
		pos, n, err := s.readRange(m.mm, offset, math.MaxInt64, benchBatchBytes)
		m.release()
		if err != nil || n != benchBatchBytes {
			b.Fatalf("readRange: %d bytes, %v", n, err)
		}
		// The os file has ReadAt; the seam does not need it.
		if _, err := s.log.(io.ReaderAt).ReadAt(buf[:n], pos); err != nil {
			b.Fatal(err)
		}
	})
}
