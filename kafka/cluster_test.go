package kafka

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// kafkaCluster is a testcluster of n brokers, each with a Kafka listener
// (startKafkaCluster applies configure to each broker's configuration).
type kafkaCluster struct {
	*testcluster.Cluster
	addrs map[int32]string
	stop  map[int32]func() // stops a broker's Kafka listener
}

func startKafkaCluster(t *testing.T, n int, configure ...func(*broker.Config)) *kafkaCluster {
	t.Helper()
	lns := map[int32]net.Listener{}
	kc := &kafkaCluster{addrs: map[int32]string{}, stop: map[int32]func(){}}
	for id := int32(1); id <= int32(n); id++ {
		lns[id] = poll.Listen(t, "127.0.0.1:0")
		kc.addrs[id] = lns[id].Addr().String()
	}
	kc.Cluster = testcluster.Start(t, n, testcluster.Options{Configure: func(c *broker.Config) {
		c.KafkaAdvertisedAddr = kc.addrs[c.BrokerID]
		for _, f := range configure {
			f(c)
		}
	}})
	for id, ln := range lns {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		srv := New(kc.Broker(id), zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
		go func() { defer close(done); srv.Serve(ctx, ln) }()
		var once sync.Once
		kc.stop[id] = func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(kc.stop[id])
	}
	return kc
}

// controllerAndOther waits until every broker knows the same controller
// and returns it and another broker.
func (kc *kafkaCluster) controllerAndOther(t *testing.T) (ctrl, other int32) {
	t.Helper()
	poll.Until(t, 30*time.Second, "a controller every broker knows", func() error {
		ctrl = kc.Broker(1).Metadata().ControllerID
		for _, id := range kc.IDs() {
			if got := kc.Broker(id).Metadata().ControllerID; got < 0 || got != ctrl {
				return fmt.Errorf("broker %d: controller %d, broker 1: %d", id, got, ctrl)
			}
		}
		return nil
	})
	for _, id := range kc.IDs() {
		if id != ctrl {
			return ctrl, id
		}
	}
	t.Fatal("one broker only")
	return
}

// replicatedTopic creates name with replication factor 3 and
// min.insync.replicas 2 and waits for its full ISR.
func (kc *kafkaCluster) replicatedTopic(t *testing.T, ctx context.Context, adm *kadm.Client, name string, partitions int32) {
	t.Helper()
	isr := "2"
	createTopic(t, ctx, adm, name, partitions, 3, map[string]*string{"min.insync.replicas": &isr})
	testcluster.WaitFullISR(t, kc.Client(), name, 20*time.Second)
}

func (kc *kafkaCluster) seeds() []string {
	var out []string
	for _, a := range kc.addrs {
		out = append(out, a)
	}
	return out
}

// TestFranzLeaderFailover produces idempotently with acks=all to a
// 3-broker cluster (replication factor 3, min.insync.replicas 2) while the
// leader of partition 0 is killed, then consumes everything: every
// acknowledged record is there, exactly once, in produce order per
// partition (the verify-style check).
func TestFranzLeaderFailover(t *testing.T) {
	ctx := testContext(t)
	kc := startKafkaCluster(t, 3)
	adm := kadm.NewClient(newClient(t, kc.seeds()))
	// Every broker lists all three Kafka listeners once gossip spread
	// their addresses. Asked over raw connections: kgo answers a
	// metadata request from what it last cached.
	poll.Until(t, 30*time.Second, "three brokers in every broker's Kafka metadata", func() error {
		for id, a := range kc.addrs {
			c := dialRaw(t, a)
			req := kmsg.NewPtrMetadataRequest()
			req.SetVersion(1)
			resp := kmsg.NewPtrMetadataResponse()
			resp.SetVersion(1)
			err := resp.ReadFrom(c.request(req, 1))
			c.nc.Close()
			if err != nil {
				return err
			}
			if len(resp.Brokers) != 3 {
				return fmt.Errorf("broker %d lists %d brokers", id, len(resp.Brokers))
			}
		}
		return nil
	})
	kc.replicatedTopic(t, ctx, adm, "ha", 3)

	pr := newClient(t, kc.seeds(), kgo.DefaultProduceTopic("ha"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(60*time.Second), kgo.ProducerLinger(time.Millisecond))
	const n = 3000
	var mu sync.Mutex
	acked := map[string]int32{} // value → partition
	var failed []error
	var wg sync.WaitGroup
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			wg.Add(1)
			v := strconv.Itoa(i)
			pr.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%11)), Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = append(failed, err)
					return
				}
				acked[v] = r.Partition
			})
		}
	}
	produce(0, n/3)
	if err := pr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	md, err := adm.ListTopics(ctx, "ha")
	if err != nil {
		t.Fatal(err)
	}
	leader := md["ha"].Partitions[0].Leader
	kc.stop[leader]()
	kc.Kill(leader)
	produce(n/3, n)
	wg.Wait()
	mu.Lock()
	if len(failed) > 0 {
		t.Fatalf("%d records failed after the leader kill, the first: %v", len(failed), failed[0])
	}
	mu.Unlock()
	if len(acked) != n {
		t.Fatalf("%d records acknowledged, want %d", len(acked), n)
	}

	var alive []string
	for id, a := range kc.addrs {
		if id != leader {
			alive = append(alive, a)
		}
	}
	got := consumeN(t, alive[0], "ha", n)
	last := map[int32]map[string]int{} // partition → key → last value seen
	for _, r := range got {
		v := string(r.Value)
		p, ok := acked[v]
		if !ok {
			t.Fatalf("consumed %q, never acknowledged (or twice)", v)
		}
		if p != r.Partition {
			t.Fatalf("%q acknowledged in partition %d, consumed from %d", v, p, r.Partition)
		}
		delete(acked, v)
		i, _ := strconv.Atoi(v)
		if last[p] == nil {
			last[p] = map[string]int{}
		}
		if prev, ok := last[p][string(r.Key)]; ok && prev > i {
			t.Fatalf("partition %d key %s: %d after %d", p, r.Key, i, prev)
		}
		last[p][string(r.Key)] = i
	}
	if len(acked) > 0 {
		t.Fatalf("%d acknowledged records lost", len(acked))
	}
	t.Logf("killed broker %d (leader of ha[0]); %d records acknowledged and consumed exactly once", leader, n)
}

