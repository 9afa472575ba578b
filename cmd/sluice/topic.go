package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/protocol"
)

func newTopicCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, grow, delete and configure topics",
		Example: `  sluice topic create orders --partitions 3 --config retention.ms=86400000
  sluice topic list
  sluice topic describe orders --json
  sluice topic alter-config orders --set fsync=always
  sluice topic alter orders --partitions 6
  sluice topic delete-records orders --partition 0 --before 1200
  sluice topic delete orders`,
	}
	cmd.AddCommand(newTopicCreateCmd(g), newTopicListCmd(g), newTopicDescribeCmd(g),
		newTopicDeleteCmd(g), newTopicAlterConfigCmd(g), newTopicAlterCmd(g), newTopicDeleteRecordsCmd(g))
	return cmd
}

// parseKV splits each "key=value".
func parseKV(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want key=value", flag, p)
		}
		out[k] = v
	}
	return out, nil
}

// configChanges turns --set key=value and --delete key flags into config
// changes.
func configChanges(set, del []string) ([]client.ConfigChange, error) {
	kv, err := parseKV("set", set)
	if err != nil {
		return nil, err
	}
	var changes []client.ConfigChange
	for k, v := range kv {
		changes = append(changes, client.SetConfig(k, v))
	}
	for _, k := range del {
		changes = append(changes, client.DeleteConfig(k))
	}
	return changes, nil
}

