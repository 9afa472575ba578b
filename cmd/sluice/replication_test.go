package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// Replication tests on real processes: clusters of the built binary run
// by scripts/cluster.sh, faults by SIGKILL, SIGSTOP and a wiped data dir,
// the test process as the client.

// waitCond polls cond until it returns nil, failing the test with what and
// cond's last error after d. Each attempt gets 2 s: a request the client
// sent to a stopped broker fails then, and the next attempt goes to
// another (the client spreads such requests over the brokers).
func waitCond(t *testing.T, d time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	poll.Until(t, d, what, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return cond(ctx)
	})
}

// waitIdentical waits until every replica of every partition of topic is
// byte-identical to the others and committed to its end.
func waitIdentical(t *testing.T, cl *client.Client, topic string, rf int) {
	t.Helper()
	waitCond(t, 30*time.Second, "identical replicas of "+topic, func(ctx context.Context) error {
		brs, err := cl.DescribeReplicaChecksums(ctx, 1<<62, topic)
		if err != nil {
			return err
		}
		return bench.CompareReplicas(brs, rf)
	})
}

func TestCompareReplicas(t *testing.T) {
	replica := func(p int32, start, end, hw, sumEnd int64, sum uint32) client.ReplicaInfo {
		return client.ReplicaInfo{Topic: "t", Partition: p, StartOffset: start, EndOffset: end, HighWatermark: hw, ChecksumEnd: sumEnd, Checksum: sum}
	}
	three := func(a, b, c client.ReplicaInfo) []client.BrokerReplicas {
		return []client.BrokerReplicas{{Broker: 1, Replicas: []client.ReplicaInfo{a}}, {Broker: 2, Replicas: []client.ReplicaInfo{b}}, {Broker: 3, Replicas: []client.ReplicaInfo{c}}}
	}
	good := replica(0, 0, 100, 100, 100, 7)
	tests := []struct {
		name string
		brs  []client.BrokerReplicas
		ok   bool
	}{
		{"identical", three(good, good, good), true},
		{"identical empty", three(replica(0, 0, 0, 0, -1, 0), replica(0, 0, 0, 0, -1, 0), replica(0, 0, 0, 0, -1, 0)), true},
		{"checksum differs", three(good, good, replica(0, 0, 100, 100, 100, 8)), false},
		{"follower behind", three(good, good, replica(0, 0, 90, 90, 90, 7)), false},
		{"follower ahead", three(good, replica(0, 0, 110, 110, 110, 7), good), false},
		{"hw below end", three(good, replica(0, 0, 100, 90, 100, 7), good), false},
		{"checksum short of end", three(good, good, replica(0, 0, 100, 100, 80, 7)), false},
		{"start differs", three(good, replica(0, 10, 100, 100, 100, 7), good), false},
		{"replica missing", three(good, good, replica(1, 0, 100, 100, 100, 7)), false},
		{"broker unreachable", append(three(good, good, good)[:2], client.BrokerReplicas{Broker: 3, Err: errors.New("down")}), false},
		{"replica error", three(good, good, client.ReplicaInfo{Partition: 0, Err: errors.New("storage")}), false},
		{"nothing", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := bench.CompareReplicas(tt.brs, 3)
			if (err == nil) != tt.ok {
				t.Fatalf("compareReplicas = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// ackedAt is where a record's acknowledgement put it.
type ackedAt struct {
	partition int32
	offset    int64
}

// ackLog records the acknowledged records of a producer, and the end
// offset each partition's acknowledgements reached so far.
type ackLog struct {
	mu     sync.Mutex
	acked  map[string]ackedAt // value → where
	ends   map[int32]int64    // partition → highest acknowledged offset + 1
	failed int
	first  error // first failure
}

func newAckLog() *ackLog { return &ackLog{acked: map[string]ackedAt{}, ends: map[int32]int64{}} }

func (a *ackLog) record(r *client.Record, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.failed++
		if a.first == nil {
			a.first = err
		}
		return
	}
	a.acked[string(r.Value)] = ackedAt{r.Partition, r.Offset}
	a.ends[r.Partition] = max(a.ends[r.Partition], r.Offset+1)
}

func (a *ackLog) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked)
}

func (a *ackLog) snapshotEnds() map[int32]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.ends)
}

