package chaos

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/client"
)

// Partition is one partition's metadata as the cluster reports it.
type Partition = client.PartitionDescription

// Describe returns partition p of topic, failing when it has no leader.
func Describe(ctx context.Context, cl *client.Client, topic string, p int32) (Partition, error) {
	d, err := cl.DescribeTopic(ctx, topic)
	if err != nil {
		return Partition{}, err
	}
	if int(p) >= len(d.Partitions) {
		return Partition{}, fmt.Errorf("%s has %d partitions, no %d", topic, len(d.Partitions), p)
	}
	pd := d.Partitions[p]
	if pd.Leader < 0 {
		return pd, fmt.Errorf("%s-%d has no leader (ISR %v)", topic, p, pd.ISR)
	}
	return pd, nil
}

// WaitFullISR waits until every broker's metadata says that every
// partition of topic has a leader and every replica in its ISR. Each
// broker is asked itself: one just healed from a partition answers from
// its stale view until it catches up with the controller.
func WaitFullISR(ctx context.Context, c *Cluster, topic string, d time.Duration) error {
	return waitPartitions(ctx, c, topic, d, false)
}

// WaitSettled is WaitFullISR, with moreover every partition led by its
// preferred replica (the first of its replica list), as on a fresh
// cluster: one that still has a leader to hand back to a preferred
// replica moves it at its next rebalance, whatever fault runs then, and a
// check that a fault moves no leader must start from here.
func WaitSettled(ctx context.Context, c *Cluster, topic string, d time.Duration) error {
	return waitPartitions(ctx, c, topic, d, true)
}

// waitPartitions is WaitFullISR; preferred: WaitSettled.
func waitPartitions(ctx context.Context, c *Cluster, topic string, d time.Duration, preferred bool) error {
	what := "every replica of " + topic + " in sync"
	if preferred {
		what += ", each partition on its preferred leader"
	}
	views := make([]*client.Client, len(c.Brokers))
	defer func() {
		for _, cl := range views {
			if cl != nil {
				cl.Close()
			}
		}
	}()
	return Poll(ctx, d, what, func(ctx context.Context) error {
		for i, b := range c.Brokers {
			if views[i] == nil {
				cl, err := c.ClientVia(ctx, b.ID, "chaos-view-"+strconv.Itoa(b.ID))
				if err != nil {
					return fmt.Errorf("broker %d: %w", b.ID, err)
				}
				views[i] = cl
			}
			td, err := views[i].DescribeTopic(ctx, topic)
			if err != nil {
				return fmt.Errorf("broker %d: %w", b.ID, err)
			}
			for _, p := range td.Partitions {
				if len(p.ISR) != len(p.Replicas) || p.Leader < 0 {
					return fmt.Errorf("broker %d says partition %d: leader %d, ISR %v of %v", b.ID, p.Partition, p.Leader, p.ISR, p.Replicas)
				}
				if preferred && p.Leader != p.Replicas[0] {
					return fmt.Errorf("broker %d says partition %d: leader %d (epoch %d), not its preferred replica %d", b.ID, p.Partition, p.Leader, p.LeaderEpoch, p.Replicas[0])
				}
			}
		}
		return nil
	})
}

// WaitIdentical waits until bench.CompareReplicas holds for topic's replicas,
// and returns the last comparison's error otherwise.
func WaitIdentical(ctx context.Context, cl *client.Client, topic string, rf int, d time.Duration) error {
	return Poll(ctx, d, "identical replicas of "+topic, func(ctx context.Context) error {
		brs, err := cl.DescribeReplicaChecksums(ctx, 1<<62, topic)
		if err != nil {
			return err
		}
		return bench.CompareReplicas(brs, rf)
	})
}

// ReplicaSummary is one line per partition: each broker's end offset and
// checksum, for the report of a run.
func ReplicaSummary(brs []client.BrokerReplicas) []string {
	lines := map[int32][]string{}
	for _, br := range brs {
		for _, r := range br.Replicas {
			lines[r.Partition] = append(lines[r.Partition], fmt.Sprintf("b%d end=%d hw=%d crc=%08x", br.Broker, r.EndOffset, r.HighWatermark, r.Checksum))
		}
	}
	parts := make([]int32, 0, len(lines))
	for p := range lines {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		out = append(out, fmt.Sprintf("partition %d: %s", p, strings.Join(lines[p], ", ")))
	}
	return out
}
