package bench

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// TestProduceGoesOnPastAStalledPartition pauses the connections of the
// broker leading one of two partitions, as a hung (SIGSTOPped) broker
// would, while bench produce runs: the records of the stalled partition
// must count as errors after the delivery timeout, the other partition's
// records must keep being acknowledged, and the run must end on time.
func TestProduceGoesOnPastAStalledPartition(t *testing.T) {
	c := testcluster.Start(t, 2, testcluster.Options{ClientProxies: true})
	admin := c.Client()
	desc := testcluster.CreateTopic(t, admin, client.TopicSpec{Name: "stall", Partitions: 2, ReplicationFactor: 1})
	l0, l1 := desc.Partitions[0].Leader, desc.Partitions[1].Leader
	if l0 == l1 {
		t.Skipf("both partitions led by broker %d; the test needs them apart", l0)
	}
	// Clients dial the brokers through their proxies, as c.Client's do.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		for _, id := range c.IDs() {
			if b, p := c.Broker(id), c.Proxy(id); b != nil && p != nil && b.Addr() == addr {
				addr = p.Addr()
			}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	const timeout, runFor = time.Second, 4 * time.Second
	cfg := Config{
		// The client's own bounds on the paused connection are short so
		// that closing the clients at the end does not wait 40 s for the
		// request in flight there.
		Client: []client.Opt{client.SeedBrokers(c.Broker(l0).Addr()), client.Dialer(dial),
			client.RequestTimeout(2 * time.Second), client.ProduceTimeout(time.Second), client.DialTimeout(time.Second)},
		Producer: []client.Opt{client.Linger(time.Millisecond), client.Acks(client.AcksLeader)},
		Topic:    "stall", RecordSize: 16, KeyCount: 64, Duration: runFor, DeliveryTimeout: timeout,
	}
	// The run bootstraps from l0 alone, which must know the topic.
	testcluster.WaitFullISR(t, c.Client(client.SeedBrokers(c.Broker(l0).Addr())), "stall", 15*time.Second)
	c.Proxy(l1).Pause()
	t.Cleanup(c.Proxy(l1).Resume)

	ctx := testCtx(t)
	start := time.Now()
	r, err := Produce(ctx, cfg)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("elapsed %v, report %+v", elapsed, r)
	// Opening the clients and closing them may each meet the paused
	// broker once (1 s dial timeout, 2 s request timeout); before the
	// change the run waited for the client's 2 min delivery timeout.
	if elapsed > runFor+timeout+25*time.Second {
		t.Errorf("run of %v with a %v delivery timeout took %v: the stalled partition held it", runFor, timeout, elapsed)
	}
	if r.Errors == 0 {
		t.Errorf("no errors reported for the stalled partition: %+v", r)
	}
	if r.Records == 0 {
		t.Errorf("no record acknowledged: the healthy partition stopped with the stalled one")
	}
	// A fixed ring of 4 × 16,384 records stopped the whole run once it
	// wrapped onto a record of the stalled partition.
	if r.Records+r.Errors <= 4<<14 {
		t.Errorf("%d records acknowledged and %d failed: the run stopped with the stall", r.Records, r.Errors)
	}
	if r.Latency == nil || r.Latency.Count != r.Records {
		t.Errorf("latency %+v for %d records", r.Latency, r.Records)
	}
}
