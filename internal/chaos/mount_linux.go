package chaos

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// MountTmpfs mounts a tmpfs of size bytes on dir, in the root mount
// namespace, before any broker starts: `ip netns exec` gives each broker
// a copy of the mounts there. A write past size fails with ENOSPC, as on
// a full disk.
func MountTmpfs(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		return fmt.Errorf("chaos: mount a %d-byte tmpfs on %s: %w", size, dir, err)
	}
	return nil
}

// Unmount unmounts dir; if it is busy, lazily (it goes when the last
// user does).
func Unmount(dir string) error {
	err := syscall.Unmount(dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("chaos: unmount %s: %w", dir, err)
	}
	return nil
}
