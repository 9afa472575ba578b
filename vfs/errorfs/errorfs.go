// Package errorfs is a vfs.FS for tests that fails chosen operations on
// chosen paths: ENOSPC on writes and truncates (a full disk), EIO on fsync
// (R5), short writes. The model is pebble's vfs/errorfs.
//
// Wrap the FS a log or a broker uses, then arm faults while it runs:
//
//	fs := errorfs.New(vfs.Default)
//	cfg.FS = fs
//	...
//	full := fs.Arm(errorfs.Fault{
//		Path: partitionDir,
//		Ops:  errorfs.OpWrite | errorfs.OpTruncate,
//		Err:  syscall.ENOSPC,
//	})
//	...
//	full.Disarm()
//
// An armed fault fires on every operation it matches until it is
// disarmed; the first armed fault that matches an operation decides it.
// Injected errors are *os.PathError values naming the operation and the
// path, wrapping Err, as the os package would return them, so
// errors.Is(err, syscall.ENOSPC) holds all the way up.
package errorfs

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluicemq/sluice/vfs"
)

// Op is a set of operations a fault applies to.
type Op uint32

// The operations of vfs.FS and vfs.File that can fail.
const (
	OpCreate   Op = 1 << iota // OpenFile with O_CREATE
	OpOpen                    // OpenFile without O_CREATE, and OpenDir
	OpRead                    // File.Read
	OpWrite                   // File.Write and File.WriteAt
	OpSync                    // File.Sync and File.SyncData of a file
	OpSyncDir                 // File.Sync of a directory opened with OpenDir
	OpTruncate                // File.Truncate and File.Allocate
	OpStat                    // FS.Stat and File.Stat
	OpReadDir                 // FS.ReadDir
	OpMkdir                   // FS.MkdirAll
	OpRename                  // FS.Rename (matched on either name)
	OpRemove                  // FS.Remove and FS.RemoveAll
)

var opNames = []string{"create", "open", "read", "write", "sync", "syncdir", "truncate", "stat", "readdir", "mkdir", "rename", "remove"}

// String names the operations in o, "write|truncate".
func (o Op) String() string {
	var names []string
	for i, n := range opNames {
		if o&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// Fault says which operations fail and how.
type Fault struct {
	// Ops are the operations the fault applies to.
	Ops Op
	// Path selects the files: the path itself, everything below it when it
	// is a directory, or the paths it matches as a filepath.Match pattern
	// ("dir/*.log"). Empty: every path.
	Path string
	// Err is the error the operation returns, wrapped in an *os.PathError.
	// Nil injects nothing: the fault is a probe, its Hook runs and the
	// operation proceeds (to count operations or hold one up).
	Err error
	// Short, for OpWrite, lets the first half of the bytes through before
	// the error (io.ErrShortWrite when Err is nil): a write that ran out
	// of space partway, leaving a torn tail.
	Short bool
	// Hook, if set, runs each time the fault fires, before the operation
	// returns, in the goroutine of the operation and outside every lock of
	// the FS: a test can block it to hold the operation up.
	Hook func()
}

// Armed is a fault in force. Disarm it to let the operations through
// again.
type Armed struct {
	fs    *FS
	f     Fault
	clean string
	hits  atomic.Int64
}

// Hits is the number of operations the fault fired on.
func (a *Armed) Hits() int64 { return a.hits.Load() }

// Disarm removes the fault; operations that already fired keep their
// error. Disarming twice is a no-op.
func (a *Armed) Disarm() {
	a.fs.mu.Lock()
	defer a.fs.mu.Unlock()
	cur := *a.fs.faults.Load()
	if i := slices.Index(cur, a); i >= 0 {
		next := slices.Delete(slices.Clone(cur), i, i+1)
		a.fs.faults.Store(&next)
	}
}

func (a *Armed) matches(op Op, path string) bool {
	if a.f.Ops&op == 0 {
		return false
	}
	if a.clean == "" {
		return true
	}
	p := filepath.Clean(path)
	if p == a.clean || strings.HasPrefix(p, a.clean+string(filepath.Separator)) {
		return true
	}
	ok, _ := filepath.Match(a.clean, p)
	return ok
}

// FS wraps another vfs.FS and injects the armed faults. Its methods are
// safe for concurrent use with Arm and Disarm.
type FS struct {
	inner  vfs.FS
	mu     sync.Mutex // serializes Arm and Disarm
	faults atomic.Pointer[[]*Armed]
}

var _ vfs.FS = (*FS)(nil)

// New returns an FS over inner with no fault armed.
func New(inner vfs.FS) *FS {
	fs := &FS{inner: inner}
	fs.faults.Store(&[]*Armed{})
	return fs
}

// Arm puts f in force and returns its handle.
func (fs *FS) Arm(f Fault) *Armed {
	a := &Armed{fs: fs, f: f}
	if f.Path != "" {
		a.clean = filepath.Clean(f.Path)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	next := append(slices.Clone(*fs.faults.Load()), a)
	fs.faults.Store(&next)
	return a
}

// DisarmAll removes every fault.
func (fs *FS) DisarmAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.faults.Store(&[]*Armed{})
}

// fire returns the first armed fault matching op on one of paths, after
// counting it and running its hook, or nil.
func (fs *FS) fire(op Op, paths ...string) *Armed {
	for _, a := range *fs.faults.Load() {
		for _, p := range paths {
			if a.matches(op, p) {
				a.hits.Add(1)
				if a.f.Hook != nil {
					a.f.Hook()
				}
				return a
			}
		}
	}
	return nil
}

// inject is fire for operations that either fail whole or run: the
// injected error, or nil to run the operation.
func (fs *FS) inject(op Op, path string) error {
	if a := fs.fire(op, path); a != nil && a.f.Err != nil {
		return &os.PathError{Op: op.String(), Path: path, Err: a.f.Err}
	}
	return nil
}

func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	op := OpOpen
	if flag&os.O_CREATE != 0 {
		op = OpCreate
	}
	if err := fs.inject(op, name); err != nil {
		return nil, err
	}
	f, err := fs.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &file{File: f, fs: fs, path: name}, nil
}

func (fs *FS) OpenDir(name string) (vfs.File, error) {
	if err := fs.inject(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := fs.inner.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return &file{File: f, fs: fs, path: name, dir: true}, nil
}

func (fs *FS) Stat(name string) (os.FileInfo, error) {
	if err := fs.inject(OpStat, name); err != nil {
		return nil, err
	}
	return fs.inner.Stat(name)
}

func (fs *FS) ReadDir(name string) ([]os.DirEntry, error) {
	if err := fs.inject(OpReadDir, name); err != nil {
		return nil, err
	}
	return fs.inner.ReadDir(name)
}

func (fs *FS) MkdirAll(name string, perm os.FileMode) error {
	if err := fs.inject(OpMkdir, name); err != nil {
		return err
	}
	return fs.inner.MkdirAll(name, perm)
}

func (fs *FS) Rename(oldname, newname string) error {
	if a := fs.fire(OpRename, oldname, newname); a != nil && a.f.Err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: a.f.Err}
	}
	return fs.inner.Rename(oldname, newname)
}

