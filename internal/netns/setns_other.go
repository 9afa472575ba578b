//go:build !linux

package netns

import (
	"fmt"
	"os"
	"runtime"
)

// setns fails: network namespaces are Linux's (Available says so first).
func setns(*os.File) error {
	return fmt.Errorf("%w: needs Linux, have %s", ErrUnavailable, runtime.GOOS)
}
