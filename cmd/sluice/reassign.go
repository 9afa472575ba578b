package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

// reassignPlan is the --plan file of cluster reassign: Kafka's
// kafka-reassign-partitions JSON (version 1), replicas preferred leader
// first.
type reassignPlan struct {
	Version    int                `json:"version"`
	Partitions []reassignPlanPart `json:"partitions"`
}

type reassignPlanPart struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas"`
}

// readPlan reads and checks a plan file.
func readPlan(path string) (reassignPlan, error) {
	var p reassignPlan
	b, err := os.ReadFile(path)
	if err != nil {
		return p, fmt.Errorf("--plan: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("--plan %s: %w", path, err)
	}
	if p.Version != 1 {
		return p, fmt.Errorf("--plan %s: version %d, want 1", path, p.Version)
	}
	if len(p.Partitions) == 0 {
		return p, fmt.Errorf("--plan %s: no partitions", path)
	}
	return p, nil
}

// moveJSON is one move in cluster reassign --list --json.
type moveJSON struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Target    []int32 `json:"target"`
	Adding    []int32 `json:"adding"`
	Removing  []int32 `json:"removing"`
	// BytesRemaining is the leader's estimate, -1 when the leader did
	// not answer; ETASeconds is the bytes remaining over the rate
	// measured across --interval, -1 when unknown (no progress seen).
	BytesRemaining int64   `json:"bytes_remaining"`
	ETASeconds     float64 `json:"eta_seconds"`
	// Queued: the move waits for the cluster's move limits
	// (reassignment.max.moves, reassignment.max.moves.per.broker).
	Queued bool `json:"queued,omitempty"`
}

