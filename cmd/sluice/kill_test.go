package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// TestSIGKILLLosesNothingAcknowledged produces with acks=all to an
// fsync=always topic while the broker process is killed with SIGKILL; after
// a restart every acknowledged record is at its acknowledged offset,
// byte-identical, and every batch read back is whole (the consumer checks
// each batch's CRC).
func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	addr, kill := startBrokerKillable(t, bin, data)
	ctx := context.Background()
	admin, err := client.New(ctx, client.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopics(ctx, client.TopicSpec{Name: "durable", Partitions: 2, Configs: map[string]string{"fsync": "always"}}); err != nil {
		t.Fatal(err)
	}
	admin.Close()

	prod, err := client.New(ctx, client.SeedBrokers(addr), client.Acks(client.AcksAll),
		client.Linger(time.Millisecond), client.RequestRetries(0), client.DeliveryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	type acked struct {
		partition int32
		offset    int64
	}
	var (
		mu      sync.Mutex
		ackedBy = map[string]acked{}
		wg      sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	stopProducing := make(chan struct{})
	go func() {
		defer close(enough)
		for i := 0; ; i++ {
			select {
			case <-stopProducing:
				return
			default:
			}
			if i == 20000 { // bound: the kill comes long before this
				return
			}
			v := []byte(fmt.Sprintf("rec-%06d-%s", i, bytes.Repeat([]byte{'x'}, i%300)))
			wg.Add(1)
			prod.Produce(ctx, &client.Record{Topic: "durable", Key: []byte(fmt.Sprint(i % 13)), Value: v}, func(r *client.Record, err error) {
				defer wg.Done()
				if err != nil {
					return
				}
				mu.Lock()
				ackedBy[string(r.Value)] = acked{r.Partition, r.Offset}
				n := len(ackedBy)
				mu.Unlock()
				if n == 2000 {
					once.Do(func() { close(stopProducing) })
				}
			})
		}
	}()
	// Kill while records are still in flight: after the 2,000th
	// acknowledgement, with the producer still sending.
	deadline := time.After(60 * time.Second)
	for {
		mu.Lock()
		n := len(ackedBy)
		mu.Unlock()
		if n >= 1500 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("only %d records acknowledged in 60 s", n)
		case <-time.After(5 * time.Millisecond):
		}
	}
	kill()
	once.Do(func() { close(stopProducing) })
	<-enough
	prod.Close() // fails what is still buffered; those were never acknowledged
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d records acknowledged before SIGKILL", len(ackedBy))
	addr, _ = startBroker(t, bin, data)
	cons, err := client.New(ctx, client.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	ends, err := cons.ListOffsets(ctx, "durable", client.AtEnd())
	if err != nil {
		t.Fatal(err)
	}
	assign := map[client.TopicPartition]client.Offset{}
	total := int64(0)
	for _, e := range ends {
		assign[client.TopicPartition{Topic: "durable", Partition: e.Partition}] = client.AtStart()
		total += e.Offset
	}
	cons.Assign(assign)
	found := map[acked]string{}
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for n := int64(0); n < total; {
		fs, err := cons.Poll(pctx)
		if err != nil {
			t.Fatalf("poll after %d of %d: %v", n, total, err)
		}
		if len(fs.Errors) > 0 {
			t.Fatalf("fetch error: %v", fs.Errors[0])
		}
		for _, r := range fs.Records {
			found[acked{r.Partition, r.Offset}] = string(r.Value)
			n++
		}
	}
	lost := 0
	for v, a := range ackedBy {
		if found[a] != v {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged %q at %d/%d, found %q", v, a.partition, a.offset, found[a])
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost", lost, len(ackedBy))
	}
}