// TestFranzGroupCoordinatorFailover runs a kgo consumer group (two
// members, the classic protocol, autocommit) on a 3-broker cluster and
// kills the broker that coordinates the group (the leader of its offsets
// partition): the group moves to the new coordinator, which loaded the
// group and its commits from the replicated partition, and every record,
// produced before and after the kill, is consumed; the final commits are
// at each partition's end.
func TestFranzGroupCoordinatorFailover(t *testing.T) {
	ctx := testContext(t)
	kc := startKafkaCluster(t, 3)
	adm := kadm.NewClient(newClient(t, kc.seeds()))
	kc.replicatedTopic(t, ctx, adm, "hg", 3)
	const groupID, n = "hg-group", 1500
	pr := newClient(t, kc.seeds(), kgo.DefaultProduceTopic("hg"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(60*time.Second))
	produce := func(from, to int) { produceSeq(t, ctx, pr, from, to) }
	produce(0, n/3)
	var seen sync.Map
	logErr := func(topic string, p int32, err error) {
		t.Logf("consume %s[%d] (while failing over): %v", topic, p, err)
	}
	a := startGroupConsumerErr(t, kc.seeds(), groupID, "hg", &seen, logErr)
	b := startGroupConsumerErr(t, kc.seeds(), groupID, "hg", &seen, logErr)
	poll.Until(t, 30*time.Second, "the first third consumed", func() bool { return count(&seen) == n/3 })
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	co, err := kc.Broker(1).FindCoordinator(fctx, groupID)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	// Commits reach the coordinator before it goes (autocommit: 200 ms).
	poll.Until(t, 30*time.Second, "the first third committed", func() bool {
		offs, err := adm.FetchOffsets(ctx, groupID)
		if err != nil {
			return false
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		return sum == n/3
	})
	kc.stop[co.BrokerID]()
	kc.Kill(co.BrokerID)
	produce(n/3, n)
	poll.Until(t, 60*time.Second, "every record consumed after the coordinator's broker was killed", func() bool { return count(&seen) == n })
	for i := range n {
		if _, ok := seen.Load(strconv.Itoa(i)); !ok {
			t.Fatalf("record %d never consumed", i)
		}
	}
	a.close()
	b.close()
	ends, err := adm.ListEndOffsets(ctx, "hg")
	if err != nil {
		t.Fatal(err)
	}
	offs, err := adm.FetchOffsets(ctx, groupID)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		if o, ok := offs.Lookup("hg", e.Partition); !ok || o.At != e.Offset {
			t.Errorf("partition %d: committed %+v, end %d", e.Partition, o, e.Offset)
		}
	})
	t.Logf("killed broker %d (the group's coordinator); %d records consumed through the group", co.BrokerID, n)
}
