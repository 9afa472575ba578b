package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/bench"
)

func newBenchVerifyCmd(g *globals) *cobra.Command {
	var b benchFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that the cluster keeps every acknowledged record, once and in order",
		Long: `Producers write records with unique values (producer id and sequence) with
acks=all and record every outcome: acknowledged (partition, offset), failed for
sure, or unknown (timeout, connection lost after sending). Consumers read while
they run; afterwards every partition is read again from its log start. Then it
checks:

  lost          acknowledged, absent from the final read
  unexpected    read, never sent
  failed        failed for sure, yet read
  inconsistent  one offset with two values (acknowledgement, live and final reads)
  vanished      seen by a live read, not by the final read
  reordered     a producer's records out of order within a partition
  non-monotonic a consumer's offsets not strictly increasing in a partition
  duplicates    one value at two offsets: reported, but not a failure until the
                producer is idempotent (a retried batch may be written twice)

Exits 0 only when every check holds, 1 otherwise. The topic must be new or
empty (default: a fresh sluice-verify-<time> topic). See docs/bench.md.`,
		Example: `  sluice bench verify
  sluice bench verify --producers 4 --consumers 2 --partitions 6 --records 500000
  sluice bench verify --replication-factor 3 --duration 5m --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if b.topic == "" {
				b.topic = fmt.Sprintf("sluice-verify-%d", time.Now().UnixMilli())
				b.create = true
			}
			cfg, err := b.config(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var h bench.History
			err = withCPUProfile(b.cpuprofile, func() error {
				h, err = bench.Verify(cmd.Context(), cfg)
				return err
			})
			if err != nil && h.Sends == nil {
				return err
			}
			r := bench.Check(h)
			if werr := writeVerifyResult(cmd.OutOrStdout(), b.json, b.topic, &r); werr != nil {
				return werr
			}
			switch {
			case !r.OK():
				return &exitError{code: 1, msg: "verify: FAILED: " + failedChecks(&r)}
			case err != nil:
				return fmt.Errorf("verify: the checks held for what was observed, but the run was incomplete: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	b.addCommon(f, "")
	b.addProducer(f, false) // acks stay all: the client default
	f.IntVar(&b.consumers, "consumers", 1, "live consumers, each reading every partition")
	f.Lookup("partitions").DefValue = "3"
	b.partitions = 3
	f.Lookup("topic").Usage = "topic to use: must be empty or new (default: a fresh sluice-verify-<time>)"
	f.Lookup("records").Usage = fmt.Sprintf("records to produce in all (default %d)", bench.DefaultVerifyRecords)
	return cmd
}

// failedChecks names the checks that failed, with their counts.
func failedChecks(r *bench.Result) string {
	var s string
	for _, c := range []struct {
		name string
		n    int64
	}{
		{"lost", r.Lost}, {"unexpected", r.Unexpected}, {"failed but present", r.FailedPresent},
		{"inconsistent", r.Inconsistent}, {"vanished", r.Vanished}, {"reordered", r.Reordered},
		{"non-monotonic", r.NonMonotonic},
	} {
		if c.n > 0 {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%d %s", c.n, c.name)
		}
	}
	return s
}

func writeVerifyResult(w io.Writer, asJSON bool, topic string, r *bench.Result) error {
	if asJSON {
		return writeJSON(w, struct {
			Topic string `json:"topic"`
			OK    bool   `json:"ok"`
			*bench.Result
		}{topic, r.OK(), r})
	}
	verdict := "OK"
	if !r.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "verify %s: %s\n", topic, verdict)
	fmt.Fprintf(w, "sent %d: acknowledged %d, failed %d, unknown %d (%d of them present)\n",
		r.Sent, r.Acked, r.Failed, r.Unknown, r.UnknownPresent)
	fmt.Fprintf(w, "read: %d live, %d in the final read\n", r.LiveReads, r.FinalReads)
	fmt.Fprintf(w, "lost %d, unexpected %d, failed-present %d, inconsistent %d, vanished %d, reordered %d, non-monotonic %d, duplicates %d (not failed)\n",
		r.Lost, r.Unexpected, r.FailedPresent, r.Inconsistent, r.Vanished, r.Reordered, r.NonMonotonic, r.Duplicates)
	for _, e := range r.Examples {
		fmt.Fprintln(w, "  ", e)
	}
	return nil
}
