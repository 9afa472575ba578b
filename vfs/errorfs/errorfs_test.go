package errorfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sluicemq/sluice/vfs"
)

func create(t *testing.T, fs vfs.FS, path string) vfs.File {
	t.Helper()
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestFaultSelection checks which paths and operations a fault applies
// to, and that it stops applying when disarmed.
func TestFaultSelection(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "t-1")
	sibling := filepath.Join(root, "t-10") // shares the prefix, not the directory
	for _, d := range []string{dir, sibling} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fs := New(vfs.Default)
	log := create(t, fs, filepath.Join(dir, "0.log"))
	index := create(t, fs, filepath.Join(dir, "0.index"))
	other := create(t, fs, filepath.Join(sibling, "0.log"))

	for _, tc := range []struct {
		name  string
		fault Fault
		fails map[vfs.File]bool
	}{
		{"directory", Fault{Ops: OpWrite, Path: dir}, map[vfs.File]bool{log: true, index: true}},
		{"file", Fault{Ops: OpWrite, Path: filepath.Join(dir, "0.index")}, map[vfs.File]bool{index: true}},
		{"pattern", Fault{Ops: OpWrite, Path: filepath.Join(root, "*", "*.log")}, map[vfs.File]bool{log: true, other: true}},
		{"every path", Fault{Ops: OpWrite}, map[vfs.File]bool{log: true, index: true, other: true}},
		{"other operation", Fault{Ops: OpSync | OpTruncate, Path: dir}, map[vfs.File]bool{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fault.Err = syscall.ENOSPC
			a := fs.Arm(tc.fault)
			for _, f := range []vfs.File{log, index, other} {
				_, err := f.WriteAt([]byte("x"), 0)
				if got := errors.Is(err, syscall.ENOSPC); got != tc.fails[f] {
					t.Errorf("write: %v; want failure %v", err, tc.fails[f])
				}
			}
			if a.Hits() != int64(len(tc.fails)) {
				t.Errorf("%d hits, want %d", a.Hits(), len(tc.fails))
			}
			a.Disarm()
			a.Disarm()
			for _, f := range []vfs.File{log, index, other} {
				if _, err := f.WriteAt([]byte("x"), 0); err != nil {
					t.Errorf("write after Disarm: %v", err)
				}
			}
		})
	}
}

// TestInjectedErrors checks the injected errors' shape and the effect of
// each kind of fault on the file.
func TestInjectedErrors(t *testing.T) {
	dir := t.TempDir()
	fs := New(vfs.Default)
	path := filepath.Join(dir, "f")
	f := create(t, fs, path)

	eio := fs.Arm(Fault{Ops: OpSync, Path: path, Err: syscall.EIO})
	for name, sync := range map[string]func() error{"Sync": f.Sync, "SyncData": f.SyncData} {
		var pe *os.PathError
		if err := sync(); !errors.As(err, &pe) || pe.Err != syscall.EIO || pe.Path != path || pe.Op != "sync" {
			t.Errorf("%s: %v, want a *PathError sync %s: EIO", name, err, path)
		}
	}
	eio.Disarm()

	// A short write puts half the bytes in the file, then fails.
	short := fs.Arm(Fault{Ops: OpWrite, Path: path, Err: syscall.ENOSPC, Short: true})
	n, err := f.WriteAt([]byte("abcdefgh"), 0)
	if n != 4 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("short write: %d, %v; want 4, ENOSPC", n, err)
	}
	short.Disarm()
	if b, err := os.ReadFile(path); err != nil || string(b) != "abcd" {
		t.Fatalf("file after a short write: %q, %v; want \"abcd\"", b, err)
	}
	short = fs.Arm(Fault{Ops: OpWrite, Path: path, Short: true})
	if n, err := f.Write([]byte("xy")); n != 1 || !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("short write without an error: %d, %v; want 1, io.ErrShortWrite", n, err)
	}
	short.Disarm()

	// A probe fails nothing and runs its hook.
	calls := 0
	probe := fs.Arm(Fault{Ops: OpTruncate | OpRename, Path: dir, Hook: func() { calls++ }})
	if err := f.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if err := fs.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || probe.Hits() != 2 {
		t.Fatalf("probe: %d hook calls, %d hits; want 2", calls, probe.Hits())
	}
	if st, err := os.Stat(path + ".2"); err != nil || st.Size() != 2 {
		t.Fatalf("after the probed truncate and rename: %v", err)
	}
	probe.Disarm()

	// Namespace operations, and DisarmAll.
	fs.Arm(Fault{Ops: OpCreate | OpMkdir | OpRemove | OpRename | OpStat | OpReadDir | OpOpen, Path: dir, Err: syscall.EIO})
	for name, op := range map[string]func() error{
		"create": func() error {
			_, err := fs.OpenFile(filepath.Join(dir, "g"), os.O_CREATE|os.O_WRONLY, 0o644)
			return err
		},
		"open":      func() error { _, err := fs.OpenFile(path+".2", os.O_RDONLY, 0); return err },
		"open dir":  func() error { _, err := fs.OpenDir(dir); return err },
		"mkdir":     func() error { return fs.MkdirAll(filepath.Join(dir, "d"), 0o755) },
		"remove":    func() error { return fs.Remove(path + ".2") },
		"removeall": func() error { return fs.RemoveAll(path + ".2") },
		"rename":    func() error { return fs.Rename(path+".2", path) },
		"stat":      func() error { _, err := fs.Stat(path + ".2"); return err },
		"readdir":   func() error { _, err := fs.ReadDir(dir); return err },
	} {
		if err := op(); !errors.Is(err, syscall.EIO) {
			t.Errorf("%s: %v, want EIO", name, err)
		}
	}
	fs.DisarmAll()
	if err := vfs.SyncDir(fs, dir); err != nil {
		t.Fatalf("SyncDir after DisarmAll: %v", err)
	}
	dirSync := fs.Arm(Fault{Ops: OpSyncDir, Path: dir, Err: syscall.EIO})
	if err := vfs.SyncDir(fs, dir); !errors.Is(err, syscall.EIO) {
		t.Fatalf("SyncDir: %v, want EIO", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("a file's Sync under a directory-sync fault: %v", err)
	}
	dirSync.Disarm()
}
