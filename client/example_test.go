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
	dir, err := os.MkdirTemp("", "sluice-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := broker.New(broker.Config{ListenAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	c, err := client.New(ctx, client.SeedBrokers(b.Addr()))
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
