package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/sluicemq/sluice/record"
)

// makeBatch builds a batch of records records over size bytes in all
// (header included, at least record.HeaderSize), with maxTimestamp ts and
// payload bytes from rnd, CRC set. The log only checks the header and the
// CRC; record framing is the broker's business (record.Validate).
func makeBatch(dst []byte, records, size int, ts int64, rnd *rand.Rand) record.Batch {
	size = max(size, record.HeaderSize)
	if cap(dst) < size {
		dst = make([]byte, size)
	}
	b := dst[:size]
	be := binary.BigEndian
	be.PutUint64(b[0:], 0)
	be.PutUint32(b[8:], uint32(size-record.LengthPrefixSize))
	be.PutUint32(b[12:], 0xffffffff)
	b[16] = record.Magic
	be.PutUint16(b[21:], 0)
	be.PutUint32(b[23:], uint32(records-1))
	be.PutUint64(b[27:], uint64(ts))
	be.PutUint64(b[35:], uint64(ts))
	be.PutUint64(b[43:], ^uint64(0))
	be.PutUint16(b[51:], 0xffff)
	be.PutUint32(b[53:], 0xffffffff)
	be.PutUint32(b[57:], uint32(records))
	if rnd != nil {
		for i := record.HeaderSize; i < size; i++ {
			b[i] = byte(rnd.Uint32())
		}
	}
	rb := record.Batch(b)
	rb.SetCRC()
	return rb
}

// stored is a batch as the log should hold it: its stamped bytes.
type stored struct {
	base  int64
	bytes []byte
}

func (s stored) next() int64 { return record.Batch(s.bytes).NextOffset() }

// appendN appends n batches of 1..4 records and 100..maxSize bytes with
// timestamps ts, ts+1, ... and returns them as stored.
func appendN(t testing.TB, l *Log, rnd *rand.Rand, n, maxSize int, ts int64) []stored {
	t.Helper()
	var out []stored
	for i := range n {
		b := makeBatch(nil, 1+rnd.IntN(4), 100+rnd.IntN(maxSize-99), ts+int64(i), rnd)
		base, err := l.Append(b)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if base != b.BaseOffset() {
			t.Fatalf("Append returned %d, stamped %d", base, b.BaseOffset())
		}
		out = append(out, stored{base: base, bytes: b})
	}
	return out
}

// readAll reads the log from its start offset to its end offset, checking
// that every batch is whole and valid and that offsets chain.
func readAll(t testing.TB, l *Log) []stored {
	t.Helper()
	var out []stored
	off := l.StartOffset()
	for off < l.EndOffset() {
		v, err := l.Read(off, 64<<10)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		bs := v.Bytes()
		if len(bs) == 0 {
			v.Release()
			t.Fatalf("empty read at %d below end %d", off, l.EndOffset())
		}
		for len(bs) > 0 {
			b, err := record.ParseHeader(bs, 0)
			if err != nil {
				t.Fatalf("read at %d: %v", off, err)
			}
			if err := b.VerifyCRC(); err != nil {
				t.Fatalf("batch at %d: %v", b.BaseOffset(), err)
			}
			if len(out) > 0 && b.BaseOffset() != out[len(out)-1].next() {
				t.Fatalf("batch at %d follows one ending at %d", b.BaseOffset(), out[len(out)-1].next())
			}
			out = append(out, stored{base: b.BaseOffset(), bytes: bytes.Clone(b)})
			off = b.NextOffset()
			bs = bs[len(b):]
		}
		v.Release()
	}
	return out
}

// sameBatches fails unless got and want hold the same batches, byte for byte.
func sameBatches(t testing.TB, got, want []stored) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d batches, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].base != want[i].base || !bytes.Equal(got[i].bytes, want[i].bytes) {
			t.Fatalf("batch %d: base %d (%d bytes), want base %d (%d bytes)", i, got[i].base, len(got[i].bytes), want[i].base, len(want[i].bytes))
		}
	}
}

// fakeClock is the injected clock of the age tests.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// openLog opens a log in dir, failing the test on error, and closes it at
// cleanup.
func openLog(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, ErrOffline) {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// crash abandons l as a SIGKILL would: no final sync, no recovery point,
// no clean-shutdown marker. The files stay as they are.
func (l *Log) crash() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	l.closedFlag.Store(true)
	close(l.stop)
	l.wg.Wait()
	l.commit.lock() // no sync may run on a closed segment
	l.segMu.Lock()
	segs := l.segs
	l.segs = nil
	l.segMu.Unlock()
	for _, s := range segs {
		s.Close()
	}
	os.Remove(l.dir + "/" + cleanShutdownFile)
}