func newTopicCreateCmd(g *globals) *cobra.Command {
	var (
		partitions int32
		rf         int16
		configs    []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Example: `  sluice topic create orders --partitions 6 --replication-factor 1
  sluice topic create audit --config fsync=always --config retention.ms=-1
  # a table: keep the latest record per key; tombstones go after 1 hour
  sluice topic create accounts --config cleanup.policy=compact --config delete.retention.ms=3600000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := parseKV("config", configs)
			if err != nil {
				return err
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				if err := cl.CreateTopics(ctx, client.TopicSpec{Name: args[0], Partitions: partitions, ReplicationFactor: rf, Configs: cfg}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "created topic %s\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", 1, "number of partitions")
	cmd.Flags().Int16Var(&rf, "replication-factor", 1, "replicas of each partition")
	cmd.Flags().StringArrayVar(&configs, "config", nil, "topic config key=value (repeatable)")
	return cmd
}

func newTopicListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List topics",
		Example: `  sluice topic list --json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				names, err := cl.ListTopics(ctx)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					if names == nil {
						names = []string{}
					}
					return writeJSON(out, names)
				}
				for _, n := range names {
					fmt.Fprintln(out, n)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// topicJSON is the --json shape of topic describe: stable field names.
type topicJSON struct {
	Name       string            `json:"name"`
	Partitions []partitionJSON   `json:"partitions"`
	Configs    map[string]string `json:"configs"`
}

// partitionJSON is one partition: the controller's view (leader, epoch,
// replica sets), the leader's offsets, and each replica as its own broker
// reports it.
type partitionJSON struct {
	Partition       int32         `json:"partition"`
	Leader          int32         `json:"leader"`
	LeaderEpoch     int32         `json:"leader_epoch"`
	Replicas        []int32       `json:"replicas"`
	ISR             []int32       `json:"isr"`
	OfflineReplicas []int32       `json:"offline_replicas"`
	StartOffset     int64         `json:"start_offset"`
	EndOffset       int64         `json:"end_offset"`
	ReplicaStatus   []replicaJSON `json:"replica_status"`
	Error           string        `json:"error,omitempty"`
	// Note is the controller's word on the partition: why it has no
	// leader, or that its leader came from a balanced unclean recovery
	// and how many committed offsets it may lack.
	Note string `json:"note,omitempty"`
	// Move is the partition's move in progress or queued (cluster
	// reassign); absent when none.
	Move *moveJSON `json:"move,omitempty"`
}

// Roles of a replica in topic describe. Leader and follower are what the
// replica's broker says it is; the others say why there is nothing to show.
const (
	roleLeader      = "leader"
	roleFollower    = "follower"
	roleUnreachable = "unreachable" // the broker did not answer, or is not alive
	roleUnknown     = "unknown"     // the broker answered with an error (an older broker, say)
	roleMissing     = "missing"     // the broker answered but does not hold the replica
	roleError       = "error"       // the broker holds the replica, which has failed
)

// replicaJSON is one replica as its broker reports it (DescribeReplicas).
// Offsets and the epoch are -1 unless Role is leader or follower.
type replicaJSON struct {
	Broker        int32  `json:"broker"`
	Role          string `json:"role"`
	LeaderEpoch   int32  `json:"leader_epoch"`
	StartOffset   int64  `json:"start_offset"`
	EndOffset     int64  `json:"end_offset"`
	HighWatermark int64  `json:"high_watermark"`
	SyncedOffset  int64  `json:"synced_offset"`
	Error         string `json:"error,omitempty"`
	// Cleaner is the log cleaner's state of a compacted replica.
	Cleaner *cleanerJSON `json:"cleaner,omitempty"`
}

// cleanerJSON is a compacted replica's log cleaner state.
type cleanerJSON struct {
	DirtyRatio float64 `json:"dirty_ratio"`
	CleanBytes int64   `json:"clean_bytes"`
	DirtyBytes int64   `json:"dirty_bytes"`
	LastClean  string  `json:"last_clean,omitempty"` // RFC 3339; absent: none since the broker started
	Failures   int     `json:"failures"`
	Error      string  `json:"error,omitempty"`
}

// defaultReplicaTimeout bounds the wait for brokers' DescribeReplicas answers, so
// one stopped broker does not stall describe.
const defaultReplicaTimeout = 5 * time.Second

func newTopicDescribeCmd(g *globals) *cobra.Command {
	var (
		asJSON         bool
		replicaTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's partitions, leaders, replicas with their offsets, and configs",
		Long: `Show a topic's partitions and configs.

Per partition: the leader, its leader epoch, the replicas, the in-sync
replicas (ISR) and the offline replicas as the controller records them, and
the log start and end offsets as the leader reports them.

A partition the controller has something to say about gets a note: why it
has no leader (which replicas of its last ISR it waits for, or that it
waits for an operator), or that its leader was elected by a balanced
unclean recovery and how many committed offsets it may lack.

A partition that is moving (sluice cluster reassign) gets a "moving" line:
its target, the replicas being added and removed, and the bytes the new
replicas have yet to copy (the leader's estimate), or that the move is
queued behind the cluster's move limits. During a move REPLICAS lists the
target followed by the replicas being removed.

Per replica, as the broker holding it reports it: its role (leader or
follower), leader epoch, log start and end offsets, high watermark (HW) and
synced offset (below it the log is fsynced). Every alive broker is asked;
a broker that does not answer within --replica-timeout shows "unreachable",
one that answers without holding the replica "missing".

For a compacted topic (cleanup.policy=compact), per replica, the log
cleaner's state: the dirty ratio (bytes not yet compacted over the
cleanable bytes; cleaning starts at min.cleanable.dirty.ratio), when it
last cleaned, and how many attempts in a row failed with the last error
(the broker retries with a backoff).`,
		Example: `  sluice topic describe orders
  sluice topic describe orders --json | jq '.partitions[].replica_status'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				d, err := cl.DescribeTopic(ctx, args[0])
				if err != nil {
					return err
				}
				starts, err := cl.ListOffsets(ctx, args[0], client.AtStart())
				if err != nil {
					return err
				}
				ends, err := cl.ListOffsets(ctx, args[0], client.AtEnd())
				if err != nil {
					return err
				}
				entries, err := cl.DescribeConfigs(ctx, args[0])
				if err != nil {
					return err
				}
				rctx, cancel := context.WithTimeout(ctx, replicaTimeout)
				brokers, rerr := cl.DescribeReplicas(rctx, args[0])
				cancel()
				tj := topicView(d, starts, ends, replicaStatus(brokers, rerr), entries)
				// A broker too old to list moves leaves them out.
				if moves, err := cl.ListReassignments(ctx, args[0]); err == nil {
					addMoves(&tj, moves)
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return writeJSON(out, tj)
				}
				return printTopic(out, tj, entries)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&replicaTimeout, "replica-timeout", defaultReplicaTimeout,
		"how long to wait for each broker's report of its replicas")
	return cmd
}

// replicaLookup finds the report of one replica from the brokers'
// DescribeReplicas answers.
type replicaLookup func(topic string, partition, broker int32) replicaJSON

// replicaStatus indexes the brokers' answers. err is DescribeReplicas'
// own failure: then no broker could be asked, and every replica is
// unreachable for that reason.
func replicaStatus(brokers []client.BrokerReplicas, err error) replicaLookup {
	byBroker := make(map[int32]*client.BrokerReplicas, len(brokers))
	for i := range brokers {
		byBroker[brokers[i].Broker] = &brokers[i]
	}
	return func(topic string, partition, broker int32) replicaJSON {
		rj := replicaJSON{Broker: broker, LeaderEpoch: -1, StartOffset: -1, EndOffset: -1, HighWatermark: -1, SyncedOffset: -1}
		br := byBroker[broker]
		switch {
		case err != nil:
			rj.Role, rj.Error = roleUnreachable, err.Error()
		case br == nil:
			rj.Role, rj.Error = roleUnreachable, "not among the alive brokers"
		case answered(br.Err):
			rj.Role, rj.Error = roleUnknown, br.Err.Error()
		case br.Err != nil:
			rj.Role, rj.Error = roleUnreachable, br.Err.Error()
		default:
			rj.Role = roleMissing
			for _, ri := range br.Replicas {
				if ri.Topic != topic || ri.Partition != partition {
					continue
				}
				if ri.Err != nil {
					rj.Role, rj.Error = roleError, ri.Err.Error()
					break
				}
				rj.Role = roleFollower
				if ri.Leader {
					rj.Role = roleLeader
				}
				rj.LeaderEpoch, rj.StartOffset, rj.EndOffset = ri.LeaderEpoch, ri.StartOffset, ri.EndOffset
				rj.HighWatermark, rj.SyncedOffset = ri.HighWatermark, ri.SyncedOffset
				if c := ri.Cleaner; c != nil {
					rj.Cleaner = &cleanerJSON{DirtyRatio: c.DirtyRatio(), CleanBytes: c.CleanBytes, DirtyBytes: c.DirtyBytes,
						Failures: c.Failures, Error: c.Err}
					if !c.LastClean.IsZero() {
						rj.Cleaner.LastClean = c.LastClean.UTC().Format(time.RFC3339)
					}
				}
				break
			}
		}
		return rj
	}
}

// answered reports whether err is a broker's refusal rather than a
// failure to reach it: an error code in its response, or an API version
// its ApiVersions answer did not offer.
func answered(err error) bool {
	var perr *protocol.Error
	return errors.As(err, &perr) || errors.Is(err, protocol.ErrUnsupportedVersion)
}

// topicView puts together what topic describe shows.
func topicView(d client.TopicDescription, starts, ends []client.PartitionOffset, replicas replicaLookup,
	entries []client.ConfigEntry) topicJSON {
	tj := topicJSON{Name: d.Name, Partitions: []partitionJSON{}, Configs: map[string]string{}}
	for _, p := range d.Partitions {
		pj := partitionJSON{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: orEmpty(p.Replicas), ISR: orEmpty(p.ISR), OfflineReplicas: orEmpty(p.OfflineReplicas),
			StartOffset: offsetOf(starts, p.Partition), EndOffset: offsetOf(ends, p.Partition),
			ReplicaStatus: []replicaJSON{}, Note: p.Note}
		if p.Err != nil {
			pj.Error = p.Err.Error()
		}
		for _, id := range p.Replicas {
			pj.ReplicaStatus = append(pj.ReplicaStatus, replicas(d.Name, p.Partition, id))
		}
		tj.Partitions = append(tj.Partitions, pj)
	}
	for _, e := range entries {
		tj.Configs[e.Key] = e.Value
	}
	return tj
}

// offsetOf is partition's offset in a ListOffsets answer, -1 when it has
// none.
func offsetOf(offsets []client.PartitionOffset, partition int32) int64 {
	for _, o := range offsets {
		if o.Partition == partition && o.Err == nil {
			return o.Offset
		}
	}
	return -1
}

// orEmpty makes a nil list print as [] in JSON.
func orEmpty(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}

// addMoves attaches each partition's move (ListReassignments) to tj.
func addMoves(tj *topicJSON, moves []client.Move) {
	for _, m := range moves {
		for i := range tj.Partitions {
			if m.Topic == tj.Name && tj.Partitions[i].Partition == m.Partition {
				v := moveView(m, nil, 0)
				tj.Partitions[i].Move = &v
			}
		}
	}
}

func printTopic(w io.Writer, tj topicJSON, entries []client.ConfigEntry) error {
	fmt.Fprintf(w, "topic %s: %d partitions\n", tj.Name, len(tj.Partitions))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tOFFLINE\tSTART\tEND\tERROR")
	for _, p := range tj.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%v\t%v\t%v\t%d\t%d\t%s\n", p.Partition, p.Leader, p.LeaderEpoch,
			p.Replicas, p.ISR, p.OfflineReplicas, p.StartOffset, p.EndOffset, p.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range tj.Partitions {
		if p.Note != "" {
			fmt.Fprintf(w, "note: partition %d: %s\n", p.Partition, p.Note)
		}
		if m := p.Move; m != nil && m.Queued {
			fmt.Fprintf(w, "moving: partition %d: queued to %v (waiting for the move limits)\n", p.Partition, m.Target)
		} else if m != nil {
			fmt.Fprintf(w, "moving: partition %d: to %v, adding %v, removing %v, %s left\n", p.Partition, m.Target, m.Adding, m.Removing,
				remainingText(m.BytesRemaining))
		}
	}
	fmt.Fprintln(w, "replicas:")
	fmt.Fprintln(tw, "  PARTITION\tBROKER\tROLE\tEPOCH\tSTART\tEND\tHW\tSYNCED\tERROR")
	for _, p := range tj.Partitions {
		for _, r := range p.ReplicaStatus {
			if r.Role == roleLeader || r.Role == roleFollower {
				fmt.Fprintf(tw, "  %d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Partition, r.Broker, r.Role,
					r.LeaderEpoch, r.StartOffset, r.EndOffset, r.HighWatermark, r.SyncedOffset, r.Error)
			} else {
				fmt.Fprintf(tw, "  %d\t%d\t%s\t-\t-\t-\t-\t-\t%s\n", p.Partition, r.Broker, r.Role, r.Error)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printCleaner(w, tj); err != nil {
		return err
	}
	fmt.Fprintln(w, "configs:")
	for _, e := range entries {
		suffix := ""
		if e.IsDefault {
			suffix = " (default)"
		}
		fmt.Fprintf(w, "  %s=%s%s\n", e.Key, e.Value, suffix)
	}
	return nil
}

// printCleaner prints the log cleaner's state of compacted replicas, if
// any.
func printCleaner(w io.Writer, tj topicJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := false
	for _, p := range tj.Partitions {
		for _, r := range p.ReplicaStatus {
			c := r.Cleaner
			if c == nil {
				continue
			}
			if !header {
				fmt.Fprintln(w, "cleaner:")
				fmt.Fprintln(tw, "  PARTITION\tBROKER\tDIRTY\tCLEAN BYTES\tDIRTY BYTES\tLAST CLEAN\tFAILURES\tERROR")
				header = true
			}
			last := c.LastClean
			if last == "" {
				last = "-"
			}
			fmt.Fprintf(tw, "  %d\t%d\t%.0f%%\t%d\t%d\t%s\t%d\t%s\n", p.Partition, r.Broker, 100*c.DirtyRatio,
				c.CleanBytes, c.DirtyBytes, last, c.Failures, c.Error)
		}
	}
	return tw.Flush()
}

func newTopicDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a topic and its data",
		Example: `  sluice topic delete orders`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				if err := cl.DeleteTopics(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", args[0])
				return nil
			})
		},
	}
}

func newTopicDeleteRecordsCmd(g *globals) *cobra.Command {
	var partition int32
	var before int64
	cmd := &cobra.Command{
		Use:   "delete-records TOPIC --partition P --before OFFSET",
		Short: "Delete a partition's records below an offset (move its log start)",
		Long: `Delete the records of one partition below an offset, on its leader (Kafka's
DeleteRecords): the partition's log start offset moves there, and those
records can no longer be read (a consumer reading from the beginning
starts at the new start; a fetch below it is OFFSET_OUT_OF_RANGE). The
followers follow with their next fetch. --before -1 deletes every record
below the high watermark; an offset above the high watermark is refused;
one at or below the current start changes nothing. Prints the new log
start offset (the low watermark). Needs delete on the topic.`,
		Example: `  sluice topic delete-records orders --partition 0 --before 1200
  sluice topic delete-records orders --partition 3 --before -1   # everything written so far`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("partition") || !cmd.Flags().Changed("before") {
				return errors.New("delete-records: --partition and --before are required")
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				low, err := cl.DeleteRecords(ctx, args[0], partition, before)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s-%d: log start offset %d\n", args[0], partition, low)
				return nil
			})
		},
	}
	cmd.Flags().Int32Var(&partition, "partition", 0, "the partition")
	cmd.Flags().Int64Var(&before, "before", 0, "delete the records below this offset (-1: below the high watermark)")
	return cmd
}

