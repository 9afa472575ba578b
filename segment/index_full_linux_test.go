package segment

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sluicemq/sluice/vfs"
)

// On a full file system an index skips entries instead of faulting the
// process: its blocks are allocated before an entry is written into them.
// (Mapped pages of a sparse file that the file system cannot back raise
// SIGBUS when written: the test binary would die.) Root only: it mounts a
// 1 MiB tmpfs.
func TestIndexOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: root only")
	}
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1048576"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })

	ix, err := openIndex(vfs.Default, filepath.Join(dir, "0.index"), offsetEntrySize, 512<<10, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.close()
	// The first entry allocates the first chunk (a new index file is
	// empty until then).
	ix.appendOffset(0, 0)
	// Fill what is left.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	for {
		if _, err := f.Write(page); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	for _, small := range [][]byte{page[:512], page[:64], page[:1]} {
		for f.Write(small); ; {
			if _, err := f.Write(small); err != nil {
				break
			}
		}
	}
	// Entries past the first allocated chunk, on a full disk.
	want := int64(512<<10) / offsetEntrySize
	for i := int64(1); i < want; i++ {
		ix.appendOffset(uint32(i), uint32(i))
	}
	got := ix.n.Load()
	if got >= want || got < indexChunk/offsetEntrySize {
		t.Fatalf("%d entries kept of %d: want those of the allocated chunk only", got, want)
	}
	for i := range got {
		if rel, pos := offsetAt(ix.mm(), i); rel != uint32(i) || pos != uint32(i) {
			t.Fatalf("entry %d: %d, %d", i, rel, pos)
		}
	}
}
