package segment

import (
	"bytes"
	"math"
	"os"
	"testing"
)

// FuzzRecover feeds arbitrary bytes to Open and Recover as a log file: they
// must never panic, must keep exactly a prefix of whole valid batches, and
// must leave a segment that reopens cleanly at the same offset.
func FuzzRecover(f *testing.F) {
	var valid []byte
	next := int64(0)
	for _, sp := range specsN(4) {
		b := makeBatch(next, spec{count: sp.count, epoch: sp.epoch, maxTS: sp.maxTS, payload: sp.payload % 200})
		valid = append(valid, b...)
		next = b.NextOffset()
	}
	f.Add([]byte{}, int32(0))
	f.Add(valid, int32(0))
	f.Add(valid, int32(2))
	f.Add(append(bytes.Clone(valid), make([]byte, 100)...), int32(0))
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 1
	f.Add(flipped, int32(-1))
	f.Add(valid[:len(valid)-7], int32(0))
	f.Fuzz(fuzzRecover)
}

var fuzzConfig = Config{MaxLogBytes: 1 << 16, IndexIntervalBytes: 64, MaxIndexBytes: 240}

func fuzzRecover(t *testing.T, data []byte, minEpoch int32) {
	cfg := fuzzConfig
	dir := t.TempDir()
	if err := os.WriteFile(LogPath(dir, 0), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Recover(minEpoch)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	if res.ValidBytes+res.TruncatedBytes != int64(len(data)) || (res.TruncatedBytes == 0) != (res.Reason == nil) {
		s.Close()
		t.Fatalf("Recover = %+v for %d bytes", res, len(data))
	}
	v, err := s.Read(0, math.MaxInt64, math.MaxInt32)
	if err != nil || !bytes.Equal(v.Bytes(), data[:res.ValidBytes]) {
		v.Release()
		s.Close()
		t.Fatalf("Read after Recover: %d bytes, %v; want the %d valid", v.Len(), err, res.ValidBytes)
	}
	v.Release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.NextOffset() != res.NextOffset || s.tailErr != nil {
		t.Fatalf("reopened at %d (%v), recovered to %d", s.NextOffset(), s.tailErr, res.NextOffset)
	}
}