func newClusterReassignCmd(g *globals) *cobra.Command {
	var (
		plan           string
		cancel, list   bool
		asJSON         bool
		sampleInterval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "reassign",
		Short: "Move partitions to new replica lists, cancel moves, or list the moves in progress",
		Long: `Move partitions to other brokers, as Kafka's kafka-reassign-partitions.

--plan FILE starts a move of each partition in the file (Kafka's JSON:
{"version":1,"partitions":[{"topic":"orders","partition":0,"replicas":[2,3,4]}]},
replicas preferred leader first, as many as the topic's replication
factor). The new replicas copy the partition from its leader, throttled
per leader broker to the cluster config reassignment.throttle.bytes.per.sec
(default 50 MiB/s, for the new replicas only); each joins the in-sync replicas once caught up, and
then the move completes: leadership moves to a new replica if the leader
is being removed, and the removed replicas' data is deleted. acks=all
produces never wait for a replica that is not yet in sync. A move
survives a controller failover and the restart of any broker involved.

--cancel reverts moves to the original replicas (deleting the copies
made so far): those of --plan FILE, or every move in progress without
it. A cancel is refused when no original replica is in sync.

--list shows the moves in progress: target, adding and removing
replicas, the bytes the slowest new replica has yet to copy (the
leader's estimate), and an ETA from the progress seen over --interval.

At most reassignment.max.moves partitions move at once in the cluster,
and reassignment.max.moves.per.broker moves add to or remove from each
broker (cluster configs: sluice cluster config); further moves wait in
a queue, in the Raft log like the moves, and start as others end.`,
		Example: `  sluice cluster reassign --plan moves.json
  sluice cluster reassign --list
  sluice cluster reassign --list --json --interval 5s
  sluice cluster reassign --cancel --plan moves.json
  sluice cluster reassign --cancel`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case list && (cancel || plan != ""):
				return errors.New("--list takes neither --plan nor --cancel")
			case !list && !cancel && plan == "":
				return errors.New("give --plan FILE, --cancel or --list")
			}
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			out := cmd.OutOrStdout()
			if list {
				return listMoves(cmd, cl, out, asJSON, sampleInterval)
			}
			var moves []client.Reassignment
			if plan != "" {
				p, err := readPlan(plan)
				if err != nil {
					return err
				}
				for _, pp := range p.Partitions {
					m := client.Reassignment{Topic: pp.Topic, Partition: pp.Partition, Replicas: pp.Replicas}
					if cancel {
						m.Replicas = nil
					} else if len(m.Replicas) == 0 {
						return fmt.Errorf("--plan %s: %s-%d has no replicas", plan, pp.Topic, pp.Partition)
					}
					moves = append(moves, m)
				}
			} else {
				all, err := cl.ListReassignments(cmd.Context())
				if err != nil {
					return err
				}
				for _, m := range all {
					moves = append(moves, client.Reassignment{Topic: m.Topic, Partition: m.Partition})
				}
				if len(moves) == 0 {
					fmt.Fprintln(out, "no moves in progress")
					return nil
				}
			}
			rs, err := cl.AlterReassignments(cmd.Context(), moves)
			if err != nil {
				return err
			}
			what := "moving"
			if cancel {
				what = "cancelled"
			}
			var errs []error
			for i, r := range rs {
				if r.Err != nil {
					errs = append(errs, fmt.Errorf("%s-%d: %w", r.Topic, r.Partition, r.Err))
					continue
				}
				if cancel {
					fmt.Fprintf(out, "%s-%d: %s\n", r.Topic, r.Partition, what)
				} else {
					fmt.Fprintf(out, "%s-%d: %s to %v\n", r.Topic, r.Partition, what, moves[i].Replicas)
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&plan, "plan", "", "JSON file of target replica lists (Kafka's reassignment format)")
	cmd.Flags().BoolVar(&cancel, "cancel", false, "cancel the moves of --plan, or all moves in progress")
	cmd.Flags().BoolVar(&list, "list", false, "list the moves in progress")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --list: print JSON")
	cmd.Flags().DurationVar(&sampleInterval, "interval", time.Second, "with --list: how long to watch progress for the ETA (0: no ETA)")
	return cmd
}

// moveView is m as --list shows it; the ETA comes from the bytes
// remaining in earlier (a listing interval before), when it shrank.
func moveView(m client.Move, earlier []client.Move, interval time.Duration) moveJSON {
	v := moveJSON{Topic: m.Topic, Partition: m.Partition, Leader: m.Leader, Target: m.Target(), Adding: m.Adding,
		Removing: m.Removing, BytesRemaining: -1, ETASeconds: -1}
	if len(m.Queued) > 0 {
		v.Target, v.Queued = m.Queued, true
	}
	if !m.Progress {
		return v
	}
	v.BytesRemaining = m.BytesRemaining
	for _, f := range earlier {
		if f.Topic == m.Topic && f.Partition == m.Partition && f.Progress && f.BytesRemaining > m.BytesRemaining && interval > 0 {
			rate := float64(f.BytesRemaining-m.BytesRemaining) / interval.Seconds()
			v.ETASeconds = float64(m.BytesRemaining) / rate
		}
	}
	return v
}

// remainingText is a byte count for a table, "?" when unknown (-1).
func remainingText(n int64) string {
	if n < 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// listMoves prints the moves in progress, sampling them twice interval
// apart for the ETA.
func listMoves(cmd *cobra.Command, cl *client.Client, out io.Writer, asJSON bool, interval time.Duration) error {
	first, err := cl.ListReassignments(cmd.Context())
	if err != nil {
		return err
	}
	last := first
	if interval > 0 && len(first) > 0 {
		t := time.NewTimer(interval)
		select {
		case <-cmd.Context().Done():
			t.Stop()
			return cmd.Context().Err()
		case <-t.C:
		}
		if last, err = cl.ListReassignments(cmd.Context()); err != nil {
			return err
		}
	}
	views := make([]moveJSON, 0, len(last))
	for _, m := range last {
		views = append(views, moveView(m, first, interval))
	}
	if asJSON {
		return writeJSON(out, views)
	}
	if len(views) == 0 {
		fmt.Fprintln(out, "no moves in progress")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tTARGET\tADDING\tREMOVING\tREMAINING\tETA")
	for _, v := range views {
		remaining, eta := remainingText(v.BytesRemaining), "?"
		if v.Queued {
			remaining, eta = "queued", "-"
		}
		if v.ETASeconds >= 0 {
			eta = (time.Duration(v.ETASeconds * float64(time.Second))).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%v\t%v\t%v\t%s\t%s\n", v.Topic, v.Partition, v.Leader, v.Target, v.Adding, v.Removing, remaining, eta)
	}
	return tw.Flush()
}

func newTopicAlterCmd(g *globals) *cobra.Command {
	var partitions int32
	cmd := &cobra.Command{
		Use:   "alter NAME --partitions N",
		Short: "Add partitions to a topic",
		Long: `Grow a topic to N partitions (more than it has: partitions are never
removed). The new partitions are placed over the alive brokers as topic
create places them. Keyed records map to hash(key) mod the partition
count, so from now on a key's records may go to another partition than
its earlier ones. Producers and consumer groups pick the new partitions
up at their next metadata refresh.`,
		Example: `  sluice topic alter orders --partitions 12`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if partitions <= 0 {
				return errors.New("give --partitions N, the new partition count")
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				if err := cl.CreatePartitions(ctx, args[0], partitions); err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "topic %s now has %d partitions\n", args[0], partitions)
				fmt.Fprintln(out, "note: keyed records map to hash(key) mod the partition count, so from now on a key's records may go to a new partition")
				return nil
			})
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", 0, "the new partition count (more than the topic has)")
	return cmd
}

// configEntryJSON is one config in cluster config and queue config
// --json.
type configEntryJSON struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	IsDefault bool   `json:"is_default"`
}

// configResource is how a config command changes and reads its resource
// (the cluster, a queue group), and shows a value in its table.
type configResource struct {
	alter    func(context.Context, *client.Client, []client.ConfigChange) error
	describe func(context.Context, *client.Client) ([]client.ConfigEntry, error)
	show     func(client.ConfigEntry) string
}

// alterAndShowConfigs applies --set and --delete to r, if any, then
// prints r's configs.
func alterAndShowConfigs(cmd *cobra.Command, g *globals, set, del []string, asJSON bool, r configResource) error {
	changes, err := configChanges(set, del)
	if err != nil {
		return err
	}
	return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
		if len(changes) > 0 {
			if err := r.alter(ctx, cl, changes); err != nil {
				return err
			}
		}
		entries, err := r.describe(ctx, cl)
		if err != nil {
			return err
		}
		return writeConfigEntries(cmd.OutOrStdout(), entries, asJSON, r.show)
	})
}

