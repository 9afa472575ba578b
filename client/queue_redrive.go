package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/record"
)

// DeadLetterSuffix makes a topic's dead-letter topic name, as the
// broker names it.
const DeadLetterSuffix = ".dlq"

// RedriveResult is what a redrive did with one dead-letter topic.
type RedriveResult struct {
	DeadLetterTopic string `json:"dead_letter_topic"`
	// Republished counts the dead letters produced again to their
	// original topic.
	Republished int `json:"republished"`
	// Skipped counts the records of the dead-letter topic without the
	// header naming their original topic (not written by a queue group).
	Skipped int `json:"skipped"`
}

// RedriveQueueGroup republishes the queue group's dead letters to their
// original topics: it reads the dead-letter topic (<topic>.dlq) of topic
// (of every topic the group has read when topic is "") up to its end now
// and produces each dead letter again to the topic its headers name, with
// its key, value and headers (less the dead-letter ones): the group
// delivers it again as a new record. Progress is kept as the committed
// offsets of consumer group <group>.redrive, so a second call
// republishes only what was dead-lettered since (at least once: a call
// stopped midway may republish some again). wait bounds the reading of
// each dead-letter topic. A group whose queue.dlq.topic is set dead-letters
// every topic's records there: that topic is read instead, whole (its
// records name their origins). `sluice queue redrive` and the console's
// Redrive button both run it.
func (c *Client) RedriveQueueGroup(ctx context.Context, group, topic string, wait time.Duration) ([]RedriveResult, error) {
	entries, err := c.DescribeQueueGroupConfigs(ctx, group, "queue.dlq.topic")
	if err != nil {
		return nil, err
	}
	if len(entries) == 1 && entries[0].Value != "" {
		res, err := c.redrive(ctx, group, entries[0].Value, wait)
		return []RedriveResult{res}, err
	}
	topics := []string{topic}
	if topic == "" {
		d, err := c.DescribeQueueGroup(ctx, group)
		if err != nil {
			return nil, err
		}
		topics = topics[:0]
		for _, p := range d.Partitions {
			if len(topics) == 0 || topics[len(topics)-1] != p.Topic {
				topics = append(topics, p.Topic)
			}
		}
	}
	var out []RedriveResult
	for _, t := range topics {
		res, err := c.redrive(ctx, group, t+DeadLetterSuffix, wait)
		out = append(out, res)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// redrive republishes dlq's records from the committed offsets of
// consumer group <group>.redrive up to its ends now.
func (c *Client) redrive(ctx context.Context, group, dlq string, wait time.Duration) (RedriveResult, error) {
	res := RedriveResult{DeadLetterTopic: dlq}
	ends, err := c.ListOffsets(ctx, dlq, AtEnd())
	if errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
		return res, nil // nothing was ever dead-lettered
	}
	if err != nil {
		return res, err
	}
	rgroup := group + ".redrive"
	committed, err := c.CommittedOffsets(ctx, rgroup)
	if err != nil {
		return res, err
	}
	starts, err := c.ListOffsets(ctx, dlq, AtStart())
	if err != nil {
		return res, err
	}
	left := map[int32]int64{} // partition → end not yet reached
	for i, e := range ends {
		from := starts[i].Offset
		if o, ok := committed[TopicPartition{Topic: dlq, Partition: e.Partition}]; ok {
			from = max(from, o)
		}
		if from < e.Offset {
			left[e.Partition] = e.Offset
		}
	}
	if len(left) == 0 {
		return res, nil
	}
	// A consumer-group client with this client's settings.
	rc, err := New(ctx, func(cfg *config) { *cfg = c.cfg }, ConsumerGroup(rgroup, GroupTopics(dlq), GroupResetOffset(AtStart())))
	if err != nil {
		return res, fmt.Errorf("redrive %s: %w", dlq, err)
	}
	defer rc.Close() // commits what was republished
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for len(left) > 0 {
		fs, err := rc.Poll(wctx)
		if err != nil {
			return res, fmt.Errorf("redrive %s: %d republished, %d partitions not read to their end: %w", dlq, res.Republished, len(left), err)
		}
		var out []*Record
		later := map[int32]bool{}
		for _, r := range fs.Records {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				// Dead-lettered after this run started: the next run's.
				// Seek back so that the commit does not pass it.
				if !later[r.Partition] {
					later[r.Partition] = true
					_ = rc.Seek(r.Topic, r.Partition, r.Offset)
				}
				continue
			}
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			orig := ""
			var hs []record.Header
			for _, h := range r.Headers {
				switch k := string(h.Key); {
				case k == protocol.DeadLetterTopic:
					orig = string(h.Value)
				case strings.HasPrefix(k, "sluice.dlq."):
				default:
					hs = append(hs, h)
				}
			}
			if orig == "" {
				res.Skipped++
				continue
			}
			out = append(out, &Record{Topic: orig, Key: r.Key, Value: r.Value, Headers: hs})
		}
		if len(out) > 0 {
			if err := c.ProduceSync(ctx, out...); err != nil {
				return res, fmt.Errorf("redrive %s: %w", dlq, err)
			}
			res.Republished += len(out)
		}
		if err := rc.Commit(ctx); err != nil {
			return res, fmt.Errorf("redrive %s: commit progress: %w", dlq, err)
		}
	}
	return res, nil
}
