package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/client"
)

// maxFetchErrors bounds the partition errors a tailReader recovers from
// before it gives up: a reader that keeps failing is a finding, not
// something to retry for ever.
const maxFetchErrors = 10_000

// tailReader reads every partition of a topic from given offsets and keeps
// every record in the order read, until it has reached the end offsets
// given by setEnds or its context ends. A partition error (the partition
// pauses) is counted and the partition resumes where it was, after a
// short pause.
type tailReader struct {
	cl    *client.Client
	topic string

	mu        sync.Mutex
	next      []int64
	ends      []int64       // nil until setEnds
	endc      chan struct{} // closed by setEnds
	once      sync.Once
	reads     []bench.Read // owned by run until it returns
	fetchErrs int
}

func newTailReader(cl *client.Client, topic string, starts []int64) *tailReader {
	rd := &tailReader{cl: cl, topic: topic, next: append([]int64(nil), starts...), endc: make(chan struct{})}
	parts := map[client.TopicPartition]client.Offset{}
	for p, o := range starts {
		parts[client.TopicPartition{Topic: topic, Partition: int32(p)}] = client.At(o)
	}
	cl.Assign(parts)
	return rd
}

func (rd *tailReader) setEnds(ends []int64) {
	rd.mu.Lock()
	rd.ends = ends
	rd.mu.Unlock()
	rd.once.Do(func() { close(rd.endc) })
}

func (rd *tailReader) done() bool {
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

func (rd *tailReader) position() []int64 {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return append([]int64(nil), rd.next...)
}

func (rd *tailReader) run(ctx context.Context) error {
	for !rd.done() {
		// Poll wakes at least every second to see whether setEnds made
		// the reader done.
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs, err := rd.cl.Poll(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && pctx.Err() == nil {
			return err
		}
		rd.mu.Lock()
		for _, r := range fs.Records {
			rd.reads = append(rd.reads, bench.Read{Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
			if int(r.Partition) < len(rd.next) {
				rd.next[r.Partition] = r.Offset + 1
			}
		}
		rd.fetchErrs += len(fs.Errors)
		n := rd.fetchErrs
		rd.mu.Unlock()
		if n > maxFetchErrors {
			return fmt.Errorf("%d fetch errors, the last: %v", n, fs.Errors[len(fs.Errors)-1])
		}
		for _, fe := range fs.Errors {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			rd.mu.Lock()
			at := rd.next[fe.Partition]
			rd.mu.Unlock()
			if err := rd.cl.Seek(rd.topic, fe.Partition, at); err != nil {
				return err
			}
		}
	}
	return nil
}
