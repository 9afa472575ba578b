package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/bench"
)

// exitCouldNotReadBack is verify's exit status when no check failed but
// a read did not complete: nothing is then called lost.
const exitCouldNotReadBack = 2

func newBenchVerifyCmd(g *globals) *cobra.Command {
	var (
		b    benchFlags
		gcfg bench.GroupConfig
		qcfg bench.QueueVerifyConfig
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that the cluster keeps every acknowledged record, once and in order",
		Long: `Producers write records with unique values (producer id and sequence) with
acks=all and record every outcome: acknowledged (partition, offset), failed for
sure, or unknown (timeout, connection lost after sending). Consumers read while
they run; afterwards every partition is read again from its log start to the
end offsets it had once the producers were done (the final read). Then it
checks:

  lost          acknowledged, absent from the final read
  unexpected    read, never sent
  failed        failed for sure, yet read
  inconsistent  one offset with two values (acknowledgement, live and final reads)
  vanished      seen by a live read, not by the final read
  reordered     a producer's records out of order within a partition
  non-monotonic a consumer's offsets not strictly increasing in a partition
  duplicates    one value at two offsets: a failure when the producers are
                idempotent; without idempotence only reported (a retried batch
                may be written twice)

Every read (offset lookups, live and final reads) retries what can pass on a
second try (a leader that moved, a broker restarting) with fresh metadata, each
step for at most --read-timeout. A read that still does not complete is
reported as "could not read back": lost and vanished are then not judged, as
the final read did not see the whole log, and no record is called lost. The
errors of the run are printed with the report, whatever the verdict.

Exit status: 0 when every check holds and every read completed; 1 when a check
fails (the message names them); 2 when no check failed but the run could not
read back. The topic must be new or empty (default: a fresh
sluice-verify-<time> topic). See docs/bench.md.

With --group G the --consumers consumers are members of consumer group G (new,
or with no commits on the topic) and share the partitions; each commits what it
read every --commit-interval. Every --kill-interval while the producers run, a
random consumer is closed without committing and a new one joins in its place.
Once the producers are done the consumers read on until the group has
committed every end offset. Checks:

  lost          acknowledged, never read by any consumer of the group
  unexpected    read, never sent
  duplicates    read again after the first reader handed its partition over
                (a kill, a rebalance), by the next owner or by the first
                reader once the partition came back to it: expected, counted
  unexplained   read again with no hand-over between: a failure
  unowned       read by a consumer that did not own the partition then (before
                its assignment or after its hand-over): a failure
  backwards     a committed offset lower than before (sampled every 20ms)
  not committed a partition whose committed offset is not its end offset after
                the run

With --queue G the --consumers workers are members of queue group G (new): they
receive records, reject --reject-percent of them (chosen by value) and accept
the rest; --hang-percent of their batches are held past the lease before they
are settled, and every --kill-interval a random worker stops at once, leaving
what it holds. Once the producers are done the workers go on until the group
has settled every record; then the dead-letter topic (<topic>.dlq) is read
back. Checks: every acknowledged record is accepted exactly once or
dead-lettered (never both, never neither), nothing unknown is settled, no
delivery count passes --max-deliveries (the brokers' limit), every dead letter
names its record's topic, partition and offset, and no outcome after the lease
is applied. Give --read-timeout above the brokers' lease: a killed worker's
records come back only after it.`,
		Example: `  sluice bench verify
  sluice bench verify --producers 4 --consumers 2 --partitions 6 --records 500000
  sluice bench verify --replication-factor 3 --duration 5m --json
  sluice bench verify --group verify-$(date +%s) --consumers 3 --partitions 6 --kill-interval 1s
  sluice bench verify --queue verify-$(date +%s) --consumers 4 --records 100000 --read-timeout 60s`,
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
			if gcfg.Group != "" && qcfg.Group != "" {
				return errors.New("--group and --queue exclude each other")
			}
			if gcfg.Group != "" {
				return verifyGroup(cmd, &b, cfg, gcfg)
			}
			if qcfg.Group != "" {
				qcfg.KillInterval = gcfg.KillInterval
				return verifyQueue(cmd, &b, cfg, qcfg)
			}
			var h bench.History
			err = withCPUProfile(b.cpuprofile, func() error {
				h, err = bench.Verify(cmd.Context(), cfg)
				return err
			})
			if err != nil && h.Sends == nil {
				return err // the run did not start
			}
			r := bench.Check(h)
			errs := errorLines(err)
			if werr := writeVerifyResult(cmd.OutOrStdout(), b.json, b.topic, &r, errs); werr != nil {
				return werr
			}
			return verifyExit(&r, errs)
		},
	}
	f := cmd.Flags()
	b.addCommon(f, "")
	b.addProducer(f, false) // acks stay all: the client default
	b.addReader(f)
	f.IntVar(&b.consumers, "consumers", 1, "live consumers, each reading every partition (with --group: sharing them)")
	f.StringVar(&gcfg.Group, "group", "", "consumers are members of this consumer group, killed and restarted during the run")
	f.DurationVar(&gcfg.KillInterval, "kill-interval", 2*time.Second, "with --group: close a consumer without committing this often; with --queue: stop a worker holding its records (0: never)")
	f.StringVar(&qcfg.Group, "queue", "", "consumers are workers of this queue group, rejecting, hanging and killed during the run")
	f.IntVar(&qcfg.RejectPercent, "reject-percent", 5, "with --queue: reject this share of the records (by value)")
	f.IntVar(&qcfg.HangPercent, "hang-percent", 2, "with --queue: hold this share of the batches past their lease")
	f.IntVar(&qcfg.MaxDeliveries, "max-deliveries", 5, "with --queue: the brokers' delivery limit, which no delivery may pass")
	f.DurationVar(&gcfg.CommitInterval, "commit-interval", 200*time.Millisecond, "with --group: how often each consumer commits what it read")
	f.Lookup("partitions").DefValue = "3"
	b.partitions = 3
	f.Lookup("topic").Usage = "topic to use: must be empty or new (default: a fresh sluice-verify-<time>)"
	f.Lookup("records").Usage = fmt.Sprintf("records to produce in all (default %d)", bench.DefaultVerifyRecords)
	return cmd
}

