package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/faultproxy"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
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
	seen := map[string]int{}
	var values []string
	for _, r := range readPartition(t, c, "hang", want) {
		seen[string(r.Value)]++
		values = append(values, string(r.Value))
	}
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

// readPartition reads partition 0 of topic from its start until it has
// at least n records, and returns them.
func readPartition(t *testing.T, c *testcluster.Cluster, topic string, n int) []*client.Record {
	t.Helper()
	cons := c.Client()
	cons.Assign(map[client.TopicPartition]client.Offset{{Topic: topic, Partition: 0}: client.AtStart()})
	var out []*client.Record
	poll.Until(t, 30*time.Second, fmt.Sprintf("%d records consumed", n), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		f, err := cons.Poll(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		out = append(out, f.Records...)
		if len(out) < n {
			return fmt.Errorf("%d of %d", len(out), n)
		}
		return nil
	})
	return out
}

// A partition's leadership moves back to its preferred replica by a
// handover (ElectPreferredLeaders) while a producer streams to it with no
// linger, so batches are in flight (up to five per partition with
// idempotence) when the old leader fences and switches (issue 13 item
// 4). Every record is acknowledged — the old leader answers what it took
// before the switch, the client retries what it refused, in sequence
// order — with offsets rising in the order produced, and the partition
// holds every record once, in that order. (The plain producer's side:
// TestLeaderHandoverAnswerIsAwaited, and TestRebalanceLeadersCommandLosesNoAck
// in internal/cluster.)
func TestProducerAcrossLeaderHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := testcluster.Start(t, 3, testcluster.Options{Configure: func(cfg *broker.Config) {
		cfg.LeaderRebalanceInterval = -1 // only the election moves leadership back
	}})
	admin := c.Client()
	td := testcluster.CreateTopic(t, admin, client.TopicSpec{Name: "move", Partitions: 1, ReplicationFactor: 3})
	preferred := td.Partitions[0].Replicas[0]
	testcluster.WaitFullISR(t, admin, "move", 20*time.Second)
	// A controlled stop moves the leadership away from the preferred
	// replica; back in sync, it is the election's to take back.
	c.Stop(preferred)
	c.Restart(preferred)
	testcluster.WaitFullISR(t, admin, "move", 20*time.Second)
	testcluster.WaitLeader(t, admin, "move", 0, preferred, 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod := c.Client(client.Linger(0))
	if !prod.Idempotent() {
		t.Fatal("the producer is not idempotent")
	}
	var mu sync.Mutex
	offsets := map[int]int64{} // record number → acknowledged offset
	var fails []error
	stop, stopped := make(chan struct{}), make(chan struct{})
	produced := 0
	go func() {
		defer close(stopped)
		for produced < 200_000 {
			select {
			case <-stop:
				return
			default:
			}
			i := produced
			produced++
			prod.Produce(ctx, &client.Record{Topic: "move", Value: []byte(fmt.Sprintf("%07d", i))}, func(r *client.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					fails = append(fails, err)
					return
				}
				offsets[i] = r.Offset
			})
			if i%10 == 9 {
				time.Sleep(time.Millisecond) // bounded rate: about 10 records a millisecond at most
			}
		}
	}()
	acked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(offsets)
	}
	start := time.Now()
	poll.Until(t, 20*time.Second, "1,000 records acknowledged", func() bool { return acked() >= 1000 })
	t.Logf("%v: 1,000 records acknowledged", time.Since(start))
	poll.Until(t, 30*time.Second, "leadership back on the preferred replica", func() error {
		ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
		defer ecancel()
		res, err := admin.ElectPreferredLeaders(ectx, "move")
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Err != nil && !errors.Is(r.Err, protocol.ErrElectionNotNeeded) {
				return r.Err
			}
		}
		return nil
	})
	testcluster.WaitLeader(t, admin, "move", 0, -1, 10*time.Second)
	testcluster.WaitPartition(t, admin, "move", 0, 10*time.Second, "the preferred replica leading", testcluster.LeaderIs(preferred))
	moved := acked()
	t.Logf("%v: the preferred replica leads again", time.Since(start))
	poll.Until(t, 20*time.Second, "1,000 more records acknowledged", func() bool { return acked() >= moved+1000 })
	close(stop)
	<-stopped
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(fails) > 0 {
		t.Fatalf("%d of %d records failed across the handover, the first: %v", len(fails), produced, fails[0])
	}
	for i := 1; i < produced; i++ {
		if offsets[i] <= offsets[i-1] {
			t.Fatalf("record %d acknowledged at offset %d, after record %d at %d", i, offsets[i], i-1, offsets[i-1])
		}
	}
	t.Logf("%v: %d records produced and acknowledged", time.Since(start), produced)
	recs := readPartition(t, c, "move", produced)
	if len(recs) != produced {
		t.Fatalf("%d records stored for %d produced", len(recs), produced)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("%07d", i); string(r.Value) != want || r.Offset != offsets[i] {
			t.Fatalf("offset %d holds %s, want record %s acknowledged at offset %d", r.Offset, r.Value, want, offsets[i])
		}
	}
	t.Logf("%d records produced across the handover, every one acknowledged and stored once, in order", produced)
}