// startProducing produces acks=all records with unique values to topic
// from a client of its own, in synchronous rounds of 20 (keys spread over
// the partitions), recording every outcome in the returned log, until
// stop is called (or the test ends). stop returns when the last round is
// done; it is idempotent.
func startProducing(t *testing.T, c *scriptCluster, topic string) (acks *ackLog, stop func()) {
	t.Helper()
	cl := c.client(client.DeliveryTimeout(30 * time.Second))
	acks = newAckLog()
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for round := 0; ; round++ {
			select {
			case <-quit:
				return
			default:
			}
			recs := make([]*client.Record, 20)
			for i := range recs {
				n := round*len(recs) + i
				recs[i] = &client.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", n%16)), Value: []byte(fmt.Sprintf("%s-%08d", topic, n))}
			}
			var wg sync.WaitGroup
			wg.Add(len(recs))
			for _, r := range recs {
				cl.Produce(context.Background(), r, func(r *client.Record, err error) {
					acks.record(r, err)
					wg.Done()
				})
			}
			wg.Wait()
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop) // registered after the client's Close, so it runs before it
	return acks, stop
}

// waitAcked waits until acks holds at least n acknowledged records.
func waitAcked(t *testing.T, acks *ackLog, n int) {
	t.Helper()
	waitCond(t, 20*time.Second, fmt.Sprintf("%d records acknowledged", n), func(context.Context) error {
		if got := acks.count(); got < n {
			return fmt.Errorf("%d acknowledged", got)
		}
		return nil
	})
}

