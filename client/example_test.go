package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// Create a topic, produce to it and consume it back, against a
// single-node broker this example starts in its own process (with
// `sluice broker` running, the seed would be its address instead).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, stop := exampleBroker(ctx)
	defer stop()

	c, err := client.New(ctx, client.SeedBrokers(addr))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateTopics(ctx, client.TopicSpec{Name: "greetings", Partitions: 1, ReplicationFactor: 1}); err != nil {
		log.Fatal(err)
	}
	err = c.ProduceSync(ctx,
		&client.Record{Topic: "greetings", Key: []byte("alice"), Value: []byte("hello")},
		&client.Record{Topic: "greetings", Key: []byte("bob"), Value: []byte("hi")},
		&client.Record{Topic: "greetings", Key: []byte("alice"), Value: []byte("bye")})
	if err != nil {
		log.Fatal(err)
	}

	c.Assign(map[client.TopicPartition]client.Offset{{Topic: "greetings", Partition: 0}: client.AtStart()})
	for seen := 0; seen < 3; {
		f, err := c.Poll(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range f.Errors {
			log.Fatal(e)
		}
		for _, r := range f.Records {
			fmt.Printf("%d %s=%s\n", r.Offset, r.Key, r.Value)
			seen++
		}
	}
	// Output:
	// 0 alice=hello
	// 1 bob=hi
	// 2 alice=bye
}

// exampleBroker starts a single-node broker in this process, its data in
// a temporary directory, for the examples that run; stop closes it and
// removes the directory.
func exampleBroker(ctx context.Context) (addr string, stop func()) {
	dir, err := os.MkdirTemp("", "sluice-example")
	if err != nil {
		log.Fatal(err)
	}
	b, err := broker.New(broker.Config{ListenAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	return b.Addr(), func() {
		b.Close()
		os.RemoveAll(dir)
	}
}

// exampleTopic creates topic with one partition on the broker at addr and
// produces values to it, each under the key k1, k2, ...
func exampleTopic(ctx context.Context, addr, topic string, values ...string) {
	c, err := client.New(ctx, client.SeedBrokers(addr))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateTopics(ctx, client.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 1}); err != nil {
		log.Fatal(err)
	}
	recs := make([]*client.Record, len(values))
	for i, v := range values {
		recs[i] = &client.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i+1)), Value: []byte(v)}
	}
	if err := c.ProduceSync(ctx, recs...); err != nil {
		log.Fatal(err)
	}
}

// A consumer group member reads a topic from the start; Close commits
// what Poll returned and leaves, and the group's committed offset is then
// where a member started later goes on (against a broker this example
// starts in its own process).
func Example_consumerGroup() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, stop := exampleBroker(ctx)
	defer stop()
	exampleTopic(ctx, addr, "orders", "apple", "pear", "plum")

	member, err := client.New(ctx, client.SeedBrokers(addr),
		client.ConsumerGroup("billing", client.GroupTopics("orders"), client.GroupResetOffset(client.AtStart())))
	if err != nil {
		log.Fatal(err)
	}
	for seen := 0; seen < 3; {
		f, err := member.Poll(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range f.Records {
			fmt.Printf("%s[%d]@%d: %s\n", r.Topic, r.Partition, r.Offset, r.Value)
			seen++
		}
	}
	member.Close() // commits offset 3, then leaves the group

	// Any client reads a group's committed offsets.
	admin, err := client.New(ctx, client.SeedBrokers(addr))
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	committed, err := admin.CommittedOffsets(ctx, "billing")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("committed:", committed[client.TopicPartition{Topic: "orders", Partition: 0}])
	// Output:
	// orders[0]@0: apple
	// orders[0]@1: pear
	// orders[0]@2: plum
	// committed: 3
}

// A queue group worker takes records one by one under a lease, accepts
// the ones it handled and rejects one, which goes to the dead letters
// (against a broker this example starts in its own process).
func Example_queueGroup() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, stop := exampleBroker(ctx)
	defer stop()
	exampleTopic(ctx, addr, "emails", "to ann", "to bob", "to cy")

	c, err := client.New(ctx, client.SeedBrokers(addr))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	q := c.QueueGroup("mailer", "emails")
	for settled := 0; settled < 3; {
		ds, err := q.Receive(ctx, 10)
		if err != nil {
			log.Fatal(err)
		}
		for _, d := range ds {
			if string(d.Value) == "to bob" {
				err = d.Reject("mailbox full")
				fmt.Printf("rejected %d: %s (delivery %d)\n", d.Offset, d.Value, d.DeliveryCount)
			} else {
				err = d.Accept()
				fmt.Printf("accepted %d: %s (delivery %d)\n", d.Offset, d.Value, d.DeliveryCount)
			}
			if err != nil {
				log.Fatal(err)
			}
			settled++
		}
	}

	desc, err := c.DescribeQueueGroup(ctx, "mailer")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range desc.Partitions {
		fmt.Printf("%s[%d]: window from %d, end %d, dead-lettered %d\n", p.Topic, p.Partition, p.Start, p.End, p.DeadLettered)
	}
	// Output:
	// accepted 0: to ann (delivery 1)
	// rejected 1: to bob (delivery 1)
	// accepted 2: to cy (delivery 1)
	// emails[0]: window from 3, end 3, dead-lettered 1
}

