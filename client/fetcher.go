package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// work is one partition taken by a fetcher for one request, with the
// generation and offset it was taken at.
type work struct {
	p      *cpart
	gen    uint64
	offset int64
	epoch  int32
	start  Offset
}

// fetchLoop is broker id's fetcher: it resolves start offsets and fetches
// for every assigned partition that id leads, while the buffer has room,
// and waits for a change when there is nothing to do. It stops with the
// Client.
func (cs *consumer) fetchLoop(id int32) {
	c := cs.c
	defer c.wg.Done()
	var rd decoder
	defer rd.join()
	failures := 0
	for c.ctx.Err() == nil {
		ch := cs.changed.wait()
		list, fetch := cs.collect(id)
		if len(list)+len(fetch) == 0 {
			select {
			case <-ch:
			case <-c.ctx.Done():
			}
			continue
		}
		var err error
		if len(list) > 0 {
			err = cs.listOffsets(id, list)
		}
		if len(fetch) > 0 {
			if ferr := cs.fetch(id, fetch, &rd); ferr != nil {
				err = ferr
			}
		}
		cs.release(id, list)
		cs.release(id, fetch)
		if err == nil {
			failures = 0
			continue
		}
		failures++
		if c.sleep(c.ctx, c.backoff(failures)) != nil {
			return
		}
	}
}

// decoder decodes a fetcher's record sets. A fetch response's record sets
// are decoded (CRCs checked, records parsed) on a goroutine of their own
// while the fetcher sends the next fetch, so the broker prepares and
// sends the next response (over TLS: encrypts it) while this one is
// decoded; the fetcher joins the goroutine before it handles that next
// response, so one fetcher's chunks are buffered in order, and a decode
// error (which pauses the partition and drops results of requests already
// sent) is seen before the next response of the partition.
type decoder struct {
	rd   record.Reader
	done chan struct{} // closed when the decode in progress ended; nil: none
}

// decodeJob is one partition's record set whose next offset was taken
// from its batch headers (peekNext) before it was decoded.
type decodeJob struct {
	w    work
	data []byte
}

// start decodes jobs, record sets of the response in fb, on a goroutine,
// which ends the fetcher's hold on fb; join waits for it.
func (d *decoder) start(cs *consumer, id int32, jobs []decodeJob, fb *fetchBuf) {
	d.done = make(chan struct{})
	go func() {
		defer close(d.done)
		for i := range jobs {
			cs.decodeAhead(&d.rd, id, &jobs[i], fb)
		}
		fb.release()
	}()
}

func (d *decoder) join() {
	if d.done != nil {
		<-d.done
		d.done = nil
	}
}

