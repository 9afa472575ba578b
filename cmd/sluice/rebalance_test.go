package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

// replicaCounts counts the replicas of topic on each broker, and fails
// while a move is in progress.
func replicaCounts(ctx context.Context, cl *client.Client, topic string) (map[int32]int, error) {
	if moves, err := cl.ListReassignments(ctx); err != nil || len(moves) > 0 {
		return nil, fmt.Errorf("moves %+v, %v", moves, err)
	}
	d, err := cl.DescribeTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int{}
	for _, p := range d.Partitions {
		if len(p.ISR) != len(p.Replicas) {
			return nil, fmt.Errorf("partition %d: replicas %v, ISR %v", p.Partition, p.Replicas, p.ISR)
		}
		for _, r := range p.Replicas {
			out[r]++
		}
	}
	return out, nil
}

// A broker that was down when a topic was created gets its share from
// cluster rebalance (the dry run starts nothing), and cluster drain then
// empties another broker: both through the move primitive, ending with
// every replica in sync.
func TestRebalanceAndDrain(t *testing.T) {
	c := testcluster.Start(t, 4, testcluster.Options{Voters: 3})
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c.Stop(4)
	poll.Until(t, 15*time.Second, "broker 4 offline", func() error {
		cd, err := cl.DescribeCluster(ctx)
		if err != nil {
			return err
		}
		for _, b := range cd.Brokers {
			if b.ID == 4 && b.State != "offline" {
				return fmt.Errorf("broker 4 %s", b.State)
			}
		}
		return nil
	})
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "rb", Partitions: 8, ReplicationFactor: 2})
	c.Restart(4)
	poll.Until(t, 15*time.Second, "broker 4 alive", func() error {
		cd, err := cl.DescribeCluster(ctx)
		if err != nil {
			return err
		}
		for _, b := range cd.Brokers {
			if b.ID == 4 && b.State == "alive" {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})

	plan, err := planCluster(ctx, cl, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runPlan(ctx, cl, &out, plan, true); err != nil || !strings.Contains(out.String(), "dry run") {
		t.Fatalf("dry run: %v\n%s", err, out.String())
	}
	if moves, err := cl.ListReassignments(ctx); err != nil || len(moves) != 0 {
		t.Fatalf("the dry run started moves: %+v, %v", moves, err)
	}
	out.Reset()
	if err := runPlan(ctx, cl, &out, plan, false); err != nil {
		t.Fatalf("rebalance: %v\n%s", err, out.String())
	}
	t.Logf("rebalance:\n%s", out.String())
	poll.Until(t, 60*time.Second, "broker 4 holds its share", func() error {
		counts, err := replicaCounts(ctx, cl, "rb")
		if err != nil {
			return err
		}
		if counts[4] != 4 { // 16 replicas over 4 brokers
			return fmt.Errorf("counts %v", counts)
		}
		return nil
	})

	// The broker that answers the plan's reads may not have applied the
	// rebalance's last move yet: the planner then leaves that partition
	// out (a note says so), and the drain would leave its replica.
	poll.Until(t, 30*time.Second, "a drain plan that leaves nothing out", func() error {
		if plan, err = planCluster(ctx, cl, []int32{2}, 0); err != nil {
			return err
		}
		for _, n := range plan.Notes {
			if strings.Contains(n, "moving or queued") {
				return errors.New(n)
			}
		}
		return nil
	})
	out.Reset()
	if err := runPlan(ctx, cl, &out, plan, false); err != nil {
		t.Fatalf("drain: %v\n%s", err, out.String())
	}
	t.Logf("drain:\n%s", out.String())
	poll.Until(t, 60*time.Second, "broker 2 drained", func() error {
		counts, err := replicaCounts(ctx, cl, "rb")
		if err != nil {
			return err
		}
		if counts[2] != 0 || slices.Max([]int{counts[1], counts[3], counts[4]})-slices.Min([]int{counts[1], counts[3], counts[4]}) > 1 {
			moves, _ := cl.ListReassignments(ctx)
			d, _ := cl.DescribeTopic(ctx, "rb")
			return fmt.Errorf("counts %v; moves %+v; partitions %+v", counts, moves, d.Partitions)
		}
		return nil
	})
	if _, err := planCluster(ctx, cl, []int32{9}, 0); err == nil {
		t.Fatal("draining an unknown broker was planned")
	}

	// Then remove it: refused while it runs, done once it is stopped;
	// cluster brokers no longer lists it, and the voters are 1 and 3.
	addrs := strings.Join(c.Addrs(), ",")
	if out, err := runCmd("--brokers", addrs, "cluster", "remove", "2"); err == nil || !strings.Contains(err.Error(), "alive: stop it first") {
		t.Fatalf("remove a running broker: %v\n%s", err, out)
	}
	c.Stop(2)
	addrs = strings.Join(c.Addrs(), ",")
	poll.Until(t, 15*time.Second, "broker 2 offline", func() error {
		cd, err := cl.DescribeCluster(ctx)
		if err != nil {
			return err
		}
		for _, b := range cd.Brokers {
			if b.ID == 2 && b.State != "offline" {
				return fmt.Errorf("broker 2 %s", b.State)
			}
		}
		return nil
	})
	if out, err := runCmd("--brokers", addrs, "cluster", "remove", "2"); err != nil || !strings.Contains(out, "broker 2 removed from the cluster") {
		t.Fatalf("remove 2: %v\n%s", err, out)
	}
	status, err := runCmd("--brokers", addrs, "cluster", "status")
	if err != nil || strings.Contains(status, "2@") || !strings.Contains(status, "brokers: 3 alive of 3") {
		t.Fatalf("status after removing broker 2: %v\n%s", err, status)
	}
}
