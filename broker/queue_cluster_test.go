package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/group"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
	"github.com/sluicemq/sluice/protocol"
)

// Queue groups end to end (issue 16) on in-process clusters: members
// receive and settle through the client, the coordinator persists the
// windows in the offsets topic, dead letters land in <topic>.dlq.

func queueCluster(t *testing.T, n int, cfg group.QueueConfig) (*testcluster.Cluster, *client.Client) {
	t.Helper()
	c := testcluster.Start(t, n, testcluster.Options{Configure: func(bc *broker.Config) { bc.Group.Queue = cfg }})
	return c, c.Client()
}

// queueJobs starts a one-broker cluster with the queue settings cfg and
// topic "jobs" of one partition holding n records valued "0".."n-1".
func queueJobs(t *testing.T, cfg group.QueueConfig, n int) (*testcluster.Cluster, *client.Client) {
	t.Helper()
	c, cl := queueCluster(t, 1, cfg)
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "jobs", Partitions: 1, ReplicationFactor: 1})
	produceValues(t, cl, "jobs", n)
	return c, cl
}

// produceValues writes n records valued "0".."n-1" to topic.
func produceValues(t *testing.T, cl *client.Client, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := make([]*client.Record, n)
	for i := range recs {
		recs[i] = &client.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}
	}
	if err := cl.ProduceSync(ctx, recs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// receive retries a receive through a coordinator moving or loading.
func receive(ctx context.Context, t *testing.T, q *client.QueueGroup, max int) []*client.Delivery {
	t.Helper()
	for {
		ds, err := q.Receive(ctx, max)
		if err == nil || ctx.Err() != nil {
			return ds
		}
		if !client.IsRetriable(err) {
			t.Fatalf("receive: %v", err)
		}
	}
}

// consumeAll reads every record of topic's partitions from the start up
// to their ends now.
func consumeAll(t *testing.T, cl *client.Client, topic string, partitions int) []*client.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := cl.ListOffsets(ctx, topic, client.AtEnd())
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	want := 0
	assign := map[client.TopicPartition]client.Offset{}
	for _, e := range ends {
		want += int(e.Offset)
		assign[client.TopicPartition{Topic: topic, Partition: e.Partition}] = client.AtStart()
	}
	if len(ends) != partitions {
		t.Fatalf("%s has %d partitions, want %d", topic, len(ends), partitions)
	}
	cl.Assign(assign)
	defer cl.Assign(nil)
	var out []*client.Record
	for len(out) < want {
		fs, err := cl.Poll(ctx)
		if err != nil {
			t.Fatalf("poll %s: %v (%d of %d records)", topic, err, len(out), want)
		}
		out = append(out, fs.Records...)
	}
	return out
}

