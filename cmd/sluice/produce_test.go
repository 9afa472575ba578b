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

// A topic whose max.message.bytes is below the producer's batches: the
// client splits each refused batch, so every line that fits is written,
// once and in order; a line that alone is over the limit fails, saying so.
func TestCLIProduceToSmallMaxMessageBytes(t *testing.T) {
	bin, addr := binaryAndBroker(t)
	sluice(t, bin, addr, "", "topic", "create", "small", "--config", "max.message.bytes=1024")
	const n = 300
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "value-%03d\n", i)
	}
	sluice(t, bin, addr, in.String(), "produce", "small")
	out := sluice(t, bin, addr, "", "consume", "small", "--from-beginning", "--max-messages", fmt.Sprint(n), "--timeout", "10s")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != n {
		t.Fatalf("consumed %d records, want %d", len(lines), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("value-%03d", i); l != want {
			t.Fatalf("record %d is %q, want %q", i, l, want)
		}
	}
	_, errOut, err := sluiceResult(bin, addr, strings.Repeat("x", 2000)+"\n", "produce", "small")
	if err == nil || !strings.Contains(errOut, "max.message.bytes") {
		t.Fatalf("a 2000-byte line: err %v, stderr %q; want a failure naming max.message.bytes", err, errOut)
	}
}
