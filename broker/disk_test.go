package broker

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestStatsDisk: Stats reports the data directory's file system, as
// statfs sees it, and nothing for a directory statfs cannot read.
func TestStatsDisk(t *testing.T) {
	dir := t.TempDir()
	b, err := New(Config{ListenAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st := b.Stats(false)
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if want := int64(fs.Blocks) * int64(fs.Bsize); st.DiskCapacity != want || want <= 0 {
		t.Fatalf("DiskCapacity %d, want %d", st.DiskCapacity, want)
	}
	if st.DiskFree <= 0 || st.DiskFree > st.DiskCapacity {
		t.Fatalf("DiskFree %d of %d", st.DiskFree, st.DiskCapacity)
	}
	if free, capacity := diskSpace(dir + "/missing"); free != 0 || capacity != 0 {
		t.Fatalf("a missing directory: %d free of %d", free, capacity)
	}
}
