package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

// brokerArg parses a BROKER argument.
func brokerArg(s string) (int32, error) {
	id, err := strconv.ParseInt(s, 10, 32)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("broker id %q: want a non-negative integer", s)
	}
	return int32(id), nil
}

// membershipCmd is one of the commands that change who is in the
// cluster: each takes a broker id, sends one request, prints one line.
func membershipCmd(g *globals, use, short, long, example, done string, call func(*client.Client, context.Context, int32) error) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    long,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := brokerArg(args[0])
			if err != nil {
				return err
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				if err := call(cl, ctx, id); err != nil {
					return err
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "broker %d %s\n", id, done)
				return err
			})
		},
	}
}

// removeBroker removes broker id, then clears its draining mark (a broker
// joining later under its id is a new one).
func removeBroker(cl *client.Client, ctx context.Context, id int32) error {
	if err := cl.RemoveBroker(ctx, id); err != nil {
		return err
	}
	if err := setDraining(ctx, cl, id, false); err != nil {
		return fmt.Errorf("broker %d removed, but its draining mark stays (clear it with sluice cluster drain %d --cancel): %w", id, id, err)
	}
	return nil
}

func newClusterRemoveCmd(g *globals) *cobra.Command {
	return membershipCmd(g, "remove BROKER",
		"Remove a stopped, drained broker from the cluster: the broker registry and the controller's Raft group",
		`Remove BROKER from the broker registry (cluster status and brokers stop
listing it, new topics and moves never place replicas on it) and from the
controller's Raft group, voter or non-voter.

Refused, with the reason, unless the broker is stopped (not alive) and
holds no replica: run sluice cluster drain BROKER first (it returns once
the broker holds nothing), then stop the broker. The broker's draining
mark (brokers.draining) is cleared once it is removed. A voter is refused when the voters left would not include a majority of
live ones (say, removing a live voter of three while another is down):
bring the down voter back, or remove the down one.

A process restarted later on the removed broker's data directory is
refused registration and exits; to bring the id back, start it on an
empty data directory (it joins as a new broker). Running remove again
after a failure finishes what is left.`,
		`  sluice cluster drain 4
  sluice cluster reassign --list        # until no move is left
  # stop broker 4 (SIGTERM), then:
  sluice cluster remove 4`,
		"removed from the cluster", removeBroker)
}

func newClusterAddVoterCmd(g *globals) *cobra.Command {
	return membershipCmd(g, "add-voter BROKER",
		"Promote a registered, alive non-voter to a voter of the controller's Raft group",
		`Give BROKER a vote in the controller's Raft group, at the Raft address it
registered. Refused, with the reason, unless it is registered, alive, a
non-voter of the group whose Raft node answers the controller leader, and
the voters after the change include a majority of live ones.

With remove-voter (or remove), this replaces a failed voter machine
without downtime: start a new broker with --join (it joins as a
non-voter), add-voter it, then remove-voter or remove the dead one. The
voter set is kept by Raft; a broker restarted with --voters keeps the
role the group gives it (the flag only bootstraps a new cluster).`,
		`  sluice broker --broker-id 4 --data-dir ./d4 --join 10.0.0.1:7092 &   # on the new machine
  sluice cluster add-voter 4
  sluice cluster remove-voter 3      # the failed voter
  sluice cluster status               # voters: 1 2 4`,
		"is a controller voter", (*client.Client).AddVoter)
}

func newClusterRemoveVoterCmd(g *globals) *cobra.Command {
	return membershipCmd(g, "remove-voter BROKER",
		"Demote a voter of the controller's Raft group to a non-voter",
		`Take BROKER's vote in the controller's Raft group away; it stays a
non-voter (and a broker) and keeps receiving the metadata log. Refused,
with the reason, when it is not a voter, is the last one, or the voters
left would not include a majority of live ones (demote a down voter, not
a live one, while another voter is down). To take the broker out of the
cluster altogether, use remove once it is stopped and drained.`,
		`  sluice cluster remove-voter 3
  sluice cluster status | grep voters`,
		"is a controller non-voter", (*client.Client).RemoveVoter)
}
