package replica

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluicemq/sluice/protocol"
)

// BenchmarkFetcherDo is one Fetch round trip of the fetcher over loopback
// TCP, answered with 64 KiB of records by a server that only copies the
// correlation id into a prepared frame: what the fetcher itself costs per
// request. Decoding into a reused response keeps the count to the
// fetcher's own allocations (0 per op: the records alias its frame
// buffer).
func BenchmarkFetcherDo(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	resp := &protocol.FetchResponse{Topics: []protocol.FetchTopicResponse{{Name: "t", Partitions: []protocol.FetchPartitionResponse{{
		Partition: 0, HighWatermark: 1000, Records: make([]byte, 64<<10)}}}}}
	frame, err := protocol.AppendResponse(nil, 0, 0, resp)
	if err != nil {
		b.Fatal(err)
	}
	req := &protocol.FetchRequest{ReplicaID: 1, MaxWaitMs: 500, MinBytes: 1, MaxBytes: 16 << 20, Topics: []protocol.FetchTopic{{Name: "t",
		Partitions: []protocol.FetchPartition{{Partition: 0, FetchOffset: 0, LogStartOffset: -1, PartitionMaxBytes: 4 << 20}}}}}
	// Every request is the same frame but for its correlation id (after
	// length, key and version), which the answer echoes.
	reqFrame, err := protocol.AppendRequest(nil, &protocol.RequestHeader{Key: protocol.Fetch}, req)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		in := make([]byte, len(reqFrame))
		for {
			if _, err := io.ReadFull(nc, in); err != nil {
				return
			}
			copy(frame[4:8], in[8:12])
			if _, err := nc.Write(frame); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fetcher{cfg: FetcherConfig{Leader: 2, Self: 1, Addr: func() (string, bool) { return ln.Addr().String(), true }},
		log: zap.NewNop(), ctx: ctx, cancel: cancel}
	f.cfg.applyDefaults()
	b.Cleanup(func() {
		f.closeConn()
		cancel()
		ln.Close()
		wg.Wait()
	})
	var got protocol.FetchResponse
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if err := f.do(req, &got, 5*time.Second, nil); err != nil {
			b.Fatal(err)
		}
	}
	if len(got.Topics) != 1 || len(got.Topics[0].Partitions[0].Records) != 64<<10 {
		b.Fatalf("response %+v", got.Topics)
	}
}
