// Command sluice is the one binary of sluice: the broker and every tool that
// talks to it. It only parses flags and wires packages together; anything a
// library user would also need lives in the packages.
//
//	sluice broker                      run a broker
//	sluice topic create|list|...       manage topics
//	sluice produce TOPIC               records from stdin
//	sluice consume TOPIC               records to stdout
//	sluice version                     what this binary is, and how it was built
//
// Every command has --help with examples.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the exit status. Errors are one
// line on stderr, never a stack trace.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	restoreSignals = stop
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "sluice:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "sluice:", err)
	return 1
}

// restoreSignals gives SIGINT and SIGTERM back their default action (end
// the process), so that a second signal during a graceful shutdown is not
// swallowed.
var restoreSignals = func() {}

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
