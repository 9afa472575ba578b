package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// cleanerFile is the cleaner's checkpoint in a log directory.
const cleanerFile = "cleaner.checkpoint"

// cleanerState is what the cleaner remembers of a log across restarts:
// where the dirty part starts, and for each cleaned segment when it was
// first cleaned and whether it holds tombstones (delete.retention.ms
// counts from that moment). It is stored as a checkpoint payload:
//
//	firstDirty  i64
//	count       u32
//	count × { base i64, firstCleanedMs i64, tombstones u32 }
//
// big-endian, bases strictly increasing. Losing it is safe: the cleaner
// then cleans the whole log again and tombstones wait a full
// delete.retention.ms more.
type cleanerState struct {
	firstDirty int64
	segs       []cleanedSeg
}

// cleanedSeg is one cleaned segment's entry.
type cleanedSeg struct {
	base           int64
	firstCleanedMs int64
	tombstones     uint32 // tombstones kept at the last clean
}

const (
	cleanerHeaderBytes = 12
	cleanedSegBytes    = 20
)

func (c *cleanerState) encode() []byte {
	b := make([]byte, 0, cleanerHeaderBytes+cleanedSegBytes*len(c.segs))
	b = binary.BigEndian.AppendUint64(b, uint64(c.firstDirty))
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.segs)))
	for _, s := range c.segs {
		b = binary.BigEndian.AppendUint64(b, uint64(s.base))
		b = binary.BigEndian.AppendUint64(b, uint64(s.firstCleanedMs))
		b = binary.BigEndian.AppendUint32(b, s.tombstones)
	}
	return b
}

// errCleanerState is the reason decodeCleanerState refuses a payload.
var errCleanerState = errors.New("bad cleaner checkpoint")

// decodeCleanerState parses a payload written by encode, checking every
// length before it allocates.
func decodeCleanerState(b []byte) (cleanerState, error) {
	if len(b) < cleanerHeaderBytes {
		return cleanerState{}, fmt.Errorf("%w: %d bytes, want at least %d", errCleanerState, len(b), cleanerHeaderBytes)
	}
	c := cleanerState{firstDirty: int64(binary.BigEndian.Uint64(b))}
	n := int64(binary.BigEndian.Uint32(b[8:]))
	if c.firstDirty < 0 {
		return cleanerState{}, fmt.Errorf("%w: first dirty offset %d", errCleanerState, c.firstDirty)
	}
	if want := cleanerHeaderBytes + n*cleanedSegBytes; int64(len(b)) != want {
		return cleanerState{}, fmt.Errorf("%w: %d segments need %d bytes, have %d", errCleanerState, n, want, len(b))
	}
	c.segs = make([]cleanedSeg, n)
	p := b[cleanerHeaderBytes:]
	for i := range c.segs {
		s := cleanedSeg{
			base:           int64(binary.BigEndian.Uint64(p)),
			firstCleanedMs: int64(binary.BigEndian.Uint64(p[8:])),
			tombstones:     binary.BigEndian.Uint32(p[16:]),
		}
		if s.base < 0 || i > 0 && s.base <= c.segs[i-1].base {
			return cleanerState{}, fmt.Errorf("%w: segment base %d out of order", errCleanerState, s.base)
		}
		c.segs[i] = s
		p = p[cleanedSegBytes:]
	}
	return c, nil
}

// loadCleanerState reads the cleaner checkpoint; a missing one is the
// empty state, a damaged one too (with a warning from the caller).
func (l *Log) loadCleanerState() (cleanerState, error) {
	b, err := NewCheckpoint(l.fs, l.cleanerPath()).Read(nil)
	if errors.Is(err, os.ErrNotExist) {
		return cleanerState{}, nil
	}
	if err != nil {
		return cleanerState{}, err
	}
	return decodeCleanerState(b)
}

func (c *cleanerState) seg(base int64) (cleanedSeg, bool) {
	for _, s := range c.segs {
		if s.base == base {
			return s, true
		}
	}
	return cleanedSeg{}, false
}
