package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/protocol"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the controller, its Raft group, the brokers and unhealthy partitions; rebalance leaders; move partitions; remove brokers, change voters",
		Example: `  sluice cluster status
  sluice cluster brokers --json
  sluice cluster rebalance-leaders --topic orders
  sluice cluster reassign --plan moves.json
  sluice cluster config --set reassignment.max.moves=10
  sluice cluster rebalance --dry-run
  sluice cluster drain 2
  sluice cluster remove 2
  sluice cluster add-voter 4
  sluice cluster remove-voter 3
  sluice cluster features upgrade`,
	}
	cmd.AddCommand(newClusterStatusCmd(g), newClusterBrokersCmd(g), newClusterRebalanceLeadersCmd(g), newClusterReassignCmd(g),
		newClusterConfigCmd(g), newClusterRebalanceCmd(g), newClusterDrainCmd(g), newClusterRemoveCmd(g), newClusterAddVoterCmd(g),
		newClusterRemoveVoterCmd(g), newClusterFeaturesCmd(g))
	return cmd
}

// clusterStatusJSON is the --json shape of cluster status: stable names.
type clusterStatusJSON struct {
	ClusterID    string              `json:"cluster_id"`
	ControllerID int32               `json:"controller_id"`
	RaftTerm     int64               `json:"raft_term"` // the answering broker's; counts elections
	Voters       []client.RaftServer `json:"voters"`
	NonVoters    []client.RaftServer `json:"non_voters"`
	Brokers      []brokerJSON        `json:"brokers"`
	// Draining are the brokers marked draining (brokers.draining);
	// DrainingError says why the mark could not be read.
	Draining        []int32            `json:"draining_brokers"`
	DrainingError   string             `json:"draining_error,omitempty"`
	Offline         []partitionRef     `json:"offline_partitions"`
	UnderReplicated []partitionRef     `json:"under_replicated_partitions"`
	Recovered       []partitionRef     `json:"recovered_partitions"` // led after a balanced unclean recovery (see the note)
	FailedReplicas  []failedReplica    `json:"failed_replicas"`
	Unanswered      []unansweredBroker `json:"unanswered_brokers"`
	// FailedStores are brokers whose controller (Raft) store cannot be
	// written: they neither lead the controller nor stand for election.
	FailedStores     []unansweredBroker `json:"failed_controller_stores"`
	PartitionCount   int                `json:"partitions"`
	TopicCount       int                `json:"topics"`
	ControllerKnown  bool               `json:"controller_known"`
	AliveBrokerCount int                `json:"alive_brokers"`
}

// brokerJSON is one broker in cluster brokers and cluster status: its
// registration, and whether it is marked draining (brokers.draining;
// absent when the mark could not be read).
type brokerJSON struct {
	client.BrokerDescription
	Draining *bool `json:"draining,omitempty"`
}

// brokersView marks the draining brokers; draining is nil when the mark
// could not be read (markErr).
func brokersView(brokers []client.BrokerDescription, draining []int32, markErr error) []brokerJSON {
	out := make([]brokerJSON, 0, len(brokers))
	for _, b := range brokers {
		v := brokerJSON{BrokerDescription: b}
		if markErr == nil {
			d := slices.Contains(draining, b.ID)
			v.Draining = &d
		}
		out = append(out, v)
	}
	return out
}

// partitionRef names one partition with its replica state.
type partitionRef struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
	// Note is the controller's word on the partition: why it has no
	// leader, or how its leader was recovered.
	Note string `json:"note,omitempty"`
}

// failedReplica is a replica its broker reports failed (its log offline
// after a storage error, say), with the broker's reason.
type failedReplica struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Broker    int32  `json:"broker"`
	Error     string `json:"error"`
}

// unansweredBroker is an alive broker that did not report its replicas.
type unansweredBroker struct {
	Broker int32  `json:"broker"`
	Error  string `json:"error"`
}

