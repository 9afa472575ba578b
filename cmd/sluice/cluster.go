package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the controller, its Raft group, the brokers and unhealthy partitions",
		Example: `  sluice cluster status
  sluice cluster brokers --json`,
	}
	cmd.AddCommand(newClusterStatusCmd(g), newClusterBrokersCmd(g))
	return cmd
}

// clusterStatusJSON is the --json shape of cluster status: stable names.
type clusterStatusJSON struct {
	ClusterID        string                     `json:"cluster_id"`
	ControllerID     int32                      `json:"controller_id"`
	Voters           []client.RaftServer        `json:"voters"`
	NonVoters        []client.RaftServer        `json:"non_voters"`
	Brokers          []client.BrokerDescription `json:"brokers"`
	Offline          []partitionRef             `json:"offline_partitions"`
	UnderReplicated  []partitionRef             `json:"under_replicated_partitions"`
	PartitionCount   int                        `json:"partitions"`
	TopicCount       int                        `json:"topics"`
	ControllerKnown  bool                       `json:"controller_known"`
	AliveBrokerCount int                        `json:"alive_brokers"`
}

// partitionRef names one partition with its replica state.
type partitionRef struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
}

func newClusterStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Controller leader, voters, brokers with state and epoch, partitions without a leader or under-replicated",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			st, err := clusterStatus(cmd.Context(), cl)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return printClusterStatus(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func clusterStatus(ctx context.Context, cl *client.Client) (clusterStatusJSON, error) {
	d, err := cl.DescribeCluster(ctx)
	if err != nil {
		return clusterStatusJSON{}, err
	}
	st := clusterStatusJSON{ClusterID: d.ClusterID, ControllerID: d.ControllerID, ControllerKnown: d.ControllerID >= 0,
		Voters: []client.RaftServer{}, NonVoters: []client.RaftServer{}, Brokers: d.Brokers,
		Offline: []partitionRef{}, UnderReplicated: []partitionRef{}}
	if st.Brokers == nil {
		st.Brokers = []client.BrokerDescription{}
	}
	for _, s := range d.Servers {
		if s.Voter {
			st.Voters = append(st.Voters, s)
		} else {
			st.NonVoters = append(st.NonVoters, s)
		}
	}
	for _, b := range d.Brokers {
		if b.State == "alive" {
			st.AliveBrokerCount++
		}
	}
	topics, err := cl.ListTopics(ctx)
	if err != nil {
		return clusterStatusJSON{}, err
	}
	st.TopicCount = len(topics)
	for _, name := range topics {
		td, err := cl.DescribeTopic(ctx, name)
		if err != nil {
			return clusterStatusJSON{}, err
		}
		st.addPartitions(name, td.Partitions)
	}
	return st, nil
}

// addPartitions counts a topic's partitions and lists those without a
// leader and those whose ISR is smaller than their replica set.
func (st *clusterStatusJSON) addPartitions(topic string, parts []client.PartitionDescription) {
	for _, p := range parts {
		st.PartitionCount++
		ref := partitionRef{Topic: topic, Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR}
		if p.Leader < 0 {
			st.Offline = append(st.Offline, ref)
		}
		if len(p.ISR) < len(p.Replicas) {
			st.UnderReplicated = append(st.UnderReplicated, ref)
		}
	}
}

func printClusterStatus(w io.Writer, st clusterStatusJSON) error {
	controller := "none known (election running, or no quorum)"
	if st.ControllerKnown {
		controller = fmt.Sprintf("broker %d", st.ControllerID)
	}
	fmt.Fprintf(w, "cluster %s\ncontroller: %s\n", st.ClusterID, controller)
	fmt.Fprintf(w, "voters:")
	for _, s := range st.Voters {
		fmt.Fprintf(w, " %d@%s", s.ID, s.RaftAddr)
	}
	fmt.Fprintf(w, "\nnon-voters:")
	for _, s := range st.NonVoters {
		fmt.Fprintf(w, " %d@%s", s.ID, s.RaftAddr)
	}
	fmt.Fprintf(w, "\nbrokers: %d alive of %d\n", st.AliveBrokerCount, len(st.Brokers))
	if err := printBrokers(w, st.Brokers); err != nil {
		return err
	}
	fmt.Fprintf(w, "topics: %d, partitions: %d, without a leader: %d, under-replicated: %d\n",
		st.TopicCount, st.PartitionCount, len(st.Offline), len(st.UnderReplicated))
	for _, p := range st.Offline {
		fmt.Fprintf(w, "  no leader: %s-%d replicas %v isr %v\n", p.Topic, p.Partition, p.Replicas, p.ISR)
	}
	for _, p := range st.UnderReplicated {
		fmt.Fprintf(w, "  under-replicated: %s-%d leader %d replicas %v isr %v\n", p.Topic, p.Partition, p.Leader, p.Replicas, p.ISR)
	}
	return nil
}

func printBrokers(w io.Writer, brokers []client.BrokerDescription) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tADDR\tRAFT ADDR\tRACK\tEPOCH\tSTATE")
	for _, b := range brokers {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%s\n", b.ID, b.Addr, b.RaftAddr, b.Rack, b.Epoch, b.State)
	}
	return tw.Flush()
}

func newClusterBrokersCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "brokers",
		Short: "List the registered brokers with address, Raft address, rack, epoch and state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := dial(cmd, g)
			if err != nil {
				return err
			}
			defer cl.Close()
			d, err := cl.DescribeCluster(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if d.Brokers == nil {
					d.Brokers = []client.BrokerDescription{}
				}
				return writeJSON(cmd.OutOrStdout(), d.Brokers)
			}
			return printBrokers(cmd.OutOrStdout(), d.Brokers)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
