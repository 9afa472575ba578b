package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/client"
)

// runCmd runs the CLI in process with args and returns stdout and the
// error.
func runCmd(args ...string) (string, error) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// Bad flag combinations are refused before any broker is dialled (the
// --brokers address has nothing listening).
func TestGroupFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "t", "--from", "earliest"}, "need --group"},
		{[]string{"consume", "t", "--group", "g", "--partition", "1"}, "no --partition"},
		{[]string{"consume", "t", "--group", "g", "--from-beginning"}, "no --partition"},
		{[]string{"consume", "t", "--group", "g", "--from", "first"}, `--from "first"`},
		{[]string{"group", "reset-offsets", "g", "--to-earliest"}, "--topic is required"},
		{[]string{"group", "reset-offsets", "g", "--topic", "t"}, "exactly one of"},
		{[]string{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--shift-by", "-1"}, "exactly one of"},
		{[]string{"group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday"}, "RFC 3339"},
	} {
		_, err := runCmd(append(tc.args, "--brokers", "127.0.0.1:1")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to say %q", tc.args, err, tc.want)
		}
	}
}

// partitionList groups partitions by topic.
func TestPartitionList(t *testing.T) {
	got := partitionList([]client.TopicPartition{{Topic: "a", Partition: 0}, {Topic: "a", Partition: 2}, {Topic: "b", Partition: 1}})
	if got != "a/0,2 b/1" {
		t.Errorf("partitionList: %q", got)
	}
	if got := partitionList(nil); got != "-" {
		t.Errorf("partitionList(nil): %q", got)
	}
}