func (fs *FS) Remove(name string) error {
	if err := fs.inject(OpRemove, name); err != nil {
		return err
	}
	return fs.inner.Remove(name)
}

func (fs *FS) RemoveAll(name string) error {
	if err := fs.inject(OpRemove, name); err != nil {
		return err
	}
	return fs.inner.RemoveAll(name)
}

// file injects the faults of its FS into one open file. The descriptor
// (SyscallConn) and Close pass through.
type file struct {
	vfs.File
	fs   *FS
	path string
	dir  bool
}

func (f *file) Read(b []byte) (int, error) {
	if err := f.fs.inject(OpRead, f.path); err != nil {
		return 0, err
	}
	return f.File.Read(b)
}

func (f *file) Write(b []byte) (int, error) {
	return f.write(b, func(b []byte) (int, error) { return f.File.Write(b) })
}

func (f *file) WriteAt(b []byte, off int64) (int, error) {
	return f.write(b, func(b []byte) (int, error) { return f.File.WriteAt(b, off) })
}

// write runs w on b, or on the first half of b for a short-write fault.
func (f *file) write(b []byte, w func([]byte) (int, error)) (int, error) {
	a := f.fs.fire(OpWrite, f.path)
	if a == nil || a.f.Err == nil && !a.f.Short {
		return w(b)
	}
	n := 0
	if a.f.Short {
		var err error
		if n, err = w(b[:len(b)/2]); err != nil {
			return n, err
		}
	}
	err := a.f.Err
	if err == nil {
		err = io.ErrShortWrite
	}
	return n, &os.PathError{Op: "write", Path: f.path, Err: err}
}

func (f *file) Stat() (os.FileInfo, error) {
	if err := f.fs.inject(OpStat, f.path); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *file) Truncate(size int64) error {
	if err := f.fs.inject(OpTruncate, f.path); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// Allocate fails with the faults of OpTruncate: like a truncate that
// grows a file, it changes the file's size.
func (f *file) Allocate(offset, length int64) error {
	if err := f.fs.inject(OpTruncate, f.path); err != nil {
		return err
	}
	return f.File.Allocate(offset, length)
}

func (f *file) Sync() error {
	op := OpSync
	if f.dir {
		op = OpSyncDir
	}
	if err := f.fs.inject(op, f.path); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *file) SyncData() error {
	if err := f.fs.inject(OpSync, f.path); err != nil {
		return err
	}
	return f.File.SyncData()
}
