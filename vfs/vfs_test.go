package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestDefault(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	f, err := Default.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("hello"), 3); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncData(); err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != 8 {
		t.Fatalf("Stat: %v", err)
	}
	// The descriptor reads what was written.
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	var n int
	var rerr error
	if err := rc.Control(func(fd uintptr) { n, rerr = syscall.Pread(int(fd), buf, 3) }); err != nil || rerr != nil || string(buf[:n]) != "hello" {
		t.Fatalf("pread through the descriptor: %q, %v, %v", buf[:n], err, rerr)
	}
	if _, err := Default.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, os.ErrExist) {
		t.Fatalf("O_EXCL on an existing file: %v", err)
	}
	if err := SyncDir(Default, dir); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(Default, filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("SyncDir of a missing directory: %v", err)
	}
	if _, err := Default.OpenDir(path); err == nil {
		t.Fatal("OpenDir opened a file")
	}
}
