package client

import (
	"context"
	"errors"
	"hash/crc32"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/protocol"
)

// produceN writes n records to topic's partition, one batch each.
func produceN(t *testing.T, c *Client, topic string, partition int32, n int) {
	t.Helper()
	for i := range n {
		if err := c.ProduceSync(context.Background(), &Record{Topic: topic, Partition: partition, Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
}

// Every broker in the metadata is asked, for the named topics only; each
// answers for the replicas it holds, and one that is down is reported as
// such, not left out and not failing the others.
func TestDescribeReplicasAsksEveryBroker(t *testing.T) {
	fc := newFakeCluster(t, 3)
	fc.addTopic("a", 1, 2, 3, 1)
	fc.addTopic("b", 2)
	fr := fc.serveReplicas()
	c := newTestClient(t, fc, RecordPartitioner(ManualPartitioner()))
	produceN(t, c, "a", 0, 2)
	fc.brokers[2].stop()

	got, err := c.DescribeReplicas(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Broker != 1 || got[1].Broker != 2 || got[2].Broker != 3 {
		t.Fatalf("brokers: %+v", got)
	}
	if got[0].Err != nil || len(got[0].Replicas) != 2 {
		t.Fatalf("broker 1: %+v", got[0])
	}
	if r := got[0].Replicas[0]; r.Topic != "a" || r.Partition != 0 || !r.Leader || r.EndOffset != 2 ||
		r.HighWatermark != 2 || r.ChecksumEnd != -1 || r.Err != nil {
		t.Errorf("broker 1 a-0: %+v", r)
	}
	if r := got[0].Replicas[1]; r.Partition != 3 || r.EndOffset != 0 {
		t.Errorf("broker 1 a-3: %+v", r)
	}
	if got[1].Err != nil || len(got[1].Replicas) != 1 || got[1].Replicas[0].Partition != 1 {
		t.Errorf("broker 2 (b must be left out): %+v", got[1])
	}
	if got[2].Err == nil || len(got[2].Replicas) != 0 || got[2].Addr != fc.brokers[2].ln.Addr().String() {
		t.Errorf("broker 3 is down but answered: %+v", got[2])
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if len(fr.describes) != 2 {
		t.Fatalf("%d requests reached the brokers, want 2", len(fr.describes))
	}
	for _, r := range fr.describes {
		if !slices.Equal(r.Topics, []string{"a"}) || r.ChecksumUpTo != -1 {
			t.Errorf("request %+v, want topics [a] and no checksum", r)
		}
	}
}

// A broker's refusal — the API unserved, or an answer from another broker
// id than the one asked — is that broker's error only.
func TestDescribeReplicasBrokerErrors(t *testing.T) {
	fc := newFakeCluster(t, 3)
	fc.addTopic("a", 1, 2, 3)
	fr := fc.serveReplicas()
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		switch {
		case key != protocol.DescribeReplicas:
		case b.id == 2:
			return action{resp: &protocol.DescribeReplicasResponse{ErrorCode: protocol.ErrUnsupportedVersion}}
		case b.id == 3:
			return action{resp: &protocol.DescribeReplicasResponse{BrokerID: 7}}
		}
		return fr.hook(b, key, req)
	})
	c := newTestClient(t, fc)
	got, err := c.DescribeReplicas(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Err != nil || len(got[0].Replicas) != 1 {
		t.Errorf("broker 1: %+v", got[0])
	}
	if !errors.Is(got[1].Err, protocol.ErrUnsupportedVersion) {
		t.Errorf("broker 2: %v, want UNSUPPORTED_VERSION", got[1].Err)
	}
	if got[2].Err == nil || len(got[2].Replicas) != 0 {
		t.Errorf("broker 3 answered as broker 7 and was believed: %+v", got[2])
	}
}

func TestDescribeReplicaChecksums(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("a", 1)
	fr := fc.serveReplicas()
	c := newTestClient(t, fc, RecordPartitioner(ManualPartitioner()))
	produceN(t, c, "a", 0, 3)
	if _, err := c.DescribeReplicaChecksums(context.Background(), -1, "a"); err == nil {
		t.Fatal("a negative limit was accepted")
	}
	got, err := c.DescribeReplicaChecksums(context.Background(), 2, "a")
	if err != nil || got[0].Err != nil || len(got[0].Replicas) != 1 {
		t.Fatalf("%+v %v", got, err)
	}
	fc.mu.Lock()
	batches := fc.topics["a"].parts[0].batches
	want := crc32.Checksum(append(slices.Clone(batches[0]), batches[1]...), crc32.MakeTable(crc32.Castagnoli))
	fc.mu.Unlock()
	if r := got[0].Replicas[0]; r.ChecksumEnd != 2 || r.Checksum != want {
		t.Errorf("checksum %08x up to %d, want %08x up to 2", r.Checksum, r.ChecksumEnd, want)
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if n := len(fr.describes); n != 1 || fr.describes[0].ChecksumUpTo != 2 {
		t.Errorf("requests %+v, want one with checksum_up_to 2", fr.describes)
	}
}

// Brokers are asked concurrently, but never more than the bound at once.
// Each request is held a while, so that requests sent together overlap: if
// every broker were asked at once, all would be held together (and then
// released at once); with the bound, the peak is exactly the bound.
func TestDescribeReplicasConcurrencyIsBounded(t *testing.T) {
	const brokers = describeReplicasConcurrency + 3
	fc := newFakeCluster(t, brokers)
	fr := fc.serveReplicas()
	var (
		mu       sync.Mutex
		inflight int
		peak     int
		once     sync.Once
		unbound  = make(chan struct{})
	)
	fc.setHook(func(b *fakeBroker, key protocol.APIKey, req protocol.Message) action {
		if key != protocol.DescribeReplicas {
			return fr.hook(b, key, req)
		}
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		if inflight == brokers {
			once.Do(func() { close(unbound) })
		}
		mu.Unlock()
		select {
		case <-unbound:
		case <-time.After(300 * time.Millisecond):
		}
		mu.Lock()
		inflight--
		mu.Unlock()
		return fr.hook(b, key, req)
	})
	c := newTestClient(t, fc)
	got, err := c.DescribeReplicas(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, br := range got {
		if br.Err != nil {
			t.Errorf("broker %d: %v", br.Broker, br.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != brokers || peak != describeReplicasConcurrency {
		t.Fatalf("%d answers, peak concurrency %d, want %d and %d", len(got), peak, brokers, describeReplicasConcurrency)
	}
}

func TestElectPreferredLeaders(t *testing.T) {
	fc := newFakeCluster(t, 3)
	fc.addTopic("a", 2, 2, 1)
	fc.addTopic("b", 3)
	fr := fc.serveReplicas()
	fr.preferred[TopicPartition{"a", 0}] = 1
	fr.preferred[TopicPartition{"a", 1}] = 2
	fr.preferred[TopicPartition{"a", 2}] = 3
	fr.down[3] = true
	c := newTestClient(t, fc)

	got, err := c.ElectPreferredLeaders(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("results %+v", got)
	}
	if r := got[0]; r.Topic != "a" || r.Partition != 0 || r.Leader != 1 || r.Err != nil {
		t.Errorf("a-0 must move to 1: %+v", r)
	}
	if r := got[1]; r.Leader != 2 || !errors.Is(r.Err, protocol.ErrElectionNotNeeded) {
		t.Errorf("a-1 already led by its preferred replica: %+v", r)
	}
	var pe *protocol.Error
	if r := got[2]; r.Leader != 1 || !errors.Is(r.Err, protocol.ErrPreferredLeaderNotAvailable) ||
		!errors.As(r.Err, &pe) || pe.Detail != "preferred replica is down" {
		t.Errorf("a-2's preferred replica is down: %+v", r)
	}
	if d, err := c.DescribeTopic(context.Background(), "a"); err != nil || d.Partitions[0].Leader != 1 || d.Partitions[0].LeaderEpoch != 1 {
		t.Errorf("after the election: %+v %v", d, err)
	}
	all, err := c.ElectPreferredLeaders(context.Background())
	if err != nil || len(all) != 4 || all[3].Topic != "b" {
		t.Fatalf("all topics: %+v %v", all, err)
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if len(fr.elects) != 2 || !slices.Equal(fr.elects[0].Topics, []string{"a"}) || len(fr.elects[1].Topics) != 0 ||
		fr.elects[0].TimeoutMs <= 0 {
		t.Errorf("requests %+v", fr.elects)
	}
}

func TestElectPreferredLeadersRequestError(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.setHook(func(_ *fakeBroker, key protocol.APIKey, _ protocol.Message) action {
		if key == protocol.ElectLeaders {
			return action{resp: &protocol.ElectLeadersResponse{ErrorCode: protocol.ErrClusterAuthorizationFailed}}
		}
		return action{}
	})
	c := newTestClient(t, fc)
	if _, err := c.ElectPreferredLeaders(context.Background()); !errors.Is(err, protocol.ErrClusterAuthorizationFailed) {
		t.Fatalf("err %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
}
