package segment

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/tysonmote/gommap"

	"github.com/sluicemq/sluice/vfs"
)

// Entry widths of the two index files.
const (
	offsetEntrySize = 8  // relative offset u32, position u32
	timeEntrySize   = 12 // max timestamp i64, relative offset u32
)

var be = binary.BigEndian

// index is one memory-mapped index file of fixed-width
// entries. The mapping has room for cap() entries and never moves while the
// segment is open; the file may be shorter than the mapping (trimmed by Seal
// or Close, or reset), so the writer extends the file before it writes past
// fileLen, and nobody reads past n entries, which are always inside the file.
//
// Only the writer appends, truncates or resets; readers read entries [0, n)
// after loading n, and the writer never rewrites an entry below a reader's n
// while that reader can run (TruncateTo waits for readers first).
//
// The mapping of an inactive segment's index can be dropped while no one
// reads it (unmapIdle) and made again on demand: a reader takes it with
// acquire and gives it back with release, the writer calls mapped first
// (with the segment's writer lock held, which unmapIdle takes too). The
// reader count and the mapping pointer are a Dekker pair (Go's atomics are
// sequentially consistent): a reader counts itself, then loads the
// pointer; unmapIdle clears the pointer, then looks at the count, and puts
// the mapping back if a reader is there. So a reader either sees the
// pointer cleared, and maps again, or is seen, and nothing is unmapped
// under it.
//
// The file is open only while the writer changes its size or syncs it
// (withFile): the mapping is what readers and the writer's entries use,
// and it outlives the descriptor. So every segment, the active one too,
// keeps one descriptor (its log's), not three: a broker with 10,000
// partition replicas needs 10,000 descriptors for them, not 30,000
// (issue 13 item 6). The file is opened again for each change of its size
// (every indexChunk of entries), a reset or trim, and a sync.
type index struct {
	path    string
	fs      vfs.FS
	dirty   bool                        // writer: entries written or the file changed since it was last synced
	mp      atomic.Pointer[gommap.MMap] // the mapping; nil while unmapped (unmapIdle)
	length  int64                       // the mapping's length, fixed at open
	mapMu   sync.Mutex                  // serializes mapping again and unmapIdle
	readers atomic.Int64                // readers between acquire and release
	touched atomic.Bool                 // acquired since the last unmapIdle
	width   int64
	n       atomic.Int64 // published entries
	fileLen int64        // writer: current file size
	missing bool         // Open found no file and created it
}

