package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// spec describes one test batch.
type spec struct {
	count   int32 // records: the batch covers [base, base+count)
	epoch   int32
	maxTS   int64
	payload int // bytes of opaque records block
}

// makeBatch lays out a valid batch by hand: header, an opaque records block
// (the segment never parses records) and the CRC.
func makeBatch(base int64, sp spec) record.Batch {
	b := make([]byte, record.HeaderSize+sp.payload)
	put := binary.BigEndian
	put.PutUint64(b[0:], uint64(base))
	put.PutUint32(b[8:], uint32(len(b)-record.LengthPrefixSize))
	put.PutUint32(b[12:], uint32(sp.epoch))
	b[16] = record.Magic
	put.PutUint32(b[23:], uint32(sp.count-1))
	put.PutUint64(b[27:], uint64(sp.maxTS-1))
	put.PutUint64(b[35:], uint64(sp.maxTS))
	put.PutUint64(b[43:], ^uint64(0))
	put.PutUint16(b[51:], 0xffff)
	put.PutUint32(b[53:], ^uint32(0))
	put.PutUint32(b[57:], uint32(sp.count))
	for i := record.HeaderSize; i < len(b); i++ {
		b[i] = byte(int64(i)*31 + base)
	}
	record.Batch(b).SetCRC()
	return b
}

// model is what a segment should hold: the batches appended, in order.
type model struct {
	base    int64
	batches []record.Batch
	pos     []int64
}

func (m *model) next() int64 {
	if len(m.batches) == 0 {
		return m.base
	}
	return m.batches[len(m.batches)-1].NextOffset()
}

func (m *model) size() int64 {
	if len(m.batches) == 0 {
		return 0
	}
	return m.pos[len(m.pos)-1] + int64(len(m.batches[len(m.batches)-1]))
}

func (m *model) add(b record.Batch) {
	m.pos = append(m.pos, m.size())
	m.batches = append(m.batches, b)
}

// containing returns the index of the batch holding offset, or len.
func (m *model) containing(offset int64) int {
	for i, b := range m.batches {
		if b.LastOffset() >= offset {
			return i
		}
	}
	return len(m.batches)
}

func (m *model) bytes(from, to int) []byte {
	var out []byte
	for _, b := range m.batches[from:to] {
		out = append(out, b...)
	}
	return out
}

func (m *model) maxTS() int64 {
	ts := int64(-1)
	for i, b := range m.batches {
		if i == 0 || b.MaxTimestamp() > ts {
			ts = b.MaxTimestamp()
		}
	}
	return ts
}

func (m *model) truncate(offset int64) {
	i := m.containing(offset)
	m.batches, m.pos = m.batches[:i], m.pos[:i]
}

// fill appends batches built from specs to s and to the model.
func fill(t testing.TB, s *Segment, m *model, specs ...spec) {
	t.Helper()
	for _, sp := range specs {
		b := makeBatch(m.next(), sp)
		if err := s.Append(b); err != nil {
			t.Fatalf("append at %d: %v", m.next(), err)
		}
		m.add(b)
	}
}

// specsN returns n batches of varied sizes, record counts and timestamps.
func specsN(n int) []spec {
	out := make([]spec, n)
	for i := range out {
		out[i] = spec{
			count:   int32(1 + i%5),
			epoch:   int32(1 + i/7),
			maxTS:   1000 + int64(i*10) - int64(i%3)*25, // not monotonic
			payload: 100 + (i*37)%900,
		}
	}
	return out
}

// modes runs the tests for both append paths.
var modes = []struct {
	name string
	mmap bool
}{{"write", false}, {"mmap", true}}

func testConfig(mmap bool) Config {
	return Config{MaxLogBytes: 1 << 20, IndexIntervalBytes: 1024, MaxIndexBytes: 4096, mmapAppend: mmap}
}

// check compares every observable of s with the model.
func check(t *testing.T, s *Segment, m *model) {
	t.Helper()
	if got, want := s.NextOffset(), m.next(); got != want {
		t.Fatalf("NextOffset = %d, want %d", got, want)
	}
	if got, want := s.Size(), m.size(); got != want {
		t.Fatalf("Size = %d, want %d", got, want)
	}
	wantFirst := int64(-1)
	if len(m.batches) > 0 {
		wantFirst = m.batches[0].MaxTimestamp()
	}
	if got := s.FirstTimestamp(); got != wantFirst {
		t.Fatalf("FirstTimestamp = %d, want %d", got, wantFirst)
	}
	if got, want := s.MaxTimestamp(), m.maxTS(); got != want {
		t.Fatalf("MaxTimestamp = %d, want %d", got, want)
	}
	for i, b := range m.batches {
		for _, off := range []int64{b.BaseOffset(), b.LastOffset()} {
			pos, err := s.FindOffset(off)
			if err != nil || pos != m.pos[i] {
				t.Fatalf("FindOffset(%d) = %d, %v; want %d", off, pos, err, m.pos[i])
			}
		}
	}
	v, err := s.Read(m.base, m.next(), 1<<30)
	if err != nil {
		t.Fatalf("Read all: %v", err)
	}
	defer v.Release()
	if !bytes.Equal(v.Bytes(), m.bytes(0, len(m.batches))) {
		t.Fatalf("Read all: %d bytes differ from the %d appended", v.Len(), m.size())
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func mustCreate(t testing.TB, dir string, base int64, cfg Config) *Segment {
	t.Helper()
	s, err := Create(dir, base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func isCorrupt(err error, c record.Check) bool {
	var ce *record.CorruptError
	return errors.As(err, &ce) && ce.Check == c
}

// pread reads len(b) bytes at pos from f's descriptor.
func pread(f vfs.File, b []byte, pos int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var n int
	var rerr error
	if err := rc.Control(func(fd uintptr) { n, rerr = syscall.Pread(int(fd), b, pos) }); err != nil {
		return err
	}
	if rerr == nil && n != len(b) {
		rerr = io.ErrUnexpectedEOF
	}
	return rerr
}