func header(r *client.Record, key string) string {
	for _, h := range r.Headers {
		if string(h.Key) == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestQueueGroupMembersAcceptOnceAndDeadLetter: four members share a
// topic of three partitions; every record is accepted exactly once or,
// for every tenth, rejected and copied to jobs.dlq with its headers.
//
// On a loaded machine (CI, the race detector, a load average of 30 on 2
// cores) one round trip can take seconds, so the run is not given a fixed
// time: members receive with the run's context (a receive given up
// before its answer leaves its records acquired until their lease ends,
// and one given up every time delivers nothing), settle each batch's
// records together (one acknowledgement, well within the lease), and the
// run ends when every record is settled and the coordinator holds none
// (a settle answered "may have been applied" counts: if it was not, the
// record comes again). It fails when nothing is
// settled for longer than a lease, a group write and a client request
// together take (a hang: it says what each member was waiting for and
// what the coordinator holds), or just before the package's timeout.
func TestQueueGroupMembersAcceptOnceAndDeadLetter(t *testing.T) {
	const (
		n     = 300
		lease = 10 * time.Second
		// stall: longer than the client's request timeout (30 s, a
		// settle's answer lost with its connection) plus a lease.
		stall = 45 * time.Second
	)
	// The delivery limit is TestQueueGroupLeasesAndRefusals's: here a
	// record delivered again (a lease lost on a stalled machine) must not
	// be dead-lettered by it.
	c, cl := queueCluster(t, 3, group.QueueConfig{Lease: lease, MaxDeliveries: 1000})
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "jobs", Partitions: 3, ReplicationFactor: 3})
	produceValues(t, cl, "jobs", n)

	// The cap: the package's -timeout, less time to report and stop the
	// brokers (a run that keeps settling is slow, not hung).
	hardCap := time.Now().Add(5 * time.Minute)
	if dl, ok := t.Deadline(); ok {
		hardCap = dl.Add(-30 * time.Second)
	}
	errAllSettled := errors.New("all settled")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)

	// A settle answered with an indeterminate error (under load a group
	// write can outlast its 10 s) may or may not have been applied: if
	// not, the record comes again and is settled then. The run ends when
	// every record was settled, definitely or maybe, and the coordinator
	// holds none.
	var mu sync.Mutex
	accepted := map[string]int{}            // definite acceptances
	rejected := map[string]client.Record{}  // records rejected, definitely or maybe
	rejectedOn := map[string]map[int]bool{} // the deliveries a record was rejected on
	maybe := map[string]int{}               // indeterminate settles
	settled := map[string]bool{}            // definitely or maybe
	redelivered := 0
	var progress time.Time     // of the last settle; zero before the first
	doing := make([]string, 4) // what each member waits for, and since when
	setDoing := func(m int, what string) {
		mu.Lock()
		doing[m] = what + " since " + time.Now().Format("15:04:05.000")
		mu.Unlock()
	}
	settle := func(m int, d *client.Delivery) {
		v := string(d.Value)
		i, _ := strconv.Atoi(v)
		var err error
		if i%10 == 0 {
			err = d.Reject("bad " + v)
		} else {
			err = d.Accept()
		}
		mu.Lock()
		defer mu.Unlock()
		if d.DeliveryCount > 1 {
			redelivered++
		}
		unknown := client.IsIndeterminate(err) || errors.Is(err, client.ErrOutcomeUnknown)
		switch {
		case err != nil && !unknown && errors.Is(err, client.ErrLeaseLost):
			return // delivered again, settled then
		case err != nil && !unknown:
			t.Errorf("member %d: settle %s: %v", m, v, err)
			return
		case unknown:
			maybe[v]++
		case i%10 != 0:
			accepted[v]++
		}
		if i%10 == 0 {
			rejected[v] = d.Record
			if rejectedOn[v] == nil {
				rejectedOn[v] = map[int]bool{}
			}
			rejectedOn[v][d.DeliveryCount] = true
		}
		settled[v] = true
		progress = time.Now()
	}
	// drained: every record settled and the coordinator agrees.
	drained := func() bool {
		mu.Lock()
		all := len(settled) == n
		mu.Unlock()
		if !all {
			return false
		}
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		d, err := cl.DescribeQueueGroup(dctx, "workers")
		if err != nil {
			return false
		}
		for _, p := range d.Partitions {
			if p.Available+p.Acquired+p.Accepted+p.Archived != 0 || p.Start != p.End {
				return false
			}
		}
		return true
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the watchdog: a stall or the cap ends the run
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				if drained() {
					cancel(errAllSettled)
					return
				}
				mu.Lock()
				since, started := now.Sub(progress), !progress.IsZero()
				waits := strings.Join(doing, "; ")
				mu.Unlock()
				// Before the first settle the offsets topic is created and
				// its coordinator loaded (more than 45 s at a load of 40):
				// only the cap bounds that.
				if started && since > stall {
					cancel(fmt.Errorf("no record settled for %v; members were waiting for: %s", since.Round(time.Second), waits))
				} else if now.After(hardCap) {
					cancel(fmt.Errorf("the test's time is up; members were waiting for: %s", waits))
				}
			}
		}
	}()
	for m := range 4 {
		q := cl.QueueGroup("workers", "jobs")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				setDoing(m, "receive")
				ds := receive(ctx, t, q, 7+m)
				setDoing(m, fmt.Sprintf("settle of %d records", len(ds)))
				var sw sync.WaitGroup // the batch's outcomes are sent together
				for _, d := range ds {
					sw.Add(1)
					go func() {
						defer sw.Done()
						settle(m, d)
					}()
				}
				sw.Wait()
			}
			setDoing(m, "nothing (done)")
		}()
	}
	wg.Wait()
	if cause := context.Cause(ctx); !errors.Is(cause, errAllSettled) {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		d, derr := cl.DescribeQueueGroup(dctx, "workers")
		dcancel()
		var parts []string
		for _, p := range d.Partitions {
			parts = append(parts, fmt.Sprintf("%+v", p))
		}
		t.Fatalf("%v; settled %d of %d records (%d redeliveries); the group: %s %v",
			cause, len(settled), n, redelivered, strings.Join(parts, "; "), derr)
	}
	t.Logf("%d deliveries were redeliveries, %d settles indeterminate", redelivered, len(maybe))
	for i := range n {
		v := strconv.Itoa(i)
		if i%10 == 0 {
			if _, ok := rejected[v]; !ok || accepted[v] != 0 {
				t.Errorf("record %s: rejected %v, accepted %d times", v, ok, accepted[v])
			}
		} else if accepted[v] > 1 || accepted[v] == 0 && maybe[v] == 0 {
			t.Errorf("record %s accepted %d times (and %d maybe), want once", v, accepted[v], maybe[v])
		}
	}

	// The dead letters: every rejected record, with headers saying why,
	// where from and on which delivery (at least once: a copy may be
	// doubled, never missing).
	dead := consumeAll(t, cl, "jobs.dlq", 3)
	seen := map[string]bool{}
	for _, r := range dead {
		v := string(r.Value)
		orig, ok := rejected[v]
		if !ok {
			t.Errorf("dead letter %q was not rejected", v)
			continue
		}
		seen[v] = true
		want := map[string]string{
			protocol.DeadLetterReason: "rejected: bad " + v, protocol.DeadLetterTopic: "jobs",
			protocol.DeadLetterPartition: strconv.Itoa(int(orig.Partition)), protocol.DeadLetterOffset: strconv.FormatInt(orig.Offset, 10),
			protocol.DeadLetterTimestamp: strconv.FormatInt(orig.Timestamp.UnixMilli(), 10),
		}
		for k, w := range want {
			if got := header(r, k); got != w {
				t.Errorf("dead letter %s: header %s = %q, want %q", v, k, got, w)
			}
		}
		if got, _ := strconv.Atoi(header(r, protocol.DeadLetterDeliveries)); !rejectedOn[v][got] {
			t.Errorf("dead letter %s: %d deliveries, rejected on deliveries %v", v, got, rejectedOn[v])
		}
	}
	if len(seen) != len(rejected) {
		t.Errorf("%d of %d rejected records in the dead-letter topic", len(seen), len(rejected))
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	d, err := cl.DescribeQueueGroup(dctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	var dl int64
	for _, p := range d.Partitions {
		dl += p.DeadLettered
		if p.Available+p.Acquired+p.Accepted+p.Archived != 0 || p.Start != p.End {
			t.Errorf("partition %d not drained: %+v", p.Partition, p)
		}
	}
	if dl != n/10 {
		t.Errorf("dead-lettered %d, want %d", dl, n/10)
	}
	_ = c
}

// TestQueueGroupLeasesAndRefusals: a member that goes silent has its
// records delivered again after the lease, and its late acceptance is
// refused (the second delivery wins); releases past the delivery limit
// dead-letter the record; bad input gets definite errors.
func TestQueueGroupLeasesAndRefusals(t *testing.T) {
	const lease = time.Second
	c, cl := queueJobs(t, group.QueueConfig{Lease: lease, MaxDeliveries: 2}, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	silent, busy := cl.QueueGroup("g", "jobs"), cl.QueueGroup("g", "jobs")
	held := receive(ctx, t, silent, 3)
	if len(held) != 3 || held[0].DeliveryCount != 1 {
		t.Fatalf("first receive: %d records", len(held))
	}
	// The other member gets the rest at once, not the held ones.
	rest := receive(ctx, t, busy, 10)
	if len(rest) != 3 || rest[0].Offset != 3 {
		t.Fatalf("second member got %d records from %d, want 3 from 3", len(rest), rest[0].Offset)
	}
	if err := busy.AcceptAll(rest); err != nil {
		t.Fatal(err)
	}
	// An offset never delivered, and one already accepted: definite.
	br := c.Broker(c.IDs()[0])
	refused, err := br.QueueAck(ctx, "g", busy.Member(), []broker.QueueOutcome{
		{Topic: "jobs", Partition: 0, First: 3, Last: 3, Outcome: group.Accept},
		{Topic: "jobs", Partition: 0, First: 100, Last: 101, Outcome: group.Accept}})
	if err != nil || len(refused) != 2 || !errors.Is(refused[0].Err, group.ErrLeaseLost) ||
		!errors.Is(refused[1].Err, group.ErrNotDelivered) || refused[1].First != 100 || refused[1].Last != 101 {
		t.Fatalf("acks of settled and undelivered offsets: %+v, %v", refused, err)
	}
	// An unknown group: definite, for acks and describes.
	if _, err := br.QueueAck(ctx, "nope", "m", []broker.QueueOutcome{{Topic: "jobs", First: 0, Last: 0, Outcome: group.Accept}}); !errors.Is(err, group.ErrQueueGroupNotFound) {
		t.Fatalf("ack in an unknown group: %v", err)
	}
	if _, err := cl.DescribeQueueGroup(ctx, "nope"); !errors.Is(err, protocol.ErrGroupIDNotFound) {
		t.Fatalf("describe an unknown group: %v", err)
	}
	// A range past the bound is refused whole.
	if _, err := br.QueueAck(ctx, "g", "m", []broker.QueueOutcome{{Topic: "jobs", First: 0, Last: 1 << 20, Outcome: group.Accept}}); !errors.Is(err, protocol.ErrInvalidRequest) {
		t.Fatalf("huge range: %v", err)
	}

	// Many ranges, each within the bound, past the bound in all: refused
	// before the offsets are allocated.
	many := make([]broker.QueueOutcome, 5)
	for i := range many {
		many[i] = broker.QueueOutcome{Topic: "jobs", First: 0, Last: 1<<16 - 1, Outcome: group.Accept}
	}
	if _, err := br.QueueAck(ctx, "g", "m", many); !errors.Is(err, protocol.ErrInvalidRequest) {
		t.Fatalf("too many offsets in one acknowledgement: %v", err)
	}
	if err := br.ResetQueueGroup(ctx, "g", map[group.QueueKey]int64{{Topic: "jobs", Partition: 7}: 0}); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
		t.Fatalf("reset of a partition that does not exist: %v", err)
	}

	// The silent member's lease runs out: the busy one gets its records,
	// delivered a second time, soon after the lease.
	start := time.Now()
	again := receive(ctx, t, busy, 10)
	if len(again) != 3 || again[0].Offset != 0 || again[0].DeliveryCount != 2 {
		t.Fatalf("redelivery: %d records, first %+v", len(again), again[0])
	}
	if waited := time.Since(start); waited > 3*lease {
		t.Errorf("redelivered %v after the receive started, lease %v", waited, lease)
	}
	if err := held[0].Accept(); !errors.Is(err, client.ErrLeaseLost) {
		t.Fatalf("late accept by the silent member: %v, want ErrLeaseLost", err)
	}
	if err := again[0].Accept(); err != nil {
		t.Fatalf("accept of the second delivery: %v", err)
	}
	if err := again[1].Renew(); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if err := again[1].Accept(); err != nil {
		t.Fatalf("accept after renew: %v", err)
	}
	// Record 2 is released at its second delivery, the most allowed: it is
	// archived and dead-lettered.
	if err := again[2].Release(0); err != nil {
		t.Fatalf("release: %v", err)
	}
	d, err := cl.DescribeQueueGroup(ctx, "g")
	if err != nil || len(d.Partitions) != 1 || d.Partitions[0].DeadLettered != 1 || d.Partitions[0].Start != 6 || d.Lease != lease {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	dead := consumeAll(t, cl, "jobs.dlq", 1)
	if len(dead) < 1 || string(dead[0].Value) != "2" || header(dead[0], protocol.DeadLetterDeliveries) != "2" {
		t.Fatalf("dead letters: %d, first %+v", len(dead), dead)
	}
	// Reset to the earliest: everything is delivered again.
	if _, err := cl.ResetQueueGroup(ctx, "g", "jobs", client.ResetToEarliest()); err != nil {
		t.Fatal(err)
	}
	if ds := receive(ctx, t, busy, 10); len(ds) != 6 || ds[0].DeliveryCount != 1 {
		t.Fatalf("after reset: %d records", len(ds))
	}
}

// TestQueueGroupCoordinatorFailover: the coordinator's broker stops with
// records accepted and records held; the new coordinator never delivers
// an accepted record again, and delivers the held ones with their counts.
func TestQueueGroupCoordinatorFailover(t *testing.T) {
	c, cl := queueCluster(t, 3, group.QueueConfig{})
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "jobs", Partitions: 2, ReplicationFactor: 3})
	const n = 100
	produceValues(t, cl, "jobs", n)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	q := cl.QueueGroup("failover", "jobs")
	accepted := map[string]bool{}
	var held []*client.Delivery
	for len(accepted) < 50 {
		for _, d := range receive(ctx, t, q, 50-len(accepted)) {
			if err := d.Accept(); err != nil {
				t.Fatalf("accept: %v", err)
			}
			accepted[string(d.Value)] = true
		}
	}
	for len(held) < 10 {
		held = append(held, receive(ctx, t, q, 10-len(held))...)
	}
	co, err := c.Broker(c.IDs()[0]).FindCoordinator(ctx, "failover")
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(co.BrokerID)

	// A new member: the 50 not accepted, the held ones delivered a
	// second time (leases are not persisted: held records come back at
	// once), none of the accepted ones.
	other := cl.QueueGroup("failover", "jobs")
	heldValues := map[string]bool{}
	for _, d := range held {
		heldValues[string(d.Value)] = true
	}
	got := map[string]bool{}
	poll.Until(t, 60*time.Second, "every record not accepted before the failover delivered after it", func() error {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		defer rcancel()
		ds, err := other.Receive(rctx, n)
		if err != nil && ctx.Err() == nil && !client.IsRetriable(err) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("receive after failover: %v", err)
		}
		for _, d := range ds {
			v := string(d.Value)
			if accepted[v] || got[v] {
				t.Fatalf("record %s delivered again after failover (accepted %v)", v, accepted[v])
			}
			if want := map[bool]int{true: 2, false: 1}[heldValues[v]]; d.DeliveryCount != want {
				t.Errorf("record %s: delivery %d, want %d", v, d.DeliveryCount, want)
			}
			if err := d.Accept(); err != nil {
				t.Fatalf("accept after failover: %v", err)
			}
			got[v] = true
		}
		if len(got) < n-len(accepted) {
			return fmt.Errorf("%d of %d records after failover", len(got), n-len(accepted))
		}
		return nil
	})
	if err := held[0].Accept(); !errors.Is(err, client.ErrLeaseLost) && !errors.Is(err, client.ErrNotDelivered) {
		t.Fatalf("accept of a lease from before the failover: %v", err)
	}
}

