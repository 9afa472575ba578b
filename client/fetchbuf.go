package client

import (
	"sync"
	"sync/atomic"
)

// fetchBuf is the memory of one fetch response that the Records decoded
// from it alias: the response's frame (keys, values and headers of
// uncompressed records point into it) and the slabs the Records
// themselves live in. It goes back to fetchBufs, for the conn to read a
// later response into (conn.readLoop) and the fetcher to decode it into,
// when its last holder lets go of it: the fetcher once it has decoded the
// response (fetch, decoder), and each chunk buffered from it once the
// chunk is dropped unpolled (consumer.reset) or the Fetches that returned
// it is released (Fetches.Release). A chunk returned by a Poll whose
// Fetches is never released keeps its hold: the buffer is then the
// garbage collector's, as every response's was before Release existed.
type fetchBuf struct {
	refs  atomic.Int32
	frame []byte
	slabs []*recSlab
	used  int // slabs handed out by slab since the buffer was taken
}

// recSlab is the Records of one partition's record set, and the pointers
// to them handed to the application.
type recSlab struct {
	recs []Record
	ptrs []*Record
}

// fetchBufs holds released fetch buffers; the garbage collector empties
// it when they go unused.
var fetchBufs sync.Pool

// getFetchBuf is a released buffer, or a new empty one, held once.
func getFetchBuf() *fetchBuf {
	fb, _ := fetchBufs.Get().(*fetchBuf)
	if fb == nil {
		fb = new(fetchBuf)
	}
	fb.refs.Store(1)
	fb.used = 0
	return fb
}

// hold adds a holder.
func (fb *fetchBuf) hold() { fb.refs.Add(1) }

// release ends a holder's hold; the last one returns the buffer to
// fetchBufs. The Records in its slabs are not cleared: they are
// overwritten when the slabs are used again, and what they point to is
// pinned until then at most.
func (fb *fetchBuf) release() {
	switch n := fb.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic("client: fetch buffer released more times than held")
	}
	fetchBufs.Put(fb)
}

// slab is a slab for the Records of one record set of the response
// (decodeRecords fills it, growing it when it is too small). Only the
// goroutine decoding the response calls it.
func (fb *fetchBuf) slab() *recSlab {
	if fb.used == len(fb.slabs) {
		fb.slabs = append(fb.slabs, new(recSlab))
	}
	s := fb.slabs[fb.used]
	fb.used++
	return s
}

// polled is what a Fetches holds of the fetch buffers: the chunks'
// holds and the Records slice, handed back by Release. gen tells a
// Fetches (or a copy of one) already released from the one polled since:
// a polled is reused, and Release acts only for the Fetches whose gen is
// current.
type polled struct {
	gen  atomic.Uint64
	recs []*Record
	bufs []*fetchBuf
}

var polledPool sync.Pool

func getPolled() *polled {
	p, _ := polledPool.Get().(*polled)
	if p == nil {
		p = new(polled)
	}
	return p
}

// Release tells the client that the application is done with the
// records of f: neither f.Records nor any Record in it, nor a Record's
// Key, Value or Headers, is used after the call (copy out what is to be
// kept). The client then reads later fetch responses into their memory
// instead of allocating new: a consumer that releases each Fetches once
// it has handled the records allocates next to nothing per fetch
// response, and its garbage collector runs far less often. Without
// Release, records stay valid as long as they are referenced, and the
// garbage collector frees them. Release sets f.Records to nil; releasing
// a Fetches again, or a copy of one already released, does nothing.
// Errors are not affected.
func (f *Fetches) Release() {
	p := f.held
	f.held, f.Records = nil, nil
	if p == nil || !p.gen.CompareAndSwap(f.gen, f.gen+1) {
		return
	}
	for _, fb := range p.bufs {
		fb.release()
	}
	clear(p.bufs)
	clear(p.recs)
	p.bufs, p.recs = p.bufs[:0], p.recs[:0]
	polledPool.Put(p)
}
