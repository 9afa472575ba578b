package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/controller"
)

// featuresJSON is the --json shape of cluster features: stable names.
type featuresJSON struct {
	Finalized uint8                        `json:"finalized"`
	Nodes     []client.NodeCommandVersions `json:"nodes"`
}

func newClusterFeaturesCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "features",
		Short: "Show the controller's finalized command version and the versions each broker supports",
		Long: `Show the cluster's finalized controller command version (the version the
controller writes its metadata commands and snapshots at) and, for every
Raft member and registered broker, the range of command versions its
build supports ("unknown": it is down, or runs a build from before the
gate).

A rolling upgrade restarts each broker on the new build; the cluster keeps
writing at the finalized version, which every old build reads. Once every
broker runs the new build, raise it with sluice cluster features upgrade.
Operations that need a newer version (e.g. sluice cluster remove needs 9)
are refused until then, naming the version and the brokers that lack it.`,
		Example: `  sluice cluster features
  sluice cluster features --json
  sluice cluster features upgrade`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				d, err := cl.DescribeCluster(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					out := featuresJSON{Finalized: d.CommandLevel, Nodes: d.CommandVersions}
					if out.Nodes == nil {
						out.Nodes = []client.NodeCommandVersions{}
					}
					return writeJSON(cmd.OutOrStdout(), out)
				}
				return printFeatures(cmd.OutOrStdout(), d)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(newClusterFeaturesUpgradeCmd(g))
	return cmd
}

func printFeatures(w io.Writer, d client.ClusterDescription) error {
	level := "none yet"
	if d.CommandLevel > 0 {
		level = fmt.Sprint(d.CommandLevel)
	}
	fmt.Fprintf(w, "finalized command version: %s\n", level)
	roles := map[int32]string{}
	for _, s := range d.Servers {
		roles[s.ID] = "non-voter"
		if s.Voter {
			roles[s.ID] = "voter"
		}
	}
	states := map[int32]string{}
	for _, b := range d.Brokers {
		states[b.ID] = b.State
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tRAFT\tSTATE\tSUPPORTED")
	for _, v := range d.CommandVersions {
		supported := "unknown"
		if v.Known {
			supported = fmt.Sprintf("%d-%d", v.Min, v.Max)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", v.ID, orDash(roles[v.ID]), orDash(states[v.ID]), supported)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newClusterFeaturesUpgradeCmd(g *globals) *cobra.Command {
	var level uint8
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Raise the finalized controller command version once every broker supports it",
		Long: `Raise the cluster's finalized controller command version to --level
(default: the newest this sluice build knows). Refused, naming
the brokers in the way, while a Raft member or an alive broker does not
support it (it still runs the old build, or its range is unknown: it is
down or not yet gossiping; start it, or remove it). The version is never
lowered: once raised, a broker of an older build is refused when it
starts. Nothing is raised automatically: a stopped broker of an old build
cannot say it would be left behind.`,
		Example: `  sluice cluster features                 # every broker on the new build?
  sluice cluster features upgrade
  sluice cluster features upgrade --level 9`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				if err := cl.FinalizeCommandVersion(ctx, level); err != nil {
					return err
				}
				d, err := cl.DescribeCluster(ctx)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "finalized command version: %d\n", d.CommandLevel)
				return err
			})
		},
	}
	cmd.Flags().Uint8Var(&level, "level", controller.CommandVersion, "command version to finalize")
	return cmd
}
