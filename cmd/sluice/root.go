package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"
)

const defaultBrokers = "127.0.0.1:7092"

// globals are the flags every command shares.
type globals struct {
	brokers string
}

func (g *globals) brokerList() []string {
	var out []string
	for _, b := range strings.Split(g.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "sluice",
		Short: "sluice: a partitioned, replicated commit log",
		Long: `sluice is a partitioned commit log in the family of Kafka.

Start a broker, create a topic, produce and consume:

  sluice broker --data-dir ./data
  sluice topic create orders --partitions 3
  echo hello | sluice produce orders
  sluice consume orders --from-beginning --max-messages 1`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	brokers := os.Getenv("SLUICE_BROKERS")
	if brokers == "" {
		brokers = defaultBrokers
	}
	root.PersistentFlags().StringVar(&g.brokers, "brokers", brokers,
		"comma-separated broker addresses to bootstrap from (env SLUICE_BROKERS)")
	root.AddCommand(
		newBrokerCmd(),
		newTopicCmd(g),
		newProduceCmd(g),
		newConsumeCmd(g),
		newBenchCmd(g),
		newClusterCmd(g),
	)
	return root
}
