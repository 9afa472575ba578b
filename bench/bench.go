// Package bench drives load against a sluice cluster through the client
// library and measures it, and checks that a cluster keeps what it
// acknowledges.
//
// Workloads: Produce (records/s, MB/s, latency from Produce to the
// acknowledgement), Consume (records/s, MB/s of reading a topic from its
// start), E2E (producers and consumers together; latency from the
// produce time written into each record's value to its consumption) and
// Commit (consumer-group offset commits on a fixed schedule; latency from
// each commit's scheduled time to its answer).
// Verify runs producers and consumers whose every outcome is recorded in a
// History, and Check judges a History (see check.go).
//
// Each producer and each consumer is its own Client, so its own
// connections, as separate processes would be. Workload loops do no
// per-record allocation: record structs come from a reused pool and every
// record shares one value buffer (the client copies a record's bytes
// during Produce).
//
// Latencies go into HDR histograms (Histogram) and every run ends in a
// Report. While a run lasts, an optional progress line is rewritten once a
// second on Config.Progress.
//
// Concurrency: each run owns every goroutine it starts and has stopped all
// of them when it returns. Cancelling ctx stops a run early; the Report
// then covers what was done.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluicemq/sluice/client"
)

// Defaults applied to zero fields of Config.
const (
	DefaultRecords    = 1_000_000
	DefaultRecordSize = 100
	DefaultPartitions = 1
	// DefaultReadTimeout is Config.ReadTimeout's default.
	DefaultReadTimeout = 30 * time.Second
	// DefaultDeliveryTimeout is how long a produced record may wait for
	// its acknowledgement before the run counts it as failed.
	DefaultDeliveryTimeout = 30 * time.Second
)

// e2eHeader is the bytes at the front of an E2E record's value: the
// produce time in Unix nanoseconds, big-endian.
const e2eHeader = 8

// Config describes a workload. Producer settings (acks, compression,
// linger, batch size) are client options in Producer, so that bench needs
// nothing but the client's API.
type Config struct {
	// Client options for every client of the run; must name the seed
	// brokers (client.SeedBrokers).
	Client []client.Opt
	// Producer options, applied after Client to producing clients.
	Producer []client.Opt
	// Consumer options, applied after Client to consuming clients.
	Consumer []client.Opt

	// Topic to produce to or consume from. Required.
	Topic string
	// Create creates Topic with Partitions, ReplicationFactor and
	// TopicConfigs unless it exists already.
	Create            bool
	Partitions        int32             // default DefaultPartitions
	ReplicationFactor int16             // <= 0: the broker's default
	TopicConfigs      map[string]string // e.g. "fsync": "always"

	// Records is how many records to produce (split evenly over the
	// producers), or the most to consume. Duration, when set, ends the run
	// after that long instead. Produce and E2E default to DefaultRecords;
	// Consume reads to the end the log had when it started.
	Records  int64
	Duration time.Duration

	RecordSize int // value bytes; default DefaultRecordSize
	// KeyCount > 0 gives records keys cycling over that many distinct
	// values ("key-0".."key-<n-1>"), which spreads them by key hash; 0
	// sends them without key, in sticky batches.
	KeyCount  int
	Producers int // default 1
	Consumers int // default 1
	// Rate, if positive, is the total records/s the producers send at: a
	// fixed schedule for measuring latency rather than the most the
	// cluster can take. Latency is measured from each record's scheduled
	// time, so a stalled cluster is not hidden by the producer waiting
	// (no coordinated omission).
	Rate float64
	// ReadTimeout bounds each step of reading back: an offset lookup,
	// which retries retriable failures (a leader that moved, a broker
	// restarting) with fresh metadata until then; and how long consumers
	// may take, once the producers are done, to read what was
	// acknowledged (E2E's consumers; Verify's live consumers, then its
	// final read). Their fetches retry the same failures, with fresh
	// metadata, inside the client. Default DefaultReadTimeout.
	ReadTimeout time.Duration
	// DeliveryTimeout bounds the time from Produce to a record's
	// acknowledgement (default DefaultDeliveryTimeout). A record not
	// acknowledged by then counts as an error at once, so a stalled
	// partition shows in the errors while the run goes on with the others;
	// producing clients get it as their client.DeliveryTimeout.
	DeliveryTimeout time.Duration

	// Group, if set, makes Consume's consumers members of this consumer
	// group, which shares the partitions among them, reading from the
	// group's committed offsets (the log start where it has none),
	// rather than each being assigned its share. Commit needs it: the
	// group whose members commit.
	Group string
	// QueueSyncAccept makes Queue's workers wait for each acceptance
	// before they receive again (AcceptAll), instead of sending it with
	// the next receive (AcceptAsync).
	QueueSyncAccept bool

	// slots caps each producer's pool of record slots (maxSlots when 0):
	// a test's smaller cap is passed in seconds even on a loaded machine.
	slots int

	// Progress, if set, gets a progress line rewritten once a second
	// ("\r"-terminated) and a final newline.
	Progress io.Writer

	// AfterProduce, if set, is called by Verify once every producer has
	// finished and before the end offsets are listed: a seam for tests
	// that change the cluster at that moment (a partition's leadership
	// moving there is what the end-offset lookup must survive).
	AfterProduce func()
}

