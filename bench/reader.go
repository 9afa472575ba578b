package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicemq/sluice/client"
)

// Reader is a verify consumer: it reads every partition of a topic from
// given offsets and keeps each record in the order read, until it has
// reached the end offsets given by SetEnds or its context ends. By default
// the first partition error ends Run with that error; with MaxFetchErrors
// set (a chaos run, where errors are expected) a partition that fails
// resumes where it was after a short pause, and Run fails only past that
// many errors.
type Reader struct {
	cl    *client.Client
	topic string
	// MaxFetchErrors is how many partition errors Run recovers from; set
	// it before Run.
	MaxFetchErrors int

	mu        sync.Mutex
	ends      []int64 // nil until set
	next      []int64
	endc      chan struct{} // closed by SetEnds
	once      sync.Once
	reads     []Read // owned by Run until it returns
	fetchErrs int
}

// NewReader assigns cl every partition of topic from starts (indexed by
// partition) and returns the Reader that will read them.
func NewReader(cl *client.Client, topic string, starts []int64) *Reader {
	rd := &Reader{cl: cl, topic: topic, next: append([]int64(nil), starts...), endc: make(chan struct{})}
	parts := map[client.TopicPartition]client.Offset{}
	for p, o := range starts {
		parts[client.TopicPartition{Topic: topic, Partition: int32(p)}] = client.At(o)
	}
	cl.Assign(parts)
	return rd
}

// SetEnds gives the reader the offsets to read up to. Once.
func (rd *Reader) SetEnds(ends []int64) {
	rd.mu.Lock()
	rd.ends = ends
	rd.mu.Unlock()
	rd.once.Do(func() { close(rd.endc) })
}

// Done reports whether every partition has been read to its end.
func (rd *Reader) Done() bool {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.ends == nil {
		return false
	}
	for p, end := range rd.ends {
		if rd.next[p] < end {
			return false
		}
	}
	return true
}

// Position is the next offset to read, per partition.
func (rd *Reader) Position() []int64 {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return append([]int64(nil), rd.next...)
}

// FetchErrors is how many partition errors the reader met.
func (rd *Reader) FetchErrors() int {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.fetchErrs
}

// Reads is every record read, in the order read; call it after Run
// returned.
func (rd *Reader) Reads() []Read { return rd.reads }

// Run reads until Done or ctx ends (which is not an error).
func (rd *Reader) Run(ctx context.Context) error {
	// Until the ends are known, Poll must also return when they arrive:
	// they may have been read already.
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-rd.endc:
			cancel()
		case <-ectx.Done():
		}
	}()
	for !rd.Done() {
		pctx := ectx
		if ectx.Err() != nil {
			pctx = ctx
		}
		fs, err := rd.cl.Poll(pctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && pctx.Err() == nil {
			return err
		}
		rd.mu.Lock()
		for _, r := range fs.Records {
			rd.reads = append(rd.reads, Read{Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
			if int(r.Partition) < len(rd.next) {
				rd.next[r.Partition] = r.Offset + 1
			}
		}
		rd.fetchErrs += len(fs.Errors)
		n := rd.fetchErrs
		rd.mu.Unlock()
		if len(fs.Errors) == 0 {
			continue
		}
		if n > rd.MaxFetchErrors {
			if rd.MaxFetchErrors == 0 {
				return fs.Errors[0]
			}
			return fmt.Errorf("%d fetch errors, the last: %w", n, fs.Errors[len(fs.Errors)-1])
		}
		if err := rd.resume(ctx, fs.Errors); err != nil {
			return err
		}
	}
	return nil
}

// resume seeks each failed (paused) partition back to where it was, after
// a short pause so a failing partition does not spin.
func (rd *Reader) resume(ctx context.Context, errs []*client.FetchError) error {
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(100 * time.Millisecond):
	}
	for _, fe := range errs {
		if fe.Topic != rd.topic || fe.Partition < 0 || int(fe.Partition) >= len(rd.next) {
			continue // not one of ours (never expected)
		}
		rd.mu.Lock()
		at := rd.next[fe.Partition]
		rd.mu.Unlock()
		if err := rd.cl.Seek(rd.topic, fe.Partition, at); err != nil {
			return err
		}
	}
	return nil
}
