package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
	"github.com/sluicemq/sluice/protocol"
)

// A drain empties one broker so that it can be stopped and removed:
//
//  1. The broker is marked draining (the cluster config brokers.draining,
//     in the controller's metadata): from then on no new replica is
//     placed on it — topic creation, partition growth, auto.balance and
//     rebalance leave it out — and auto.balance, when on, empties it too.
//  2. Leadership leaves it first: the partitions it leads get it moved to
//     the end of their replica list (a reorder, no data moves), then a
//     preferred-leader election hands them over (fence, drain, switch).
//  3. Rounds, every interval until nothing is left or the timeout: plan
//     with the broker to be emptied, start the moves (a partition moving
//     already is left for a later round), print progress. A partition
//     that another move holds, a plan that a lagging broker's answer cut
//     short: the next round plans again for what is left.
//  4. Done when no partition has the broker in its replica list, ISR or
//     a move's lists, and the broker (when it answers) reports no replica
//     on its disk, in two rounds drainConfirm apart: each round's reads
//     may come from a broker whose metadata lags a moment (a move just
//     started, onto the broker, not applied there yet). The mark stays
//     until sluice cluster remove (or drain --cancel) clears it, so
//     nothing lands on the broker meanwhile.
//
// The rounds run in the client; the mark is the controller's, so the
// placement rules hold whether or not the command still runs.

// drainConfirm is how long after a round found the broker empty
// another must find it empty too before the drain is done.
const drainConfirm = time.Second

// drainOptions shape a drain.
type drainOptions struct {
	wait     bool          // run rounds until empty (false: one round)
	timeout  time.Duration // 0: none
	interval time.Duration // between rounds
	// stallRounds ends a drain early when this many rounds in a row
	// found something left, nothing moving and nothing to start.
	stallRounds int
}

// drainLeft is what still holds broker id: partitions by "topic-index"
// with why, and how many it leads.
type drainLeft struct {
	held      []string
	why       map[string]string
	leads     int
	moving    int   // of held, moving or queued
	remaining int64 // bytes the moves of held still copy (known ones)
	unknown   int   // moves of held whose progress is unknown
}

// left reads from v what holds id.
func (v *clusterView) left(id int32) drainLeft {
	l := drainLeft{why: map[string]string{}}
	for _, p := range v.parts {
		name := fmt.Sprintf("%s-%d", p.Topic, p.Index)
		i := slices.IndexFunc(v.moves, func(m client.Move) bool { return m.Topic == p.Topic && m.Partition == p.Index })
		inMove := i >= 0 && (slices.Contains(v.moves[i].Queued, id) || slices.Contains(v.moves[i].Replicas, id))
		if !slices.Contains(p.Replicas, id) && !inMove {
			continue
		}
		l.held = append(l.held, name)
		if ls := v.leaders[p.Topic]; int(p.Index) < len(ls) && ls[p.Index] == id {
			l.leads++
		}
		switch {
		case i < 0:
			l.why[name] = fmt.Sprintf("replicas %v, no move yet", p.Replicas)
		case len(v.moves[i].Queued) > 0:
			l.moving++
			l.why[name] = fmt.Sprintf("queued to %v (reassignment.max.moves)", v.moves[i].Queued)
		default:
			m := v.moves[i]
			l.moving++
			rem := "progress unknown"
			if m.Progress {
				l.remaining += m.BytesRemaining
				rem = sizeText(m.BytesRemaining) + " left to copy"
			} else {
				l.unknown++
			}
			l.why[name] = fmt.Sprintf("moving to %v, adding %v (%s)", m.Target(), m.Adding, rem)
		}
	}
	return l
}