// withDefaults returns c with defaults applied, or an error naming the
// first bad field.
func (c Config) withDefaults() (Config, error) {
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.RecordSize == 0 {
		c.RecordSize = DefaultRecordSize
	}
	if c.Producers == 0 {
		c.Producers = 1
	}
	if c.Consumers == 0 {
		c.Consumers = 1
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = DefaultDeliveryTimeout
	}
	switch {
	case len(c.Client) == 0:
		return c, errors.New("bench: Client options must name the seed brokers")
	case c.Topic == "":
		return c, errors.New("bench: topic is required")
	case c.Partitions < 0:
		return c, fmt.Errorf("bench: partitions %d, must be positive", c.Partitions)
	case c.Records < 0:
		return c, fmt.Errorf("bench: records %d, must be >= 0", c.Records)
	case c.Duration < 0:
		return c, fmt.Errorf("bench: duration %v, must be >= 0", c.Duration)
	case c.RecordSize < 0:
		return c, fmt.Errorf("bench: record size %d, must be >= 0", c.RecordSize)
	case c.KeyCount < 0:
		return c, fmt.Errorf("bench: key count %d, must be >= 0", c.KeyCount)
	case c.Producers < 0 || c.Consumers < 0:
		return c, fmt.Errorf("bench: producers %d, consumers %d: must be positive", c.Producers, c.Consumers)
	case c.DeliveryTimeout < 0:
		return c, fmt.Errorf("bench: delivery timeout %v, must be >= 0", c.DeliveryTimeout)
	case c.Rate < 0:
		return c, fmt.Errorf("bench: rate %v, must be >= 0", c.Rate)
	case c.ReadTimeout < 0:
		return c, fmt.Errorf("bench: read timeout %v, must be positive", c.ReadTimeout)
	}
	return c, nil
}

// newClient connects one client of the run.
func (c *Config) newClient(ctx context.Context, id string, extra []client.Opt) (*client.Client, error) {
	opts := make([]client.Opt, 0, 1+len(c.Client)+len(extra))
	opts = append(opts, client.ClientID(id))
	opts = append(opts, c.Client...)
	opts = append(opts, extra...)
	cl, err := client.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", id, err)
	}
	return cl, nil
}

// topicWait bounds how long a run waits for its topic to show up in the
// metadata of the broker it asks.
const topicWait = 10 * time.Second

// prepareTopic creates the topic if asked to and it does not exist, and
// returns its partition count.
func (c *Config) prepareTopic(ctx context.Context, cl *client.Client) (int32, error) {
	d, err := cl.DescribeTopic(ctx, c.Topic)
	if err != nil && c.Create {
		spec := client.TopicSpec{Name: c.Topic, Partitions: c.Partitions,
			ReplicationFactor: c.ReplicationFactor, Configs: c.TopicConfigs}
		if cerr := cl.CreateTopics(ctx, spec); cerr != nil {
			return 0, fmt.Errorf("bench: create topic %s: %w", c.Topic, cerr)
		}
	}
	// A topic created a moment ago (here or by whoever asked for this
	// run) is known to the broker that created it first; another broker
	// learns of it a moment later, so a retriable answer is asked again,
	// for a bounded time, as a Kafka producer waits for metadata.
	deadline := time.Now().Add(topicWait)
	for err != nil && client.IsRetriable(err) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		d, err = cl.DescribeTopic(ctx, c.Topic)
	}
	if err != nil {
		return 0, fmt.Errorf("bench: topic %s: %w", c.Topic, err)
	}
	if len(d.Partitions) == 0 {
		return 0, fmt.Errorf("bench: topic %s has no partitions", c.Topic)
	}
	return int32(len(d.Partitions)), nil
}

// share is worker i's part of total split over n workers.
func share(total int64, i, n int) int64 {
	s := total / int64(n)
	if int64(i) < total%int64(n) {
		s++
	}
	return s
}
