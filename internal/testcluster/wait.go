package testcluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/protocol"
)

// attemptTimeout bounds each metadata request of a wait: a request the
// client sent to a stopped broker fails then, and the next attempt goes to
// another (the client spreads such requests over the brokers).
const attemptTimeout = 2 * time.Second

// WaitPartition waits until cond holds for partition p of topic as cl's
// metadata describes it, and returns that description; what names the
// wait in the failure message, with cond's last error.
func WaitPartition(t testing.TB, cl *client.Client, topic string, p int32, timeout time.Duration, what string, cond func(client.PartitionDescription) error) client.PartitionDescription {
	t.Helper()
	var pd client.PartitionDescription
	poll.Until(t, timeout, fmt.Sprintf("%s-%d: %s", topic, p, what), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		td, err := cl.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		if int(p) >= len(td.Partitions) {
			return fmt.Errorf("%d partitions", len(td.Partitions))
		}
		pd = td.Partitions[p]
		if err := cond(pd); err != nil {
			return fmt.Errorf("leader %d, ISR %v: %w", pd.Leader, pd.ISR, err)
		}
		return nil
	})
	return pd
}

// WaitBrokerState waits until broker id is registered in state ("alive",
// "offline") as cl's cluster description says, or is not registered when
// state is "".
func WaitBrokerState(t testing.TB, cl *client.Client, id int32, state string, timeout time.Duration) {
	t.Helper()
	poll.Until(t, timeout, fmt.Sprintf("broker %d %q", id, state), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		d, err := cl.DescribeCluster(ctx)
		if err != nil {
			return err
		}
		for _, b := range d.Brokers {
			if b.ID == id {
				if b.State == state {
					return nil
				}
				return fmt.Errorf("state %s", b.State)
			}
		}
		if state == "" {
			return nil
		}
		return errors.New("not registered")
	})
}

// WaitLeader waits until partition p of topic has a leader other than
// broker not (-1: any leader) and returns it.
func WaitLeader(t testing.TB, cl *client.Client, topic string, p, not int32, timeout time.Duration) int32 {
	t.Helper()
	what := "a leader"
	if not >= 0 {
		what = fmt.Sprintf("a leader other than %d", not)
	}
	return WaitPartition(t, cl, topic, p, timeout, what, func(pd client.PartitionDescription) error {
		if pd.Leader < 0 || pd.Leader == not {
			return fmt.Errorf("leader %d", pd.Leader)
		}
		return nil
	}).Leader
}

// WaitFullISR waits until every partition of topic has a leader and every
// replica in its ISR, and returns the topic's description.
func WaitFullISR(t testing.TB, cl *client.Client, topic string, timeout time.Duration) client.TopicDescription {
	t.Helper()
	var td client.TopicDescription
	poll.Until(t, timeout, "every replica of "+topic+" in sync", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		var err error
		if td, err = cl.DescribeTopic(ctx, topic); err != nil {
			return err
		}
		for _, p := range td.Partitions {
			if len(p.ISR) != len(p.Replicas) || p.Leader < 0 {
				return fmt.Errorf("partition %d: leader %d, ISR %v of %v", p.Partition, p.Leader, p.ISR, p.Replicas)
			}
		}
		return nil
	})
	return td
}

// CreateTopic creates the topic, waits until every replica of every
// partition is in sync and returns its description.
func CreateTopic(t testing.TB, cl *client.Client, spec client.TopicSpec) client.TopicDescription {
	t.Helper()
	// As an application would: a retriable or indeterminate answer (the
	// controller lost its leadership while committing, on a loaded
	// machine) is tried again, and "already exists" after such an answer
	// means the first try was applied.
	retryAdmin(t, "create topic "+spec.Name, protocol.ErrTopicAlreadyExists, func(ctx context.Context) error { return cl.CreateTopics(ctx, spec) })
	return WaitFullISR(t, cl, spec.Name, 10*time.Second)
}

// LeaderIs is a WaitPartition condition: broker want leads (-1: no one).
func LeaderIs(want int32) func(client.PartitionDescription) error {
	return func(pd client.PartitionDescription) error {
		if pd.Leader != want {
			return fmt.Errorf("want leader %d", want)
		}
		return nil
	}
}

// ISRIs is a WaitPartition condition: the ISR is want, in any order.
func ISRIs(want ...int32) func(client.PartitionDescription) error {
	return func(pd client.PartitionDescription) error {
		got := slices.Clone(pd.ISR)
		slices.Sort(got)
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			return fmt.Errorf("want ISR %v", want)
		}
		return nil
	}
}

// DeleteTopic deletes the topic, trying again after a retriable or
// indeterminate answer, as CreateTopic does; "unknown topic" after such
// an answer means the first try was applied.
func DeleteTopic(t testing.TB, cl *client.Client, name string) {
	t.Helper()
	retryAdmin(t, "delete topic "+name, protocol.ErrUnknownTopicOrPartition, func(ctx context.Context) error { return cl.DeleteTopics(ctx, name) })
}

// RetryAdmin runs op until it succeeds, for up to 30 s, as an
// application would: again after a retriable or indeterminate error (the
// controller lost its leadership while committing a write that is not
// safe to run again, on a loaded machine), and done when a retry fails
// with applied, which says an earlier try took effect. Any other error
// fails the test; what names the operation in the message.
func RetryAdmin(t testing.TB, what string, applied error, op func(context.Context) error) {
	t.Helper()
	retryAdmin(t, what, applied, op)
}

// retryAdmin is RetryAdmin, as the package's own calls name it.
func retryAdmin(t testing.TB, what string, applied error, op func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for retried := false; ; retried = true {
		err := op(ctx)
		if err == nil || (retried && errors.Is(err, applied)) {
			return
		}
		if !client.IsRetriable(err) && !client.IsIndeterminate(err) || ctx.Err() != nil {
			t.Fatalf("%s: %v", what, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
