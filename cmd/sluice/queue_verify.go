package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/bench"
)

// verifyQueue runs bench verify --queue: VerifyQueue, CheckQueue and the
// verdict.
func verifyQueue(cmd *cobra.Command, b *benchFlags, cfg bench.Config, qcfg bench.QueueVerifyConfig) error {
	var h bench.QueueHistory
	err := withCPUProfile(b.cpuprofile, func() error {
		var err error
		h, err = bench.VerifyQueue(cmd.Context(), cfg, qcfg)
		return err
	})
	if err != nil && h.Sends == nil {
		return err // the run did not start
	}
	r := bench.CheckQueue(h)
	errs := errorLines(err)
	v := verdictOK
	switch {
	case r.Violations() > 0:
		v = verdictFailed
	case len(errs) > 0:
		v = verdictNotReadBack
	}
	w := cmd.OutOrStdout()
	if b.json {
		if err := writeJSON(w, struct {
			Topic   string `json:"topic"`
			Queue   string `json:"queue"`
			OK      bool   `json:"ok"`
			Verdict string `json:"verdict"`
			*bench.QueueResult
			Errors []string `json:"errors,omitempty"`
		}{b.topic, qcfg.Group, v == verdictOK, strings.ToLower(v), &r, errs}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "verify %s --queue %s: %s\n", b.topic, qcfg.Group, v)
		fmt.Fprintf(w, "sent %d, acknowledged %d; accepted %d, dead-lettered %d, indeterminate outcomes %d; %d workers killed, %d late outcomes refused\n",
			r.Sent, r.Acked, r.Accepted, r.DeadLettered, r.Indeterminate, r.Kills, r.LateRefused)
		fmt.Fprintf(w, "lost %d, accepted twice %d, accepted and dead-lettered %d, over the delivery limit %d, bad dead-letter headers %d, unexpected %d, late outcomes applied %d\n",
			r.Lost, r.AcceptedTwice, r.AcceptedAndDead, r.OverLimit, r.BadHeaders, r.Unexpected, r.LateAccepted)
		writeExamples(w, r.Examples, errs)
	}
	switch v {
	case verdictFailed:
		return &exitError{code: 1, msg: fmt.Sprintf("verify --queue: FAILED: %d violations", r.Violations())}
	case verdictNotReadBack:
		return &exitError{code: exitCouldNotReadBack, msg: "verify --queue: could not complete: " + strings.Join(errs, "; ")}
	}
	return nil
}