// drainBroker runs the drain of broker id (see above), writing progress
// to out.
func drainBroker(ctx context.Context, cl *client.Client, out io.Writer, id int32, opt drainOptions) error {
	var deadline time.Time
	if opt.timeout > 0 {
		deadline = time.Now().Add(opt.timeout)
	}
	var (
		start     = time.Now()
		initial   = -1
		marked    bool
		handed    bool
		stalled   int
		lastKey   string
		lastPrint time.Time
		prevBytes int64 = -1
		prevAt    time.Time
		notes     []string
		refused   = map[string]string{}
		l         drainLeft
		// A round that fails on an error (a broker behind on metadata
		// answers UNKNOWN_TOPIC for a topic just created, a controller
		// failover) is tried again; maxDrainFailures in a row end the
		// drain.
		failures int
		lastErr  error
		// emptySince: when a round first found the broker empty, for
		// the confirmation (drainConfirm); zero: not empty.
		emptySince time.Time
	)
	for round := 0; ; round++ {
		if round > 0 {
			t := time.NewTimer(opt.interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("drain broker %d: %w; what is left: %s", id, ctx.Err(), leftText(l, 5))
			case <-t.C:
			}
		}
		if failures >= maxDrainFailures {
			return fmt.Errorf("drain broker %d: %d rounds in a row failed: %w", id, failures, lastErr)
		}
		fail := func(err error) {
			failures, lastErr = failures+1, err
			fmt.Fprintf(out, "broker %d: round failed, trying again: %v\n", id, err)
		}
		v, err := readCluster(ctx, cl)
		if err != nil {
			fail(err)
			continue
		}
		if !slices.ContainsFunc(v.brokers, func(b client.BrokerDescription) bool { return b.ID == id }) {
			return fmt.Errorf("broker %d is not registered", id)
		}
		if !slices.Contains(v.draining, id) {
			if err := setDraining(ctx, cl, id, true); err != nil {
				fail(err)
				continue
			}
			if !marked {
				fmt.Fprintf(out, "broker %d marked draining (%s): no new replica is placed on it\n", id, controller.ConfigBrokersDraining)
			}
		}
		marked = true
		if !handed {
			moved, err := moveLeadershipAway(ctx, cl, out, v, id)
			if err != nil {
				fail(err)
				continue
			}
			handed = true
			if moved {
				continue // plan on the lists and leaders as they are now
			}
		}
		l = v.left(id)
		if len(l.held) > 0 {
			emptySince = time.Time{}
		}
		if initial < 0 {
			initial = len(l.held)
		}
		if len(l.held) == 0 {
			held, err := onDisk(ctx, cl, id)
			if err != nil {
				fail(err)
				continue
			}
			switch {
			case held > 0:
				emptySince = time.Time{}
			case emptySince.IsZero():
				emptySince = time.Now()
				continue // to be confirmed by a later round
			case time.Since(emptySince) < drainConfirm:
				continue
			}
			if held == 0 {
				fmt.Fprintf(out, "broker %d drained in %v: it holds and leads nothing; stop it, then sluice cluster remove %d\n",
					id, time.Since(start).Round(time.Second), id)
				return nil
			}
			l.why["(disk)"] = fmt.Sprintf("broker %d still deletes %d replicas it no longer holds", id, held)
		}
		plan, err := v.plan([]int32{id}, 0)
		if err != nil {
			return err
		}
		notes = plan.Notes
		started := 0
		if len(plan.Moves) > 0 {
			rs, err := startMoves(ctx, cl, plan)
			if err != nil {
				fail(err)
				continue
			}
			for _, r := range rs {
				name := fmt.Sprintf("%s-%d", r.Topic, r.Partition)
				switch {
				case r.Err == nil:
					started++
					delete(refused, name)
				case errors.Is(r.Err, protocol.ErrReassignmentInProgress):
					// Someone else (auto.balance, an operator) moves it:
					// a later round sees where it ends.
				default:
					refused[name] = r.Err.Error()
				}
			}
		}
		failures = 0
		// Progress: partitions done of those held at the start, moves in
		// flight, bytes left and an ETA from the last two rounds.
		eta := "?"
		if prevBytes > l.remaining && l.unknown == 0 {
			rate := float64(prevBytes-l.remaining) / time.Since(prevAt).Seconds()
			eta = (time.Duration(float64(l.remaining)/rate*float64(time.Second)) + time.Second/2).Round(time.Second).String()
		}
		prevBytes, prevAt = l.remaining, time.Now()
		line := fmt.Sprintf("broker %d: %d of %d partitions moved off, %d left (%d moving or queued, %d led by it); %s left to copy, ETA %s",
			id, max(initial-len(l.held), 0), initial, len(l.held), l.moving, l.leads, sizeText(l.remaining), eta)
		if started > 0 {
			line += fmt.Sprintf("; %d moves started", started)
		}
		// A line when the counts change, else every 10 s.
		key := fmt.Sprint(len(l.held), l.moving, l.leads, started)
		if key != lastKey || time.Since(lastPrint) >= 10*time.Second {
			fmt.Fprintln(out, line)
			lastKey, lastPrint = key, time.Now()
		}
		if !opt.wait {
			for _, n := range notes {
				fmt.Fprintf(out, "note: %s\n", n)
			}
			fmt.Fprintf(out, "not waiting (--no-wait): follow the moves with sluice cluster reassign --list, run drain again for what is left\n")
			return errors.Join(refusedErrs(refused)...)
		}
		if started == 0 && l.moving == 0 && len(l.held) > 0 {
			stalled++
		} else {
			stalled = 0
		}
		stuck := opt.stallRounds > 0 && stalled >= opt.stallRounds
		if stuck || (!deadline.IsZero() && time.Now().After(deadline)) {
			what := fmt.Sprintf("timed out after %v", opt.timeout)
			if stuck {
				what = fmt.Sprintf("stuck: %d rounds in a row with nothing moving and nothing the planner could start", stalled)
			}
			return drainError(id, what, l, notes, refused)
		}
	}
}

