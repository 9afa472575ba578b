package broker

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestCheckLimits(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	n := checkLimits(zap.New(core), []limitUse{
		{name: "open files", used: 100, limit: 1000, fix: "raise it"},   // fine
		{name: "open files", used: 850, limit: 1000, fix: "ulimit -n"},  // warn
		{name: "memory maps", used: 64000, limit: 65530, fix: "sysctl"}, // error
		{name: "unknown", used: 5, limit: 0},                            // no limit read
	})
	if n != 2 || logs.Len() != 2 {
		t.Fatalf("%d logged, %d lines; want 2", n, logs.Len())
	}
	warn, errl := logs.All()[0], logs.All()[1]
	if warn.Level != zapcore.WarnLevel || !strings.Contains(warn.Message, "850 of the limit of 1000") || !strings.Contains(warn.Message, "ulimit -n") {
		t.Errorf("warn line: %v %q", warn.Level, warn.Message)
	}
	if errl.Level != zapcore.ErrorLevel || !strings.Contains(errl.Message, "memory maps") {
		t.Errorf("error line: %v %q", errl.Level, errl.Message)
	}
}

// This process's limits are readable on Linux, and what it uses is
// counted: at least the test binary's own files and maps.
func TestProcessLimits(t *testing.T) {
	uses := processLimits()
	if len(uses) != 2 {
		t.Fatalf("%+v: want open files and memory maps", uses)
	}
	for _, u := range uses {
		if u.used <= 0 || u.limit <= 0 || u.fix == "" {
			t.Errorf("%+v", u)
		}
	}
}
