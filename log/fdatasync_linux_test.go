package log

import (
	"os"
	"syscall"
)

// fdatasync is what vfs.File.SyncData calls on Linux, for benchmarks of
// raw files.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