// maxDrainFailures is how many rounds in a row may fail on an error
// before a drain gives up.
const maxDrainFailures = 10

// refusedErrs are the moves the controller refused, by partition.
func refusedErrs(refused map[string]string) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(refused)) {
		errs = append(errs, fmt.Errorf("%s: %s", name, refused[name]))
	}
	return errs
}

// leftText lists at most n partitions of l with why they are left.
func leftText(l drainLeft, n int) string {
	var parts []string
	for i, name := range l.held {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(l.held)-n))
			break
		}
		parts = append(parts, name+": "+l.why[name])
	}
	if why, ok := l.why["(disk)"]; ok {
		parts = append(parts, why)
	}
	return strings.Join(parts, "; ")
}

// drainError says why the drain of id ended unfinished: what is left and
// why, the planner's notes and the refused moves.
func drainError(id int32, what string, l drainLeft, notes []string, refused map[string]string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "drain broker %d: %s; %d partitions still hold it: %s", id, what, len(l.held), leftText(l, 10))
	for _, n := range notes {
		fmt.Fprintf(&b, "; note: %s", n)
	}
	for _, err := range refusedErrs(refused) {
		fmt.Fprintf(&b, "; refused: %v", err)
	}
	return errors.New(b.String())
}

// moveLeadershipAway hands over the leadership of the partitions id
// leads, before their data moves: each not moving gets id moved to the
// end of its replica list (a reorder), then a preferred-leader election
// on their topics hands leadership to the new first replica where it is
// in sync. A partition whose election fails keeps its leader until its
// move completes, which moves leadership then. It reports whether it
// changed anything.
func moveLeadershipAway(ctx context.Context, cl *client.Client, out io.Writer, v *clusterView, id int32) (bool, error) {
	var reorders []client.Reassignment
	topics := map[string]bool{}
	for _, p := range v.parts {
		ls := v.leaders[p.Topic]
		if int(p.Index) >= len(ls) || ls[p.Index] != id || v.moving(p.Topic, p.Index) || len(p.Replicas) < 2 {
			continue
		}
		topics[p.Topic] = true
		if p.Replicas[0] == id {
			to := append(slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return r == id }), id)
			reorders = append(reorders, client.Reassignment{Topic: p.Topic, Partition: p.Index, Replicas: to})
		}
	}
	if len(topics) == 0 {
		return false, nil
	}
	if len(reorders) > 0 {
		if _, err := cl.AlterReassignments(ctx, reorders); err != nil {
			return false, err
		}
	}
	results, err := cl.ElectPreferredLeaders(ctx, slices.Sorted(maps.Keys(topics))...)
	if err != nil {
		return true, err
	}
	moved := 0
	for _, r := range results {
		if r.Err == nil && r.Leader != id {
			moved++
		}
	}
	fmt.Fprintf(out, "broker %d: leadership of %d partitions handed over before their data moves\n", id, moved)
	return true, nil
}

// onDisk returns how many replicas broker id reports on its disk; 0 when
// it does not answer (stopped: its data is deleted when it starts again).
func onDisk(ctx context.Context, cl *client.Client, id int32) (int, error) {
	brs, err := cl.DescribeReplicas(ctx)
	if err != nil {
		return 0, err
	}
	for _, br := range brs {
		if br.Broker == id && br.Err == nil {
			return len(br.Replicas), nil
		}
	}
	return 0, nil
}