// Verdicts of a verify run.
const (
	verdictOK          = "OK"
	verdictFailed      = "FAILED"              // a check failed
	verdictNotReadBack = "COULD NOT READ BACK" // no check failed, a read did not complete
)

// verdict is the outcome of a verify run; errs are the run's errors, all
// of them reads that failed or did not complete.
func verdict(r *bench.Result, errs []string) string {
	switch {
	case r.Anomalies() > 0:
		return verdictFailed
	case !r.ReadBack || len(errs) > 0:
		return verdictNotReadBack
	}
	return verdictOK
}

// verifyExit is the command's error for a verdict: nil for OK, exit 1 when
// a check failed, exitCouldNotReadBack when a read did not complete.
func verifyExit(r *bench.Result, errs []string) error {
	switch verdict(r, errs) {
	case verdictFailed:
		return &exitError{code: 1, msg: "verify: FAILED: " + failedChecks(r)}
	case verdictNotReadBack:
		why := strings.Join(errs, "; ")
		if why == "" {
			why = r.ReadBackError
		}
		return &exitError{code: exitCouldNotReadBack, msg: "verify: could not read back: " + why}
	}
	return nil
}

// errorLines is err as one line per error it joins (errors.Join), none
// for nil.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, strings.ReplaceAll(e.Error(), "\n", "; "))
	}
	return out
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