// checkAcked reads every partition of topic from its start to its end
// with a fresh client and fails the test unless every acknowledged record
// is at its acknowledged offset.
func checkAcked(t *testing.T, c *scriptCluster, topic string, a *ackLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.client()
	ends, err := cl.ListOffsets(ctx, topic, client.AtEnd())
	if err != nil {
		t.Fatal(err)
	}
	assign := map[client.TopicPartition]client.Offset{}
	left := int64(0)
	for _, e := range ends {
		if e.Err != nil {
			t.Fatalf("partition %d end: %v", e.Partition, e.Err)
		}
		assign[client.TopicPartition{Topic: topic, Partition: e.Partition}] = client.AtStart()
		left += e.Offset
	}
	cl.Assign(assign)
	found := map[ackedAt]string{}
	for left > 0 {
		fs, err := cl.Poll(ctx)
		if err != nil {
			t.Fatalf("read %s: %d records short of the end: %v", topic, left, err)
		}
		if len(fs.Errors) > 0 {
			t.Fatalf("read %s: %v", topic, fs.Errors[0])
		}
		for _, r := range fs.Records {
			found[ackedAt{r.Partition, r.Offset}] = string(r.Value)
			left--
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	lost := 0
	for v, at := range a.acked {
		if found[at] != v {
			if lost++; lost <= 5 {
				t.Errorf("acknowledged %q at %d@%d, read %q there", v, at.partition, at.offset, found[at])
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records not where acknowledged", lost, len(a.acked))
	}
}

// upWithTopic builds the binary, starts a cluster of n brokers with
// brokerArgs, creates topic with RF 3 and waits until every replica is in
// sync and every broker holds its replicas (a new topic's ISR is full from
// the start, and a broker whose metadata lags a moment would tell a client
// the topic does not exist).
func upWithTopic(t *testing.T, n int, brokerArgs, topic string, partitions int32) (*scriptCluster, *client.Client, client.TopicDescription) {
	t.Helper()
	c := newScriptCluster(t, buildBinary(t), n, brokerArgs)
	c.up()
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.CreateTopics(ctx, client.TopicSpec{Name: topic, Partitions: partitions, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	td := testcluster.WaitFullISR(t, cl, topic, 20*time.Second)
	waitCond(t, 20*time.Second, "every broker holding its replicas of "+topic, func(ctx context.Context) error {
		brs, err := cl.DescribeReplicas(ctx, topic)
		if err != nil {
			return err
		}
		held := 0
		for _, br := range brs {
			if br.Err != nil {
				return br.Err
			}
			held += len(br.Replicas)
		}
		if want := 3 * int(partitions); held != want || len(brs) != n {
			return fmt.Errorf("%d brokers hold %d replicas, want %d hold %d", len(brs), held, n, want)
		}
		return nil
	})
	return c, cl, td
}

// TestReplicationLeaderSIGKILL: RF 3, acks=all, min.insync.replicas 2
// (the default for RF 3) on three broker processes. bench.Verify produces
// for 18 s while the leader of partition 0 is SIGKILLed and restarted,
// three times: once after the failover (failure detected by gossip), then
// at once (the restarted broker's registration fences its old
// incarnation). The history must pass bench.Check (nothing acknowledged
// lost, moved or reordered, nothing read that vanished) and every replica
// must end byte-identical and committed to its end.
func TestReplicationLeaderSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-process cluster for about 30 s")
	}
	start := time.Now()
	c, cl, _ := upWithTopic(t, 3, "", "repl", 3)
	verifyStart := time.Now()
	wait := verifyAsync(t, c, "repl", 18*time.Second)

	for round := range 3 {
		time.Sleep(time.Second) // load on the cluster between rounds
		leader := testcluster.WaitLeader(t, cl, "repl", 0, -1, 20*time.Second)
		t.Logf("%5.1fs round %d: SIGKILL broker %d, the leader of repl-0", time.Since(verifyStart).Seconds(), round, leader)
		c.run("kill", fmt.Sprint(leader))
		if round == 0 {
			// Failover by failure detection (gossip) before the restart.
			next := testcluster.WaitLeader(t, cl, "repl", 0, leader, 20*time.Second)
			t.Logf("%5.1fs round %d: broker %d leads repl-0", time.Since(verifyStart).Seconds(), round, next)
		}
		// Later rounds restart at once: the new incarnation's
		// registration fences the old one and moves the leadership.
		c.run("start", fmt.Sprint(leader))
		next := testcluster.WaitLeader(t, cl, "repl", 0, leader, 20*time.Second)
		t.Logf("%5.1fs round %d: restarted broker %d; broker %d leads repl-0", time.Since(verifyStart).Seconds(), round, leader, next)
		testcluster.WaitFullISR(t, cl, "repl", 30*time.Second)
		t.Logf("%5.1fs round %d: every replica in sync", time.Since(verifyStart).Seconds(), round)
	}

	res := bench.Check(wait())
	t.Logf("%5.1fs checked: sent %d, acked %d, failed %d, unknown %d, duplicates %d", time.Since(verifyStart).Seconds(),
		res.Sent, res.Acked, res.Failed, res.Unknown, res.Duplicates)
	if !res.OK() || res.Acked == 0 {
		t.Fatalf("history fails the checks: %+v", res)
	}
	waitIdentical(t, cl, "repl", 3)
	t.Logf("replicas identical; %.1fs in all", time.Since(start).Seconds())
}

// verifyAsync runs bench.Verify against c (2 producers with acks=all at
// 2000 records/s in all, 1 live consumer) for d in the background; the
// returned function waits for the history.
func verifyAsync(t *testing.T, c *scriptCluster, topic string, d time.Duration) func() bench.History {
	t.Helper()
	type verified struct {
		h   bench.History
		err error
	}
	done := make(chan verified, 1)
	vctx, vcancel := context.WithTimeout(context.Background(), d+75*time.Second)
	go func() {
		defer vcancel()
		h, err := bench.Verify(vctx, bench.Config{
			Client:    []client.Opt{client.SeedBrokers(c.addrs...), client.RetryBackoff(10*time.Millisecond, 200*time.Millisecond)},
			Topic:     topic,
			Duration:  d,
			Producers: 2, Consumers: 1, RecordSize: 64, Rate: 2000,
		})
		done <- verified{h, err}
	}()
	return func() bench.History {
		t.Helper()
		v := <-done
		if v.err != nil {
			t.Fatalf("verify: %v", v.err)
		}
		return v.h
	}
}

// TestReplicationLeaderSIGTERM: the controlled shutdown of a partition
// leader process (SIGTERM) while producers write with acks=all. Twice:
// leadership moves within a second of the signal (well before a failure
// would be detected), the broker exits cleanly and is restarted, and the
// producers see nothing but retried requests — no send fails or ends
// unknown — while the history holds and the replicas end identical.
func TestReplicationLeaderSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-process cluster for about 20 s")
	}
	c, cl, _ := upWithTopic(t, 3, "", "term", 1)
	verifyStart := time.Now()
	wait := verifyAsync(t, c, "term", 10*time.Second)
	for round := range 2 {
		time.Sleep(time.Second) // load on the cluster between rounds
		leader := testcluster.WaitLeader(t, cl, "term", 0, -1, 20*time.Second)
		t.Logf("%5.1fs round %d: SIGTERM broker %d, the leader of term-0", time.Since(verifyStart).Seconds(), round, leader)
		sent := time.Now()
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			c.run("stop", fmt.Sprint(leader))
		}()
		next := testcluster.WaitLeader(t, cl, "term", 0, leader, 20*time.Second)
		moved := time.Since(sent)
		<-stopped
		t.Logf("%5.1fs round %d: broker %d leads after %v; broker %d exited after %v", time.Since(verifyStart).Seconds(),
			round, next, moved.Round(time.Millisecond), leader, time.Since(sent).Round(time.Millisecond))
		if moved > 2*time.Second {
			t.Errorf("round %d: leadership moved %v after SIGTERM, want within 2s", round, moved)
		}
		c.run("start", fmt.Sprint(leader))
		testcluster.WaitFullISR(t, cl, "term", 30*time.Second)
	}
	res := bench.Check(wait())
	t.Logf("%5.1fs checked: sent %d, acked %d, failed %d, unknown %d, duplicates %d", time.Since(verifyStart).Seconds(),
		res.Sent, res.Acked, res.Failed, res.Unknown, res.Duplicates)
	if !res.OK() || res.Acked == 0 {
		t.Fatalf("history fails the checks: %+v", res)
	}
	if res.Failed+res.Unknown > 0 {
		t.Errorf("controlled shutdowns failed %d sends and left %d unknown, want none", res.Failed, res.Unknown)
	}
	waitIdentical(t, cl, "term", 3)
}

// TestReplicationPausedFollower: with --replica-max-lag 2s, a follower
// of a partition is stopped with SIGSTOP while a producer writes with
// acks=all. The follower leaves the ISR (by the leader's lag check or by
// gossip failure detection, whichever comes first), every write keeps
// succeeding with the two replicas left (min.insync.replicas 2), and after
// SIGCONT the follower catches up and comes back into the ISR. Every
// acknowledged record is then where it was acknowledged and the replicas
// are identical.
func TestReplicationPausedFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-process cluster for about 20 s")
	}
	start := time.Now()
	c, cl, td := upWithTopic(t, 3, "--replica-max-lag 2s", "lag", 1)
	ctx := context.Background()
	leader := td.Partitions[0].Leader
	cd, err := cl.DescribeCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Pause a follower that is not the controller leader: a stalled
	// controller stalls every ISR change, which is another test's fault.
	follower := int32(-1)
	for _, r := range td.Partitions[0].Replicas {
		if r != leader && r != cd.ControllerID {
			follower = r
			break
		}
	}
	if follower < 0 {
		t.Fatalf("no follower of lag-0 outside leader %d and controller %d: replicas %v", leader, cd.ControllerID, td.Partitions[0].Replicas)
	}

	acks, stopProducing := startProducing(t, c, "lag")
	waitAcked(t, acks, 200)

	c.run("pause", fmt.Sprint(follower))
	paused := time.Now()
	t.Logf("SIGSTOP broker %d, a follower of lag-0 (leader %d, controller %d)", follower, leader, cd.ControllerID)
	waitCond(t, 20*time.Second, fmt.Sprintf("broker %d out of the ISR", follower), func(ctx context.Context) error {
		d, err := cl.DescribeTopic(ctx, "lag")
		if err != nil {
			return err
		}
		if isr := d.Partitions[0].ISR; slices.Contains(isr, follower) || len(isr) != 2 {
			return fmt.Errorf("ISR %v", isr)
		}
		return nil
	})
	t.Logf("%.1fs after SIGSTOP: broker %d left the ISR", time.Since(paused).Seconds(), follower)
	n := acks.count()
	waitAcked(t, acks, n+200) // writes go on with the follower out of the ISR

	c.run("resume", fmt.Sprint(follower))
	resumed := time.Now()
	waitCond(t, 30*time.Second, fmt.Sprintf("broker %d back in the ISR", follower), func(ctx context.Context) error {
		d, err := cl.DescribeTopic(ctx, "lag")
		if err != nil {
			return err
		}
		if isr := d.Partitions[0].ISR; !slices.Contains(isr, follower) {
			return fmt.Errorf("ISR %v", isr)
		}
		return nil
	})
	t.Logf("%.1fs after SIGCONT: broker %d back in the ISR", time.Since(resumed).Seconds(), follower)
	stopProducing()

	acks.mu.Lock()
	failed, first, total := acks.failed, acks.first, len(acks.acked)
	acks.mu.Unlock()
	t.Logf("%d records acknowledged, %d failed", total, failed)
	if failed > 0 {
		t.Fatalf("%d produces failed while the ISR stayed at min.insync.replicas or above; first: %v", failed, first)
	}
	checkAcked(t, c, "lag", acks)
	waitIdentical(t, cl, "lag", 3)
	t.Logf("replicas identical; %.1fs in all", time.Since(start).Seconds())
}

