package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/balance"
	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
)

// clusterView is the cluster as the client sees it, for the planner:
// every registered broker with its disk, every partition's replica list
// (during a move, the target followed by the replicas being removed)
// and size, the moves in progress or queued, the brokers being drained
// (brokers.draining) and the disk threshold (auto.balance.disk.threshold.percent).
type clusterView struct {
	brokers   []client.BrokerDescription
	parts     []balance.Partition
	leaders   map[string][]int32 // by topic, indexed by partition; -1 none
	moves     []client.Move
	draining  []int32
	disks     map[int32]diskUse // brokers that answered DescribeReplicas
	threshold float64
}

// diskUse is one broker's file system: bytes used and its size.
type diskUse struct{ used, capacity int64 }

// readCluster reads the cluster for the planner. Partition sizes are the
// largest log among a partition's replicas as the brokers report them
// (DescribeReplicas); a broker that does not answer leaves its disk
// unknown (the disk goal skips it) and its replicas unsized.
func readCluster(ctx context.Context, cl *client.Client) (*clusterView, error) {
	cd, err := cl.DescribeCluster(ctx)
	if err != nil {
		return nil, err
	}
	v := &clusterView{brokers: cd.Brokers, leaders: map[string][]int32{}, disks: map[int32]diskUse{}, threshold: 0.85}
	configs, err := cl.DescribeClusterConfigs(ctx, controller.ConfigBrokersDraining, controller.ConfigAutoBalanceDiskThreshold)
	if err != nil {
		return nil, err
	}
	for _, e := range configs {
		switch e.Key {
		case controller.ConfigBrokersDraining:
			if v.draining, err = controller.ParseBrokerIDs(e.Value); err != nil {
				return nil, err
			}
		case controller.ConfigAutoBalanceDiskThreshold:
			if pct, err := strconv.ParseFloat(e.Value, 64); err == nil && pct > 0 {
				v.threshold = pct / 100
			}
		}
	}
	if v.moves, err = cl.ListReassignments(ctx); err != nil {
		return nil, err
	}
	sizes := map[string]map[int32]int64{}
	brs, err := cl.DescribeReplicas(ctx)
	if err != nil {
		return nil, err
	}
	for _, br := range brs {
		if br.Err != nil {
			continue
		}
		if br.DiskCapacity > 0 {
			v.disks[br.Broker] = diskUse{used: br.DiskCapacity - br.DiskFree, capacity: br.DiskCapacity}
		}
		for _, r := range br.Replicas {
			if sizes[r.Topic] == nil {
				sizes[r.Topic] = map[int32]int64{}
			}
			sizes[r.Topic][r.Partition] = max(sizes[r.Topic][r.Partition], r.LogBytes)
		}
	}
	names, err := cl.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		d, err := cl.DescribeTopic(ctx, name)
		if err != nil {
			return nil, err
		}
		leaders := make([]int32, len(d.Partitions))
		for _, p := range d.Partitions {
			if p.Partition >= 0 && int(p.Partition) < len(leaders) {
				leaders[p.Partition] = p.Leader
			}
			v.parts = append(v.parts, balance.Partition{Topic: name, Index: p.Partition, Replicas: p.Replicas, Bytes: sizes[name][p.Partition]})
		}
		v.leaders[name] = leaders
	}
	return v, nil
}

// moving reports whether partition p of topic is moving or queued.
func (v *clusterView) moving(topic string, p int32) bool {
	return slices.ContainsFunc(v.moves, func(m client.Move) bool { return m.Topic == topic && m.Partition == p })
}

// plan runs the balance planner over v: every registered broker (alive
// or not; those in drain or being drained to be emptied, and to take
// nothing), with its disk where known, and every partition with its
// size. Partitions already moving or queued are left out of the plan (a
// note says how many).
func (v *clusterView) plan(drain []int32, maxMoves int) (balance.Plan, error) {
	for _, id := range drain {
		if !slices.ContainsFunc(v.brokers, func(b client.BrokerDescription) bool { return b.ID == id }) {
			return balance.Plan{}, fmt.Errorf("broker %d is not registered", id)
		}
	}
	var brokers []balance.Broker
	for _, b := range v.brokers {
		d := v.disks[b.ID]
		brokers = append(brokers, balance.Broker{ID: b.ID, Rack: b.Rack, Alive: b.State == "alive",
			Remove: slices.Contains(drain, b.ID) || slices.Contains(v.draining, b.ID), DiskBytes: d.used, DiskCapacity: d.capacity})
	}
	var parts []balance.Partition
	skipped := 0
	for _, p := range v.parts {
		if v.moving(p.Topic, p.Index) {
			skipped++
			continue
		}
		parts = append(parts, p)
	}
	plan := balance.Rebalance(brokers, parts, balance.Options{MaxMoves: maxMoves, DiskThreshold: v.threshold})
	if skipped > 0 {
		plan.Notes = append(plan.Notes, fmt.Sprintf("%d partitions are moving or queued already: left out of this plan", skipped))
	}
	return plan, nil
}

