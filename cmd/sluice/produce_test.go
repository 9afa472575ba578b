package main

import (
	"fmt"
	"strings"
	"testing"
)

// A topic that refuses every record gives one line per run of lines that
// failed alike, not one per record, and the output is bounded.
func TestReportFailedLines(t *testing.T) {
	var failed []lineError
	for n := 2000; n >= 1; n-- { // callbacks come in any order
		msg := "MESSAGE_TOO_LARGE"
		if n == 7 {
			msg = "NOT_ENOUGH_REPLICAS"
		}
		failed = append(failed, lineError{n, msg})
	}
	var b strings.Builder
	reportFailedLines(&b, failed)
	want := "sluice: produce: lines 1-6 (6 records): MESSAGE_TOO_LARGE\n" +
		"sluice: produce: line 7: NOT_ENOUGH_REPLICAS\n" +
		"sluice: produce: lines 8-2000 (1993 records): MESSAGE_TOO_LARGE\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}

	// Every other line failed, each differently: at most maxFailureRuns
	// lines, then a count of the rest.
	failed = failed[:0]
	for n := 1; n <= 100; n += 2 {
		failed = append(failed, lineError{n, fmt.Sprint("error ", n)})
	}
	b.Reset()
	reportFailedLines(&b, failed)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != maxFailureRuns+1 || lines[len(lines)-1] != "sluice: produce: and 30 more failed records" {
		t.Fatalf("got %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}
