package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

func newTopicCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, delete and configure topics",
		Example: `  sluice topic create orders --partitions 3 --config retention.ms=86400000
  sluice topic list
  sluice topic describe orders --json
  sluice topic alter-config orders --set fsync=always
  sluice topic delete orders`,
	}
	cmd.AddCommand(newTopicCreateCmd(g), newTopicListCmd(g), newTopicDescribeCmd(g),
		newTopicDeleteCmd(g), newTopicAlterConfigCmd(g))
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
  sluice topic create audit --config fsync=always --config retention.ms=-1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := parseKV("config", configs)
			if err != nil {
				return err
			}
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			err = cl.CreateTopics(cmd.Context(), client.TopicSpec{Name: args[0], Partitions: partitions, ReplicationFactor: rf, Configs: cfg})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created topic %s\n", args[0])
			return nil
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
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			names, err := cl.ListTopics(cmd.Context())
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

type partitionJSON struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	StartOffset int64   `json:"start_offset"`
	EndOffset   int64   `json:"end_offset"`
	Error       string  `json:"error,omitempty"`
}

func newTopicDescribeCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "describe NAME",
		Short:   "Show a topic's partitions, leaders, replicas, offsets and configs",
		Example: `  sluice topic describe orders`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx := cmd.Context()
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
			tj := topicJSON{Name: d.Name, Configs: map[string]string{}}
			for _, p := range d.Partitions {
				pj := partitionJSON{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
					Replicas: p.Replicas, ISR: p.ISR, StartOffset: -1, EndOffset: -1}
				if p.Err != nil {
					pj.Error = p.Err.Error()
				}
				for _, o := range starts {
					if o.Partition == p.Partition && o.Err == nil {
						pj.StartOffset = o.Offset
					}
				}
				for _, o := range ends {
					if o.Partition == p.Partition && o.Err == nil {
						pj.EndOffset = o.Offset
					}
				}
				tj.Partitions = append(tj.Partitions, pj)
			}
			for _, e := range entries {
				tj.Configs[e.Key] = e.Value
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, tj)
			}
			fmt.Fprintf(out, "topic %s: %d partitions\n", tj.Name, len(tj.Partitions))
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tSTART\tEND\tERROR")
			for _, p := range tj.Partitions {
				fmt.Fprintf(tw, "%d\t%d\t%d\t%v\t%v\t%d\t%d\t%s\n", p.Partition, p.Leader, p.LeaderEpoch,
					p.Replicas, p.ISR, p.StartOffset, p.EndOffset, p.Error)
			}
			tw.Flush()
			fmt.Fprintln(out, "configs:")
			for _, e := range entries {
				suffix := ""
				if e.IsDefault {
					suffix = " (default)"
				}
				fmt.Fprintf(out, "  %s=%s%s\n", e.Key, e.Value, suffix)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newTopicDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a topic and its data",
		Example: `  sluice topic delete orders`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			if err := cl.DeleteTopics(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", args[0])
			return nil
		},
	}
}

func newTopicAlterConfigCmd(g *globals) *cobra.Command {
	var set, del []string
	cmd := &cobra.Command{
		Use:   "alter-config NAME",
		Short: "Set or remove topic configs",
		Example: `  sluice topic alter-config orders --set retention.ms=3600000 --set fsync=always
  sluice topic alter-config orders --delete retention.ms`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kv, err := parseKV("set", set)
			if err != nil {
				return err
			}
			if len(kv) == 0 && len(del) == 0 {
				return errors.New("nothing to change: give --set key=value or --delete key")
			}
			var changes []client.ConfigChange
			for k, v := range kv {
				changes = append(changes, client.SetConfig(k, v))
			}
			for _, k := range del {
				changes = append(changes, client.DeleteConfig(k))
			}
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			if err := cl.AlterConfigs(cmd.Context(), args[0], changes...); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "altered topic %s\n", args[0])
			return nil
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

// dial connects a client to the --brokers list.
func dial(cmd *cobra.Command, g *globals, opts ...client.Opt) (*client.Client, error) {
	brokers := g.brokerList()
	if len(brokers) == 0 {
		return nil, errors.New("--brokers is empty")
	}
	opts = append([]client.Opt{client.SeedBrokers(brokers...), client.ClientID("sluice-cli")}, opts...)
	cl, err := client.New(cmd.Context(), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(brokers, ","), err)
	}
	return cl, nil
}
