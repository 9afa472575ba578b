package segment

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openUnder counts this process's open descriptors on files in dir.
func openUnder(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var paths []string
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil {
			paths = append(paths, target)
		}
	}
	return countUnder(paths, dir)
}

// mappedUnder counts this process's memory mappings of files in dir, by
// file (a file mapped twice counts twice).
func mappedUnder(t *testing.T, dir string) int {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	var paths []string
	for line := range strings.Lines(string(maps)) {
		// The path is the sixth field, after the address, permissions,
		// offset, device and inode.
		if f := strings.Fields(line); len(f) >= 6 {
			paths = append(paths, f[5])
		}
	}
	return countUnder(paths, dir)
}

// truncateAndAppend truncates s into its 31st batch, appends 5 batches
// and checks the reads against m, which follows.
func truncateAndAppend(t *testing.T, s *Segment, m *model) {
	t.Helper()
	cut := m.batches[30].BaseOffset()
	if err := s.TruncateTo(cut); err != nil {
		t.Fatal(err)
	}
	m.truncate(cut)
	fill(t, s, m, specsN(5)...)
	check(t, s, m)
}

// countUnder counts the paths inside dir.
func countUnder(paths []string, dir string) int {
	n := 0
	for _, p := range paths {
		if strings.HasPrefix(p, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// A segment, active, sealed, or one Open found, keeps one descriptor (its
// log's) instead of three: its indexes stay mapped for the writer and
// readers and are opened only while the writer changes their size or
// syncs them (issue 13 item 6: 10,000 replicas need 10,000 descriptors,
// not 30,000). Readers see
// the same answers before and after, and after the writer reopened them.
func TestInactiveSegmentKeepsOneDescriptor(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(mode.mmap)
			s := mustCreate(t, dir, 0, cfg)
			m := &model{base: 0}
			fill(t, s, m, specsN(40)...)
			if got := openUnder(t, dir); got != 1 {
				t.Fatalf("active segment: %d descriptors, want 1", got)
			}
			// A reader holding a view across the seal sees the same bytes.
			v, err := s.Read(0, m.next(), 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Seal(); err != nil {
				t.Fatal(err)
			}
			if got := openUnder(t, dir); got != 1 {
				t.Fatalf("sealed segment: %d descriptors, want 1", got)
			}
			check(t, s, m)
			v.Release()

			// The writer reopens the index files to truncate, then appends.
			truncateAndAppend(t, s, m)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := openUnder(t, dir); got != 0 {
				t.Fatalf("closed segment: %d descriptors, want 0", got)
			}

			s, err = Open(dir, 0, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := openUnder(t, dir); got != 1 {
				t.Fatalf("opened segment: %d descriptors, want 1", got)
			}
			check(t, s, m)
			fill(t, s, m, specsN(3)...)
			check(t, s, m)
		})
	}
}
