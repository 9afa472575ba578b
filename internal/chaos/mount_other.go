//go:build !linux

package chaos

import (
	"fmt"
	"runtime"
)

// MountTmpfs fails: the chaos suite runs on Linux only (network
// namespaces, mounts).
func MountTmpfs(dir string, size int64) error {
	return fmt.Errorf("chaos: mount a tmpfs on %s: needs Linux, have %s", dir, runtime.GOOS)
}

// Unmount fails, as MountTmpfs does.
func Unmount(dir string) error {
	return fmt.Errorf("chaos: unmount %s: needs Linux, have %s", dir, runtime.GOOS)
}