func newClusterStatusCmd(g *globals) *cobra.Command {
	var (
		asJSON         bool
		replicaTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Controller leader, voters, brokers with state, epoch and draining mark, partitions without a leader or under-replicated",
		Example: `  sluice cluster status
  sluice cluster status --brokers 10.0.0.1:7092,10.0.0.2:7092 --json
  sluice cluster status --replica-timeout 2s   # give up on a broker's replica report after 2 s, not 5 s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				st, err := clusterStatus(ctx, cl, replicaTimeout)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				return printClusterStatus(cmd.OutOrStdout(), st)
			})
		},
		Long: `Show the controller leader, the Raft voters and non-voters, the brokers with
their state and epoch, and the partitions without a leader or under-replicated.
Brokers marked draining (brokers.draining, set by cluster drain) have yes in
the DRAINING column and a line "draining: brokers N, M" (JSON:
draining_brokers, and draining on each broker).

The controller part is the controller leader's own answer when its broker can
be reached: a broker cut off from the Raft group knows no leader, so the
question is passed on to the broker the first one names, or to the other alive
brokers, until one says it leads.`,
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&replicaTimeout, "replica-timeout", defaultReplicaTimeout,
		"how long to wait for each broker's report of its replicas")
	return cmd
}

func clusterStatus(ctx context.Context, cl *client.Client, replicaTimeout time.Duration) (clusterStatusJSON, error) {
	d, err := cl.DescribeCluster(ctx)
	if err != nil {
		return clusterStatusJSON{}, err
	}
	// The draining mark is a cluster config: a user allowed to describe
	// the cluster but not its configs still gets the rest of the status.
	draining, markErr := drainingBrokers(ctx, cl)
	st := clusterStatusJSON{ClusterID: d.ClusterID, ControllerID: d.ControllerID, RaftTerm: d.RaftTerm, ControllerKnown: d.ControllerID >= 0,
		Voters: []client.RaftServer{}, NonVoters: []client.RaftServer{}, Brokers: brokersView(d.Brokers, draining, markErr),
		Draining: append([]int32{}, draining...),
		Offline:  []partitionRef{}, UnderReplicated: []partitionRef{}, Recovered: []partitionRef{}, FailedReplicas: []failedReplica{},
		Unanswered: []unansweredBroker{}, FailedStores: []unansweredBroker{}}
	if markErr != nil {
		st.DrainingError = markErr.Error()
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
	// What the metadata cannot say: replicas their own broker reports
	// failed.
	rctx, cancel := context.WithTimeout(ctx, replicaTimeout)
	defer cancel()
	brokers, err := cl.DescribeReplicas(rctx)
	if err != nil {
		return clusterStatusJSON{}, err
	}
	for _, br := range brokers {
		if br.Err != nil {
			st.Unanswered = append(st.Unanswered, unansweredBroker{Broker: br.Broker, Error: br.Err.Error()})
			continue
		}
		if br.ControllerStoreErr != nil {
			st.FailedStores = append(st.FailedStores, unansweredBroker{Broker: br.Broker, Error: br.ControllerStoreErr.Error()})
		}
		for _, r := range br.Replicas {
			if r.Err != nil {
				st.FailedReplicas = append(st.FailedReplicas, failedReplica{Topic: r.Topic, Partition: r.Partition, Broker: br.Broker, Error: r.Err.Error()})
			}
		}
	}
	return st, nil
}

// addPartitions counts a topic's partitions and lists those without a
// leader, those whose ISR is smaller than their replica set, and those
// led after a balanced unclean recovery (a leader and a note).
func (st *clusterStatusJSON) addPartitions(topic string, parts []client.PartitionDescription) {
	for _, p := range parts {
		st.PartitionCount++
		ref := partitionRef{Topic: topic, Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR, Note: p.Note}
		if p.Leader < 0 {
			st.Offline = append(st.Offline, ref)
		} else if strings.Contains(p.Note, "balanced recovery") {
			// Other notes on a led partition (a replica offline) show
			// with its under-replicated line.
			st.Recovered = append(st.Recovered, ref)
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
	if st.RaftTerm > 0 {
		controller += fmt.Sprintf(", raft term %d", st.RaftTerm)
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
	if st.DrainingError != "" {
		fmt.Fprintf(w, "draining: unknown: %s\n", st.DrainingError)
	} else if len(st.Draining) > 0 {
		fmt.Fprintf(w, "draining: brokers %s\n", strings.Trim(strings.ReplaceAll(fmt.Sprint(st.Draining), " ", ", "), "[]"))
	}
	fmt.Fprintf(w, "topics: %d, partitions: %d, without a leader: %d, under-replicated: %d, recovered uncleanly: %d\n",
		st.TopicCount, st.PartitionCount, len(st.Offline), len(st.UnderReplicated), len(st.Recovered))
	for _, p := range st.Offline {
		fmt.Fprintf(w, "  no leader: %s-%d replicas %v isr %v%s\n", p.Topic, p.Partition, p.Replicas, p.ISR, noteSuffix(p.Note))
	}
	for _, p := range st.UnderReplicated {
		fmt.Fprintf(w, "  under-replicated: %s-%d leader %d replicas %v isr %v%s\n", p.Topic, p.Partition, p.Leader, p.Replicas, p.ISR, noteSuffix(p.Note))
	}
	for _, p := range st.Recovered {
		fmt.Fprintf(w, "  recovered: %s-%d leader %d%s\n", p.Topic, p.Partition, p.Leader, noteSuffix(p.Note))
	}
	fmt.Fprintf(w, "failed replicas: %d\n", len(st.FailedReplicas))
	for _, r := range st.FailedReplicas {
		fmt.Fprintf(w, "  failed: %s-%d on broker %d: %s\n", r.Topic, r.Partition, r.Broker, r.Error)
	}
	for _, b := range st.Unanswered {
		fmt.Fprintf(w, "  broker %d did not report its replicas: %s\n", b.Broker, b.Error)
	}
	for _, b := range st.FailedStores {
		fmt.Fprintf(w, "controller store failed on broker %d (it does not stand for controller election): %s\n", b.Broker, b.Error)
	}
	return nil
}

// noteSuffix prints a partition's note after its line, if it has one.
func noteSuffix(note string) string {
	if note == "" {
		return ""
	}
	return ": " + note
}

// printBrokers prints the broker table; DRAINING is yes, - or ? (the
// mark could not be read).
func printBrokers(w io.Writer, brokers []brokerJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tADDR\tRAFT ADDR\tRACK\tEPOCH\tSTATE\tDRAINING")
	for _, b := range brokers {
		draining := "?"
		switch {
		case b.Draining == nil:
		case *b.Draining:
			draining = "yes"
		default:
			draining = "-"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%s\t%s\n", b.ID, b.Addr, b.RaftAddr, b.Rack, b.Epoch, b.State, draining)
	}
	return tw.Flush()
}

func newClusterBrokersCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "brokers",
		Short: "List the registered brokers with address, Raft address, rack, epoch, state and draining mark",
		Long: `List the registered brokers: address, Raft address, rack, broker epoch (new
at each registration), state (alive or offline) and DRAINING: yes when the
broker is marked draining (brokers.draining, set by cluster drain, cleared by
cluster remove or drain --cancel), - when not, ? when the mark could not be
read (a user without DescribeConfigs on the cluster; a warning goes to
stderr). --json has the same, draining as true or false (absent when
unknown).`,
		Example: `  sluice cluster brokers
  sluice cluster brokers --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				d, err := cl.DescribeCluster(ctx)
				if err != nil {
					return err
				}
				draining, markErr := drainingBrokers(ctx, cl)
				if markErr != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "sluice: cluster brokers: draining mark unknown: %v\n", markErr)
				}
				brokers := brokersView(d.Brokers, draining, markErr)
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), brokers)
				}
				return printBrokers(cmd.OutOrStdout(), brokers)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// Outcomes of one preferred-leader election, as rebalance-leaders names
