package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// A verify whose reads cannot complete says so and calls nothing lost:
// the only broker stops once the producers are done, so the end offsets
// cannot be listed within ReadTimeout (the lookup retries the refused
// connections until then). Every acknowledged record is "not read back",
// none "lost".
func TestVerifyCouldNotReadBack(t *testing.T) {
	b := newBroker(t)
	ctx := testCtx(t)
	start := time.Now()
	h, err := Verify(ctx, Config{
		Client: []client.Opt{client.SeedBrokers(b.Addr()), client.RetryBackoff(time.Millisecond, 20*time.Millisecond)},
		Topic:  "gone", Create: true, Partitions: 2, Records: 500, RecordSize: 40,
		ReadTimeout:  time.Second,
		AfterProduce: func() { b.Close() },
	})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "end offsets after the producers") {
		t.Fatalf("Verify: %v, want the end-offset lookup's failure", err)
	}
	if h.ReadBackError == "" || h.Final != nil || h.Ends != nil {
		t.Fatalf("history: read back error %q, %d final reads, ends %v: want the error and no final read", h.ReadBackError, len(h.Final), h.Ends)
	}
	r := Check(h)
	if r.Acked != 500 || r.Lost != 0 || r.NotReadBack != 500 || r.ReadBack || r.Anomalies() != 0 || r.OK() {
		t.Fatalf("check: %+v, want 500 acknowledged, 0 lost, 500 not read back, not OK", r)
	}
	if took > 20*time.Second {
		t.Errorf("Verify took %v with a 1s read timeout", took)
	}
}

// The final read that cannot reach the end offsets (here past the end of
// the log) gives up after ReadTimeout, says where it stopped, and returns
// what it read. Check then judges the acknowledgements it did not get to
// as not read back, not as lost.
func TestFinalReadIncomplete(t *testing.T) {
	addr := startBroker(t)
	ctx := testCtx(t)
	cfg := Config{Client: []client.Opt{client.SeedBrokers(addr)}, Topic: "short", Create: true,
		Partitions: 2, Records: 200, RecordSize: 40, ReadTimeout: 500 * time.Millisecond}
	h, err := Verify(ctx, cfg)
	if r := Check(h); err != nil || !r.OK() {
		t.Fatalf("verify: %v, %+v", err, r)
	}
	// Ten more acknowledgements in partition 1 than its log holds.
	ends := append([]int64(nil), h.Ends...)
	for i := range 10 {
		h.Sends = append(h.Sends, Send{Producer: 9, Seq: int64(i), Value: string(VerifyValue("x", 9, int64(i), 40)),
			Outcome: Acked, Partition: 1, Offset: ends[1] + int64(i)})
	}
	ends[1] += 10

	cfg, err = cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	reads, err := finalRead(ctx, &cfg, 2, ends)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("final read took %v with a 500ms read timeout", took)
	}
	if err == nil || !strings.Contains(err.Error(), "short of the end offsets") {
		t.Fatalf("final read: %v, want it short of the end offsets", err)
	}
	if len(reads) != 200 {
		t.Fatalf("final read returned %d reads, want the 200 in the log", len(reads))
	}
	h.Final, h.ReadBackError = reads, err.Error()
	r := Check(h)
	if r.Lost != 0 || r.NotReadBack != 10 || r.Anomalies() != 0 || r.ReadBack || r.OK() {
		t.Fatalf("check: %+v, want 0 lost, 10 not read back, not OK", r)
	}
}
