package broker

import "golang.org/x/sys/unix"

// diskSpace returns the bytes free (to an unprivileged process) and the
// capacity of the file system holding dir; 0, 0 when statfs fails.
func diskSpace(dir string) (free, capacity int64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0
	}
	bsize := int64(st.Bsize)
	return int64(st.Bavail) * bsize, int64(st.Blocks) * bsize
}
