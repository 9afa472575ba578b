package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/record"
	"github.com/sluicemq/sluice/vfs"
)

// A producer-state snapshot is a file <offset>.producers (the offset
// 20-digit zero-padded) in the partition's directory: the state of every
// producer as the log's batches below offset left it. It is written at
// segment roll and at clean shutdown, temp file + fsync + rename +
// directory fsync (R4). Layout, big-endian:
//
//	off  size  field
//	  0     4  magic "SLPS"
//	  4     2  version (snapshotVersion)
//	  6     8  offset (equal to the file name's)
//	 14     4  producer count
//	 18        producers, least recently written first:
//	              id i64, epoch i16, lastWrite i64, batch count u8 (1..5),
//	              then per batch, oldest first: firstSeq i32, lastSeq i32,
//	              base i64, last i64, maxTimestamp i64
//	 end-4  4  CRC-32C of every byte before it
//
// At open the newest snapshot at or below the log end that decodes is
// used: one above the end was written before a crash cost the log its
// tail, and is deleted; a damaged one is skipped with a warning, and an
// older one (or, with none left, the log from its start) takes its place.
// The newest keepSnapshots are kept.

const (
	snapshotMagic     = "SLPS"
	snapshotVersion   = 1
	snapshotSuffix    = ".producers"
	snapshotHeader    = 18
	snapProducerBytes = 8 + 2 + 8 + 1
	snapBatchBytes    = 4 + 4 + 8 + 8 + 8
	keepSnapshots     = 3
	tempSuffix        = ".tmp"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptSnapshot matches (errors.Is) the error of decoding a damaged
// producer-state snapshot.
var ErrCorruptSnapshot = errors.New("corrupt producer-state snapshot")

// snapshots is the partition's snapshot files. mu orders snapshot writes
// and deletions (and guards buf); it is taken before Producers.snap.
//
// A segment roll's snapshot (Rolled) is written in the background, off
// the append path: the roll encodes the state (under snap) and queues it
// as pending (under qmu); a writer goroutine, started when one is queued
// and none runs, writes the pending one under mu (temp file, fsync,
// rename, directory fsync) and exits when none is left. A newer roll
// replaces a pending one not yet taken. Truncation drops a pending
// snapshot above its cut (under mu, so the writer has either not taken it
// or written it, and the cut deletes it then). Snapshot (shutdown) writes
// synchronously and drops the pending one it supersedes; Wait waits for
// the writer. Lock order: mu, snap, qmu.
type snapshots struct {
	fs  vfs.FS
	dir string
	mu  sync.Mutex
	buf []byte

	qmu     sync.Mutex
	pending *pendingSnapshot
	spare   []byte // a written pending snapshot's buffer, for the next roll
	running bool   // a writer goroutine runs
	wg      sync.WaitGroup
}

// pendingSnapshot is an encoded snapshot waiting for the writer.
type pendingSnapshot struct {
	offset int64
	b      []byte
}

// dropAbove forgets a pending snapshot above offset (any for -1). Call
// with mu held, so the writer is not between taking and writing it.
func (s *snapshots) dropAbove(offset int64) {
	s.qmu.Lock()
	if s.pending != nil && s.pending.offset > offset {
		s.pending = nil
	}
	s.qmu.Unlock()
}

func snapshotName(offset int64) string { return fmt.Sprintf("%020d%s", offset, snapshotSuffix) }

// list returns the snapshot offsets in the directory, ascending. With
// temps set it removes the temp files of writes a crash interrupted.
func (s *snapshots) list(temps bool) ([]int64, error) {
	ents, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range ents {
		if temps && strings.HasSuffix(e.Name(), snapshotSuffix+vfs.TempSuffix) {
			if err := s.fs.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			continue
		}
		name, ok := strings.CutSuffix(e.Name(), snapshotSuffix)
		if e.IsDir() || !ok || len(name) != 20 {
			continue
		}
		if off, err := strconv.ParseInt(name, 10, 64); err == nil && off >= 0 {
			out = append(out, off)
		}
	}
	slices.Sort(out)
	return out, nil
}

// removeAbove deletes the snapshots above offset (every one for -1),
// durably. Call with mu held.
func (s *snapshots) removeAbove(offset int64) error {
	offs, err := s.list(false)
	if err != nil {
		return err
	}
	return s.remove(slices.DeleteFunc(offs, func(o int64) bool { return o <= offset }))
}

// remove deletes the snapshots at offs and syncs the directory.
func (s *snapshots) remove(offs []int64) error {
	if len(offs) == 0 {
		return nil
	}
	for _, o := range offs {
		if err := s.fs.Remove(filepath.Join(s.dir, snapshotName(o))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return vfs.SyncDir(s.fs, s.dir)
}

// write stores b as the snapshot at offset (R4). Call with mu held.
func (s *snapshots) write(offset int64, b []byte) error {
	return vfs.WriteFile(s.fs, filepath.Join(s.dir, snapshotName(offset)), b)
}

// read returns the bytes of the snapshot at offset.
func (s *snapshots) read(offset int64) ([]byte, error) {
	b, err := vfs.ReadFile(s.fs, filepath.Join(s.dir, snapshotName(offset)), maxSnapshotBytes)
	if errors.Is(err, vfs.ErrTooBig) {
		return nil, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	return b, err
}

// maxKeptBuffer is the largest snapshot buffer kept for the next
// snapshot.
const maxKeptBuffer = 256 << 10

// maxSnapshotBytes bounds a snapshot file read at open: far above what
// any cap of producers makes (5 batches each: 179 bytes a producer).
const maxSnapshotBytes = 1 << 30

// appendSnapshot encodes the state (entries least recent first) as the
// snapshot at offset.
func (ps *Producers) appendSnapshot(dst []byte, offset int64) []byte {
	dst = append(dst, snapshotMagic...)
	dst = binary.BigEndian.AppendUint16(dst, snapshotVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(offset))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(ps.m)))
	for pr := ps.lru.next; pr != &ps.lru; pr = pr.next {
		dst = binary.BigEndian.AppendUint64(dst, uint64(pr.id))
		dst = binary.BigEndian.AppendUint16(dst, uint16(pr.epoch))
		dst = binary.BigEndian.AppendUint64(dst, uint64(pr.lastWrite))
		dst = append(dst, byte(pr.n))
		for i := range pr.n {
			b := pr.at(i)
			dst = binary.BigEndian.AppendUint32(dst, uint32(b.FirstSeq))
			dst = binary.BigEndian.AppendUint32(dst, uint32(b.LastSeq))
			dst = binary.BigEndian.AppendUint64(dst, uint64(b.Base))
			dst = binary.BigEndian.AppendUint64(dst, uint64(b.Last))
			dst = binary.BigEndian.AppendUint64(dst, uint64(b.MaxTimestamp))
		}
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst, castagnoli))
}

// decodeSnapshot checks a snapshot file's bytes whole (CRC first, every
// count against the bytes left before allocating) and returns its offset
// and producers. Damage is an error matching ErrCorruptSnapshot.
func decodeSnapshot(b []byte) (int64, []ProducerEntry, error) {
	bad := func(format string, args ...any) (int64, []ProducerEntry, error) {
		return -1, nil, fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
	}
	if len(b) < snapshotHeader+4 {
		return bad("%d bytes, need at least %d", len(b), snapshotHeader+4)
	}
	if string(b[:4]) != snapshotMagic {
		return bad("bad magic %q", b[:4])
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != snapshotVersion {
		return bad("version %d, want %d", v, snapshotVersion)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(body):]); got != want {
		return bad("crc %#08x, stored %#08x", got, want)
	}
	offset := int64(binary.BigEndian.Uint64(b[6:]))
	count := int64(binary.BigEndian.Uint32(b[14:]))
	rest := body[snapshotHeader:]
	if offset < 0 {
		return bad("offset %d", offset)
	}
	if count > int64(len(rest))/(snapProducerBytes+snapBatchBytes) {
		return bad("%d producers in %d bytes", count, len(rest))
	}
	entries := make([]ProducerEntry, count)
	// Every producer has at least one batch, so len(rest) bounds them too.
	batches := make([]ProducerBatch, 0, len(rest)/(snapProducerBytes+snapBatchBytes))
	seen := make(map[int64]struct{}, count)
	for i := range entries {
		if len(rest) < snapProducerBytes {
			return bad("producer %d: %d bytes left", i, len(rest))
		}
		e := &entries[i]
		e.ID = int64(binary.BigEndian.Uint64(rest))
		e.Epoch = int16(binary.BigEndian.Uint16(rest[8:]))
		e.LastWrite = int64(binary.BigEndian.Uint64(rest[10:]))
		n := int(rest[18])
		rest = rest[snapProducerBytes:]
		if e.ID < 0 || n < 1 || n > ProducerBatches {
			return bad("producer %d: id %d with %d batches", i, e.ID, n)
		}
		if _, dup := seen[e.ID]; dup {
			return bad("producer id %d twice", e.ID)
		}
		seen[e.ID] = struct{}{}
		if len(rest) < n*snapBatchBytes {
			return bad("producer %d: %d batches in %d bytes", e.ID, n, len(rest))
		}
		k := len(batches)
		prev := int64(-1)
		for range n {
			pb := ProducerBatch{
				FirstSeq: int32(binary.BigEndian.Uint32(rest)), LastSeq: int32(binary.BigEndian.Uint32(rest[4:])),
				Base: int64(binary.BigEndian.Uint64(rest[8:])), Last: int64(binary.BigEndian.Uint64(rest[16:])),
				MaxTimestamp: int64(binary.BigEndian.Uint64(rest[24:])),
			}
			rest = rest[snapBatchBytes:]
			if pb.Base <= prev || pb.Last < pb.Base || pb.Last >= offset {
				return bad("producer %d: batch at offsets %d-%d after %d, snapshot at %d", e.ID, pb.Base, pb.Last, prev, offset)
			}
			prev = pb.Last
			batches = append(batches, pb)
		}
		e.Batches = batches[k:len(batches):len(batches)]
	}
	if len(rest) != 0 {
		return bad("%d bytes after the last producer", len(rest))
	}
	return offset, entries, nil
}

// EndLog is what Snapshot needs of the log.
type EndLog interface{ EndOffset() int64 }

// Snapshot writes the state as the snapshot at the log's end offset
// (after forgetting expired producers), and deletes all but the newest
// keepSnapshots, before it returns; a pending background snapshot
// (Rolled) is older and dropped. Call it after the partition stopped
// taking appends at shutdown. A failure leaves the older snapshots, which
// stay valid (recovery replays more of the log). A log never appended to
// (end offset 0) with no producers and no snapshot files gets none: a
// snapshot of nothing at 0 tells recovery nothing, and a broker stopping
// with 10,000 such partitions saves two fsyncs for each (issue 13 item
// 6).
func (ps *Producers) Snapshot(l EndLog) error {
	ps.files.mu.Lock()
	defer ps.files.mu.Unlock()
	ps.snap.Lock()
	ps.expireLocked()
	end := l.EndOffset()
	if end == 0 && len(ps.m) == 0 {
		ps.files.dropAbove(-1)
		if offs, err := ps.files.list(false); err == nil && len(offs) == 0 {
			ps.snap.Unlock()
			return nil
		}
	}
	// snap held for writing: the table cannot change, so it is read
	// without the limit's mu, which other partitions' appends need.
	ps.files.buf = ps.appendSnapshot(ps.files.buf[:0], end)
	ps.files.dropAbove(-1)
	ps.snap.Unlock()
	err := ps.files.writeAndPrune(end, ps.files.buf)
	if cap(ps.files.buf) > maxKeptBuffer {
		ps.files.buf = nil // a big state's buffer is not kept between snapshots
	}
	return err
}

// writeAndPrune stores b as the snapshot at offset, then deletes all but
// the newest keepSnapshots. Call with mu held.
func (s *snapshots) writeAndPrune(offset int64, b []byte) error {
	if err := s.write(offset, b); err != nil {
		return fmt.Errorf("replica: producer-state snapshot at %d: %w", offset, err)
	}
	offs, err := s.list(false)
	if err == nil && len(offs) > keepSnapshots {
		err = s.remove(offs[:len(offs)-keepSnapshots])
	}
	if err != nil {
		return fmt.Errorf("replica: prune producer-state snapshots: %w", err)
	}
	return nil
}

// Rolled snapshots the state at a segment roll without waiting for the
// file: it encodes the state at the log's end offset (after forgetting
// expired producers) and leaves the write — and its fsyncs — to the
// background writer (snapshots), so the append that rolled, or the
// follower's fetch, is not held up by them. A failed write is logged, not
// returned: the older snapshots stay valid, and a snapshot missing or
// older than the log's end only makes recovery (Load) replay more of the
// log. Wait stops the writer.
func (ps *Producers) Rolled(l EndLog) {
	ps.snap.Lock()
	ps.expireLocked()
	end := l.EndOffset()
	s := &ps.files
	s.qmu.Lock()
	buf := s.spare
	s.spare = nil
	s.qmu.Unlock()
	buf = ps.appendSnapshot(buf[:0], end)
	// Queued under snap: a truncation (which holds snap, then drops what
	// is pending above its cut) cannot come between the encoding and the
	// queueing.
	s.qmu.Lock()
	s.pending = &pendingSnapshot{offset: end, b: buf}
	start := !s.running
	s.running = true
	if start {
		s.wg.Add(1)
	}
	s.qmu.Unlock()
	ps.snap.Unlock()
	if start {
		go ps.writeSnapshots()
	}
}

// writeSnapshots is the background writer: it writes the pending
// snapshot until none is left.
func (ps *Producers) writeSnapshots() {
	s := &ps.files
	defer s.wg.Done()
	for {
		s.mu.Lock()
		s.qmu.Lock()
		p := s.pending
		s.pending = nil
		if p == nil {
			s.running = false
			s.qmu.Unlock()
			s.mu.Unlock()
			return
		}
		s.qmu.Unlock()
		err := s.writeAndPrune(p.offset, p.b)
		s.mu.Unlock()
		if err != nil {
			ps.cfg.Logger.Warn("producer-state snapshot at segment roll failed", zap.Error(err))
		}
		if cap(p.b) <= maxKeptBuffer {
			s.qmu.Lock()
			s.spare = p.b
			s.qmu.Unlock()
		}
	}
}

// Wait returns once the background writer has written every snapshot
// Rolled queued. Call it before the partition's log closes or its
// directory goes, after the last Rolled; a later Rolled starts a writer
// again.
func (ps *Producers) Wait() { ps.files.wg.Wait() }

// Load replaces the state with what the log says: the newest valid
// snapshot at or below its end, then its batches from there to the end
// (from its start when no snapshot is usable). Snapshots above the end
// are deleted first. It returns the offset it replayed from.
func (ps *Producers) Load(l *log.Log) (int64, error) {
	ps.files.mu.Lock()
	defer ps.files.mu.Unlock()
	ps.snap.Lock()
	defer ps.snap.Unlock()
	start, end := l.StartOffset(), l.EndOffset()
	ps.files.dropAbove(end)
	if err := ps.files.removeAbove(end); err != nil && !errors.Is(err, os.ErrNotExist) {
		return -1, fmt.Errorf("replica: load producer state: %w", err)
	}
	offs, err := ps.files.list(true)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return -1, fmt.Errorf("replica: load producer state: %w", err)
	}
	ps.lim.mu.Lock()
	ps.removeAllLocked()
	from := start
	for i := len(offs) - 1; i >= 0; i-- {
		b, err := ps.files.read(offs[i])
		var off int64
		var entries []ProducerEntry
		if err == nil {
			off, entries, err = decodeSnapshot(b)
		}
		if err == nil && off != offs[i] {
			err = fmt.Errorf("%w: offset %d in the file of offset %d", ErrCorruptSnapshot, off, offs[i])
		}
		if err != nil {
			ps.cfg.Logger.Warn("producer-state snapshot unusable; trying an older one", zap.Int64("offset", offs[i]), zap.Error(err))
			continue
		}
		for _, e := range entries {
			pr := &producer{id: e.ID, epoch: e.Epoch, lastWrite: e.LastWrite, n: len(e.Batches)}
			copy(pr.batches[:], e.Batches)
			ps.addLocked(pr)
		}
		from = max(off, start)
		break
	}
	ps.lim.evictLocked(ps)
	ps.lim.mu.Unlock()
	ps.cutLocked(nil, func(b *ProducerBatch) bool { return b.Last < start })
	if err := ps.replayLog(l, from, end); err != nil {
		return -1, fmt.Errorf("replica: load producer state: replay %d-%d: %w", from, end, err)
	}
	return from, nil
}

// replayLog records the producer batches of l from offset from to end.
// Call with snap held for writing.
func (ps *Producers) replayLog(l *log.Log, from, end int64) error {
	for off := from; off < end; {
		v, err := l.ReadUpTo(off, end, 1<<20)
		if err != nil {
			return err
		}
		b := v.Bytes()
		if len(b) == 0 {
			v.Release()
			return nil
		}
		for len(b) > 0 {
			batch, rest, err := record.NextBatch(b, 0)
			if err != nil {
				v.Release()
				return fmt.Errorf("batch at %d: %w", off, err)
			}
			if batch.ProducerID() >= 0 && batch.LastOffset() >= from {
				ps.replayLocked(batch)
			}
			off, b = batch.LastOffset()+1, rest
		}
		v.Release()
	}
	return nil
}
