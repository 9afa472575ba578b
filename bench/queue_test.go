package bench

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// Queue accepts every record the topic held, with more workers than
// partitions, and a second run in the same group finds nothing left.
func TestQueue(t *testing.T) {
	addr := startBroker(t)
	ctx := testCtx(t)
	cfg := Config{Client: []client.Opt{client.SeedBrokers(addr)}, Topic: "q", Create: true,
		Partitions: 2, RecordSize: 100, Producers: 1, Consumers: 3, Records: 3000,
		Producer: []client.Opt{client.Linger(time.Millisecond)}}
	if r, err := Produce(ctx, cfg); err != nil || r.Records != 3000 {
		t.Fatalf("produce: %+v, %v", r, err)
	}
	cfg.Records = 0
	cfg.Group = "bench"
	r, err := Queue(ctx, cfg)
	if err != nil || r.Records != 3000 || r.Errors != 0 || r.Bytes != 3000*100 || r.Latency == nil || r.Latency.Count == 0 {
		t.Fatalf("queue report %+v, %v", r, err)
	}
	// The same group again: everything is accepted, nothing comes.
	cfg.ReadTimeout = time.Second
	if r, err := Queue(ctx, cfg); err == nil || r.Records != 0 {
		t.Fatalf("second run: %+v, %v; want no record and a read timeout", r, err)
	}
}
