package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// A partition's leadership moves back to its preferred replica by a
// handover (ElectPreferredLeaders) while a producer streams to it with no
// linger, so batches are in flight (up to five per partition with
// idempotence) when the old leader fences and switches (issue 13 item
// 4). Every record is acknowledged — the old leader answers what it took
// before the switch, the client retries what it refused, in sequence
// order — with offsets rising in the order produced, and the partition
// holds every record once, in that order. (The plain producer's side:
// TestLeaderHandoverAnswerIsAwaited, and TestRebalanceLeadersCommandLosesNoAck
// in internal/cluster; SLUICE_PLAIN_HANDOVER=1 runs this test with it too.)
func TestProducerAcrossLeaderHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	modes := []bool{true}
	if os.Getenv("SLUICE_PLAIN_HANDOVER") != "" {
		modes = append(modes, false)
	}
	for _, idem := range modes {
		t.Run(fmt.Sprint("idempotent=", idem), func(t *testing.T) { testLeaderHandover(t, idem) })
	}
}

func testLeaderHandover(t *testing.T, idem bool) {
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
	prod := c.Client(client.Linger(0), client.Idempotent(idem))
	if prod.Idempotent() != idem {
		t.Fatalf("Idempotent() = %v, want %v", prod.Idempotent(), idem)
	}
	var (
		mu      sync.Mutex
		offsets = map[int]int64{}
		fails   []error
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	produced := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
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
	wg.Wait()
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
	cons := c.Client()
	cons.Assign(map[client.TopicPartition]client.Offset{{Topic: "move", Partition: 0}: client.AtStart()})
	var values []string
	var bad error
	poll.Until(t, 30*time.Second, fmt.Sprintf("%d records consumed", produced), func() error {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		defer pcancel()
		f, err := cons.Poll(pctx)
		if err != nil && pctx.Err() == nil {
			return err
		}
		for _, r := range f.Records {
			if want := fmt.Sprintf("%07d", len(values)); string(r.Value) != want || r.Offset != offsets[len(values)] {
				bad = fmt.Errorf("offset %d holds %s, want record %s acknowledged at offset %d", r.Offset, r.Value, want, offsets[len(values)])
				return nil
			}
			values = append(values, string(r.Value))
		}
		if len(values) < produced {
			return fmt.Errorf("%d of %d", len(values), produced)
		}
		return nil
	})
	if bad != nil {
		t.Fatal(bad)
	}
	t.Logf("%d records produced across the handover, every one acknowledged and stored once, in order", produced)
}
