// Package vfs is the file-system seam of the storage engine: every file and
// directory operation of packages segment and log, and of the broker's
// small files in its data directory, goes through an FS, so that tests can
// put a fault-injecting FS (package vfs/errorfs) under a log or a whole
// broker and see what it does with a full disk, a failed fsync or a short
// write. The model is pebble's vfs.FS, cut down to what those callers use.
//
// Default is the operating system's file system. An FS is safe for
// concurrent use; a File is used as an *os.File would be (one writer, and
// readers through the memory mappings its descriptor backs).
//
// What stays outside the seam: memory mappings are made from a File's
// descriptor (syscall.Conn) and read and written as memory, so a fault
// injected here never reaches a mapped page; the broker's data-directory
// lock, the creation, listing and topic removals of its data directory,
// and the controller's Raft store use the os directly.
//
// vfs imports nothing of sluice.
package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// File is an open file or directory.
type File interface {
	io.Closer
	io.Reader
	io.Writer
	io.WriterAt
	// Stat describes the file.
	Stat() (os.FileInfo, error)
	// Truncate sets the file's size; growing it leaves a sparse hole.
	Truncate(size int64) error
	// Allocate is fallocate(2) of [offset, offset+length): the blocks are
	// reserved now, growing the file if it ends before, so a later write
	// into them — through a memory mapping too — cannot fail for want of
	// space. A file system without fallocate gets Truncate instead (a
	// sparse hole, as before), and so does every system but Linux
	// (file_other.go).
	Allocate(offset, length int64) error
	// Sync is fsync(2): the file's data and metadata reach the disk. On a
	// directory opened with OpenDir it makes creates, renames and removes
	// in it durable (R4).
	Sync() error
	// SyncData is fdatasync(2): the data, and only the metadata needed to
	// read it back (the size). Systems without fdatasync (macOS) get
	// the full Sync instead (file_other.go). An error is returned as the
	// system call gave it; callers must not retry it (R5).
	SyncData() error
	// SyscallConn gives the descriptor, for mmap(2) and sendfile(2). The
	// descriptor is valid while the File is open.
	syscall.Conn
}

// FS is a namespace of files: the operations that segment, log and the
// broker's small files use, with the meaning of the os functions of the
// same names.
type FS interface {
	// OpenFile opens name with os.OpenFile's flags and permissions (the
	// segment files, checkpoints and their temp files).
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// OpenDir opens a directory, for Sync (see SyncDir).
	OpenDir(name string) (File, error)
	Stat(name string) (os.FileInfo, error)
	ReadDir(name string) ([]os.DirEntry, error)
	MkdirAll(name string, perm os.FileMode) error
	// Rename renames a file, replacing newname if it exists.
	Rename(oldname, newname string) error
	Remove(name string) error
	RemoveAll(name string) error
}

// Default is the operating system's file system.
var Default FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return newOSFile(f), nil
}

func (osFS) OpenDir(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return newOSFile(f), nil
}

func (osFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }
func (osFS) ReadDir(name string) ([]os.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) MkdirAll(name string, perm os.FileMode) error { return os.MkdirAll(name, perm) }
func (osFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                  { return os.RemoveAll(name) }

// osFile is an *os.File with fdatasync. The descriptor is read once, at
// open, so that SyncData (the group commit's fsync) costs the system call
// only.
type osFile struct {
	*os.File
	fd int
}

func newOSFile(f *os.File) *osFile { return &osFile{File: f, fd: int(f.Fd())} }

// growTo extends f to size bytes with a sparse hole, if it is shorter:
// Allocate where the system or the file system has no fallocate.
func (f *osFile) growTo(size int64) error {
	if st, err := f.File.Stat(); err == nil && st.Size() >= size {
		return nil
	}
	return f.File.Truncate(size)
}

// SyncDir fsyncs the directory dir, so that the creates, renames and
// removes in it are durable (R4). It is the one directory sync of the
// storage engine and the broker.
func SyncDir(fs FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// TempSuffix names the temp file WriteFile writes before renaming it.
const TempSuffix = ".tmp"

// WriteFile replaces name with b durably (R4): it writes name+TempSuffix,
// fsyncs it, renames it over name and fsyncs the directory, so a reader
// after a crash finds the old content or the new, never a mix. Callers
// serialize their writes of one name (they share the temp file).
func WriteFile(fs FS, name string, b []byte) error {
	f, err := fs.OpenFile(name+TempSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := fs.Rename(name+TempSuffix, name); err != nil {
		return err
	}
	return SyncDir(fs, filepath.Dir(name))
}

// ErrTooBig is ReadFile's error for a file over its limit.
var ErrTooBig = errors.New("file over the size limit")

// ReadFile reads name whole, refusing (ErrTooBig) a file bigger than max
// bytes before allocating.
func ReadFile(fs FS, name string, max int64) ([]byte, error) {
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d", name, ErrTooBig, st.Size(), max)
	}
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

// ProbeFile is the file Probe writes.
const ProbeFile = "space-probe"

// Probe writes, syncs and removes a 64 KiB file (ProbeFile) in dir: nil
// when the file system takes writes there, after a full disk or an I/O
// error, say.
func Probe(fs FS, dir string) error {
	name := filepath.Join(dir, ProbeFile)
	f, err := fs.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("probe %s: %w", name, err)
	}
	_, err = f.Write(make([]byte, 64<<10))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := fs.Remove(name); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("probe %s: %w", name, err)
	}
	return nil
}
