package vfs

import (
	"os"
	"path/filepath"
	"testing"
)

// Allocate grows a file to cover the range and never shrinks it, by
// fallocate(2) on Linux and by the sparse growTo elsewhere (and on a file
// system without fallocate): both are run here.
func TestAllocate(t *testing.T) {
	f, err := Default.OpenFile(filepath.Join(t.TempDir(), "f"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := func() int64 {
		t.Helper()
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	if err := f.Allocate(0, 4096); err != nil || size() != 4096 {
		t.Fatalf("Allocate(0, 4096): size %d, %v", size(), err)
	}
	if err := f.Allocate(1024, 1024); err != nil || size() != 4096 {
		t.Fatalf("Allocate inside the file: size %d, %v", size(), err)
	}
	osf := f.(*osFile)
	if err := osf.growTo(8192); err != nil || size() != 8192 {
		t.Fatalf("growTo(8192): size %d, %v", size(), err)
	}
	if err := osf.growTo(100); err != nil || size() != 8192 {
		t.Fatalf("growTo(100) of a longer file: size %d, %v", size(), err)
	}
}
