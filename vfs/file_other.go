//go:build !linux

package vfs

// The systems without fallocate(2) and fdatasync(2) (macOS, for
// development: docs/deploy.md): the same operations by the portable
// means, weaker only where said.

// Allocate grows the file with a sparse hole, as Linux does on a file
// system without fallocate: the blocks are not reserved, so on a full
// disk a write through a memory mapping into the hole can fail (SIGBUS)
// where Linux would have refused the Allocate.
func (f *osFile) Allocate(offset, length int64) error {
	return f.growTo(offset + length)
}

// SyncData is the full Sync: os.File.Sync, which on macOS is
// fcntl(F_FULLFSYNC) (the drive's cache flushed too, as fdatasync does on
// Linux), falling back to fsync(2) where the file system lacks it.
func (f *osFile) SyncData() error {
	return f.File.Sync()
}