func newTopicAlterConfigCmd(g *globals) *cobra.Command {
	var set, del []string
	cmd := &cobra.Command{
		Use:   "alter-config NAME",
		Short: "Set or remove topic configs",
		Example: `  sluice topic alter-config orders --set retention.ms=3600000 --set fsync=always
  sluice topic alter-config orders --delete retention.ms
  sluice topic alter-config accounts --set min.cleanable.dirty.ratio=0.2 --set min.compaction.lag.ms=60000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			changes, err := configChanges(set, del)
			if err != nil {
				return err
			}
			if len(changes) == 0 {
				return errors.New("nothing to change: give --set key=value or --delete key")
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				if err := cl.AlterConfigs(ctx, args[0], changes...); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "altered topic %s\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&set, "set", nil, "config key=value to set (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "config key to reset to its default (repeatable)")
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// dial connects a client to the --brokers list, within --timeout: the
// client's bootstrap tries the seeds in turn with retries, which against
// a broker that accepts and never answers would otherwise take 1 +
// RequestRetries request timeouts.
func dial(cmd *cobra.Command, g *globals, opts ...client.Opt) (*client.Client, error) {
	brokers := g.brokerList()
	if len(brokers) == 0 {
		return nil, errors.New("--brokers is empty")
	}
	opts = append(append(g.clientOpts(), client.ClientID("sluice-cli")), opts...)
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	cl, err := client.New(ctx, opts...)
	if err != nil {
		if ctx.Err() != nil && cmd.Context().Err() == nil {
			return nil, fmt.Errorf("connect to %s: no broker answered within --timeout %v: %w", strings.Join(brokers, ","), g.timeout, err)
		}
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(brokers, ","), err)
	}
	return cl, nil
}

// withClient dials --brokers, runs fn with the command's context and the
// client, and closes the client: the prologue of every command that asks
// the cluster something and prints the answer.
func withClient(cmd *cobra.Command, g *globals, fn func(ctx context.Context, cl *client.Client) error) error {
	cl, err := dial(cmd, g)
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(cmd.Context(), cl)
}
