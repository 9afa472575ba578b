package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

func newGroupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, delete consumer groups and reset their offsets",
		Long: `Consumer groups share a topic's partitions among their members and keep
each partition's committed offset (the next record to read). Members join with
"sluice consume TOPIC --group G" or the Go client's ConsumerGroup option.`,
		Example: `  sluice group list
  sluice group describe billing
  sluice group reset-offsets billing --topic orders --to-earliest --execute
  sluice group delete billing`,
	}
	cmd.AddCommand(newGroupListCmd(g), newGroupDescribeCmd(g), newGroupDeleteCmd(g), newGroupResetCmd(g))
	return cmd
}

func newGroupListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the consumer groups of the cluster",
		Long: `List every group with its type and state: a consumer group (sluice's
clients, KIP-848 Kafka clients) is empty, assigning, reconciling or stable; a
classic group (Kafka clients' JoinGroup protocol, on the Kafka listener) is
Empty, PreparingRebalance, CompletingRebalance or Stable, as Kafka names them;
a queue group (type queue, state Active) is listed too: see sluice queue
describe. Each broker lists the groups it coordinates; a broker that does not answer is
named on stderr and the command fails after printing the others.`,
		Example: `  sluice group list
  sluice group list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				groups, lerr := cl.ListGroups(ctx)
				out := cmd.OutOrStdout()
				if asJSON {
					if groups == nil {
						groups = []client.GroupListing{}
					}
					if err := writeJSON(out, groups); err != nil {
						return err
					}
					return lerr
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "GROUP\tTYPE\tSTATE\tCOORDINATOR")
				for _, l := range groups {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", l.Group, l.Type, l.State, l.Coordinator)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				return lerr
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupDescribeCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members, their partitions, and each partition's offsets and lag",
		Long: `Show a group's state, epochs and assignor; each member with the partitions
it owns (and, while it reconciles, those it will own); and per partition the
committed offset, the end offset and the lag (end - committed). A partition
with no commit yet shows committed "-" and its lag counts from the log start.`,
		Example: `  sluice group describe billing
  sluice group describe billing --json | jq '.offsets[] | select(.lag > 1000)'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				d, err := cl.DescribeGroup(ctx, args[0])
				if err != nil {
					return err
				}
				if d.Members == nil {
					d.Members = []client.GroupMemberDescription{}
				}
				if d.Offsets == nil {
					d.Offsets = []client.GroupOffset{}
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), d)
				}
				return printGroup(cmd.OutOrStdout(), &d)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printGroup(w io.Writer, d *client.GroupDescription) error {
	fmt.Fprintf(w, "group %s: %s, %s, epoch %d (assignment %d), assignor %q, coordinator %d, %d members\n",
		d.Group, d.Type, d.State, d.GroupEpoch, d.AssignmentEpoch, d.Assignor, d.Coordinator, len(d.Members))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(d.Members) > 0 {
		fmt.Fprintln(tw, "MEMBER\tINSTANCE\tCLIENT\tHOST\tEPOCH\tPARTITIONS\tTARGET")
		for _, m := range d.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.MemberID, dash(m.InstanceID), m.ClientID, m.ClientHost,
				m.MemberEpoch, partitionList(m.Assignment), partitionList(m.TargetAssignment))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER\tERROR")
	for _, o := range d.Offsets {
		committed := "-"
		if o.Committed >= 0 {
			committed = fmt.Sprint(o.Committed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\n", o.Topic, o.Partition, committed, o.End, o.Lag, dash(o.Member), o.Error)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// partitionList prints partitions as topic/p,p topic2/p.
func partitionList(tps []client.TopicPartition) string {
	if len(tps) == 0 {
		return "-"
	}
	var b strings.Builder
	for i, tp := range tps {
		switch {
		case i == 0:
			fmt.Fprintf(&b, "%s/%d", tp.Topic, tp.Partition)
		case tps[i-1].Topic == tp.Topic:
			fmt.Fprintf(&b, ",%d", tp.Partition)
		default:
			fmt.Fprintf(&b, " %s/%d", tp.Topic, tp.Partition)
		}
	}
	return b.String()
}

func newGroupDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete groups and their committed offsets",
		Long: `Delete groups and their committed offsets. A group that still has members is
refused (NON_EMPTY_GROUP): stop its consumers first.`,
		Example: `  sluice group delete billing
  sluice group delete billing audit`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				if err := cl.DeleteGroups(ctx, args...); err != nil {
					return err
				}
				for _, gr := range args {
					fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", gr)
				}
				return nil
			})
		},
	}
}