// openIndex opens (or creates, and syncs) an index file and maps it with
// room for maxBytes of entries, or the whole file if it is larger, and
// closes it. A new file stays empty until its first entry (reserve): an
// index never written costs nothing to trim and sync at close.
func openIndex(fs vfs.FS, path string, width int64, maxBytes int, create bool) (*index, error) {
	flag := os.O_RDWR | os.O_CREATE
	if create {
		flag |= os.O_EXCL
	}
	_, statErr := fs.Stat(path)
	f, err := fs.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	length := int64(maxBytes) / width * width
	if fl := (st.Size() + width - 1) / width * width; fl > length {
		length = fl
	}
	// A new index file is not synced: it is empty, and an index is a
	// hint (R7) that Open rebuilds when it is missing or wrong. The
	// segment's directory sync makes its entry durable with the log's.
	// (Two fsyncs fewer per segment: a tenth of the CPU of creating
	// 10,000 partitions.)
	mm, err := mapFile(f, length, gommap.PROT_READ|gommap.PROT_WRITE)
	if cerr := f.Close(); err == nil && cerr != nil { // the mapping outlives the descriptor
		mm.UnsafeUnmap()
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	ix := &index{path: path, fs: fs, length: length, width: width, fileLen: st.Size(), missing: !create && statErr != nil}
	ix.mp.Store(&mm)
	return ix, nil
}

// cap is the number of entries the mapping has room for.
func (ix *index) cap() int64 { return ix.length / ix.width }

// mm is the mapping, for the writer, which called mapped since it took the
// segment's writer lock.
func (ix *index) mm() gommap.MMap { return *ix.mp.Load() }

// mapped makes sure the file is mapped, mapping it again after unmapIdle.
// Writer only.
func (ix *index) mapped() error {
	if ix.mp.Load() != nil {
		return nil
	}
	ix.mapMu.Lock()
	defer ix.mapMu.Unlock()
	return ix.remapLocked()
}

// remapLocked maps the file again if it is not mapped. Call with mapMu.
func (ix *index) remapLocked() error {
	if ix.mp.Load() != nil {
		return nil
	}
	var mm gommap.MMap
	err := ix.withFile(func(f vfs.File) error {
		var err error
		mm, err = mapFile(f, ix.length, gommap.PROT_READ|gommap.PROT_WRITE)
		return err
	})
	if err != nil {
		return fmt.Errorf("map %s again: %w", ix.path, err)
	}
	ix.mp.Store(&mm)
	return nil
}

// acquire returns the mapping for a reader, mapping it again if it was
// unmapped, or nil if that fails (an index is a hint: the reader scans
// instead). Release it with release, whatever acquire returned.
func (ix *index) acquire() gommap.MMap {
	ix.readers.Add(1)
	if !ix.touched.Load() {
		ix.touched.Store(true)
	}
	if p := ix.mp.Load(); p != nil {
		return *p
	}
	ix.mapMu.Lock()
	defer ix.mapMu.Unlock()
	if ix.remapLocked() != nil {
		return nil
	}
	return *ix.mp.Load()
}

func (ix *index) release() { ix.readers.Add(-1) }

// unmapIdle unmaps the file unless it was acquired since the last call or
// a reader holds it now, and reports whether it did. The caller holds the
// segment's writer lock, so the writer is not using the mapping.
func (ix *index) unmapIdle() (bool, error) {
	if ix.touched.Swap(false) {
		return false, nil
	}
	ix.mapMu.Lock()
	defer ix.mapMu.Unlock()
	p := ix.mp.Load()
	if p == nil {
		return false, nil
	}
	ix.mp.Store(nil)
	if ix.readers.Load() > 0 {
		ix.mp.Store(p)
		return false, nil
	}
	if err := p.UnsafeUnmap(); err != nil {
		return true, fmt.Errorf("unmap %s: %w", ix.path, err)
	}
	return true, nil
}

// full reports whether no entry can be appended.
func (ix *index) full() bool { return ix.n.Load() >= ix.cap() }

// indexChunk is how much an index file grows at a time. The blocks are
// allocated (fallocate) before an entry is written into them: a mapped
// page the file system cannot back faults the whole process with SIGBUS
// when it is written, so on a full disk the index instead skips entries
// (it is a hint) and the broker goes on.
const indexChunk = 64 << 10

// extend grows the file by indexChunk, at most to the whole mapping, with
// its blocks allocated, so the next entries can be written.
func (ix *index) extend() error {
	size := min(ix.length, (ix.fileLen/indexChunk+1)*indexChunk)
	if size <= ix.fileLen {
		return fmt.Errorf("extend %s: the mapping of %d bytes is full", ix.path, ix.length)
	}
	if err := ix.withFile(func(f vfs.File) error { return f.Allocate(ix.fileLen, size-ix.fileLen) }); err != nil {
		return fmt.Errorf("extend %s: %w", ix.path, err)
	}
	ix.fileLen = size
	return nil
}

// reserve makes sure the next entry lies inside the file.
func (ix *index) reserve() error {
	if (ix.n.Load()+1)*ix.width > ix.fileLen {
		return ix.extend()
	}
	return nil
}

// slot returns the bytes of the next entry, or nil if the index is full or
// the file could not be extended (an index is a hint: a missing entry only
// makes lookups scan further).
func (ix *index) slot() []byte {
	n := ix.n.Load()
	if n >= ix.cap() || ix.reserve() != nil {
		return nil
	}
	ix.dirty = true
	return ix.mm()[n*ix.width : (n+1)*ix.width]
}

// publish makes the entry written into slot visible to readers.
func (ix *index) publish() { ix.n.Add(1) }

func (ix *index) appendOffset(rel, pos uint32) {
	if e := ix.slot(); e != nil {
		be.PutUint32(e, rel)
		be.PutUint32(e[4:], pos)
		ix.publish()
	}
}

func (ix *index) appendTime(ts int64, rel uint32) {
	if e := ix.slot(); e != nil {
		be.PutUint64(e, uint64(ts))
		be.PutUint32(e[8:], rel)
		ix.publish()
	}
}

// offsetAt returns entry i of the offset index mapped at mm.
func offsetAt(mm []byte, i int64) (rel, pos uint32) {
	e := mm[i*offsetEntrySize:]
	return be.Uint32(e), be.Uint32(e[4:])
}

// timeAt returns entry i of the time index mapped at mm.
func timeAt(mm []byte, i int64) (ts int64, rel uint32) {
	e := mm[i*timeEntrySize:]
	return int64(be.Uint64(e)), be.Uint32(e[8:])
}

// reset empties the index, garbage included: the file is cut to zero and
// grows again (zero-filled) at the next entry. No reader may be looking.
func (ix *index) reset() error {
	ix.n.Store(0)
	if err := ix.withFile(func(f vfs.File) error { return f.Truncate(0) }); err != nil {
		return fmt.Errorf("reset %s: %w", ix.path, err)
	}
	ix.dirty = true
	ix.fileLen = 0
	return nil
}

// trim cuts the file to its used size and, with sync, syncs it if
// anything changed since the last sync, in one opening of the file.
func (ix *index) trim(sync bool) error {
	used := ix.n.Load() * ix.width
	cut := ix.fileLen != used
	if !cut && !(sync && ix.dirty) {
		return nil
	}
	err := ix.withFile(func(f vfs.File) error {
		if cut {
			if err := f.Truncate(used); err != nil {
				return err
			}
			ix.dirty = true
			ix.fileLen = used
		}
		if sync {
			if err := f.Sync(); err != nil {
				return err
			}
			ix.dirty = false
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("trim %s: %w", ix.path, err)
	}
	return nil
}

// countEntries loads n from the file after open: entries up to the first
// all-zero one (the end of a preallocated index) or the end of the file. It
// reports false when the file is not a whole number of entries.
func (ix *index) countEntries() bool {
	if ix.fileLen%ix.width != 0 {
		return false
	}
	limit := ix.fileLen / ix.width
	var n int64
	for ; n < limit; n++ {
		if isZero(ix.mm()[n*ix.width : (n+1)*ix.width]) {
			break
		}
	}
	ix.n.Store(n)
	return true
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// withFile opens the file, runs fn on it and closes it.
func (ix *index) withFile(fn func(vfs.File) error) error {
	f, err := ix.fs.OpenFile(ix.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// close unmaps the file.
func (ix *index) close() error {
	if p := ix.mp.Swap(nil); p != nil {
		if err := p.UnsafeUnmap(); err != nil {
			return fmt.Errorf("close %s: %w", ix.path, err)
		}
	}
	return nil
}