// Produce asynchronously, then wait for every callback with Flush.
func ExampleClient_Produce() {
	ctx := context.Background()
	c, err := client.New(ctx, client.SeedBrokers("localhost:9092"),
		client.Linger(10*time.Millisecond), client.Compression(record.Zstd))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for i := range 1000 {
		rec := &client.Record{Topic: "events", Key: []byte(fmt.Sprint(i % 10)), Value: []byte("hello")}
		c.Produce(ctx, rec, func(r *client.Record, err error) {
			if err != nil {
				if client.IsIndeterminate(err) {
					log.Printf("maybe written: %v", err) // R14: do not assume it is absent
				} else {
					log.Printf("not written: %v", err)
				}
				return
			}
			_ = r.Offset // acknowledged at r.Partition, r.Offset
		})
	}
	if err := c.Flush(ctx); err != nil {
		log.Fatal(err)
	}
}

// ProduceSync waits for the records to be acknowledged.
func ExampleClient_ProduceSync() {
	ctx := context.Background()
	c, err := client.New(ctx, client.SeedBrokers("localhost:9092"), client.Acks(client.AcksAll))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.ProduceSync(ctx, &client.Record{Topic: "events", Value: []byte("one")},
		&client.Record{Topic: "events", Value: []byte("two")})
	if errors.Is(err, protocol.ErrNotEnoughReplicas) {
		log.Print("too few in-sync replicas; nothing was written")
	}
}

// Consume one partition from the start.
func ExampleClient_Poll() {
	ctx := context.Background()
	c, err := client.New(ctx, client.SeedBrokers("localhost:9092"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Assign(map[client.TopicPartition]client.Offset{{Topic: "events", Partition: 0}: client.AtStart()})
	for {
		f, err := c.Poll(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range f.Errors {
			log.Printf("partition paused: %v", e)
		}
		for _, r := range f.Records {
			fmt.Printf("%d: %s\n", r.Offset, r.Value)
		}
	}
}

// Consume as a member of a consumer group: the group assigns the
// partitions, and what Poll returned is committed once Poll is called
// again (every 5s), on a partition's revocation and on Close.
func ExampleConsumerGroup() {
	ctx := context.Background()
	c, err := client.New(ctx, client.SeedBrokers("localhost:9092"),
		client.ConsumerGroup("billing", client.GroupTopics("orders"), client.GroupResetOffset(client.AtStart()),
			client.OnRevoked(func(tps []client.TopicPartition) { log.Printf("revoked %v", tps) })))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // commits what Poll returned, then leaves the group
	for {
		f, err := c.Poll(ctx)
		if err != nil {
			log.Fatal(err) // ctx, client.ErrClosed, or a *client.GroupError
		}
		for _, r := range f.Records {
			fmt.Printf("%s[%d]@%d: %s\n", r.Topic, r.Partition, r.Offset, r.Value)
		}
	}
}

// Work a queue: any number of workers in the queue group "mailer" take
// records of "emails" one by one, each under a lease. A record accepted
// is done; released, it is delivered again (here after 10 s); rejected,
// or delivered too often (max.delivery.attempts), it goes to the dead
// letters; a worker that dies leaves its records to the others when their
// leases run out.
func ExampleQueueGroup() {
	ctx := context.Background()
	c, err := client.New(ctx, client.SeedBrokers("localhost:9092"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	q := c.QueueGroup("mailer", "emails")
	for {
		ds, err := q.Receive(ctx, 10)
		if err != nil {
			log.Fatal(err)
		}
		for _, d := range ds {
			if err := send(d.Value); err != nil {
				if d.DeliveryCount < 3 {
					err = d.Release(10 * time.Second)
				} else {
					err = d.Reject(err.Error())
				}
				if err != nil && !errors.Is(err, client.ErrLeaseLost) {
					log.Print(err)
				}
				continue
			}
			// ErrLeaseLost: the lease ran out first, and another
			// worker has (or will have) the record.
			if err := d.Accept(); err != nil && !errors.Is(err, client.ErrLeaseLost) {
				log.Print(err)
			}
		}
	}
}

// send stands for the work of ExampleQueueGroup.
func send([]byte) error { return nil }

// Create a topic with configs, then change one.
func ExampleClient_CreateTopics() {
	ctx := context.Background()
	c, err := client.New(ctx, client.SeedBrokers("localhost:9092"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.CreateTopics(ctx, client.TopicSpec{Name: "events", Partitions: 6, ReplicationFactor: 3,
		Configs: map[string]string{"retention.ms": "86400000"}})
	if err != nil && !errors.Is(err, protocol.ErrTopicAlreadyExists) {
		log.Fatal(err)
	}
	if err := c.AlterConfigs(ctx, "events", client.SetConfig("min.insync.replicas", "2")); err != nil {
		log.Fatal(err)
	}
	d, err := c.DescribeTopic(ctx, "events")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range d.Partitions {
		fmt.Println(p.Partition, p.Leader, p.ISR)
	}
}
