package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"

	"github.com/sluicemq/sluice/vfs"
)

// A checkpoint file holds one small value that must survive a crash whole
// or not at all. It is the one durable small-file format of a data
// directory: the log's recovery point, log start offset, leader-epoch
// cache and two markers (the clean shutdown and the recovery mark,
// whose presence is what counts), and the broker's high watermarks,
// clean-shutdown epoch, data-directory id and topic ids.
//
// Layout, big-endian:
//
//	off  size  field
//	  0     4  magic "SLCP"
//	  4     2  version (CheckpointVersion)
//	  6     4  payload length n (at most MaxCheckpointBytes)
//	 10     n  payload
//	10+n    4  CRC-32C of bytes 0..10+n
//
// Writes follow R4: write a temp file, fsync it, rename it over the old
// file, fsync the directory. A reader therefore sees the old value or the
// new one; a torn or bit-flipped file fails the CRC and reads as
// ErrCorruptCheckpoint, never as a wrong value.

// CheckpointVersion is the checkpoint file format version written and read.
const CheckpointVersion = 1

// MaxCheckpointBytes bounds a checkpoint payload; Read refuses bigger files
// before allocating.
const MaxCheckpointBytes = 1 << 20

const (
	checkpointMagic  = "SLCP"
	checkpointHeader = 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptCheckpoint matches (errors.Is) the error of reading a checkpoint
// file that is short, has a bad magic, version, length or CRC, or a file in
// a legacy format its decoder refused (ReadLegacy).
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint")

// Checkpoint is one checkpoint file. Its methods are safe for concurrent
// use: writes are serialized so two writers never share the temp file.
type Checkpoint struct {
	fs   vfs.FS
	path string
	mu   sync.Mutex
	buf  []byte
}

// NewCheckpoint returns the checkpoint stored at path in fs. Nothing is
// read or created until Read or Write.
func NewCheckpoint(fs vfs.FS, path string) *Checkpoint { return &Checkpoint{fs: fs, path: path} }

// Path is the checkpoint file's path.
func (c *Checkpoint) Path() string { return c.path }

// Write replaces the checkpoint's payload durably (R4).
func (c *Checkpoint) Write(payload []byte) error {
	if len(payload) > MaxCheckpointBytes {
		return fmt.Errorf("checkpoint %s: payload of %d bytes over %d", c.path, len(payload), MaxCheckpointBytes)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := append(c.buf[:0], checkpointMagic...)
	b = binary.BigEndian.AppendUint16(b, CheckpointVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	c.buf = b
	if err := vfs.WriteFile(c.fs, c.path, b); err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.path, err)
	}
	return nil
}

// Read returns the checkpoint's payload, appended to dst[:0]. A missing file
// is an error matching os.ErrNotExist; a damaged one matches
// ErrCorruptCheckpoint.
func (c *Checkpoint) Read(dst []byte) ([]byte, error) { return c.ReadLegacy(dst, nil) }

// ReadLegacy is Read for a file that an older version may have written in
// a format of its own, before it went through the checkpoint format (the
// broker's small files, written as text): a file that does not start with
// the checkpoint magic is handed whole to legacy, which returns the
// payload it stands for. Its error is wrapped to match
// ErrCorruptCheckpoint. With legacy nil it is Read.
func (c *Checkpoint) ReadLegacy(dst []byte, legacy func(old []byte) ([]byte, error)) ([]byte, error) {
	b, err := vfs.ReadFile(c.fs, c.path, checkpointHeader+4+MaxCheckpointBytes)
	if errors.Is(err, vfs.ErrTooBig) {
		return dst[:0], fmt.Errorf("checkpoint %s: %w: %w", c.path, ErrCorruptCheckpoint, err)
	}
	if err != nil {
		return dst[:0], fmt.Errorf("checkpoint: %w", err)
	}
	if legacy != nil && !bytes.HasPrefix(b, []byte(checkpointMagic)) {
		payload, err := legacy(b)
		if err != nil {
			return dst[:0], fmt.Errorf("checkpoint %s: %w: legacy format: %w", c.path, ErrCorruptCheckpoint, err)
		}
		return append(dst[:0], payload...), nil
	}
	payload, err := decodeCheckpoint(b)
	if err != nil {
		return dst[:0], fmt.Errorf("checkpoint %s: %w", c.path, err)
	}
	return append(dst[:0], payload...), nil
}

// decodeCheckpoint checks a whole checkpoint file's bytes and returns its
// payload (aliasing b).
func decodeCheckpoint(b []byte) ([]byte, error) {
	if len(b) < checkpointHeader+4 {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrCorruptCheckpoint, len(b), checkpointHeader+4)
	}
	if string(b[:4]) != checkpointMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorruptCheckpoint, b[:4])
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != CheckpointVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorruptCheckpoint, v, CheckpointVersion)
	}
	n := int64(binary.BigEndian.Uint32(b[6:]))
	if n > MaxCheckpointBytes || int64(len(b)) != checkpointHeader+n+4 {
		return nil, fmt.Errorf("%w: payload length %d in a file of %d bytes", ErrCorruptCheckpoint, n, len(b))
	}
	end := checkpointHeader + int(n)
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.BigEndian.Uint32(b[end:]); got != want {
		return nil, fmt.Errorf("%w: crc %#08x, stored %#08x", ErrCorruptCheckpoint, got, want)
	}
	return b[checkpointHeader:end], nil
}

// WriteInt64 stores one int64 (an offset, an epoch, an id) as the
// payload, big-endian.
func (c *Checkpoint) WriteInt64(v int64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return c.Write(b[:])
}

// ReadInt64 reads a payload written by WriteInt64.
func (c *Checkpoint) ReadInt64() (int64, error) { return c.ReadInt64Legacy(nil) }

// ReadInt64Legacy is ReadInt64 through ReadLegacy: legacy decodes a file
// in an older format into the value.
func (c *Checkpoint) ReadInt64Legacy(legacy func(old []byte) (int64, error)) (int64, error) {
	var dec func([]byte) ([]byte, error)
	if legacy != nil {
		dec = func(old []byte) ([]byte, error) {
			v, err := legacy(old)
			return binary.BigEndian.AppendUint64(nil, uint64(v)), err
		}
	}
	var buf [8]byte
	b, err := c.ReadLegacy(buf[:0], dec)
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("checkpoint %s: %w: payload of %d bytes, want 8", c.path, ErrCorruptCheckpoint, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// Remove deletes the checkpoint file (and a leftover temp file) and syncs
// the directory. A missing file is not an error.
func (c *Checkpoint) Remove() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range []string{c.path, c.path + vfs.TempSuffix} {
		if err := c.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("checkpoint %s: %w", c.path, err)
		}
	}
	if err := vfs.SyncDir(c.fs, filepath.Dir(c.path)); err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.path, err)
	}
	return nil
}