// TestQueueAcceptAsyncRidesOnReceive: outcomes sent with a receive
// (QueueReceive v2, the client's AcceptAsync) are applied and committed
// before anything is acquired, their refusals come back with it, and a
// receive carrying outcomes that finds nothing answers at once rather
// than waiting for records.
func TestQueueAcceptAsyncRidesOnReceive(t *testing.T) {
	c, cl := queueJobs(t, group.QueueConfig{}, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, other := cl.QueueGroup("w", "jobs"), cl.QueueGroup("w", "jobs")
	mine := receive(ctx, t, q, 5)
	theirs := receive(ctx, t, other, 5)
	if len(mine) != 5 || len(theirs) != 5 || mine[0].Offset != 0 || theirs[0].Offset != 5 {
		t.Fatalf("received %d and %d records", len(mine), len(theirs))
	}

	// Through the client: four of mine and one of the other member's
	// (refused: this member does not hold it) ride on the next receive,
	// which then waits for records that never come; the answer comes
	// before it ends.
	answer := q.AcceptAsync(append(mine[:4:4], theirs[0]))
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second) // a 5 s long-poll
	defer rcancel()
	got := make(chan []*client.Delivery, 1)
	go func() {
		ds, _ := q.Receive(rctx, 10)
		got <- ds
	}()
	select {
	case err := <-answer:
		if !errors.Is(err, client.ErrLeaseLost) || !strings.Contains(err.Error(), "offset 5") || strings.Contains(err.Error(), "offset 0") {
			t.Fatalf("AcceptAsync answered %v, want offset 5 refused with QUEUE_LEASE_LOST, the rest accepted", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no answer to AcceptAsync while the receive that carried it waits")
	}
	rcancel()
	if ds := <-got; len(ds) != 0 {
		t.Fatalf("the receive got %d records: every one is held", len(ds))
	}
	d, err := cl.DescribeQueueGroup(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if p := d.Partitions[0]; p.Start != 4 || p.Acquired != 6 {
		t.Fatalf("after the outcomes: %+v, want start 4 (0 to 3 accepted) and 6 held", p)
	}

	// Through the broker: outcomes with nothing to receive answer at once.
	br := c.Broker(c.IDs()[0])
	start := time.Now()
	msgs, refused, _, err := br.QueueSettleAndReceive(ctx, nil, "w", other.Member(),
		[]broker.QueueOutcome{{Topic: "jobs", Partition: 0, First: 5, Last: 9, Outcome: group.Accept}, {Topic: "jobs", Partition: 0, First: 4, Last: 4, Outcome: group.Accept}},
		[]group.QueueKey{{Topic: "jobs", Partition: 0}}, 10, 10*time.Second)
	if err != nil || len(msgs) != 0 || time.Since(start) > 5*time.Second {
		t.Fatalf("settle and receive: %d records, %v after %v", len(msgs), err, time.Since(start))
	}
	if len(refused) != 1 || refused[0].First != 4 || refused[0].Last != 4 || !errors.Is(refused[0].Err, group.ErrLeaseLost) {
		t.Fatalf("refusals %+v, want offset 4 (held by the other member)", refused)
	}
	if d, err = cl.DescribeQueueGroup(ctx, "w"); err != nil || d.Partitions[0].Start != 4 || d.Partitions[0].Acquired != 1 {
		t.Fatalf("after the broker's outcomes: %+v, %v", d, err)
	}

	// With no receive to carry them, outcomes go on their own.
	select {
	case err := <-q.AcceptAsync(mine[4:]):
		if err != nil {
			t.Fatalf("AcceptAsync of the last record: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to AcceptAsync without a receive")
	}
	if d, err = cl.DescribeQueueGroup(ctx, "w"); err != nil || d.Partitions[0].Start != 10 {
		t.Fatalf("after the last outcome: %+v, %v", d, err)
	}
}

// noDelivery fails the test if q receives a record within wait.
func noDelivery(ctx context.Context, t *testing.T, q *client.QueueGroup, wait time.Duration, what string) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for rctx.Err() == nil {
		ds, err := q.Receive(rctx, 10)
		if len(ds) > 0 {
			t.Fatalf("%s: delivered %s/%d at %d (delivery %d)", what, ds[0].Topic, ds[0].Partition, ds[0].Offset, ds[0].DeliveryCount)
		}
		if err != nil && rctx.Err() == nil && !client.IsRetriable(err) {
			t.Fatalf("%s: receive: %v", what, err)
		}
	}
}

// queuePartition returns the described partition topic/0 of group id.
func queuePartition(ctx context.Context, cl *client.Client, id, topic string) (client.QueuePartitionState, error) {
	d, err := cl.DescribeQueueGroup(ctx, id)
	if err != nil {
		return client.QueuePartitionState{}, err
	}
	for _, p := range d.Partitions {
		if p.Topic == topic && p.Partition == 0 {
			return p, nil
		}
	}
	return client.QueuePartitionState{}, fmt.Errorf("%s/0 not in %+v", topic, d.Partitions)
}

// waitArchived waits until the window of topic/0 of group id starts at
// start with no archived record in it: the copies of those before start
// are written.
func waitArchived(ctx context.Context, t *testing.T, cl *client.Client, id, topic string, start int64) {
	t.Helper()
	poll.Until(t, 30*time.Second, fmt.Sprintf("%s/0 archived up to %d", topic, start), func() error {
		p, err := queuePartition(ctx, cl, id, topic)
		if err == nil && (p.Start != start || p.Archived != 0) {
			err = fmt.Errorf("window %+v", p)
		}
		return err
	})
}

// TestQueueDeadLetterWriteFails: a reject whose dead letter cannot be
// written (the dead-letter topic's max.message.bytes is below the copy
// with its headers) is applied: the window marking the record archiving
// was committed before the copy was tried, so the record is never
// delivered again, its lease is gone, and the copy is tried again until
// it is written (here once the limit is raised; by the coordinator on its
// own, no call on the group needed), and the record archived.
func TestQueueDeadLetterWriteFails(t *testing.T) {
	_, cl := queueCluster(t, 1, group.QueueConfig{})
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "jobs", Partitions: 1, ReplicationFactor: 1})
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "jobs.dlq", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"max.message.bytes": "128"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &client.Record{Topic: "jobs", Value: make([]byte, 200)}); err != nil {
		t.Fatal(err)
	}
	q := cl.QueueGroup("w", "jobs")
	ds := receive(ctx, t, q, 1)
	if len(ds) != 1 {
		t.Fatalf("received %d records", len(ds))
	}
	if err := ds[0].Reject("bad"); err != nil {
		t.Fatalf("a reject whose dead letter cannot be written yet: %v, want it applied", err)
	}
	noDelivery(ctx, t, q, 2*time.Second, "a record archiving")
	if err := ds[0].Accept(); !errors.Is(err, client.ErrLeaseLost) {
		t.Fatalf("accept of a record archiving: %v, want ErrLeaseLost", err)
	}
	if p, err := queuePartition(ctx, cl, "w", "jobs"); err != nil || p.Start != 0 || p.Archived != 1 || p.DeadLettered != 1 {
		t.Fatalf("with the copy not written: %+v, %v", p, err)
	}
	if err := cl.AlterConfigs(ctx, "jobs.dlq", client.SetConfig("max.message.bytes", "1048576")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the copy written", func() error {
		ends, err := cl.ListOffsets(ctx, "jobs.dlq", client.AtEnd())
		if err == nil && (len(ends) != 1 || ends[0].Offset != 1) {
			err = fmt.Errorf("jobs.dlq ends at %+v", ends)
		}
		return err
	})
	waitArchived(ctx, t, cl, "w", "jobs", 1)
	if p, err := queuePartition(ctx, cl, "w", "jobs"); err != nil || p.DeadLettered != 1 {
		t.Fatalf("after the copy: %+v, %v", p, err)
	}
	if dead := consumeAll(t, cl, "jobs.dlq", 1); len(dead) != 1 || header(dead[0], protocol.DeadLetterReason) != "rejected: bad" || header(dead[0], protocol.DeadLetterOffset) != "0" {
		t.Fatalf("jobs.dlq: %d records", len(dead))
	}
	noDelivery(ctx, t, q, time.Second, "an archived record")
}