// drainingBrokers reads the brokers marked draining (brokers.draining),
// sorted; none when the mark is not set.
func drainingBrokers(ctx context.Context, cl *client.Client) ([]int32, error) {
	entries, err := cl.DescribeClusterConfigs(ctx, controller.ConfigBrokersDraining)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Key == controller.ConfigBrokersDraining {
			ids, err := controller.ParseBrokerIDs(e.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", controller.ConfigBrokersDraining, err)
			}
			return ids, nil
		}
	}
	return nil, nil
}

// setDraining adds id to brokers.draining (on) or takes it out. The list
// is read, changed and written back: two drains started at the same
// instant may lose one's mark, which each round of a drain puts back.
func setDraining(ctx context.Context, cl *client.Client, id int32, on bool) error {
	ids, err := drainingBrokers(ctx, cl)
	if err != nil {
		return err
	}
	if slices.Contains(ids, id) == on {
		return nil
	}
	if on {
		ids = append(ids, id)
		slices.Sort(ids)
	} else {
		ids = slices.DeleteFunc(ids, func(x int32) bool { return x == id })
	}
	change := client.SetConfig(controller.ConfigBrokersDraining, controller.FormatBrokerIDs(ids))
	if len(ids) == 0 {
		change = client.DeleteConfig(controller.ConfigBrokersDraining)
	}
	if err := cl.AlterClusterConfigs(ctx, change); err != nil {
		return fmt.Errorf("mark broker %d draining=%v: %w", id, on, err)
	}
	return nil
}

func newClusterDrainCmd(g *globals) *cobra.Command {
	var (
		dryRun, noWait, cancel bool
		timeout                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "drain BROKER",
		Short: "Move leadership, then every replica, off a broker and wait until it holds nothing, so it can be stopped",
		Long: `Empty BROKER so that it can be stopped and removed (sluice cluster
remove):

  1. mark it draining (the cluster config brokers.draining): from then on
     no new replica is placed on it (topic create, partition growth,
     auto.balance, rebalance), and auto.balance, when on, empties it too;
  2. hand over the leadership of the partitions it leads;
  3. plan moves that take every replica off it (each to the eligible
     broker with the fewest replicas that keeps racks apart, smallest
     partitions first), start them, show progress (partitions moved and
     left, bytes left to copy, ETA), and plan again for what is left (a
     partition another move held, a broker's late answer) until no
     partition holds the broker and its disk holds no replica.

It fails after --timeout, or when nothing moves and the planner can
start nothing (no broker has room, say), listing what is left and why.
--no-wait plans and starts one round and returns; run drain again, or
follow the moves with sluice cluster reassign --list. The mark stays
until sluice cluster remove takes the broker out, or drain --cancel
clears it (moves in flight go on; cancel them with reassign --cancel).`,
		Example: `  sluice cluster drain 2 --dry-run
  sluice cluster drain 2
  sluice cluster drain 2 --timeout 2h
  sluice cluster drain 2 --no-wait
  sluice cluster drain 2 --cancel`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := brokerArg(args[0])
			if err != nil {
				return err
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				out := cmd.OutOrStdout()
				switch {
				case cancel:
					if err := setDraining(ctx, cl, id, false); err != nil {
						return err
					}
					fmt.Fprintf(out, "broker %d no longer marked draining: it may take new replicas again\n", id)
					return nil
				case dryRun:
					plan, err := planCluster(ctx, cl, []int32{id}, 0)
					if err != nil {
						return err
					}
					return runPlan(ctx, cl, out, plan, true)
				}
				return drainBroker(ctx, cl, out, id, drainOptions{wait: !noWait, timeout: timeout, interval: time.Second, stallRounds: 30})
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan, mark nothing, start nothing")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "mark, hand leadership over, start one round of moves and return")
	cmd.Flags().BoolVar(&cancel, "cancel", false, "clear the broker's draining mark (moves in flight go on)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up after this long, listing what is left (0: no limit)")
	cmd.MarkFlagsMutuallyExclusive("dry-run", "no-wait", "cancel")
	return cmd
}
