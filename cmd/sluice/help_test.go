package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// cobraGenerated reports whether cobra, not this package, made cmd: the
// help command and the shell completion commands, which cobra adds when
// the root executes. Their Long text shows how to run them instead of an
// Example, and is not ours to edit.
func cobraGenerated(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Name() == "help" || c.Name() == "completion" {
			return c.HasParent() && !c.Parent().HasParent()
		}
	}
	return false
}

// walkCommands calls f for cmd and every command below it, depth first.
func walkCommands(cmd *cobra.Command, f func(*cobra.Command)) {
	f(cmd)
	for _, c := range cmd.Commands() {
		walkCommands(c, f)
	}
}

// helpProblems returns what the help of cmd (rendered in out) lacks: a
// Short for every command; for a runnable one, an Example that runs the
// command itself (cobra's own commands: a line of their help that does).
func helpProblems(cmd *cobra.Command, out string) []string {
	var problems []string
	if strings.TrimSpace(cmd.Short) == "" {
		problems = append(problems, "no Short")
	}
	if !cmd.Runnable() {
		return problems
	}
	path := cmd.CommandPath()
	invokes := func(text string) bool {
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if line == path || strings.HasPrefix(line, path+" ") || strings.Contains(line, "| "+path) ||
				strings.Contains(line, "<("+path+" ") {
				return true
			}
		}
		return false
	}
	switch {
	case cobraGenerated(cmd):
		if !invokes(out) {
			problems = append(problems, "its help shows no line that runs "+path)
		}
	case strings.TrimSpace(cmd.Example) == "":
		problems = append(problems, "no Example")
	case !invokes(cmd.Example):
		problems = append(problems, "its Example has no line that runs "+path)
	case !strings.Contains(out, "Examples:\n"+cmd.Example):
		problems = append(problems, "--help does not show its Example")
	}
	return problems
}

// TestHelpHasExamples walks the whole command tree, cobra's help and
// completion commands included, and runs `--help` on every command: each
// has a Short, and each runnable one shows an example of itself.
func TestHelpHasExamples(t *testing.T) {
	root := newRootCmd()
	root.SetOut(new(bytes.Buffer))
	root.SetArgs([]string{"--help"}) // executing adds cobra's help and completion commands
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var paths [][]string
	walkCommands(root, func(c *cobra.Command) {
		paths = append(paths, strings.Fields(c.CommandPath())[1:])
	})
	if len(paths) < 20 {
		t.Fatalf("walked %d commands, want every command of sluice: %v", len(paths), paths)
	}
	for _, args := range paths {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append(append([]string{}, args...), "--help"))
		cmd, err := root.ExecuteC()
		if err != nil {
			t.Fatalf("sluice %s --help: %v", strings.Join(args, " "), err)
		}
		for _, p := range helpProblems(cmd, out.String()) {
			t.Errorf("%s: %s", cmd.CommandPath(), p)
		}
	}
}

// TestHelpProblemsCatchesMissingExamples feeds the check the commands it
// exists to catch.
func TestHelpProblemsCatchesMissingExamples(t *testing.T) {
	run := func(*cobra.Command, []string) {}
	root := &cobra.Command{Use: "sluice", Short: "root"}
	noShort := &cobra.Command{Use: "a", Run: run, Example: "  sluice a"}
	noExample := &cobra.Command{Use: "b", Short: "b", Run: run}
	otherExample := &cobra.Command{Use: "c", Short: "c", Run: run, Example: "  sluice b --json"}
	prefixOnly := &cobra.Command{Use: "d", Short: "d", Run: run, Example: "  sluice dd"}
	good := &cobra.Command{Use: "e", Short: "e", Run: run, Example: "  echo x | sluice e --json"}
	group := &cobra.Command{Use: "f", Short: "a group, not runnable"}
	root.AddCommand(noShort, noExample, otherExample, prefixOnly, good, group)
	for _, tc := range []struct {
		cmd  *cobra.Command
		out  string
		want string
	}{
		{noShort, "Examples:\n  sluice a", "no Short"},
		{noExample, "", "no Example"},
		{otherExample, "Examples:\n  sluice b --json", "no line that runs sluice c"},
		{prefixOnly, "Examples:\n  sluice dd", "no line that runs sluice d"},
		{good, "Usage: ...", "--help does not show its Example"},
		{good, "Examples:\n  echo x | sluice e --json", ""},
		{group, "", ""},
	} {
		got := strings.Join(helpProblems(tc.cmd, tc.out), "; ")
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.cmd.CommandPath(), got, tc.want)
		}
	}
}