// them.
const (
	electionElected   = "elected"    // leadership moved to the preferred replica
	electionNotNeeded = "not_needed" // the preferred replica already led
	electionFailed    = "failed"     // see the error
)

// electionJSON is the --json shape of one election in rebalance-leaders.
type electionJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Leader    int32  `json:"leader"`
	Result    string `json:"result"`
	Error     string `json:"error,omitempty"`
}

func newClusterRebalanceLeadersCmd(g *globals) *cobra.Command {
	var (
		topics []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "rebalance-leaders",
		Short: "Move each partition's leadership back to its preferred replica",
		Long: `Run a preferred-leader election: every partition whose preferred replica
(the first of its replica list) is alive and in the ISR, but does not lead
it, gets it back as leader. After a broker restarts, other replicas lead
its partitions; this gives leadership back to the preferred replicas, which
the controller spreads evenly over the brokers, and with it the load.

Each partition's leader hands over as the automatic rebalance does: it
refuses new produces for a moment (clients retry them on the new leader),
waits until the preferred replica holds every record it appended, then
switches, so no produce fails or ends with an unknown outcome.

Prints one line per partition: elected, not_needed (the preferred replica
already leads), or failed with the reason (PREFERRED_LEADER_NOT_AVAILABLE
while it is down or catching up). Exits with status 1 when any failed.`,
		Example: `  sluice cluster rebalance-leaders
  sluice cluster rebalance-leaders --topic orders --topic audit
  sluice cluster rebalance-leaders --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				results, err := cl.ElectPreferredLeaders(ctx, topics...)
				if err != nil {
					return err
				}
				elections := electionsView(results)
				out := cmd.OutOrStdout()
				if asJSON {
					err = writeJSON(out, elections)
				} else {
					err = printElections(out, elections)
				}
				if err != nil {
					return err
				}
				if n := countResult(elections, electionFailed); n > 0 {
					return fmt.Errorf("%d of %d elections failed", n, len(elections))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&topics, "topic", nil, "only this topic's partitions (repeatable; default: every topic)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func electionsView(results []client.ElectionResult) []electionJSON {
	out := make([]electionJSON, 0, len(results))
	for _, r := range results {
		e := electionJSON{Topic: r.Topic, Partition: r.Partition, Leader: r.Leader, Result: electionElected}
		switch {
		case errors.Is(r.Err, protocol.ErrElectionNotNeeded):
			e.Result = electionNotNeeded
		case r.Err != nil:
			e.Result, e.Error = electionFailed, r.Err.Error()
		}
		out = append(out, e)
	}
	return out
}

func countResult(elections []electionJSON, result string) int {
	n := 0
	for _, e := range elections {
		if e.Result == result {
			n++
		}
	}
	return n
}

func printElections(w io.Writer, elections []electionJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tRESULT\tERROR")
	for _, e := range elections {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", e.Topic, e.Partition, e.Leader, e.Result, e.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d partitions: %d elected, %d not needed, %d failed\n", len(elections),
		countResult(elections, electionElected), countResult(elections, electionNotNeeded), countResult(elections, electionFailed))
	return err
}