// TestQueueDeadLetterCopiedNeverAcceptedAgain: one acknowledgement
// rejects a record of "a" and one of "b"; a.dlq takes its copy, b.dlq
// refuses its (compacted: a keyless record is invalid). Each record ends
// in one place, its dead-letter topic: the reject is applied (the windows
// marking both archiving were committed before the copies), neither
// record is delivered or accepted again, "a" is archived, and "b" stays
// archiving until b.dlq takes its copy, then is archived.
func TestQueueDeadLetterCopiedNeverAcceptedAgain(t *testing.T) {
	c, cl := queueCluster(t, 1, group.QueueConfig{})
	for _, name := range []string{"a", "b"} {
		testcluster.CreateTopic(t, cl, client.TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 1})
		produceValues(t, cl, name, 1)
	}
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "b.dlq", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "compact"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := cl.QueueGroup("w", "a", "b")
	var held []*client.Delivery
	for len(held) < 2 && ctx.Err() == nil {
		held = append(held, receive(ctx, t, q, 2)...)
	}
	if len(held) != 2 || held[0].Topic == held[1].Topic {
		t.Fatalf("received %d records, want one of a and one of b", len(held))
	}
	refused, err := c.Broker(1).QueueAck(ctx, "w", q.Member(), []broker.QueueOutcome{
		{Topic: "a", Partition: 0, First: 0, Last: 0, Outcome: group.Reject, Reason: "bad a"},
		{Topic: "b", Partition: 0, First: 0, Last: 0, Outcome: group.Reject, Reason: "bad b"}})
	if err != nil || len(refused) != 0 {
		t.Fatalf("reject with a.dlq written and b.dlq refused: %+v, %v; want both applied", refused, err)
	}
	dead := consumeAll(t, cl, "a.dlq", 1)
	if len(dead) != 1 || string(dead[0].Value) != "0" || header(dead[0], protocol.DeadLetterDeliveries) != "1" {
		t.Fatalf("a.dlq: %d records, want the copy of a's record at its first delivery", len(dead))
	}
	noDelivery(ctx, t, q, 2*time.Second, "records whose copies are written or pending")
	for _, d := range held {
		// a's record is done (archived), b's archiving: held by no one.
		want := map[string]error{"a": client.ErrNotDelivered, "b": client.ErrLeaseLost}[d.Topic]
		if err := d.Accept(); !errors.Is(err, want) {
			t.Fatalf("accept of %s/0 after its reject: %v, want %v", d.Topic, err, want)
		}
	}
	if p, err := queuePartition(ctx, cl, "w", "a"); err != nil || p.Start != 1 {
		t.Fatalf("a after the reject: %+v, %v", p, err)
	}
	if p, err := queuePartition(ctx, cl, "w", "b"); err != nil || p.Start != 0 || p.Archived != 1 {
		t.Fatalf("b with its copy refused: %+v, %v", p, err)
	}
	if err := cl.AlterConfigs(ctx, "b.dlq", client.SetConfig("cleanup.policy", "delete")); err != nil {
		t.Fatal(err)
	}
	waitArchived(ctx, t, cl, "w", "b", 1)
	if dead := consumeAll(t, cl, "b.dlq", 1); len(dead) != 1 || header(dead[0], protocol.DeadLetterReason) != "rejected: bad b" {
		t.Fatalf("b.dlq: %d records", len(dead))
	}
	noDelivery(ctx, t, q, time.Second, "archived records")
}