func newGroupResetCmd(g *globals) *cobra.Command {
	var (
		topic                string
		toEarliest, toLatest bool
		toDatetime           string
		toOffset, shiftBy    int64
		execute, asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic TOPIC (--to-earliest|--to-latest|--to-datetime T|--to-offset N|--shift-by N)",
		Short: "Move a group's committed offsets of a topic (a preview unless --execute)",
		Long: `Compute new committed offsets for every partition of a topic and print them
beside the current ones; with --execute, commit them. Exactly one target:

  --to-earliest      the log start
  --to-latest        the end (skip everything not yet read)
  --to-datetime T    the first record at or after T (RFC 3339, e.g.
                     2026-01-02T15:04:05Z), or the end if there is none
  --to-offset N      offset N
  --shift-by N       the current committed offset plus N (negative: back;
                     a partition with no commit shifts from its log start)

New offsets are kept within [log start, end]. A group with members is
refused: offsets are reset only while no consumer would overwrite them.`,
		Example: `  sluice group reset-offsets billing --topic orders --to-earliest
  sluice group reset-offsets billing --topic orders --shift-by -100 --execute
  sluice group reset-offsets billing --topic orders --to-datetime 2026-01-02T15:04:05Z --execute --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			var specs []client.ResetSpec
			if toEarliest {
				specs = append(specs, client.ResetToEarliest())
			}
			if toLatest {
				specs = append(specs, client.ResetToLatest())
			}
			if cmd.Flags().Changed("to-datetime") {
				t, err := time.Parse(time.RFC3339, toDatetime)
				if err != nil {
					return fmt.Errorf("--to-datetime %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", toDatetime)
				}
				specs = append(specs, client.ResetToTime(t))
			}
			if cmd.Flags().Changed("to-offset") {
				specs = append(specs, client.ResetToOffset(toOffset))
			}
			if cmd.Flags().Changed("shift-by") {
				specs = append(specs, client.ResetShiftBy(shiftBy))
			}
			if len(specs) != 1 {
				return errors.New("give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by")
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				plan, err := cl.ResetOffsets(ctx, args[0], topic, specs[0], execute)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return writeJSON(out, struct {
						Group    string               `json:"group"`
						Executed bool                 `json:"executed"`
						Offsets  []client.OffsetReset `json:"offsets"`
					}{args[0], execute, plan})
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tNEW")
				for _, r := range plan {
					cur := "-"
					if r.Current >= 0 {
						cur = fmt.Sprint(r.Current)
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", r.Topic, r.Partition, cur, r.New)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if execute {
					fmt.Fprintf(out, "committed new offsets of group %s\n", args[0])
				} else {
					fmt.Fprintln(out, "preview only: add --execute to commit these offsets")
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&topic, "topic", "", "the topic whose offsets to reset (required)")
	f.BoolVar(&toEarliest, "to-earliest", false, "to the log start")
	f.BoolVar(&toLatest, "to-latest", false, "to the end")
	f.StringVar(&toDatetime, "to-datetime", "", "to the first record at or after this RFC 3339 time")
	f.Int64Var(&toOffset, "to-offset", 0, "to this offset")
	f.Int64Var(&shiftBy, "shift-by", 0, "by this many records from the committed offset (negative: back)")
	f.BoolVar(&execute, "execute", false, "commit the new offsets (default: only print them)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
