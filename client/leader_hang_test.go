package client_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/faultproxy"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// A partition's leader hangs — its client connections stall, then the
// broker dies without a word, as a SIGSTOPped broker that the controller
// fences — while a producer has batches in flight to it (issue 13 item
// 3). The producer must not wait on the hung connection for its request
// timeout: its next acknowledgement comes from the new leader within about
// a second of the election. An idempotent producer resends the batches in
// flight there and writes nothing twice; without idempotence they fail at
// once, indeterminate.
func TestProducerMovesOnWhenLeaderHangs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	for _, idem := range []bool{true, false} {
		t.Run(fmt.Sprint("idempotent=", idem), func(t *testing.T) { testLeaderHangs(t, idem) })
	}
}

func testLeaderHangs(t *testing.T, idem bool) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	admin := c.Client()
	testcluster.CreateTopic(t, admin, client.TopicSpec{Name: "hang", Partitions: 1, ReplicationFactor: 3})
	testcluster.WaitFullISR(t, admin, "hang", 20*time.Second)
	old := testcluster.WaitLeader(t, admin, "hang", 0, -1, 10*time.Second)

	// The producer reaches every broker through a proxy of the test's own,
	// which, unlike the cluster's (Options.ClientProxies), outlives Kill:
	// its connections to the dead broker stay open and silent.
	proxies := map[string]*faultproxy.Proxy{}
	var seeds []string
	for _, id := range c.IDs() {
		addr := c.Broker(id).Addr()
		p, err := faultproxy.Listen("127.0.0.1:0", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		proxies[addr] = p
		if id != old {
			seeds = append(seeds, addr)
		}
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if p := proxies[addr]; p != nil {
			addr = p.Addr()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod, err := client.New(ctx, client.SeedBrokers(seeds...), client.Dialer(dial), client.Linger(0),
		client.RetryBackoff(10*time.Millisecond, 200*time.Millisecond), client.Idempotent(idem))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if idem != prod.Idempotent() {
		t.Fatalf("Idempotent() = %v, want %v", prod.Idempotent(), idem)
	}

	// A steady stream: one record every 2 ms, each ack's time kept.
	var (
		mu    sync.Mutex
		acks  []time.Time
		fails []error
		acked = map[string]bool{}
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	produced := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			rec := &client.Record{Topic: "hang", Value: []byte(fmt.Sprintf("%06d", produced))}
			produced++
			prod.Produce(context.Background(), rec, func(_ *client.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					fails = append(fails, err)
					return
				}
				acked[string(rec.Value)] = true
				acks = append(acks, time.Now())
			})
		}
	}()
	ackedSince := func(since time.Time) (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, at := range acks {
			if at.After(since) {
				n++
			}
		}
		return n
	}
	poll.Until(t, 20*time.Second, "100 records acknowledged", func() bool { return ackedSince(time.Time{}) >= 100 })

	proxies[c.Broker(old).Addr()].Pause()
	hung := time.Now()
	c.Kill(old)
	leader := testcluster.WaitLeader(t, admin, "hang", 0, old, 30*time.Second)
	elected := time.Now()
	defer func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("at the failure: %d records produced, %d acknowledged (%d after the hang), %d failed; leader %d hung at %v, broker %d elected %v later",
				produced, len(acks), len(acks)-countBefore(acks, hung), len(fails), old, hung.Format("15:04:05.000"), leader, elected.Sub(hung))
			for i, err := range fails {
				if i == 5 {
					break
				}
				t.Logf("failure %d: %v", i, err)
			}
		}
	}()
	poll.Until(t, 20*time.Second, "an acknowledgement after the election", func() bool { return ackedSince(hung) > 0 })
	mu.Lock()
	var first time.Time
	for _, at := range acks {
		if at.After(hung) {
			first = at
			break
		}
	}
	mu.Unlock()
	gap := first.Sub(elected)
	t.Logf("leader %d hung; broker %d elected %v later (as seen by polling metadata); first ack after the hang %v after the election",
		old, leader, elected.Sub(hung), gap)
	if gap > 3*time.Second {
		t.Errorf("first acknowledgement %v after the new leader's election, want about 1 s", gap)
	}

	close(stop)
	wg.Wait()
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, err := range fails {
		if idem || !client.IsIndeterminate(err) {
			t.Errorf("%d records failed, one with %v", len(fails), err)
			break
		}
	}
	t.Logf("%d records produced, %d failed (indeterminate)", produced, len(fails))
	mu.Unlock()

	// Every record once, in order, on the new leader; without idempotence
	// those that failed (indeterminate) may be missing.
	want := produced
	if !idem {
		want = len(acked)
	}
	cons := c.Client()
	cons.Assign(map[client.TopicPartition]client.Offset{{Topic: "hang", Partition: 0}: client.AtStart()})
	seen := map[string]int{}
	var values []string
	poll.Until(t, 20*time.Second, fmt.Sprintf("%d records consumed", want), func() error {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		defer pcancel()
		f, err := cons.Poll(pctx)
		if err != nil && pctx.Err() == nil {
			return err
		}
		for _, r := range f.Records {
			seen[string(r.Value)]++
			values = append(values, string(r.Value))
		}
		if len(values) < want {
			return fmt.Errorf("%d of %d", len(values), want)
		}
		return nil
	})
	if len(seen) != len(values) {
		t.Errorf("%d of %d records stored more than once", len(values)-len(seen), len(values))
	}
	for i := 1; i < len(values); i++ {
		if values[i] <= values[i-1] {
			t.Fatalf("offset %d holds %s after %s: reordered", i, values[i], values[i-1])
		}
	}
	for v := range acked {
		if seen[v] != 1 {
			t.Errorf("acknowledged record %s stored %d times", v, seen[v])
		}
	}
	if idem && len(values) != produced {
		t.Errorf("%d records stored for %d produced", len(values), produced)
	}
}

// countBefore is how many of the times are not after t.
func countBefore(times []time.Time, t time.Time) int {
	n := 0
	for _, at := range times {
		if !at.After(t) {
			n++
		}
	}
	return n
}
