package cost

import (
	"context"
	"fmt"
	"sync"

	"github.com/sluicemq/sluice/client"
)

// ProduceN produces n records with value to topic through cl (no key:
// the client's sticky partitioning), waits until every one is
// acknowledged and returns the first error any had. Records come from a
// ring of chunks: before a chunk is refilled, only that chunk's previous
// round is waited for, so that several chunks are always in flight and
// the loop allocates no record of its own.
func ProduceN(ctx context.Context, cl *client.Client, topic string, value []byte, n int) error {
	const chunk, chunks = 1 << 15, 4
	recs := make([]client.Record, chunk*chunks)
	var wgs [chunks]sync.WaitGroup
	var failed sync.Once
	var firstErr error
	cbs := make([]func(*client.Record, error), chunks)
	for i := range cbs {
		wg := &wgs[i]
		cbs[i] = func(_ *client.Record, err error) {
			if err != nil {
				failed.Do(func() { firstErr = err })
			}
			wg.Done()
		}
	}
	for i := range n {
		slot := i % len(recs)
		c := slot / chunk
		if slot%chunk == 0 {
			wgs[c].Wait()
		}
		r := &recs[slot]
		*r = client.Record{Topic: topic, Value: value}
		wgs[c].Add(1)
		cl.Produce(ctx, r, cbs[c])
	}
	err := cl.Flush(ctx)
	for i := range wgs {
		wgs[i].Wait()
	}
	if firstErr != nil {
		return fmt.Errorf("cost: produce to %s: %w", topic, firstErr)
	}
	if err != nil {
		return fmt.Errorf("cost: flush %s: %w", topic, err)
	}
	return nil
}

// ConsumeN assigns cl partitions 0..partitions-1 of topic from their
// start, polls until it has read n records, and unassigns them.
func ConsumeN(ctx context.Context, cl *client.Client, topic string, partitions int32, n int) error {
	parts := make(map[client.TopicPartition]client.Offset, partitions)
	tps := make([]client.TopicPartition, 0, partitions)
	for p := range partitions {
		tp := client.TopicPartition{Topic: topic, Partition: p}
		parts[tp] = client.AtStart()
		tps = append(tps, tp)
	}
	cl.Assign(parts)
	defer cl.Unassign(tps...)
	for got := 0; got < n; {
		fs, err := cl.Poll(ctx)
		if err != nil {
			return fmt.Errorf("cost: consume %s after %d of %d records: %w", topic, got, n, err)
		}
		got += len(fs.Records)
	}
	return nil
}
