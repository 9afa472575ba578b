package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/balance"
	"github.com/sluicemq/sluice/client"
)

// planCluster runs the balance planner over the cluster as the client
// sees it: every registered broker (alive or not, drain ones to be
// emptied) and every partition's replica list. Partitions already moving
// or queued are left out of the plan (a note says how many). Partition
// sizes are not known to the client, so they count as equal: the plan
// does not prefer small partitions.
func planCluster(ctx context.Context, cl *client.Client, drain []int32, maxMoves int) (balance.Plan, error) {
	cd, err := cl.DescribeCluster(ctx)
	if err != nil {
		return balance.Plan{}, err
	}
	var brokers []balance.Broker
	for _, b := range cd.Brokers {
		brokers = append(brokers, balance.Broker{ID: b.ID, Rack: b.Rack, Alive: b.State == "alive", Remove: slices.Contains(drain, b.ID)})
	}
	for _, id := range drain {
		if !slices.ContainsFunc(cd.Brokers, func(b client.BrokerDescription) bool { return b.ID == id }) {
			return balance.Plan{}, fmt.Errorf("broker %d is not registered", id)
		}
	}
	moving, err := cl.ListReassignments(ctx)
	if err != nil {
		return balance.Plan{}, err
	}
	isMoving := func(topic string, p int32) bool {
		return slices.ContainsFunc(moving, func(m client.Move) bool { return m.Topic == topic && m.Partition == p })
	}
	names, err := cl.ListTopics(ctx)
	if err != nil {
		return balance.Plan{}, err
	}
	var parts []balance.Partition
	skipped := 0
	for _, name := range names {
		d, err := cl.DescribeTopic(ctx, name)
		if err != nil {
			return balance.Plan{}, err
		}
		for _, p := range d.Partitions {
			if isMoving(name, p.Partition) {
				skipped++
				continue
			}
			parts = append(parts, balance.Partition{Topic: name, Index: p.Partition, Replicas: p.Replicas})
		}
	}
	plan := balance.Rebalance(brokers, parts, balance.Options{MaxMoves: maxMoves})
	if skipped > 0 {
		plan.Notes = append(plan.Notes, fmt.Sprintf("%d partitions are moving or queued already: left out of this plan", skipped))
	}
	return plan, nil
}

// runPlan prints plan and, unless dryRun, starts its moves.
func runPlan(ctx context.Context, cl *client.Client, out io.Writer, plan balance.Plan, dryRun bool) error {
	for _, m := range plan.Moves {
		kind := "move"
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
	moves := make([]client.Reassignment, len(plan.Moves))
	for i, m := range plan.Moves {
		moves[i] = client.Reassignment{Topic: m.Topic, Partition: m.Partition, Replicas: m.To}
	}
	rs, err := cl.AlterReassignments(ctx, moves)
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
Partition sizes are not known to the command, so the plan does not
prefer small partitions, and the disk goal is skipped.`,
		Example: `  sluice cluster rebalance --dry-run
  sluice cluster rebalance --max-moves 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			plan, err := planCluster(cmd.Context(), cl, nil, maxMoves)
			if err != nil {
				return err
			}
			return runPlan(cmd.Context(), cl, cmd.OutOrStdout(), plan, dryRun)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan, start nothing")
	cmd.Flags().IntVar(&maxMoves, "max-moves", 0, "at most this many data moves in the plan (0: no bound; reorders not counted)")
	return cmd
}

func newClusterDrainCmd(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "drain BROKER",
		Short: "Move every replica off a broker, so it can be stopped",
		Long: `Plan moves that take every replica off BROKER (each to the eligible
broker with the fewest replicas that keeps racks apart) and start them.
A partition the broker leads gets a new leader when its move completes.
Follow the moves with sluice cluster reassign --list; once they end the
broker holds nothing (topic describe shows it in no replica list) and can
be stopped. Nothing keeps new topics off it meanwhile.`,
		Example: `  sluice cluster drain 2 --dry-run
  sluice cluster drain 2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := brokerArg(args[0])
			if err != nil {
				return err
			}
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			plan, err := planCluster(cmd.Context(), cl, []int32{id}, 0)
			if err != nil {
				return err
			}
			return runPlan(cmd.Context(), cl, cmd.OutOrStdout(), plan, dryRun)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan, start nothing")
	return cmd
}
