package log

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicemq/sluice/vfs"
)

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := NewCheckpoint(vfs.Default, filepath.Join(dir, "x.checkpoint"))
	if _, err := c.ReadInt64(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing checkpoint: err %v, want ErrNotExist", err)
	}
	for _, v := range []int64{0, 1, 1 << 40, -1} {
		if err := c.WriteInt64(v); err != nil {
			t.Fatal(err)
		}
		got, err := c.ReadInt64()
		if err != nil || got != v {
			t.Fatalf("ReadInt64 = %d, %v; want %d", got, err, v)
		}
	}
	payload := []byte("leader epoch cache entries")
	if err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	got, err := c.Read(nil)
	if err != nil || string(got) != string(payload) {
		t.Fatalf("Read = %q, %v", got, err)
	}
	if _, err := os.Stat(c.Path() + vfs.TempSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file left behind: %v", err)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Remove: %v", err)
	}
	if err := c.Write(make([]byte, MaxCheckpointBytes+1)); err == nil {
		t.Fatal("oversized payload accepted")
	}
}

// TestCheckpointCorrupt feeds the reader every kind of damage it exists to
// catch; each must read as ErrCorruptCheckpoint, never as a value.
func TestCheckpointCorrupt(t *testing.T) {
	good := func(t *testing.T, c *Checkpoint) []byte {
		if err := c.WriteInt64(12345); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(c.Path())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"empty", func(b []byte) []byte { return nil }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"header only", func(b []byte) []byte { return b[:checkpointHeader] }},
		{"garbage appended", func(b []byte) []byte { return append(b, 0) }},
		{"payload bit flip", func(b []byte) []byte { b[checkpointHeader+7] ^= 1; return b }},
		{"crc bit flip", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"bad version", func(b []byte) []byte { binary.BigEndian.PutUint16(b[4:], 9); return b }},
		{"huge length", func(b []byte) []byte { binary.BigEndian.PutUint32(b[6:], 1<<31); return b }},
		{"zeroed", func(b []byte) []byte { return make([]byte, len(b)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCheckpoint(vfs.Default, filepath.Join(t.TempDir(), "rp"))
			b := tt.damage(good(t, c))
			if err := os.WriteFile(c.Path(), b, 0o644); err != nil {
				t.Fatal(err)
			}
			v, err := c.ReadInt64()
			if !errors.Is(err, ErrCorruptCheckpoint) {
				t.Fatalf("ReadInt64 = %d, %v; want ErrCorruptCheckpoint", v, err)
			}
		})
	}
}

func TestCheckpointWrongPayloadSize(t *testing.T) {
	c := NewCheckpoint(vfs.Default, filepath.Join(t.TempDir(), "hw"))
	if err := c.Write([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadInt64(); !errors.Is(err, ErrCorruptCheckpoint) {
		t.Fatalf("3-byte payload read as an offset: %v", err)
	}
}

func FuzzCheckpointDecode(f *testing.F) {
	c := NewCheckpoint(vfs.Default, filepath.Join(f.TempDir(), "seed"))
	if err := c.WriteInt64(42); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(c.Path())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("SLCP"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, err := decodeCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptCheckpoint) {
				t.Fatalf("error %v does not match ErrCorruptCheckpoint", err)
			}
			return
		}
		if len(payload) != len(b)-checkpointHeader-4 {
			t.Fatalf("payload of %d bytes from a file of %d", len(payload), len(b))
		}
	})
}
