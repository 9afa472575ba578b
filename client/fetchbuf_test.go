package client

import (
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// TestReleaseReusesFetchMemory consumes an endless partition whose every
// record's value names its offset, releasing every Fetches but the first
// and one dropped by a Seek. Released memory must be reused for later
// responses (the same frame bytes come back), and no record may change
// while the application holds it: the first Fetches, never released,
// keeps its values to the end, and every record polled matches its
// offset (a buffer handed out again while its records were still being
// decoded, buffered or held would show here).
func TestReleaseReusesFetchMemory(t *testing.T) {
	const perFetch = 50
	fc := newFakeCluster(t, 1)
	serveEndless(fc, func(offset int64) record.Batch {
		bld := record.NewBuilder(record.None)
		for i := range int64(perFetch) {
			bld.Append(1700000000000, nil, valueAt(offset+i), nil)
		}
		batch, err := bld.Build()
		if err != nil {
			t.Error(err)
		}
		return append([]byte(nil), batch...)
	})
	c := newTestClient(t, fc, FetchMaxWait(10*time.Millisecond))
	c.Assign(map[TopicPartition]Offset{{"t", 0}: At(0)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	next := int64(0)
	poll := func() Fetches {
		t.Helper()
		fs, err := c.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range fs.Errors {
			t.Fatal(e)
		}
		for _, r := range fs.Records {
			if r.Offset != next || string(r.Value) != string(valueAt(r.Offset)) {
				t.Fatalf("record at offset %d (want %d): value %q", r.Offset, next, r.Value)
			}
			next++
		}
		return fs
	}
	kept := poll()
	keptValues := make([]string, len(kept.Records))
	for i, r := range kept.Records {
		keptValues[i] = string(r.Value)
	}
	frames := map[*byte]int{} // the frame bytes a Poll's first record is in
	reused := 0
	for i := 0; i < 300 && (reused < 5 || i < 100); i++ {
		fs := poll()
		if len(fs.Records) > 0 {
			p := unsafe.SliceData(fs.Records[0].Value)
			if frames[p] > 0 {
				reused++
			}
			frames[p]++
		}
		if i == 50 {
			// Whatever is buffered is dropped unpolled: its hold ends.
			if err := c.Seek("t", 0, next); err != nil {
				t.Fatal(err)
			}
		}
		cp := fs
		fs.Release()
		cp.Release() // a copy of a released Fetches: nothing
		if fs.Records != nil {
			t.Fatal("Release left Records set")
		}
	}
	for i, r := range kept.Records {
		if string(r.Value) != keptValues[i] {
			t.Fatalf("record %d of the Fetches never released changed: %q, was %q", i, r.Value, keptValues[i])
		}
	}
	if reused < 5 {
		t.Errorf("a released response's memory was reused %d times in %d polls, want at least 5", reused, len(frames))
	}
	kept.Release()
}

func valueAt(offset int64) []byte { return fmt.Appendf(nil, "value-%08d", offset) }

// serveEndless makes fc's broker 1 lead partition 0 of topic "t" and
// answer every fetch of it with the batch batchAt gives for the offset
// asked for, stamped with that offset: an endless partition. The batch
// is encoded into the response before the broker reads the next
// request, so batchAt may hand out one batch each time.
func serveEndless(fc *fakeCluster, batchAt func(offset int64) record.Batch) {
	fc.addTopic("t", 1)
	fc.setHook(func(_ *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key != protocol.Fetch {
			return action{}
		}
		fp := req.(*protocol.FetchRequest).Topics[0].Partitions[0]
		batch := batchAt(fp.FetchOffset)
		batch.SetBaseOffset(fp.FetchOffset)
		return action{resp: &protocol.FetchResponse{Topics: []protocol.FetchTopicResponse{{Name: "t",
			Partitions: []protocol.FetchPartitionResponse{{Partition: 0, HighWatermark: batch.NextOffset(),
				Records: batch}}}}}}
	})
}