// TestQueueDeadLetterPendingAcrossFailover: a record rejected while its
// dead-letter topic refuses the copy is archiving in the committed
// window when the coordinator's broker stops. The new coordinator never
// delivers it (a held record of the same window comes back, as after any
// failover), refuses its outcomes, and writes its copy once the
// dead-letter topic takes it, then archives it.
func TestQueueDeadLetterPendingAcrossFailover(t *testing.T) {
	c, cl := queueCluster(t, 3, group.QueueConfig{})
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "jobs", Partitions: 1, ReplicationFactor: 3})
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "jobs.dlq", Partitions: 1, ReplicationFactor: 3, Configs: map[string]string{"cleanup.policy": "compact"}})
	produceValues(t, cl, "jobs", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	q := cl.QueueGroup("w", "jobs")
	var held []*client.Delivery
	for len(held) < 2 && ctx.Err() == nil {
		held = append(held, receive(ctx, t, q, 2)...)
	}
	if len(held) != 2 || held[0].Offset != 0 {
		t.Fatalf("received %d records", len(held))
	}
	if err := held[0].Reject("bad"); err != nil {
		t.Fatalf("reject with jobs.dlq refusing the copy: %v", err)
	}
	if p, err := queuePartition(ctx, cl, "w", "jobs"); err != nil || p.Start != 0 || p.Archived != 1 {
		t.Fatalf("before the failover: %+v, %v", p, err)
	}
	co, err := c.Broker(c.IDs()[0]).FindCoordinator(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(co.BrokerID)

	other := cl.QueueGroup("w", "jobs")
	var again *client.Delivery
	poll.Until(t, 60*time.Second, "offset 1 delivered again by the new coordinator", func() error {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		defer rcancel()
		ds, err := other.Receive(rctx, 10)
		for _, d := range ds {
			if d.Offset != 1 || again != nil {
				t.Fatalf("after the failover: delivered offset %d (delivery %d)", d.Offset, d.DeliveryCount)
			}
			again = d
		}
		if again == nil {
			return fmt.Errorf("nothing received: %v", err)
		}
		return nil
	})
	if err := again.Accept(); err != nil {
		t.Fatalf("accept of offset 1 after the failover: %v", err)
	}
	if err := held[0].Accept(); !errors.Is(err, client.ErrLeaseLost) && !errors.Is(err, client.ErrNotDelivered) {
		t.Fatalf("accept of the archiving record after the failover: %v", err)
	}
	if p, err := queuePartition(ctx, cl, "w", "jobs"); err != nil || p.Start != 0 || p.Archived != 1 || p.Accepted != 1 {
		t.Fatalf("after the failover: %+v, %v", p, err)
	}
	if err := cl.AlterConfigs(ctx, "jobs.dlq", client.SetConfig("cleanup.policy", "delete")); err != nil {
		t.Fatal(err)
	}
	waitArchived(ctx, t, cl, "w", "jobs", 2)
	if dead := consumeAll(t, cl, "jobs.dlq", 1); len(dead) < 1 || header(dead[0], protocol.DeadLetterReason) != "rejected: bad" || header(dead[0], protocol.DeadLetterOffset) != "0" {
		t.Fatalf("jobs.dlq: %d records", len(dead))
	}
	noDelivery(ctx, t, other, time.Second, "after the copy")
}

// TestQueueDeadLetterWriteOutsideLock: while a dead letter's copy is
// stuck (its write held by a hook, as when the dead-letter topic has no
// leader), the other groups of its coordinator partition are served at
// once: a consumer group's offset commit and another queue group's
// receive and accept ("AaAa", "AaBB" and "BBBB" hash alike, so they share
// the coordinator). Released, the copy lands once and the record ends
// archived.
func TestQueueDeadLetterWriteOutsideLock(t *testing.T) {
	c, cl := queueJobs(t, group.QueueConfig{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range []int32{1, 7, 50} {
		if p := broker.GroupPartition("AaAa", n); broker.GroupPartition("AaBB", n) != p || broker.GroupPartition("BBBB", n) != p {
			t.Fatalf("the groups are on different partitions of %d", n)
		}
	}
	b := c.Broker(c.IDs()[0])
	var writes atomic.Int32
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	b.SetDeadLetterHook(func(hctx context.Context) {
		writes.Add(1)
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-hctx.Done():
		}
	})

	ds := receive(ctx, t, cl.QueueGroup("AaAa", "jobs"), 1)
	if len(ds) != 1 {
		t.Fatalf("received %d records", len(ds))
	}
	rejected := make(chan error, 1)
	go func() { rejected <- ds[0].Reject("bad") }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the dead letter's copy never started")
	}

	// prompt runs op, which must end well under a second while the copy
	// is stuck; if it does not, the copy is released so that it ends.
	prompt := func(what string, op func(context.Context) error) {
		t.Helper()
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- op(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s with a dead-letter copy stuck: %v", what, err)
			}
		case <-time.After(time.Second):
			unblock()
			err := <-done
			t.Fatalf("%s with a dead-letter copy stuck: ended after %v (%v), once the copy was released", what, time.Since(start), err)
		}
	}
	prompt("an offset commit", func(ctx context.Context) error {
		res, err := b.CommitOffsets(ctx, group.OffsetCommit{GroupID: "AaBB", MemberEpoch: -1, Topics: []group.CommitTopic{
			{Topic: "jobs", Partitions: []group.CommitPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}})
		if err == nil && (len(res) != 1 || len(res[0].Partitions) != 1) {
			err = fmt.Errorf("answer %+v", res)
		}
		if err == nil {
			err = res[0].Partitions[0].Err
		}
		return err
	})
	// Another client: a connection answers its requests in order, after
	// the stuck reject.
	q := c.Client().QueueGroup("BBBB", "jobs")
	var other []*client.Delivery
	prompt("another queue group's receive", func(ctx context.Context) error {
		var err error
		other, err = q.Receive(ctx, 1)
		if err == nil && len(other) != 1 {
			err = fmt.Errorf("received %d records", len(other))
		}
		return err
	})
	prompt("another queue group's accept", func(context.Context) error { return other[0].Accept() })
	if n := writes.Load(); n != 1 {
		t.Fatalf("%d writes of the copy started while it was stuck, want 1", n)
	}

	unblock()
	if err := <-rejected; err != nil {
		t.Fatalf("the reject: %v", err)
	}
	waitArchived(ctx, t, cl, "AaAa", "jobs", 1)
	if dead := consumeAll(t, cl, "jobs.dlq", 1); len(dead) != 1 || header(dead[0], protocol.DeadLetterOffset) != "0" {
		t.Fatalf("jobs.dlq: %d records", len(dead))
	}
	if n := writes.Load(); n != 1 {
		t.Fatalf("the copy written %d times, want once", n)
	}
}