// TestReplicationWipedBrokerRejoins: four broker processes (three Raft
// voters and broker 4, a non-voter), a topic of four partitions with RF 3
// so broker 4 holds replicas. While a producer writes with acks=all,
// broker 4 is SIGKILLed, its data dir wiped, and it is started again.
// Until it is back in a partition's ISR it must lead nothing it is out of
// sync for, and when it is in an ISR its replica must already hold every
// record acknowledged before (it caught up before it was let in). Every
// acknowledged record is then where it was acknowledged and the replicas
// are identical.
func TestReplicationWipedBrokerRejoins(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a four-process cluster for about 20 s")
	}
	const wiped = 4
	start := time.Now()
	c, cl, td := upWithTopic(t, 4, "", "wipe", 4)
	var held []int32 // partitions broker 4 holds a replica of
	for _, p := range td.Partitions {
		if slices.Contains(p.Replicas, wiped) {
			held = append(held, p.Partition)
		}
	}
	if len(held) == 0 {
		t.Fatalf("broker %d holds no replica of wipe: %+v", wiped, td.Partitions)
	}

	acks, stopProducing := startProducing(t, c, "wipe")
	waitAcked(t, acks, 500)

	c.run("kill", fmt.Sprint(wiped))
	killed := time.Now()
	// The old incarnation must be out of every ISR before the new one
	// starts, or its membership would be mistaken for the new one's.
	waitCond(t, 20*time.Second, fmt.Sprintf("killed broker %d out of every ISR", wiped), func(ctx context.Context) error {
		d, err := cl.DescribeTopic(ctx, "wipe")
		if err != nil {
			return err
		}
		for _, p := range d.Partitions {
			if slices.Contains(p.ISR, wiped) || p.Leader == wiped || p.Leader < 0 {
				return fmt.Errorf("partition %d: leader %d, ISR %v", p.Partition, p.Leader, p.ISR)
			}
		}
		return nil
	})
	t.Logf("%.1fs after SIGKILL: broker %d fenced", time.Since(killed).Seconds(), wiped)
	c.run("wipe", fmt.Sprint(wiped))
	c.run("start", fmt.Sprint(wiped))
	restarted := time.Now()

	// Watch it rejoin: every observation must hold the rules; a partition
	// whose ISR has it is checked once against what was acknowledged
	// before the observation.
	checked := map[int32]bool{}
	waitCond(t, 40*time.Second, fmt.Sprintf("broker %d back in the ISR of %v", wiped, held), func(ctx context.Context) error {
		before := acks.snapshotEnds()
		d, err := cl.DescribeTopic(ctx, "wipe")
		if err != nil {
			return err
		}
		var in []int32
		for _, p := range d.Partitions {
			inISR := slices.Contains(p.ISR, wiped)
			if p.Leader == wiped && !inISR {
				t.Fatalf("wiped broker %d leads partition %d but is not in its ISR %v", wiped, p.Partition, p.ISR)
			}
			if inISR && !checked[p.Partition] {
				in = append(in, p.Partition)
			}
		}
		if len(in) > 0 {
			brs, err := cl.DescribeReplicas(ctx, "wipe")
			if err != nil {
				return err
			}
			for _, br := range brs {
				if br.Broker != wiped {
					continue
				}
				if br.Err != nil {
					return fmt.Errorf("broker %d: %w", wiped, br.Err)
				}
				for _, r := range br.Replicas {
					if !slices.Contains(in, r.Partition) {
						continue
					}
					if r.Err != nil {
						return fmt.Errorf("broker %d, partition %d: %w", wiped, r.Partition, r.Err)
					}
					if r.EndOffset < before[r.Partition] {
						t.Fatalf("wiped broker %d is in the ISR of partition %d with its log ending at %d, below offset %d acknowledged before",
							wiped, r.Partition, r.EndOffset, before[r.Partition])
					}
					checked[r.Partition] = true
				}
			}
		}
		for _, p := range held {
			if !checked[p] {
				return fmt.Errorf("in the ISR of %v of %v", slices.Sorted(maps.Keys(checked)), held)
			}
		}
		return nil
	})
	t.Logf("%.1fs after the restart: wiped broker %d back in the ISR of %v", time.Since(restarted).Seconds(), wiped, held)
	stopProducing()

	acks.mu.Lock()
	t.Logf("%d records acknowledged, %d failed (first: %v)", len(acks.acked), acks.failed, acks.first)
	acks.mu.Unlock()
	checkAcked(t, c, "wipe", acks)
	waitIdentical(t, cl, "wipe", 3)
	t.Logf("replicas identical; %.1fs in all", time.Since(start).Seconds())
}