// cancelOnMove calls cancel once the metadata says a partition of ws is
// no longer led by id, or when ctx ends.
func (cs *consumer) cancelOnMove(ctx context.Context, cancel context.CancelFunc, id int32, ws []work) {
	for {
		ch := cs.changed.wait()
		for _, w := range ws {
			if leader, _, ok := cs.c.meta.leader(w.p.tp.Topic, w.p.tp.Partition); !ok || leader != id {
				cancel()
				return
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// collect takes the partitions broker id should serve now: those needing a
// start offset, and those to fetch while the buffer has room.
func (cs *consumer) collect(id int32) (list, fetch []work) {
	c := cs.c
	cs.mu.Lock()
	defer cs.mu.Unlock()
	room := cs.bufBytes+cs.decodingBytes < c.cfg.maxBufferedFetchBytes
	for _, p := range cs.parts {
		if p.paused || p.busy {
			continue
		}
		if p.decoding && p.decoder != id {
			// Records of it are being decoded by another broker's
			// fetcher (the partition moved): fetching on here could
			// buffer later records before them.
			continue
		}
		leader, epoch, ok := c.meta.leader(p.tp.Topic, p.tp.Partition)
		if !ok {
			c.meta.requestRefresh()
			continue
		}
		if leader != id {
			continue
		}
		w := work{p: p, gen: p.gen, offset: p.offset, epoch: epoch, start: p.start}
		switch {
		case p.needsOffset:
			list = append(list, w)
		case room:
			fetch = append(fetch, w)
		default:
			continue
		}
		p.busy = true
	}
	return list, fetch
}

// release ends broker id's fetcher's hold on ws. A partition the
// metadata moved to another leader meanwhile is handed over: that
// leader's fetcher skipped it while it was busy here and waits for a
// change, so it is woken.
func (cs *consumer) release(id int32, ws []work) {
	if len(ws) == 0 {
		return
	}
	moved := false
	cs.mu.Lock()
	for _, w := range ws {
		w.p.busy = false
		if leader, _, ok := cs.c.meta.leader(w.p.tp.Topic, w.p.tp.Partition); !ok || leader != id {
			moved = true
		}
	}
	cs.mu.Unlock()
	if moved {
		cs.changed.notify()
	}
}

// current reports whether w's result still applies. cs.mu is held.
func (cs *consumer) current(w *work) bool {
	return cs.parts[w.p.tp] == w.p && w.p.gen == w.gen
}

// fail reports a partition error to Poll and pauses the partition. cs.mu
// is held.
func (cs *consumer) fail(w *work, err error) {
	if !cs.current(w) {
		return
	}
	w.p.paused = true
	cs.errs = append(cs.errs, &FetchError{Topic: w.p.tp.Topic, Partition: w.p.tp.Partition, Err: err})
	cs.ready.notify()
}

// partitionCode handles a partition's error code: stale metadata refreshes
// it and retries (reported as a soft error for backoff), anything else
// fails the partition. It returns nil for NoError.
func (cs *consumer) partitionCode(w *work, code protocol.ErrorCode) error {
	if code == protocol.NoError {
		return nil
	}
	err := code.Err()
	if code.Retriable() {
		if staleMetadata(code) {
			cs.c.meta.requestRefresh()
		}
		return err
	}
	cs.mu.Lock()
	cs.fail(w, err)
	cs.mu.Unlock()
	return nil
}

// listOffsets resolves start offsets with one ListOffsets request.
func (cs *consumer) listOffsets(id int32, ws []work) error {
	c := cs.c
	req := &protocol.ListOffsetsRequest{ReplicaID: -1, Isolation: c.cfg.isolation}
	for _, w := range ws {
		t := topicEntry(&req.Topics, w.p.tp.Topic, func(t *protocol.ListOffsetsTopic) *string { return &t.Name })
		t.Partitions = append(t.Partitions, protocol.ListOffsetsPartition{
			Partition: w.p.tp.Partition, CurrentLeaderEpoch: w.epoch, Timestamp: w.start.listTimestamp()})
	}
	m, _, err := c.roundTripOnce(c.ctx, id, req, new(protocol.ListOffsetsResponse))
	if err != nil {
		if classify(err, true).refresh {
			c.meta.requestRefresh()
		}
		return err
	}
	resp := m.(*protocol.ListOffsetsResponse)
	var soft error
	for i := range ws {
		w := &ws[i]
		r := findListOffsets(resp, w.p.tp)
		if r == nil {
			soft = fmt.Errorf("%s[%d] missing from the list offsets response", w.p.tp.Topic, w.p.tp.Partition)
			continue
		}
		if err := cs.partitionCode(w, r.ErrorCode); err != nil {
			soft = err
			continue
		}
		if r.ErrorCode != protocol.NoError {
			continue
		}
		cs.mu.Lock()
		if cs.current(w) && w.p.needsOffset {
			if r.Offset < 0 {
				// No record at or after the time: start at the end.
				w.p.start = AtEnd()
			} else {
				w.p.offset, w.p.needsOffset = r.Offset, false
			}
		}
		cs.mu.Unlock()
	}
	return soft
}

// fetch sends one long-poll Fetch for ws and buffers what it returns.
func (cs *consumer) fetch(id int32, ws []work, dec *decoder) error {
	c := cs.c
	cfg := &c.cfg
	req := &protocol.FetchRequest{ReplicaID: -1, ReplicaEpoch: -1,
		MaxWaitMs: int32(cfg.fetchMaxWait.Milliseconds()), MinBytes: cfg.fetchMinBytes,
		MaxBytes: cfg.fetchMaxBytes, Isolation: cfg.isolation}
	for _, w := range ws {
		t := topicEntry(&req.Topics, w.p.tp.Topic, func(t *protocol.FetchTopic) *string { return &t.Name })
		t.Partitions = append(t.Partitions, protocol.FetchPartition{Partition: w.p.tp.Partition,
			CurrentLeaderEpoch: w.epoch, FetchOffset: w.offset, LogStartOffset: -1, PartitionMaxBytes: cfg.fetchMaxPartBytes})
	}
	cn, err := c.brokerConn(c.ctx, id, connFetch)
	if err != nil {
		return err
	}
	// A fetch is a read: when the metadata moves one of its partitions to
	// another leader it is abandoned (its answer is dropped when it comes)
	// so the new leader's fetcher can take the partition at once, rather
	// than after this broker answers or the request times out.
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	go cs.cancelOnMove(ctx, cancel, id, ws)
	resp := new(protocol.FetchResponse)
	fb, err := cn.doOwned(ctx, req, resp, cfg.fetchMaxWait+cfg.requestTimeout)
	// The previous response's decode ran while this one came: its chunks
	// go first, and a partition it failed is no longer current.
	dec.join()
	if err != nil {
		c.meta.requestRefresh()
		return err
	}
	if resp.ErrorCode != protocol.NoError {
		fb.release()
		return fmt.Errorf("broker %s: fetch: %w", cn.addr, resp.ErrorCode.Err())
	}
	var soft error
	var jobs []decodeJob
	for i := range ws {
		w := &ws[i]
		pr := findFetch(resp, w.p.tp)
		if pr == nil {
			continue // the broker may leave partitions out; fetch them again
		}
		if err := cs.partitionCode(w, pr.ErrorCode); err != nil {
			soft = err
			continue
		}
		if pr.ErrorCode != protocol.NoError {
			continue
		}
		if next, ok := peekNext(pr.Records, w.offset); ok {
			// Whole batches past the offset: the partition can be
			// fetched on from next while they are decoded.
			cs.mu.Lock()
			if cs.current(w) {
				w.p.offset = next
				w.p.decoding, w.p.decoder = true, id
				cs.decodingBytes += len(pr.Records)
				jobs = append(jobs, decodeJob{w: *w, data: pr.Records})
			}
			cs.mu.Unlock()
			continue
		}
		// Nothing whole past the offset (a partial batch, one larger
		// than the limit, a corrupt header): decoded here, where the
		// error is found before the partition is fetched again.
		recs, next, derr := decodeRecords(&dec.rd, pr.Records, w.offset, w.p.tp, cfg.fetchMaxPartBytes, fb.slab())
		cs.mu.Lock()
		if cs.current(w) {
			w.p.offset = next
			cs.buffer(w, recs, len(pr.Records), fb)
			if derr != nil {
				cs.fail(w, derr)
			}
		}
		cs.mu.Unlock()
	}
	if len(jobs) > 0 {
		dec.start(cs, id, jobs, fb)
	} else {
		fb.release()
	}
	return soft
}

// buffer hands w's records, decoded from fb, to Poll. cs.mu is held.
func (cs *consumer) buffer(w *work, recs []*Record, bytes int, fb *fetchBuf) {
	if len(recs) == 0 {
		return
	}
	fb.hold()
	cs.buffered = append(cs.buffered, chunk{part: w.p, gen: w.gen, recs: recs, bytes: bytes, buf: fb})
	cs.bufBytes += bytes
	cs.ready.notify()
}

// decodeAhead decodes a record set whose partition was already fetched on
// from the offset its headers gave (fetch). On a corrupt batch the records
// before it are buffered, the partition's offset goes back to the batch
// and the partition fails; its generation changes so the answers to
// fetches already sent from the later offset are dropped.
func (cs *consumer) decodeAhead(rd *record.Reader, id int32, j *decodeJob, fb *fetchBuf) {
	w := &j.w
	recs, next, derr := decodeRecords(rd, j.data, w.offset, w.p.tp, cs.c.cfg.fetchMaxPartBytes, fb.slab())
	cs.mu.Lock()
	cs.decodingBytes -= len(j.data)
	if w.p.decoder == id {
		w.p.decoding = false
	}
	if cs.current(w) {
		cs.buffer(w, recs, len(j.data), fb)
		if derr != nil {
			w.p.offset = next
			cs.fail(w, derr)
			w.p.gen++
		}
	}
	cs.mu.Unlock()
	cs.changed.notify() // another fetcher may wait for the decode to end
}

// peekNext is the offset after the last whole batch of data when it is
// past offset, read from the batch headers alone (decodeRecords checks
// them, and gives the same offset for a record set that is not corrupt).
func peekNext(data []byte, offset int64) (next int64, ok bool) {
	next = offset
	for len(data) >= record.HeaderSize {
		b := record.Batch(data)
		size := int(b.Size())
		if size < record.HeaderSize || size > len(data) {
			break
		}
		next = max(next, b.NextOffset())
		data = data[size:]
	}
	return next, next > offset
}

// findFetch is tp's entry in a Fetch response, or nil.
func findFetch(resp *protocol.FetchResponse, tp TopicPartition) *protocol.FetchPartitionResponse {
	return findPartition(resp.Topics, tp,
		func(t *protocol.FetchTopicResponse) (string, []protocol.FetchPartitionResponse) {
			return t.Name, t.Partitions
		},
		func(p *protocol.FetchPartitionResponse) int32 { return p.Partition })
}

// errBatchTooLarge is a fetch that returned only part of a batch: the
// partition cannot progress until FetchMaxBytes' per-partition limit is
// raised.
var errBatchTooLarge = errors.New("record batch larger than the per-partition fetch limit")

// decodeRecords turns a partition's record set into Records from offset
// on, checking each batch's CRC and framing. data must be owned by the
// caller (the conn hands Fetch bodies over): uncompressed records alias
// it; compressed ones are copied out of the reader's buffer into a shared
// arena. A partial batch at the end (cut by the size limit) is ignored. On
// a corrupt batch it returns the records before it and the error. next is
// the offset to fetch from next. The Records are made in s (the slab of
// the fetch buffer holding data, reused once the buffer is released;
// grown when too small) and recs is s.ptrs.
func decodeRecords(rd *record.Reader, data []byte, offset int64, tp TopicPartition, maxPart int32, s *recSlab) (recs []*Record, next int64, err error) {
	next = offset
	var ar arena
	// One slab and one slice for the whole fetch rather than per batch:
	// the count comes from the batch headers, bounded by what the bytes can
	// hold (a record takes at least minRecordBytes), since the headers are
	// not yet checked.
	n := min(countRecords(data), len(data)/minRecordBytes)
	if cap(s.recs) < n {
		s.recs, s.ptrs = make([]Record, 0, n), make([]*Record, 0, n)
	}
	slab, recs := s.recs[:0], s.ptrs[:0]
	defer func() { s.ptrs = recs[:0] }()
	for len(data) > 0 {
		batch, rest, err := record.NextBatch(data, 0)
		if err != nil {
			var ce *record.CorruptError
			if errors.As(err, &ce) && ce.Check == record.CheckShort {
				if len(recs) == 0 && next == offset && len(data) >= int(maxPart) {
					return recs, next, fmt.Errorf("%w (%d bytes received)", errBatchTooLarge, len(data))
				}
				break
			}
			return recs, next, fmt.Errorf("offset %d: %w", next, err)
		}
		data = rest
		if err := batch.VerifyCRC(); err != nil {
			return recs, next, fmt.Errorf("batch at offset %d: %w", batch.BaseOffset(), err)
		}
		if batch.NextOffset() <= next {
			continue // wholly before the requested offset
		}
		if batch.Attributes().Control() {
			next = batch.NextOffset()
			continue
		}
		if err := rd.Reset(batch); err != nil {
			return recs, next, fmt.Errorf("batch at offset %d: %w", batch.BaseOffset(), err)
		}
		compressed := batch.Attributes().Codec() != record.None
		for rd.Next() {
			r := rd.Record()
			if r.Offset < next {
				continue // records of the batch before the requested offset
			}
			out := Record{Topic: tp.Topic, Partition: tp.Partition, Offset: r.Offset,
				Timestamp: time.UnixMilli(r.Timestamp), Key: ar.own(r.Key, compressed), Value: ar.own(r.Value, compressed)}
			if len(r.Headers) > 0 {
				hs := make([]record.Header, len(r.Headers))
				for i, h := range r.Headers {
					hs[i] = record.Header{Key: ar.own(h.Key, compressed), Value: ar.own(h.Value, compressed)}
				}
				out.Headers = hs
			}
			if len(slab) == cap(slab) {
				// More records than the headers said: a new slab, so the
				// pointers already handed out stay valid.
				slab = make([]Record, 0, max(64, cap(slab)/2))
			}
			slab = append(slab, out)
			recs = append(recs, &slab[len(slab)-1])
		}
		if err := rd.Err(); err != nil {
			return recs, next, fmt.Errorf("batch at offset %d: %w", batch.BaseOffset(), err)
		}
		next = batch.NextOffset()
	}
	return recs, next, nil
}

// minRecordBytes is the smallest encoding of a record: length, attributes,
// timestamp delta, offset delta, key length, value length and header count,
// one byte each.
const minRecordBytes = 7

// countRecords sums the record counts of the whole batches at the start of
// data, reading headers only.
func countRecords(data []byte) int {
	n := 0
	for len(data) >= record.HeaderSize {
		size := int(record.Batch(data).Size())
		if size < record.HeaderSize || size > len(data) {
			break
		}
		if c := record.Batch(data).RecordCount(); c > 0 {
			n += int(c)
		}
		data = data[size:]
	}
	return n
}

// arena copies byte slices out of a reused buffer into chunks that belong
// to the records from then on.
type arena struct{ buf []byte }

const arenaChunk = 64 << 10

// own returns b capped at its length (so appending to it cannot overwrite
// a neighbour), copied into the arena if copy is set. nil stays nil.
func (a *arena) own(b []byte, copyIt bool) []byte {
	if b == nil {
		return nil
	}
	if !copyIt {
		return b[:len(b):len(b)]
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, max(arenaChunk, len(b)))
	}
	s := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[s:len(a.buf):len(a.buf)]
}
