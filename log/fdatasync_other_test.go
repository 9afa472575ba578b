//go:build !linux

package log

import "os"

// fdatasync is what vfs.File.SyncData calls where there is no
// fdatasync(2): the full Sync.
func fdatasync(f *os.File) error { return f.Sync() }
