package vfs

import (
	"errors"
	"os"
	"syscall"
)

func (f *osFile) Allocate(offset, length int64) error {
	err := syscall.Fallocate(f.fd, 0, offset, length)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		return f.growTo(offset + length)
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return nil
}

func (f *osFile) SyncData() error {
	if err := syscall.Fdatasync(f.fd); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}
