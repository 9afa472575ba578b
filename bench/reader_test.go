package bench

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/protocol"
)

// A Reader stops at the first partition error by default; with
// MaxFetchErrors it resumes the partition where it was and gives up only
// past that many errors. A start offset beyond the end of an empty
// partition fails every fetch (OFFSET_OUT_OF_RANGE).
func TestReaderFetchErrors(t *testing.T) {
	addr := startBroker(t)
	ctx := testCtx(t)
	cl, err := client.New(ctx, client.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.CreateTopics(ctx, client.TopicSpec{Name: "r", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}

	rd := NewReader(cl, "r", []int64{100})
	rd.SetEnds([]int64{101})
	if err := rd.Run(ctx); !errors.Is(err, protocol.ErrOffsetOutOfRange) {
		t.Fatalf("Run: %v, want the partition's OFFSET_OUT_OF_RANGE", err)
	}
	cl.Unassign(client.TopicPartition{Topic: "r", Partition: 0})

	rd = NewReader(cl, "r", []int64{100})
	rd.MaxFetchErrors = 3
	rd.SetEnds([]int64{101})
	err = rd.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "4 fetch errors") || rd.FetchErrors() != 4 {
		t.Fatalf("Run: %v after %d fetch errors, want it to give up after the 4th", err, rd.FetchErrors())
	}
	if got := rd.Position(); got[0] != 100 {
		t.Fatalf("position %v, want [100]: nothing was read", got)
	}
}