// writeConfigEntries prints configs as a KEY VALUE DEFAULT table, the
// values as show makes them, or as JSON (the values as they are).
func writeConfigEntries(out io.Writer, entries []client.ConfigEntry, asJSON bool, show func(client.ConfigEntry) string) error {
	if asJSON {
		views := make([]configEntryJSON, 0, len(entries))
		for _, e := range entries {
			views = append(views, configEntryJSON{Key: e.Key, Value: e.Value, IsDefault: e.IsDefault})
		}
		return writeJSON(out, views)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tDEFAULT")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%v\n", e.Key, show(e), e.IsDefault)
	}
	return tw.Flush()
}

func newClusterConfigCmd(g *globals) *cobra.Command {
	var (
		set, del []string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or change the cluster configs (move throttle and limits)",
		Long: `Show the cluster configs, settings of the whole cluster kept in the
controller's metadata, or change them with --set and --delete (back to
the default):

  reassignment.throttle.bytes.per.sec  what each broker as a leader serves
                                       to replicas a move adds (default
                                       52428800, 50 MiB/s; -1 unlimited)
  reassignment.max.moves               partitions moving at once (default 50)
  reassignment.max.moves.per.broker    moves at once adding to or removing
                                       from each broker (default 5)
  auto.balance                         on-join (default): while nothing
                                       moves, the controller evens replica
                                       and leader counts across the alive
                                       brokers (a broker that joined gets
                                       its share; one back from a restart
                                       with its data already holds it, and
                                       nothing moves); continuous: on-join,
                                       and re-creates on the alive brokers
                                       the replicas of a broker down longer
                                       than auto.balance.broker.down.ms,
                                       and sheds replicas from a full disk;
                                       off: only operators move partitions
  auto.balance.broker.down.ms          how long a broker must be down before
                                       continuous re-creates its replicas
                                       (default 900000, 15 min)
  auto.balance.disk.threshold.percent  disk usage above which continuous
                                       moves replicas off a broker (default
                                       85)

Moves beyond the limits wait in a queue and start as others end or the
limits rise.`,
		Example: `  sluice cluster config
  sluice cluster config --set reassignment.throttle.bytes.per.sec=104857600
  sluice cluster config --set reassignment.max.moves.per.broker=2 --json
  sluice cluster config --delete reassignment.max.moves
  sluice cluster config --set auto.balance=continuous --set auto.balance.broker.down.ms=600000
  sluice cluster config --set auto.balance=off      # only operators move partitions
  sluice cluster config --delete auto.balance       # back to the default, on-join`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return alterAndShowConfigs(cmd, g, set, del, asJSON, configResource{
				alter: func(ctx context.Context, cl *client.Client, ch []client.ConfigChange) error {
					return cl.AlterClusterConfigs(ctx, ch...)
				},
				describe: func(ctx context.Context, cl *client.Client) ([]client.ConfigEntry, error) {
					return cl.DescribeClusterConfigs(ctx)
				},
				show: func(e client.ConfigEntry) string { return e.Value },
			})
		},
	}
	cmd.Flags().StringArrayVar(&set, "set", nil, "cluster config key=value to set (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "cluster config key to revert to its default (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