// writeVerifyResult writes the verdict, the figures, examples of what
// failed and the run's errors.
func writeVerifyResult(w io.Writer, asJSON bool, topic string, r *bench.Result, errs []string) error {
	v := verdict(r, errs)
	if asJSON {
		return writeJSON(w, struct {
			Topic   string `json:"topic"`
			OK      bool   `json:"ok"`
			Verdict string `json:"verdict"`
			*bench.Result
			Errors []string `json:"errors,omitempty"`
		}{topic, v == verdictOK, strings.ToLower(v), r, errs})
	}
	fmt.Fprintf(w, "verify %s: %s\n", topic, v)
	fmt.Fprintf(w, "sent %d: acknowledged %d, failed %d, unknown %d (%d of them present)\n",
		r.Sent, r.Acked, r.Failed, r.Unknown, r.UnknownPresent)
	if r.Idempotent {
		fmt.Fprintf(w, "idempotent producers: %d unknown outcomes resolved by retries (acknowledged)\n", r.ResolvedUnknown)
	}
	fmt.Fprintf(w, "read: %d live, %d in the final read\n", r.LiveReads, r.FinalReads)
	dups := " (not failed: the producers were not idempotent)"
	if r.Idempotent {
		dups = ""
	}
	if r.ReadBack {
		fmt.Fprintf(w, "lost %d, unexpected %d, failed-present %d, inconsistent %d, vanished %d, reordered %d, non-monotonic %d, duplicates %d%s\n",
			r.Lost, r.Unexpected, r.FailedPresent, r.Inconsistent, r.Vanished, r.Reordered, r.NonMonotonic, r.Duplicates, dups)
	} else {
		fmt.Fprintf(w, "the final read did not complete: lost and vanished not judged, %d acknowledged records not read back\n", r.NotReadBack)
		fmt.Fprintf(w, "unexpected %d, failed-present %d, inconsistent %d, reordered %d, non-monotonic %d, duplicates %d%s\n",
			r.Unexpected, r.FailedPresent, r.Inconsistent, r.Reordered, r.NonMonotonic, r.Duplicates, dups)
	}
	writeExamples(w, r.Examples, errs)
	return nil
}

// writeExamples writes examples of what failed and the run's errors.
func writeExamples(w io.Writer, examples, errs []string) {
	for _, e := range examples {
		fmt.Fprintln(w, "  ", e)
	}
	if len(errs) > 0 {
		fmt.Fprintln(w, "errors:")
		for _, e := range errs {
			fmt.Fprintln(w, "  ", e)
		}
	}
}

// verifyGroup runs bench verify --group: VerifyGroup, CheckGroup and the
// verdict.
func verifyGroup(cmd *cobra.Command, b *benchFlags, cfg bench.Config, gcfg bench.GroupConfig) error {
	var h bench.GroupHistory
	err := withCPUProfile(b.cpuprofile, func() error {
		var err error
		h, err = bench.VerifyGroup(cmd.Context(), cfg, gcfg)
		return err
	})
	if err != nil && h.Sends == nil {
		return err // the run did not start
	}
	r := bench.CheckGroup(h)
	errs := errorLines(err)
	v := verdictOK
	switch {
	case r.Anomalies() > 0:
		v = verdictFailed
	case len(errs) > 0:
		v = verdictNotReadBack
	}
	w := cmd.OutOrStdout()
	if b.json {
		if err := writeJSON(w, struct {
			Topic   string `json:"topic"`
			Group   string `json:"group"`
			OK      bool   `json:"ok"`
			Verdict string `json:"verdict"`
			*bench.GroupResult
			Errors []string `json:"errors,omitempty"`
		}{b.topic, gcfg.Group, v == verdictOK, strings.ToLower(v), &r, errs}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "verify %s --group %s: %s\n", b.topic, gcfg.Group, v)
		fmt.Fprintf(w, "sent %d, acknowledged %d; %d reads by the group, %d consumers killed\n", r.Sent, r.Acked, r.Reads, r.Kills)
		fmt.Fprintf(w, "lost %d, unexpected %d, unexplained duplicates %d, unowned %d, backwards %d, not committed %d; duplicates across a hand-over %d\n",
			r.Lost, r.Unexpected, r.UnexplainedDuplicates, r.Unowned, r.Backwards, r.NotCommitted, r.Duplicates)
		writeExamples(w, r.Examples, errs)
	}
	switch v {
	case verdictFailed:
		return &exitError{code: 1, msg: fmt.Sprintf("verify --group: FAILED: %d lost, %d unexpected, %d unexplained duplicates, %d unowned, %d backwards, %d not committed",
			r.Lost, r.Unexpected, r.UnexplainedDuplicates, r.Unowned, r.Backwards, r.NotCommitted)}
	case verdictNotReadBack:
		return &exitError{code: exitCouldNotReadBack, msg: "verify --group: could not complete: " + strings.Join(errs, "; ")}
	}
	return nil
}