// planCluster reads the cluster and plans over it (clusterView.plan).
func planCluster(ctx context.Context, cl *client.Client, drain []int32, maxMoves int) (balance.Plan, error) {
	v, err := readCluster(ctx, cl)
	if err != nil {
		return balance.Plan{}, err
	}
	return v.plan(drain, maxMoves)
}

// sizeText is a byte count for people: B, KiB, MiB, GiB.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, units := float64(n)/unit, "KMGTPE"
	i := 0
	for f >= unit && i < len(units)-1 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, units[i])
}

// startMoves starts plan's moves (AlterReassignments), one result each.
func startMoves(ctx context.Context, cl *client.Client, plan balance.Plan) ([]client.ReassignmentResult, error) {
	moves := make([]client.Reassignment, len(plan.Moves))
	for i, m := range plan.Moves {
		moves[i] = client.Reassignment{Topic: m.Topic, Partition: m.Partition, Replicas: m.To}
	}
	return cl.AlterReassignments(ctx, moves)
}

// runPlan prints plan and, unless dryRun, starts its moves.
func runPlan(ctx context.Context, cl *client.Client, out io.Writer, plan balance.Plan, dryRun bool) error {
	for _, m := range plan.Moves {
		kind := "move " + sizeText(m.Bytes)
		if m.Reorder {
			kind = "reorder"
		}
		fmt.Fprintf(out, "%s-%d: %v -> %v (%s: %v)\n", m.Topic, m.Partition, m.From, m.To, kind, m.Reasons)
	}
	for _, n := range plan.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	if len(plan.Moves) == 0 {
		fmt.Fprintln(out, "nothing to move")
		return nil
	}
	if dryRun {
		fmt.Fprintf(out, "dry run: %d moves planned, none started\n", len(plan.Moves))
		return nil
	}
	rs, err := startMoves(ctx, cl, plan)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rs {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s-%d: %w", r.Topic, r.Partition, r.Err))
		}
	}
	fmt.Fprintf(out, "%d moves started (or queued); follow them with sluice cluster reassign --list\n", len(rs)-len(errs))
	return errors.Join(errs...)
}

func newClusterRebalanceCmd(g *globals) *cobra.Command {
	var (
		dryRun   bool
		maxMoves int
	)
	cmd := &cobra.Command{
		Use:   "rebalance",
		Short: "Even replicas and preferred leaders across brokers, keeping racks apart, by moving partitions",
		Long: `Plan moves with the balance planner (docs/balance.md) and start them as
cluster reassign would: racks apart first, then replica counts within one
of each other, then preferred leaders (by reordering replica lists, which
moves no data; sluice cluster rebalance-leaders then hands leadership
over). The plan and the reason for each move are printed, with notes on
what could not be done and why. Partitions already moving are left out.
Brokers being drained (brokers.draining) take nothing. Partition sizes
and disk usage come from the brokers (the largest log among a partition's
replicas): among equal choices the plan moves the smallest partitions, a
broker above auto.balance.disk.threshold.percent sheds replicas, and each
move line says how many bytes it copies.`,
		Example: `  sluice cluster rebalance --dry-run
  sluice cluster rebalance --max-moves 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				plan, err := planCluster(ctx, cl, nil, maxMoves)
				if err != nil {
					return err
				}
				return runPlan(ctx, cl, cmd.OutOrStdout(), plan, dryRun)
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan, start nothing")
	cmd.Flags().IntVar(&maxMoves, "max-moves", 0, "at most this many data moves in the plan (0: no bound; reorders not counted)")
	return cmd
}
